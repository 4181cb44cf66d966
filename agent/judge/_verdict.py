"""The verdict on a draft: the critique the reasoner gets back, and the checks as JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from agent.judge._checks import Check
from agent.judge._llm import SCORE_NAMES, JudgeScores


def critique_of(checks: Sequence[Check], scores: JudgeScores | None = None) -> str | None:
    """The feedback for the reasoner: failed checks first, else the LLM judge's critique."""
    failed = [f"{c.name}: {c.message}" for c in checks if not c.ok]
    if failed:
        return " ".join(failed)[:600]
    if scores is not None:
        if scores.problem:
            return f"the judge found a {scores.problem}: {scores.critique.strip() or 'improve the rationale'}"[:600]
        low = [f"{n} {getattr(scores, n)}/5" for n in SCORE_NAMES]
        return f"judge scores {', '.join(low)}: {scores.critique.strip() or 'improve the rationale'}"[:600]
    return None


# The minimum each LLM-judge score must reach when a verdict does not say (agent.context.Context's default).
DEFAULT_MIN_SCORE = 3.0


def verdict_summary(v: dict[str, Any]) -> str:
    """How a verdict was reached, in words that cannot be misread, e.g. "LLM judge: accuracy 1 of 5 (it
    saw a wrong number or id), overruled: ...; deterministic checks: all 10 passed. Verdict: passed".

    The verdict is the deterministic checks' first: any failed check fails the draft, and the LLM
    judge is then not asked. Once they all pass, the LLM judge's scores (1-5 per criterion) must
    each reach `min_score`, except that its "wrong number or id" is overruled when the grounding
    check read every number and id of the rationale right (agent.nodes.Nodes.judge).

    Args:
        v: a verdict as the judge node stores it (or a Recommendation's verdict, as JSON).
    """
    checks = v.get("checks") or []
    failed = [c["name"] for c in checks if not c.get("ok")]
    det = (f"deterministic checks: all {len(checks)} passed" if not failed else
           f"deterministic checks: {len(failed)} of {len(checks)} failed ({', '.join(failed)})")
    if v.get("trimmed"):
        det += f" ({v['trimmed'].rstrip('.')})"
    verdict = "passed" if v.get("passed") else "failed"
    scores = v.get("scores") or None
    if scores is None:
        if v.get("judge_error"):
            llm = f"LLM judge: no answer ({v['judge_error']}), so the checks alone decided"
        elif failed:
            llm = "LLM judge: not asked (it reads a draft only once every check passes)"
        else:
            llm = "LLM judge: not asked (turned off), so the checks alone decided"
        return f"{llm}; {det}. Verdict: {verdict}"
    floor = v.get("min_score") or DEFAULT_MIN_SCORE
    low = {k: s for k, s in scores.items() if s < floor}
    shown = ", ".join(f"{k} {s} of 5" for k, s in scores.items())
    if v.get("overruled"):
        llm = (f"LLM judge: {shown}, overruled (advisory here): {v['overruled']}")
    elif low:
        llm = (f"LLM judge: {shown}; every score must reach {floor:g} of 5, so "
               f"{' and '.join(low)} failed the draft")
    else:
        llm = f"LLM judge: {shown} (each must reach {floor:g} of 5: no problem found)"
    return f"{llm}; {det}. Verdict: {verdict}"


def checks_as_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    """The checks as the verdict stores them: one {name, ok, message} per check."""
    return [asdict(c) for c in checks]


def short_json(value: Any) -> str:
    """Compact JSON for putting a draft back into a prompt."""
    return json.dumps(value, separators=(",", ":"), default=str)


def finite(x: Any) -> bool:
    """Whether `x` is a finite number (a bool is not one)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
