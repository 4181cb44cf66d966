"""The LLM judge: its answer (`JudgeScores`), its JSON schema, and the call.

It runs only once every deterministic check passed, and names the one problem it sees (a
wrong number or id, a vague reason, an unreadable sentence, or none) with a short critique;
the label becomes scores 1-5 for format, accuracy (grounding) and completeness.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.judge._text import tidy_text

CRITIQUE_MAX = 80
SCORE_NAMES = ("format", "accuracy", "completeness")

# The LLM judge names the one problem it sees, if any; each maps to the criterion it fails.
# A label, not 1-5 numbers: Qwen2.5-Coder-1.5B scored a correct draft 1/1/1 under the
# critique "The answer is correct" and a rationale quoting made-up numbers 4/1/1, while
# the label came out right on both (bench/judge_quality.py measures this).
JUDGE_PROBLEMS: dict[str, str | None] = {
    "none": None,
    "wrong number or id": "accuracy",
    "vague reason": "completeness",
    "unreadable": "format",
}
# The labels whose critique is "ok", filled in by `llm_scores` (see `judge_schema`).
NO_CRITIQUE = ("none", "wrong number or id")


class JudgeScores(BaseModel):
    """The LLM judge's answer: the problem it names, as scores 1-5 per criterion.

    A judge answering with a `problem` label (what `judge_schema` asks for) scores 1 on the
    criterion that problem fails and 5 on the others; numeric scores are taken as given.
    """

    model_config = ConfigDict(extra="ignore")

    format: int = Field(ge=1, le=5)
    accuracy: int = Field(ge=1, le=5)
    completeness: int = Field(ge=1, le=5)
    critique: str = Field(default="", max_length=CRITIQUE_MAX + 40)
    problem: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_problem(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "problem" not in data or "format" in data:
            return data
        problem = data["problem"]
        if problem not in JUDGE_PROBLEMS:
            raise ValueError(f"problem must be one of {', '.join(JUDGE_PROBLEMS)}, but got {problem!r}")
        failed = JUDGE_PROBLEMS[problem]
        return {**data, **{name: 1 if name == failed else 5 for name in SCORE_NAMES},
                "problem": None if failed is None else problem}


def judge_schema() -> dict[str, Any]:
    """The LLM judge's JSON schema: the one problem it sees (or "none"), then a critique.

    Only "vague reason" and "unreadable" get a free critique: it goes into the retry prompt.
    For "none" the critique is "ok"; so it is for "wrong number or id", because the LLM judge
    runs only once the checks have verified every number and id, so that label is always
    overruled (`Nodes.judge`) and its critique was never used, yet a 1.5B judge wrote one for
    about half the drafts it saw. With `with_rationale`, this took the judge call's p50 from
    2.30 to 1.65 s (`python -m bench.latency --baseline`, docs/BENCHMARKS.md).

    Those two labels end the answer (`{"problem": "none"}`): the fixed `"critique": "ok"` cost
    about 8 generated tokens, each a pass through the model, and `llm_scores` fills it in. The
    label is generated before the branches differ, under the same grammar, so the same prompt
    gets the same label (`python -m bench.latency --baseline grammar`).
    """

    def verdict(problems: list[str], critique: dict[str, Any] | None) -> dict[str, Any]:
        properties: dict[str, Any] = {"problem": {"type": "string", "enum": problems}}
        if critique is not None:
            # The label comes first: written after a free critique, a small model's label
            # followed the critique's tone more than the draft (bench/judge_quality.py).
            properties["critique"] = critique
        return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}

    free = [p for p in JUDGE_PROBLEMS if p not in NO_CRITIQUE]
    return {
        "title": "Verdict",
        "anyOf": [verdict(list(NO_CRITIQUE), None), verdict(free, {"type": "string", "maxLength": CRITIQUE_MAX})],
    }


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
    elif isinstance(raw, dict) and raw.get("problem") in NO_CRITIQUE:
        raw = {**raw, "critique": "ok"}  # the schema ends these answers at the label
    try:
        return JudgeScores.model_validate(raw), None
    except ValidationError as exc:
        return None, f"invalid judge answer: {exc.errors()[0]['msg']}"


def passes(scores: JudgeScores, min_score: float) -> bool:
    """Whether LLM-judge scores pass: every criterion reaches `min_score`."""
    return min(scores.format, scores.accuracy, scores.completeness) >= min_score
