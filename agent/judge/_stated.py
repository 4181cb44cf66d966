"""Budgets and limits a rationale speaks of, held to what the user stated.

"Well within your 15-minute budget" is true only when the user gave a budget, of 15 minutes;
a parameter, model-size or memory limit, or a device ("CPU-only", "your GPU"), only when the
user said so. Saying there is none ("no time budget") is always allowed.
"""

from __future__ import annotations

import re

from agent.judge._facts import Facts, Stated
from agent.judge._reading import clauses, number

_LIMIT = r"(?:limit|cap|budget|constraint|ceiling|maximum|max|restriction|allowance)"
_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600}
_DURATION = rf"(?P<n>\d+(?:\.\d+)?)[\s-]*(?P<u>{'|'.join(sorted(_UNITS, key=len, reverse=True))})\b"
_BY_KIND: dict[str, tuple[re.Pattern[str], ...]] = {
    "budget": (
        re.compile(rf"(?:{_DURATION}[\s-]+(?:time\s+|training\s+)?)?\bbudget\b(?:\s+of\s+{_DURATION.replace('P<', 'P<b')})?",
                   re.I),
        re.compile(r"\b(?:deadline|time[\s-]+(?:limit|cap|constraint|allowance)|(?:allotted|available)\s+time|"
                   r"time\s+(?:you\s+have|available|allotted))\b", re.I),
        re.compile(rf"\byour\s+{_DURATION}", re.I),
    ),
    "params": (
        re.compile(rf"\b(?:parameters?|params?)[\s-]+{_LIMIT}\b", re.I),
        re.compile(rf"\b{_LIMIT}\s+(?:of\s+)?~?\s*\d[\d.,]*\s*(?:[kmb]|million|billion|thousand)?[\s-]*(?:parameters|params)\b",
                   re.I),
        re.compile(r"\b(?:your|at\s+most|no\s+more\s+than|up\s+to)\s+(?:the\s+)?~?\d[\d.,]*\s*(?:[kmb]|million|thousand)?"
                   r"[\s-]*(?:parameters?|params?)\b", re.I),
    ),
    "model_size": (
        re.compile(rf"\b(?:model[\s-]*size|size|MB|megabytes?)[\s-]+{_LIMIT}\b", re.I),
        re.compile(rf"\b(?:{_LIMIT}|at\s+most|no\s+more\s+than|your)\s+(?:of\s+)?\d[\d.,]*\s*(?:MB|megabytes?)\b", re.I),
    ),
    "memory": (
        re.compile(rf"\b(?:(?:GPU|video)\s+)?(?:memory|RAM|VRAM)[\s-]+{_LIMIT}\b", re.I),
        re.compile(r"\b\d+(?:\.\d+)?\s*(?:GB|GiB)\s+(?:of\s+)?(?:GPU\s+)?(?:memory|RAM|VRAM)\b", re.I),
        re.compile(r"\byour\s+(?:GPU\s+)?(?:memory|RAM|VRAM)\b", re.I),
    ),
    "cpu": (re.compile(r"\bCPU[\s-]*only\b|\bno\s+GPU\b|\bwithout\s+(?:a\s+)?GPU\b", re.I),),
    "gpu": (re.compile(rf"\bGPU[\s-]*only\b|\byour\s+(?:GPU|graphics\s+card)\b|\bGPU[\s-]+{_LIMIT}\b", re.I),),
}
_WHAT = {"budget": "a time budget", "params": "a parameter limit", "model_size": "a model-size limit",
         "memory": "a memory limit", "cpu": "a CPU-only device", "gpu": "a GPU"}
# "no time budget", "without a parameter limit", "not given a budget": saying there is none.
_NONE = re.compile(r"(?:\b(?:no|without|unlimited|none)\b(?:\s+[\w-]+){0,2}|"
                   r"\bnot\s+(?:given|stated|set|specified|provided)(?:\s+(?:a|any))?)\s*$", re.I)
# "a parameter budget", "a memory budget": a limit of another kind, not a time budget.
_OTHER_BUDGET = re.compile(r"(?:param\w*|memory|size|RAM|MB|GB)[\s-]*$", re.I)


def _allowed(kind: str, stated: Stated) -> bool:
    if kind == "budget":
        return bool(stated.budgets)
    if kind in ("cpu", "gpu"):
        device = (stated.device or "").lower()
        return device.startswith("cpu") if kind == "cpu" else device.startswith(("cuda", "gpu"))
    return kind in stated.limits


def _budget_value(m: re.Match[str]) -> float | None:
    """The budget, in seconds, a match states ("15-minute budget", "budget of 900 s"), else None."""
    groups = m.groupdict()
    for n, u in (("n", "u"), ("bn", "bu")):
        if groups.get(n):
            return number(groups[n]).value * _UNITS[groups[u].lower()]
    return None


def _wrong_budget(m: re.Match[str], stated: Stated) -> str | None:
    """A budget stated with a value that is none of the user's (at the precision written)."""
    value = _budget_value(m)
    if value is None:
        return None
    groups = m.groupdict()
    n, u = ("n", "u") if groups.get("n") else ("bn", "bu")
    written = number(groups[n])
    scale = _UNITS[groups[u].lower()]
    if any(abs(written.value * scale - b) <= written.unit * scale / 2 + 0.02 * b for b in stated.budgets):
        return None
    said = " or ".join(f"{b / 60:g} min" for b in stated.budgets)
    return f"it says the budget is {m.group(0).strip()!r}, but the user's budget is {said}"


def unstated_limits(rationale: str, facts: Facts) -> list[str]:
    """The budgets and limits a rationale speaks of that the user never stated (or stated otherwise)."""
    stated = facts.stated
    if stated is None:
        return []
    problems: dict[str, str] = {}  # one finding per kind
    for _, clause in clauses(rationale):
        for kind, m in _mentions(clause):
            if kind in problems:
                continue
            if not _allowed(kind, stated):
                problems[kind] = (f"it speaks of {_WHAT[kind]} ({m.group(0).strip()!r}), which the user never stated; "
                                  "leave it out")
            elif kind == "budget" and (wrong := _wrong_budget(m, stated)):
                problems[kind] = wrong
    return list(problems.values())


def _mentions(clause: str) -> list[tuple[str, re.Match[str]]]:
    """(kind, match) for each budget or limit a clause speaks of, left out those it says there are none of."""
    found = []
    for kind, patterns in _BY_KIND.items():
        for pattern in patterns:
            for m in pattern.finditer(clause):
                before = clause[: m.start()]
                if not (_NONE.search(before) or (kind == "budget" and _OTHER_BUDGET.search(before))):
                    found.append((kind, m))
    return found
