"""What a rationale says of training time, held to the candidates' predicted seconds.

Two kinds of claim passed every other rule, seen in the CLI:
- a speed comparison the wrong way round: "c2 ... is 3.0x faster" than c1, for a c2 that takes
  3 min against c1's 61 s;
- a time given to the wrong run: "c1 ... takes 4.4x its time (19 s) compared to c4 (13 s)", where
  c1 takes 58 s, and 19 s is a third candidate's.

`wrong_speed` checks the direction and the size of "faster"/"slower" and "Nx its time" between
two candidates, and that each duration a clause quotes is the time of a run that clause speaks of
(or a difference between two of them, or a budget the user stated).
"""

from __future__ import annotations

import re

from agent.judge._facts import Facts
from agent.judge._reading import DURATION, RELATIVE, SECONDS, clauses, id_pattern, number, phrase_bounds

# A ratio is written with one decimal ("3.1x"); the times are predictions shown rounded: a ratio within this
# share of the real one holds.
RATIO_SLACK = 0.15
# "faster" said of a run that takes up to this much longer than the other is noise, not a false claim.
DIRECTION_SLACK = 1.1

_TIMES = r"(?:x|\u00d7|times)"
_SPEED = re.compile(
    rf"(?:(?P<n>\d+(?:\.\d+)?)\s*{_TIMES}\s+)?(?P<word>faster|quicker|slower|longer)\b"
    rf"|(?P<n2>\d+(?:\.\d+)?)\s*{_TIMES}\s+(?:(?:its|their|the|[a-z]\d{{1,2}}'s)\s+)?(?:training\s+)?(?:time|cost)\b"
    rf"|(?P<n3>\d+(?:\.\d+)?)\s*{_TIMES}\s+as\s+long\b"
    r"|(?P<twice>twice|three times|four times)\s+as\s+(?P<adj>fast|quick|slow|long)\b"
    r"|\b(?P<half>half|a third of|a quarter of)\s+(?:the|its|their)\s+(?:training\s+)?time\b", re.I)
_WORD_RATIO = {"twice": "2", "three times": "3", "four times": "4", "half": "2", "a third of": "3", "a quarter of": "4"}
# Words before an id that make it what a claim compares with, not what the claim is about.
_COMPARED = re.compile(r"\b(?:than|compared\s+(?:to|with)|against|vs\.?|versus|over|above|below|unlike|relative\s+to|"
                       r"of)\s+(?:that\s+of\s+|the\s+)?$", re.I)
# What follows a speed word before the id it compares with: "faster than c1", "faster (13 s) than c1", "as long as c1".
_THAN = re.compile(r"\s*(?:\([^)]*\)\s*)?(?:than|compared\s+(?:to|with)|against|vs\.?|versus|relative\s+to|as)\s+"
                   r"(?:that\s+of\s+)?", re.I)
# A duration after these is a budget or a limit (the `stated limits` rule holds those), or a time per epoch.
_BUDGET_BEFORE = re.compile(r"\b(?:budget|limit|within|under|below|at most|up to|less than|no more than|deadline|"
                            r"per epoch|an epoch)\b[^.;]{0,20}$", re.I)


# A duration written as a difference of two runs' times: "saves 2 min", "by 40 s", "3 min longer".
_GAP_BEFORE = re.compile(r"\b(?:saves?|saving|saved|by|extra|another|additional|difference of)\s+(?:about\s+|~)?$", re.I)
_GAP_AFTER = re.compile(r"\s+(?:more|less|longer|shorter|faster|slower|extra|fewer)\b", re.I)


def _seconds(facts: Facts, ident: str) -> float | None:
    value = (facts.runs.get(ident) or {}).get("seconds")
    return float(value) if value else None


def _subject(clause: str, at: int, facts: Facts) -> str | None:
    """What a claim at `at` is about: the id a relative clause it sits in follows ("than c3, which is faster": c3),
    else the first id of its phrase that is not compared with ("c3 is 5 points below c1, and c1 takes 2.3x its
    time": c1), else of its clause ("c1 is 3 points above c4 and takes 4.4x its time": c1), else the choice."""
    ids = id_pattern(facts.prefixes)
    last = [m for m in ids.finditer(clause, 0, at)][-1:]
    if last and RELATIVE.match(clause, last[0].end()):  # "compared to c3 (32px), which is faster": c3
        return last[0].group(1)
    for lo in (phrase_bounds(clause, at)[0], 0):
        for m in ids.finditer(clause, lo, at):
            if not _COMPARED.search(clause[lo: m.start()]):
                return m.group(1)
    return facts.about[0] if facts.about else None


def _object(clause: str, m: re.Match[str], subject: str, facts: Facts) -> str | None:
    """What a speed claim compares with: the id after its "than" (or "as long as"), else the last other id
    before it ("c1 is 2 points above c3 and takes 3.1x its time": c3), else the first after it, else the choice."""
    ids = id_pattern(facts.prefixes)
    than = _THAN.match(clause, m.end())
    if than is not None:
        after = ids.match(clause, than.end())
        if after is not None and after.group(1) != subject:
            return after.group(1)
    before = [i.group(1) for i in ids.finditer(clause, 0, m.start()) if i.group(1) != subject]
    after_ids = [i.group(1) for i in ids.finditer(clause, m.end()) if i.group(1) != subject]
    if before or after_ids:
        return before[-1] if before else after_ids[0]
    return next((i for i in facts.about if i != subject), None)  # "than c2, which is faster": than the choice


def _ratio_claims(clause: str, facts: Facts) -> list[str]:
    problems = []
    for m in _SPEED.finditer(clause):
        subject = _subject(clause, m.start(), facts)
        other = _object(clause, m, subject, facts) if subject else None
        a, b = (_seconds(facts, subject), _seconds(facts, other)) if subject and other else (None, None)
        if a is None or b is None:
            continue
        word = (m.group("word") or m.group("adj") or "").lower()
        slower = word in ("slower", "longer", "slow", "long") or m.group("n2") is not None or m.group("n3") is not None
        said = m.group("n") or m.group("n2") or m.group("n3") or _WORD_RATIO.get(
            (m.group("twice") or m.group("half") or "").lower())
        real = a / b if slower else b / a  # how many times slower (or faster) the subject really is
        if real < 1 / DIRECTION_SLACK:
            way = "slower" if slower else "faster"
            problems.append(f"it says {subject} is {said + 'x ' if said else ''}{way} than {other}, but {subject} is "
                            f"predicted {a:.0f} s and {other} {b:.0f} s")
        elif said is not None and not number(said).matches(real, RATIO_SLACK * real):
            problems.append(f"it says {subject} takes {said}x {'the time of' if slower else 'less time than'} {other}, "
                            f"but the ratio of their predicted times ({a:.0f} s, {b:.0f} s) is {real:.1f}")
    return problems


def _duration_claims(clause: str, facts: Facts) -> list[str]:
    """Each duration a clause quotes is the time of a run it speaks of (or the choice's), or a difference of two."""
    named = list(dict.fromkeys(id_pattern(facts.prefixes).findall(clause))) + list(facts.about)
    times = {i: t for i in named if (t := _seconds(facts, i)) is not None}
    if not times or len(times) < len(set(named)):
        return []  # no run named, or one without a time (a past run): nothing to hold its times to
    stated = facts.stated.budgets if facts.stated is not None else ()
    gaps = [abs(x - y) for x in times.values() for y in times.values() if x != y]
    problems = []
    for m in DURATION.finditer(clause):
        if _BUDGET_BEFORE.search(clause[: m.start()]):
            continue
        raw, unit = m.group(1), SECONDS[m.group(2).lower()]
        n = number(raw)
        value = n.value * unit
        gap = _GAP_BEFORE.search(clause[max(0, m.start() - 25): m.start()]) or _GAP_AFTER.match(clause, m.end())
        allowed = [*times.values(), *stated, *(gaps if gap else ())]
        if not any(abs(value - t) <= max(n.unit * unit / 2, 0.15 * t) + 1 for t in allowed):
            shown = ", ".join(f"{i} {t:.0f} s" for i, t in times.items())
            problems.append(f"it quotes {m.group(0)}, which is not the predicted time of any run it speaks of ({shown})")
    return problems


def wrong_speed(rationale: str, facts: Facts) -> list[str]:
    """Speed comparisons between runs that their predicted times contradict, in direction or size, and
    durations quoted for runs whose times they are not."""
    problems: list[str] = []
    for _, clause in clauses(rationale):
        problems += _ratio_claims(clause, facts)
        problems += _duration_claims(clause, facts)
    return list(dict.fromkeys(problems))


__all__ = ["wrong_speed"]
