"""The pieces of a rationale the grounding rules read: clauses, phrases, ids and numbers as written.

Shared by the rules in `_values`, `_arithmetic`, `_trials` and `_stated`: a number keeps the
precision it was written with ("0.0003" is 0.0003 +- 0.00005), so a value rounded the way a
prompt or a model rounds still matches, and a value that is not the source's does not.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass


@functools.cache
def id_pattern(prefixes: str) -> re.Pattern[str]:
    """Ids like "c1"/"r2" (prefixes "cr": candidates and retrieved runs) or "o1"/"t2" (the
    tuning options and trials)."""
    return re.compile(rf"\b([{prefixes}]\d{{1,2}})\b")


CLAUSE_END = re.compile(r"(?:\.(?!\d)|;)\s*")  # "0.93" does not end a clause


def clauses(text: str) -> Iterator[tuple[int, str]]:
    """(offset, clause) for each clause of a text: its sentences and their semicolon parts."""
    start = 0
    for m in CLAUSE_END.finditer(text):
        if m.start() > start:
            yield start, text[start: m.start()]
        start = m.end()
    if start < len(text):
        yield start, text[start:]


# Where one claim ends and another starts inside a clause: "c1 reaches 0.65, and c2 is higher
# than r1" compares c2 with r1, not 0.65 with r1's number.
_PHRASE_BREAK = re.compile(r",?\s+(?:and|but|while|whereas|although|though|yet)\s+|,\s+(?=[a-z]\d{1,2}\b)", re.I)


def phrase_bounds(clause: str, pos: int) -> tuple[int, int]:
    """The start and end (in `clause`) of the phrase around position `pos`."""
    start, end = 0, len(clause)
    for m in _PHRASE_BREAK.finditer(clause):
        if m.end() <= pos:
            start = m.end()
        elif m.start() >= pos:
            end = m.start()
            break
    return start, end


# Words that make what follows a contrast, not a claim about the run being described:
# "SGD rather than Adam", "unlike r1's 0.01", "from 0.001 to 0.0003", "beat frozen heads".
CONTRAST = re.compile(
    r"\b(?:than|instead\s+of|unlike|vs\.?|versus|against|not|nor|from|over|compared\s+(?:to|with)|beats?|beat|outperforms?|"
    r"without|except|rather)\s+(?:(?:the|a|an|its|their|that\s+of|[a-z]\d{1,2}'s)\s+)*[\w.+-]*\s*$", re.I)


def contrasted(text: str, start: int) -> bool:
    """Whether the words just before `start` make what starts there a contrast."""
    return bool(CONTRAST.search(text[max(0, start - 40): start]))


# Words after which a phrase describes what the choice is compared with, not the choice.
COMPARING = re.compile(r"\b(?:than|compared\s+(?:to|with)|versus|vs\.?|unlike|against)\s", re.I)

# "±0.08", "+/- 0.08", "+-0.08": an uncertainty (how far the bootstrap models disagree on a
# candidate, tools.metamodel.BAGS), not a result and not a signed difference.
PLUS_MINUS = r"(?:\u00b1|\+\s*/\s*[-\u2212]|\+[-\u2212])"
_UNCERTAINTY = re.compile(PLUS_MINUS + r"\s*$")


def uncertainty_at(text: str, start: int) -> bool:
    """Whether the number at `start` is written as an uncertainty ("±0.08"; a match that took the
    minus of "+/-0.08" as its sign starts at that minus)."""
    end = start + 1 if text[start: start + 1] in ("-", "\u2212") else start
    return bool(_UNCERTAINTY.search(text[max(0, start - 8): end]))


# A duration's unit and its seconds ("13 s", "2.5 min", "1 h"), as rationales write training times.
SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "min": 60, "mins": 60, "minute": 60,
           "minutes": 60, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600}
# A duration as written: its number (group 1) and its unit (group 2, a key of SECONDS).
DURATION = re.compile(rf"(?<![\w.])(\d+(?:\.\d+)?)\s*({'|'.join(SECONDS)})\b", re.I)
# "... than c1 (0.93), which ...": what follows an id in a relative clause is said of that id.
RELATIVE = re.compile(r"\s*(?:\([^)]*\))?\s*,?\s*(?:which|whose|that)\b", re.I)

NUMBER = r"[+\-\u2212]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+\u2212]?\d+)?"
_NUMBER_PARTS = re.compile(r"([+\-\u2212]?)(\d*)(?:\.(\d+))?(?:[eE]([-+\u2212]?\d+))?")


@dataclass(frozen=True)
class Number:
    """A number as written: its value, the precision it was written with, and whether it is signed."""

    value: float
    unit: float
    signed: bool

    def matches(self, actual: float, slack: float = 0.0) -> bool:
        """Whether `actual` rounds to this number at its written precision (plus `slack`)."""
        return abs(self.value - actual) <= self.unit / 2 + slack + 1e-9 * max(1.0, abs(actual))


def number(text: str, percent: bool = False) -> Number:
    """A number from its text ("0.0003", "+0.013", "1e-3", "20" with `percent`: 0.20)."""
    text = text.replace("\u2212", "-")
    m = _NUMBER_PARTS.fullmatch(text)
    assert m is not None, text
    sign, _, decimals, exponent = m.groups()
    value = float(text)
    unit = 10.0 ** (int(exponent or 0) - len(decimals or ""))
    if percent:
        value, unit = value / 100, unit / 100
    return Number(value, unit, bool(sign))


def shown(value: float, decimals: int) -> Number:
    """A value as a prompt shows it, rounded to `decimals`."""
    return Number(round(value, decimals), 10.0 ** -decimals, False)
