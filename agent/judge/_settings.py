"""Comparisons of hyperparameters between runs, held to their configurations.

"c1 uses fewer epochs than c2" for a c1 of 32 epochs and a c2 of 22 is false (the embedded
1.5B wrote it, with both numbers beside the ids). A comparative before a setting's name
("a higher learning rate", "fewer epochs", "a larger input size") speaks of the run named last
before it in its clause (or, naming none, of the choice the rationale is about) against the first
run named after a "than" / "compared to" that follows it in the same clause. Without such a
"than" nothing is compared; a run whose configuration does not show the setting is not judged.
"than the other candidates" (or "the others") compares it with every other candidate, and the setting may
follow the "than" instead ("a learning rate of 0.00229, which is lower than the learning rates of the other
models": the 1.5B wrote it for a pick whose c2 had a lower one).
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
_KEYS = "|".join(_SETTINGS.values())
# "lower than the learning rates of c2" / "... of the other models": the setting named after the "than"
_THAN_SETTING = re.compile(rf"\b(?:(?P<more>{_MORE})|(?P<less>{_LESS}))\s+than\s+(?:(?:those|that)\s+of\s+)?(?:the\s+)?"
                           rf"(?P<key>{_KEYS})\s+(?:of|in|for|used\s+by)\b", re.I)
_OTHERS = re.compile(r"\s*(?:(?:those|that)\s+of\s+)?(?:all\s+|any\s+)?(?:of\s+)?the\s+(?:other|remaining|rest\s+of\s+the)\s+"
                     r"(?:candidates|models|options|configurations|configs|ones|choices)\b|\s*(?:all\s+)?the\s+others\b|"
                     r"\s*any\s+other\s+(?:candidate|model|option|configuration|config|choice)\b", re.I)


def _field(key: str) -> str:
    return next(f for f, pattern in _SETTINGS.items() if re.fullmatch(pattern, key, re.I))


def _setting(facts: Facts, ident: str, field: str) -> float | None:
    value = ((facts.runs.get(ident) or {}).get("config") or {}).get(field)
    return float(value) if isinstance(value, (int, float)) else None


def _against(facts: Facts, clause: str, at: int, subject: str) -> list[str]:
    """The runs a comparison ending at `clause[at:]` is made against: the first id named there, or every other
    candidate for "the other candidates" / "the others"."""
    if _OTHERS.match(clause, at):
        return [c["id"] for c in facts.candidates if c.get("id") and c["id"] != subject]
    other = id_pattern(facts.prefixes).search(clause, at)
    return [other.group(1)] if other is not None else []


def wrong_setting_comparisons(rationale: str, facts: Facts) -> list[str]:
    """Comparisons of a setting between two runs ("c2 uses a higher learning rate than c1"), or between a run and
    the other candidates, that their configurations contradict (equal values are neither higher nor lower)."""
    ids = id_pattern(facts.prefixes)
    problems = []
    for _, clause in clauses(rationale):
        for m in [*_STATED.finditer(clause), *_SIZED.finditer(clause), *_THAN_SETTING.finditer(clause)]:
            if m.re is _THAN_SETTING:
                at = m.end()
            else:
                than = _THAN.search(clause, m.end())
                if than is None:
                    continue
                at = than.end()
            before = [i.group(1) for i in ids.finditer(clause, 0, m.start())]
            subject = before[-1] if before else (facts.about[0] if facts.about else None)
            field = _field(m.group("key")) if "key" in m.re.groupindex else "input_size"
            if subject is None:
                continue
            a = _setting(facts, subject, field)
            for other in _against(facts, clause, at, subject):
                b = _setting(facts, other, field)
                if other == subject or a is None or b is None:
                    continue
                if (a <= b) if m.group("more") else (a >= b):
                    said = m.group(0).lower() if m.re is not _THAN_SETTING else \
                        f"{(m.group('more') or m.group('less')).lower()} {field.replace('_', ' ')}"
                    problems.append(f"it says {subject} has {said} than {other}, but {subject} uses "
                                    f"{field.replace('_', ' ')} {a:g} and {other} {b:g}")
                    break
    return list(dict.fromkeys(problems))
