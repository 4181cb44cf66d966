"""What a tuning rationale says of the trials: which one is best, and at which epoch a trial peaked.

"t2, the best trial so far" must name the trial with the highest validation accuracy (or the
one the prompt marked as kept, a near-tie the meta-model predicts better), and
"t3 peaked at epoch 9" must be t3's best epoch as its log analysis found it. A claim naming no
trial speaks of the last one (the prompt shows the analysis of the last trial).
"""

from __future__ import annotations

import re

from agent.judge._facts import Facts
from agent.judge._reading import clauses, id_pattern

# "the best trial", "best so far", "the best-performing run", "the highest validation accuracy", "the top trial".
_BEST = re.compile(r"\bbest(?:[\s-]+(?:performing|scoring))?\s+(?:trial|run|result|one)\b|\bbest\s+so\s+far\b|"
                   r"\bhighest\s+val(?:idation)?\b(?!\s+loss)|\b(?:top|leading|strongest)\s+trial\b|"
                   r"\bthe\s+best\b(?=\s*[(,]\s*t\d)|\bis\s+(?:the\s+)?best\b", re.I)
_NOT = re.compile(r"\bnot\s+(?:\w+\s+){0,2}$", re.I)
# "best epoch 7", "best at epoch 7", "peaked at epoch 7", "best validation accuracy 0.81 at epoch 7", "epoch 7 was best".
_BEST_EPOCH = re.compile(
    r"\bbest\s+epoch\s*(?:was\s+|is\s+|of\s+|=|:|\(|,)?\s*(?P<a>\d+)\b|"
    r"\b(?:best|peak\w*|highest)\b(?:\s+(?:validation|val))?(?:\s+(?:accuracy|score|result))?(?:\s*(?:of\s+)?\(?\s*"
    r"[\d.]+%?\s*\)?)?\s*,?\s*(?:was\s+|came\s+|is\s+|reached\s+|occurred\s+)?(?:at|in|by)\s+epoch\s+(?P<b>\d+)|"
    r"\bepoch\s+(?P<c>\d+)\s+(?:was|is|gave|had|brought)\s+(?:the\s+|its\s+)?(?:best|peak|highest)", re.I)
_FOLLOWS = re.compile(r"(?:\s+so\s+far)?\s*[(,:]?\s*(?:trial\s+)?")
_EPOCH_IN_ANALYSIS = re.compile(r"best validation accuracy [\d.]+ at epoch (\d+)")


def _owner(clause: str, start: int, end: int, facts: Facts) -> str | None:
    """The trial a claim at [start, end) is about: one named right after it ("the best trial (t2)"),
    else the last named before it in its clause."""
    trials = id_pattern(facts.prefixes[1:])
    after = _FOLLOWS.match(clause, end)
    follow = trials.match(clause, after.end()) if after else None
    if follow:
        return follow.group(1)
    before = [m.group(1) for m in trials.finditer(clause, 0, start)]
    return before[-1] if before else None


def wrong_best_trial(rationale: str, facts: Facts) -> list[str]:
    """A trial called the best that does not have the highest validation accuracy of the trials."""
    scored = {t: v for t in facts.trials if (v := facts.accuracy(t)) is not None}
    if not scored:
        return []
    top = max(scored.values())
    leaders = sorted(t for t, v in scored.items() if v >= top - 0.0005)  # equal as the prompt shows them (3 decimals)
    problems = []
    for _, clause in clauses(rationale):
        for m in _BEST.finditer(clause):
            if _NOT.search(clause[: m.start()]) or re.match(r"\s*(?:epoch|option|expected|gain)", clause[m.end():], re.I):
                continue
            trial = _owner(clause, m.start(), m.end(), facts)
            if trial is None or trial not in scored or trial in leaders or trial == facts.kept:
                continue
            problems.append(f"it calls {trial} the best trial, but {trial} reached {scored[trial]:.3f} and "
                            f"{leaders[0]} {top:.3f}")
    return list(dict.fromkeys(problems))


def _best_epoch(facts: Facts, trial: str) -> int | None:
    """A trial's best epoch: its record's, else the one its analysis states."""
    run = facts.runs.get(trial) or {}
    if run.get("best_epoch") is not None:
        return int(run["best_epoch"])
    found = _EPOCH_IN_ANALYSIS.search(str(run.get("analysis") or ""))
    return int(found.group(1)) if found else None


def wrong_best_epoch(rationale: str, facts: Facts) -> list[str]:
    """A best epoch stated for a trial (the last one when none is named) that is not its best epoch."""
    if not facts.trials:
        return []
    problems = []
    for _, clause in clauses(rationale):
        for m in _BEST_EPOCH.finditer(clause):
            trial = _owner(clause, m.start(), m.start(), facts) or facts.trials[-1]
            stated = int(m.group("a") or m.group("b") or m.group("c"))
            best = _best_epoch(facts, trial)
            if best is not None and stated != best:
                problems.append(f"it says {trial} was best at epoch {stated}, but {trial}'s best epoch is {best}")
    return list(dict.fromkeys(problems))
