"""Comparisons of hyperparameters between runs, held to their configurations.

"c1 uses fewer epochs than c2" for a c1 of 32 epochs and a c2 of 22 is false (the embedded
1.5B wrote it, with both numbers beside the ids). A comparative before a setting's name
("a higher learning rate", "fewer epochs", "a larger input size") speaks of the run named last
before it in its clause (or, naming none, of the choice the rationale is about) against the first
run named after a "than" / "compared to" that follows it in the same clause. Without such a
"than" nothing is compared; a run whose configuration does not show the setting is not judged.
"""

from __future__ import annotations

import re

from agent.judge._facts import Facts
from agent.judge._reading import clauses, id_pattern

_SETTINGS = {
    "learning_rate": r"learning[\s-]*rates?|lrs?",
    "epochs": r"(?:training\s+)?epochs",
    "batch_size": r"batch[\s-]*sizes?|batches",
    "input_size": r"input[\s-]*(?:sizes?|resolutions?)|image[\s-]*sizes?|resolutions?",
    "dropout": r"dropouts?",
    "weight_decay": r"weight[\s-]*decays?",
}
_MORE = r"higher|larger|bigger|greater|more|longer"
_LESS = r"lower|smaller|fewer|less|shorter"
_STATED = re.compile(rf"\b(?:(?P<more>{_MORE})|(?P<less>{_LESS}))\s+(?P<key>{'|'.join(_SETTINGS.values())})\b", re.I)
# "a smaller model (128px) compared to c3 (32px)": a size compared with the input size written beside it.
_SIZED = re.compile(r"\b(?:(?P<more>larger|bigger|higher)|(?P<less>smaller|lower))\s+(?:[a-z-]+\s+){0,2}?"
                    r"\(\s*\d+\s*px\s*\)", re.I)
_THAN = re.compile(r"\b(?:than|compared\s+(?:to|with)|vs\.?|versus|relative\s+to|against)\b", re.I)


def _field(key: str) -> str:
    return next(f for f, pattern in _SETTINGS.items() if re.fullmatch(pattern, key, re.I))


def _setting(facts: Facts, ident: str, field: str) -> float | None:
    value = ((facts.runs.get(ident) or {}).get("config") or {}).get(field)
    return float(value) if isinstance(value, (int, float)) else None


def wrong_setting_comparisons(rationale: str, facts: Facts) -> list[str]:
    """Comparisons of a setting between two runs ("c2 uses a higher learning rate than c1") that their
    configurations contradict (equal values are neither higher nor lower)."""
    ids = id_pattern(facts.prefixes)
    problems = []
    for _, clause in clauses(rationale):
        for m in [*_STATED.finditer(clause), *_SIZED.finditer(clause)]:
            than = _THAN.search(clause, m.end())
            other = ids.search(clause, than.end()) if than else None
            if other is None:
                continue
            before = [i.group(1) for i in ids.finditer(clause, 0, m.start())]
            subject = before[-1] if before else (facts.about[0] if facts.about else None)
            field = _field(m.group("key")) if "key" in m.re.groupindex else "input_size"
            if subject is None or subject == other.group(1):
                continue
            a, b = _setting(facts, subject, field), _setting(facts, other.group(1), field)
            if a is None or b is None:
                continue
            if (a <= b) if m.group("more") else (a >= b):
                problems.append(f"it says {subject} has {m.group(0).lower()} than {other.group(1)}, but {subject} uses "
                                f"{field.replace('_', ' ')} {a:g} and {other.group(1)} {b:g}")
    return list(dict.fromkeys(problems))
