"""What a valid draft is: the reasoner's answer, its JSON schema, and its completion.

The reasoner answers in JSON constrained by `draft_schema`: which candidate it recommends and
a one-sentence rationale; `complete_draft` fills in the rest from the candidate it names, and
`parse_draft` validates the result into a `Draft`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.judge._grounding import quoted_ids
from agent.judge._text import one_sentence, tidy_text

# The rationale's length, in characters (a decimal point and its digit count as one), as a
# pattern (`one_sentence`) rather than a maxLength: at 150 the grammar cut 5 of bench.latency's
# 12 rationales mid-sentence; one sentence of up to 190 cut none, at the same p50.
DRAFT_RATIONALE_MAX = 190
MAX_CITES = 3
# Fields a draft may set; the rest of the config comes from the candidate it starts from.
LLM_FIELDS = ("backbone", "mode", "learning_rate", "batch_size", "epochs")


class Draft(BaseModel):
    """The reasoner's answer, validated (the same rules as `draft_schema`, minus the enums)."""

    model_config = ConfigDict(extra="ignore")

    candidate: str = Field(min_length=1, max_length=8)
    # Filled from the candidate by `complete_draft` when the model leaves them out.
    backbone: str = Field(min_length=1, max_length=64)
    mode: str = Field(min_length=1, max_length=16)
    learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    expected_accuracy: float = Field(ge=0, le=1)
    rationale: str = Field(min_length=1, max_length=DRAFT_RATIONALE_MAX + 40)
    cite: list[str] = Field(default_factory=list, max_length=MAX_CITES + 2)


def draft_schema(candidates: Sequence[dict[str, Any]], evidence_aliases: Sequence[str]) -> dict[str, Any]:
    """The reasoner's JSON schema, with enums drawn from this request's candidates and evidence.

    Args:
        candidates: the candidates as stored in the state (`id`, `config`, ...).
        evidence_aliases: the aliases ("r1", ...) of the past runs shown to the LLM.
    """
    ids = [c["id"] for c in candidates]
    return {
        "title": "Recommendation",
        "type": "object",
        # No "cite" list: the ids the rationale names are its citations (complete_draft),
        # which saves ~10 generated tokens, and the checks hold them to the evidence.
        "properties": {
            "candidate": {"type": "string", "enum": ids},
            "rationale": one_sentence(DRAFT_RATIONALE_MAX),
        },
        "required": ["candidate", "rationale"],
        "additionalProperties": False,
    }


def complete_draft(raw: dict[str, Any], candidates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A draft with the fields it left out filled in: the configuration from the candidate it
    names, the expected accuracy as the meta-model's prediction for it, the citations as the
    ids its rationale names (the candidate itself when it names none). A draft naming no known candidate keeps its gaps (the checks
    report it).
    """
    raw = dict(raw)
    if "cite" not in raw and isinstance(raw.get("rationale"), str):
        # A rationale that names no id speaks of the candidate it picked.
        raw["cite"] = quoted_ids(raw["rationale"]) or ([raw["candidate"]] if raw.get("candidate") else [])
    base = next((c for c in candidates if c["id"] == raw.get("candidate")), None)
    if base is None:
        return raw
    filled = {name: base["config"][name] for name in LLM_FIELDS}
    filled["expected_accuracy"] = base["accuracy"]
    return {**filled, **{k: v for k, v in raw.items() if v is not None}}


def parse_draft(raw: Any) -> tuple[Draft | None, str | None]:
    """Validate a raw LLM answer; returns (draft, None) or (None, what is wrong)."""
    if raw is None:
        return None, "no answer"
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if not isinstance(raw, dict):
        return None, f"the answer must be a JSON object, but got {type(raw).__name__}"
    if isinstance(raw.get("rationale"), str):
        raw = {**raw, "rationale": tidy_text(raw["rationale"], DRAFT_RATIONALE_MAX)}
    try:
        return Draft.model_validate(raw), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        return None, f"{where}: {first['msg']} ({exc.error_count()} problem(s))"
