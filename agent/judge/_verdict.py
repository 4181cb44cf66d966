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


def checks_as_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    """The checks as the verdict stores them: one {name, ok, message} per check."""
    return [asdict(c) for c in checks]


def short_json(value: Any) -> str:
    """Compact JSON for putting a draft back into a prompt."""
    return json.dumps(value, separators=(",", ":"), default=str)


def finite(x: Any) -> bool:
    """Whether `x` is a finite number (a bool is not one)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
