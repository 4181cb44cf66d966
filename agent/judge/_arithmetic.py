"""Comparisons and signed differences a rationale states between numbers, checked as arithmetic.

"+0.0129, which is higher than 0.0145" is false on its face; so is "0.82 vs 0.78 (-0.04)" and
"c1 beats c2 by 5 points" when the two are a point apart. Each number keeps the precision it
was written with, so a difference of rounded values still holds. The rules read one phrase at
a time (`phrase_bounds`): "c1 reaches 0.65, and c2 is higher than r1" compares c2, not 0.65.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from agent.judge._facts import Facts
from agent.judge._reading import (
    NUMBER,
    SECONDS,
    Number,
    clauses,
    id_pattern,
    number,
    phrase_bounds,
    shown,
    uncertainty_at,
)

_NUM = re.compile(rf"(?<![\w.])({NUMBER})(\s*%|\s*(?:percentage\s+)?points?\b|\s*pp\b|\s*(?:{'|'.join(SECONDS)})\b)?",
                  re.I)
# Numbers that are settings or counts, not results: "lr 0.3", "epoch 7", "128 px", "8 classes".
_SETTING_BEFORE = re.compile(r"(?:\blr|rate|decay|dropout|drop|smoothing|\bwd|\bbs|batch(?:\s+size)?|epochs?|size|"
                             r"freeze|resolution|\bep|\bof\s+the|[=:])\s*\(?\s*$", re.I)
_SETTING_AFTER = re.compile(r"\s*(?:px|pixels?|epochs?|images?|classes|runs?|trials?|datasets?|x\b|\u00d7|-?fold|"
                            r"params?|parameters|[kmb]\b|million|mb|gb)", re.I)
_MORE = r"higher|greater|better|larger|bigger|more\s+accurate"
_LESS = r"lower|smaller|worse|less\s+accurate"
_DIRECT_MORE = r"above|exceeds?|exceeding|beats?|beating|outperforms?|outperforming|surpass\w*|ahead\s+of|up\s+from"
_DIRECT_LESS = r"below|trails?|trailing|behind|down\s+from"
_COMPARATIVE = re.compile(rf"\b(?:(?P<more>{_MORE})|(?P<less>{_LESS})|(?P<fast>faster|quicker|shorter)|"
                          rf"(?P<slow>slower|longer)|(?P<dmore>{_DIRECT_MORE})|(?P<dless>{_DIRECT_LESS}))\b", re.I)
_THAN = re.compile(r"\b(?:than|vs\.?|versus|compared\s+(?:to|with)|relative\s+to)\b", re.I)
# A number written as the size of a difference: "1 point higher", "+0.01 over", "by 0.02".
_AS_DIFFERENCE_AFTER = re.compile(rf"^\s*(?:{_MORE}|{_LESS}|over|above|below|more|less|ahead|behind)\b", re.I)
_GAIN = re.compile(r"\bgain\b[^\d+\-\u2212]{0,20}$", re.I)


@dataclass(frozen=True)
class Quoted:
    """A number in a phrase: what it is (a result, a duration in seconds, or a difference) and where."""

    at: int
    end: int
    value: Number
    kind: str  # "value", "time" or "diff"


def _quoted(clause: str) -> list[Quoted]:
    """The results, durations and differences a clause quotes (settings and counts left out)."""
    out = []
    for m in _NUM.finditer(clause):
        raw, suffix = m.group(1), (m.group(2) or "").strip().lower()
        if _SETTING_BEFORE.search(clause[max(0, m.start() - 25): m.start()]) or uncertainty_at(clause, m.start()):
            continue  # a setting, or a candidate's uncertainty ("0.71 ±0.04"; the spread rule checks it)
        if suffix in SECONDS:
            n = number(raw)
            out.append(Quoted(m.start(), m.end(), Number(n.value * SECONDS[suffix], n.unit * SECONDS[suffix],
                                                         n.signed), "time"))
            continue
        if not suffix and (_SETTING_AFTER.match(clause[m.end():]) or ("." not in raw and "e" not in raw.lower())):
            continue  # a count or a setting ("8 classes", "3 nearest datasets")
        n = number(raw, percent=bool(suffix))
        before = clause[max(0, m.start() - 4): m.start()].lower()
        diff = suffix.startswith(("point", "percentage", "pp")) or before.rstrip().endswith("by") \
            or bool(_AS_DIFFERENCE_AFTER.match(clause[m.end():]))
        out.append(Quoted(m.start(), m.end(), n, "diff" if diff else "value"))
    return out


def _check_comparison(m: re.Match[str], clause: str, quoted: list[Quoted], facts: Facts) -> tuple[list[str], set[int]]:
    """What a comparative states wrongly (the direction between its two numbers, the size of the gap), and
    where the numbers it compared are (a signed one among them is not checked again as a difference)."""
    word = m.group(0)
    direct = bool(m.group("dmore") or m.group("dless"))
    more = bool(m.group("more") or m.group("dmore") or m.group("slow"))
    kind = "time" if m.group("fast") or m.group("slow") else "value"
    lo, hi = phrase_bounds(clause, m.start())
    than = m if direct else _THAN.search(clause, m.end(), hi)
    if than is None:
        return [], set()
    left = [q for q in quoted if lo <= q.at < m.start() and q.kind in (kind, "diff")]
    right = [q for q in quoted if than.end() <= q.at < hi and q.kind == kind]
    gap = next((q for q in quoted if q.kind == "diff" and lo <= q.at < (right[0].at if right else hi)), None)
    a = next((q for q in reversed(left) if q.kind == kind), None)
    b = right[0] if right else None
    if a is None or b is None:
        a_id, b_id = _pair(clause, lo, m.start(), than.end(), hi, facts)
        if gap is None or a_id is None or b_id is None or kind != "value":
            return [], set()
        a_value, b_value = a_id, b_id
    else:
        a_value, b_value = a.value, b.value
    problems = []
    if a is not None and b is not None:
        wrong_way = (a.value.value < b.value.value) if more else (a.value.value > b.value.value)
        if wrong_way and abs(a.value.value - b.value.value) > (a.value.unit + b.value.unit) / 2:
            problems.append(f"it says {_text(a.value, kind)} is {word} than {_text(b.value, kind)}, which it is not")
    if gap is not None:
        real = abs(a_value.value - b_value.value)
        if not Number(abs(gap.value.value), gap.value.unit, False).matches(real, (a_value.unit + b_value.unit) / 2):
            problems.append(f"it says a difference of {_text(gap.value, 'diff')} between {_text(a_value, kind)} and "
                            f"{_text(b_value, kind)}, but they are {_text(Number(real, gap.value.unit, False), 'diff')} "
                            "apart")
    return problems, {q.at for q in (a, b, gap) if q is not None}


def _pair(clause: str, lo: int, at: int, after: int, hi: int, facts: Facts) -> tuple[Number | None, Number | None]:
    """The accuracies, as shown, of the ids on either side of a comparison (the last before, the first after)."""
    ids = id_pattern(facts.prefixes)
    before = [i.group(1) for i in ids.finditer(clause, lo, at)]
    after_ids = [i.group(1) for i in ids.finditer(clause, after, hi)]
    values = [facts.accuracy(i) for i in (before[-1:] + after_ids[:1])]
    if len(values) != 2 or None in values:
        return None, None
    return shown(values[0], facts.decimals), shown(values[1], facts.decimals)  # type: ignore[arg-type]


def _check_signed(d: Quoted, clause: str, quoted: list[Quoted], facts: Facts) -> list[str]:
    """A signed difference ("+0.04", "-2 points") holds in sign and size between the two numbers it relates."""
    lo, hi = phrase_bounds(clause, d.at)
    values = [q for q in quoted if q.kind == "value" and lo <= q.at < hi and q is not d]
    left, right = [q.value for q in values if q.at < d.at], [q.value for q in values if q.at > d.at]
    if len(left) >= 2:
        a, b = left[-2], left[-1]
    elif left and right:
        a, b = left[-1], right[0]
    else:
        a, b = _pair(clause, lo, d.at, d.end, hi, facts)
        if a is None or b is None:
            return []
    if d.value.matches(a.value - b.value, (a.unit + b.unit) / 2):
        return []
    sign = " (the sign is wrong)" if (d.value.value > 0) != (a.value - b.value > 0) and a.value != b.value else ""
    return [f"it says {_text(d.value, 'diff')} for {_text(a, 'value')} against {_text(b, 'value')}, but the "
            f"difference is {a.value - b.value:+.{_decimals(d.value)}f}{sign}"]


def _check_gain(d: Quoted, clause: str, facts: Facts) -> list[str]:
    """A gain stated for an option is that option's expected gain, in sign and size."""
    ids = id_pattern(facts.prefixes)
    named = [i.group(1) for i in ids.finditer(clause, 0, d.at)]
    owner = next((i for i in reversed(named) if "gain" in (facts.runs.get(i) or {})), None)
    if owner is None:
        owner = next((i for i in facts.about if "gain" in (facts.runs.get(i) or {})), None)
    if owner is None:
        return []
    gain = float(facts.runs[owner]["gain"])
    if d.value.matches(gain) or (not d.value.signed and d.value.matches(abs(gain)) and gain >= 0):
        return []
    return [f"it gives {owner} a gain of {_text(d.value, 'diff')}, but {owner}'s expected gain is {gain:+.4f}"]


def _decimals(n: Number) -> int:
    """The decimals a number was written with (at least 2, at most 6)."""
    return max(2, min(6, round(-math.log10(n.unit)))) if 0 < n.unit < 1 else 2


def _text(n: Number, kind: str) -> str:
    if kind == "time":
        return f"{n.value:g} s"
    return f"{n.value:+.{_decimals(n)}f}" if kind == "diff" else f"{n.value:.{_decimals(n)}f}"


def wrong_arithmetic(rationale: str, facts: Facts) -> list[str]:
    """Comparisons between quoted numbers that point the wrong way, and differences of the wrong sign or size."""
    problems: list[str] = []
    for _, clause in clauses(rationale):
        quoted = _quoted(clause)
        used: set[int] = set()
        for m in _COMPARATIVE.finditer(clause):
            found, compared = _check_comparison(m, clause, quoted, facts)
            problems += found
            used |= compared
        for q in quoted:
            if q.kind == "time" or not q.value.signed and not _GAIN.search(clause[: q.at]):
                continue
            if _GAIN.search(clause[: q.at]):
                problems += _check_gain(q, clause, facts)
            elif q.at not in used:
                problems += _check_signed(q, clause, quoted, facts)
    return list(dict.fromkeys(problems))
