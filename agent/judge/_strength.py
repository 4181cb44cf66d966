"""A gap between candidates called large when the candidates' own uncertainty covers it.

Seen in the CLI (a cystoscopy task, 1,754 frames): "c1 is predicted 2 points above c3 (96 px
against 32 px) and takes 2.2x its time, which is a significant advantage for this task", for c1
shown ±0.03 and c3 ±0.05. Every number in it was right, so every other rule passed it; the word
"significant" was not: the two predictions' ranges overlap.

`overclaimed_gap` holds words that call an accuracy lead large ("significant", "substantial",
"much better", "clearly more accurate") to the candidates' spreads, the ± the prompt shows after
each predicted accuracy (the bootstrap models' disagreement, tools.metamodel): a lead is large
only where it is wider than the two spreads together, so that the ranges do not overlap.
"""

from __future__ import annotations

import re

from agent.judge._facts import Facts
from agent.judge._reading import clauses, id_pattern

# A strong word, then (within two words) what it says is strong: the lead in accuracy.
_STRONG = re.compile(
    r"\b(?:significant(?:ly)?|substantial(?:ly)?|considerabl[ey]|dramatic(?:ally)?|large|big|huge|marked(?:ly)?|"
    r"notabl[ey]|clear(?:ly)?|much|far|vastly|strong(?:ly)?|greatly|remarkabl[ey]|decisive(?:ly)?)\s+"
    r"(?:[a-z-]+\s+){0,2}?(?P<what>higher|better|more accurate|advantage|improvement|gain|lead|margin|boost|edge|"
    r"outperform\w*|superior|increase)\b", re.I)


def _accuracy(facts: Facts, ident: str) -> tuple[float, float] | None:
    """(predicted accuracy, spread) of a candidate; None for a run without both."""
    run = facts.runs.get(ident) or {}
    if run.get("accuracy") is None or not run.get("spread"):
        return None
    return float(run["accuracy"]), float(run["spread"])


def overclaimed_gap(rationale: str, facts: Facts) -> list[str]:
    """Leads called large ("a significant advantage") that lie within the two candidates' spreads.

    With two or more candidates named in the claim's clause, the lead is the most accurate one's over the others
    (the widest of them: the claim may be about any); with one, that one's over the nearest other candidate (a
    lead over "the others" is a lead over the closest of them); with none, the choice's. Which way a comparison
    goes is the ranking rule's; this one holds only how large it is said to be."""
    ids = id_pattern(facts.prefixes)
    chosen = {c["id"] for c in facts.candidates}
    problems = []
    for _, clause in clauses(rationale):
        for m in _STRONG.finditer(clause):
            named = [i for i in dict.fromkeys(ids.findall(clause)) if i in chosen and _accuracy(facts, i)]
            if len(named) >= 2:
                leader = max(named, key=lambda i: (_accuracy(facts, i) or (0.0, 0.0))[0])
                others = [i for i in named if i != leader]
            else:
                leader = named[0] if named else (facts.about[0] if facts.about else None)
                others = [c["id"] for c in facts.candidates if c["id"] != leader and _accuracy(facts, c["id"])]
            mine = _accuracy(facts, leader) if leader else None
            if mine is None or not others:
                continue
            gaps = [(mine[0] - got[0], i, got[1]) for i in others if (got := _accuracy(facts, i)) is not None]
            gap, other, spread = max(gaps) if len(named) >= 2 else min(gaps, key=lambda g: abs(g[0]))
            if gap < mine[1] + spread:
                way = "above" if gap >= 0 else "below"
                points = f"{abs(gap) * 100:.0f} point" + ("" if round(abs(gap) * 100) == 1 else "s")
                problems.append(
                    f"it calls {leader}'s lead over {other} {m.group(0).lower()!r}, but {leader} is predicted "
                    f"{points} {way} {other}, within their uncertainties (±{mine[1]:.2f} and ±{spread:.2f}): their "
                    "ranges overlap")
    return list(dict.fromkeys(problems))


__all__ = ["overclaimed_gap"]
