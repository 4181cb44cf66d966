"""Contrastive facts for the rationale, computed in code from the lines the LLM is shown.

    contrast_facts(candidates, runs)
    # ["past runs: r1 (finetune) reached 0.83, r3 (frozen) 0.74",
    #  "c1 is predicted 2 points above c3 and takes 3.1x its time"]

A small LLM asked "why this one?" restates the configuration ("c1 has the highest predicted
accuracy") or says nothing ("a lightweight model suitable for medical images"). Given the
contrast already worked out, it phrases a reason a practitioner can check: what the pick gains
over the alternative the user might take instead, and what the nearest past runs showed for
its mode against another. Every number here is one the prompt's lines show (an accuracy of a
run or candidate) or their difference in points, and every id is a line's id, so the judge's
grounding check holds the rationale to them.
"""

from __future__ import annotations

from typing import Any

from agent.goals import MODE_WORDS
from agent.judge import compares, meant

MAX_FACTS = 3


def contrast_facts(candidates: list[dict[str, Any]], runs: list[dict[str, Any]],
                   goals: dict[str, Any] | None = None) -> list[str]:
    """Up to MAX_FACTS one-line contrasts: the pick's mode against another on the past runs shown, a
    candidate predicted above the pick but less certain, the first candidate against the fastest and
    the most different alternatives. When the user means a backbone, a mode or the sides of a comparison
    (`goals`, agent.judge `meant`) and the pick is one, the first fact says so and the contrasts are with the
    candidates of that kind; one of another kind predicted above it is named as such."""
    if not candidates:
        return []
    top = candidates[0]
    wanted = meant(goals or {})
    side = _other_side(top, candidates, goals or {})
    if wanted is None or not wanted(top["config"]) or all(wanted(c["config"]) for c in candidates):
        return list(dict.fromkeys([*([side] if side else []), *_contrasts(top, candidates, runs)]))[:MAX_FACTS]
    kind = _kind(goals or {})
    mine = [c for c in candidates if wanted(c["config"])]
    above = [c for c in candidates if not wanted(c["config"]) and round((c["accuracy"] - top["accuracy"]) * 100) >= 1]
    facts = [f"{top['id']} is the first of the candidates {kind}, as the user asked"]
    if above:
        other = max(above, key=lambda c: c["accuracy"])
        facts.append(f"{other['id']} is predicted {_points(other['accuracy'] - top['accuracy'])} {top['id']} but is "
                     f"{other['config']['backbone']} {MODE_WORDS[other['config']['mode']]}, not {kind}")
    return list(dict.fromkeys(facts + ([side] if side else []) + _contrasts(top, mine, runs)))[:MAX_FACTS]


def _other_side(top: dict[str, Any], candidates: list[dict[str, Any]], goals: dict[str, Any]) -> str | None:
    """The comparison the user asked for, answered: the pick against the best candidate of the other side
    ("compare lite0 fine-tuned against small_cnn", a small_cnn pick: "c1 is predicted about as accurate as c2
    and is 2.5x faster"); None without a comparison or when no candidate of another side is offered."""
    sides = list(goals.get("compare") or ())
    mine = {top["config"]["backbone"], top["config"]["mode"]}
    if not sides or not mine & set(sides):
        return None
    others = [c for c in candidates[1:] if {c["config"]["backbone"], c["config"]["mode"]} & (set(sides) - mine)]
    return _against(top, max(others, key=lambda c: c["accuracy"])) if others else None


def _contrasts(top: dict[str, Any], candidates: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[str]:
    facts = [f for f in (_mode_on_past_runs(top, runs), _less_certain(top, candidates),
                         _against(top, _fastest(top, candidates)), _against(top, _other_size(top, candidates))) if f]
    return list(dict.fromkeys(facts))[:MAX_FACTS]


def _kind(goals: dict[str, Any]) -> str:
    """What the user means to train, in words: "fine-tuned", "of efficientnet_lite1", "of the backbones compared"
    (the sides unnamed: the judge holds a backbone named in a clause about c1 to c1's)."""
    if goals.get("use") or goals.get("use_mode"):
        words = [f"of {goals['use']}"] if goals.get("use") else []
        return " ".join(words + ([MODE_WORDS[goals["use_mode"]]] if goals.get("use_mode") else []))
    return "of the modes compared" if set(goals.get("compare") or ()) <= set(MODE_WORDS) else "of the backbones compared"


def _points(diff: float) -> str:
    n = round(abs(diff) * 100)
    if n == 0:
        return "about as accurate as"
    return f"{n} point{'s' if n != 1 else ''} {'above' if diff > 0 else 'below'}"


def _mode_on_past_runs(top: dict[str, Any], runs: list[dict[str, Any]]) -> str | None:
    best: dict[str, dict[str, Any]] = {}
    for e in runs:
        if e.get("test_accuracy") is None:
            continue
        mode = e["config"]["mode"]
        if mode not in best or e["test_accuracy"] > best[mode]["test_accuracy"]:
            best[mode] = e
    mode = top["config"]["mode"]
    others = [e for m, e in best.items() if m != mode]
    if mode not in best or not others:
        return None
    mine, other = best[mode], max(others, key=lambda e: e["test_accuracy"])
    # Each run's id before its number: copied word for word, the judge's grounding reader gives a
    # number to the id before it ("scratch reached 0.65 (r1), frozen 0.56 (r3)" read as r1 0.56).
    return (f"past runs: {mine['alias']} ({mode}) reached {mine['test_accuracy']:.2f}, "
            f"{other['alias']} ({other['config']['mode']}) {other['test_accuracy']:.2f}")


def _less_certain(top: dict[str, Any], candidates: list[dict[str, Any]]) -> str | None:
    """Why the pick is listed above a candidate predicted higher: the models disagree more on that one
    (the ranking counts the spread against a candidate, tools.metamodel_candidates). Each id is
    followed by its own ± so a copied fact reads right (agent.judge's spread rule)."""
    above = [c for c in candidates[1:] if round((c["accuracy"] - top["accuracy"]) * 100) >= 1
             and (c.get("spread") or 0.0) > (top.get("spread") or 0.0) + 0.005]
    if not above:
        return None
    other = max(above, key=lambda c: c["accuracy"])
    return (f"{other['id']} (±{other['spread']:.2f}) is predicted {_points(other['accuracy'] - top['accuracy'])} "
            f"{top['id']} (±{top.get('spread') or 0.0:.2f}), but models fitted on other datasets disagree more on it")


def _fastest(top: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    faster = [c for c in candidates[1:] if c["seconds"] < top["seconds"] * 0.8]
    return min(faster, key=lambda c: c["seconds"]) if faster else None


def _other_size(top: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best candidate of the pick's backbone and mode at another input size."""
    cfg = top["config"]
    same = [c for c in candidates[1:] if c["config"]["backbone"] == cfg["backbone"]
            and c["config"]["mode"] == cfg["mode"] and c["config"]["input_size"] != cfg["input_size"]]
    return max(same, key=lambda c: c["accuracy"]) if same else None


def _against(top: dict[str, Any], other: dict[str, Any] | None) -> str | None:
    if other is None:
        return None
    ratio = top["seconds"] / max(other["seconds"], 1e-9)
    time = (f"takes {ratio:.1f}x its time" if ratio >= 1.1 else f"is {1 / ratio:.1f}x faster" if ratio <= 0.9
            else "takes about as long")
    size = ""
    if top["config"]["input_size"] != other["config"]["input_size"]:
        size = f" ({top['config']['input_size']} px against {other['config']['input_size']} px)"
    return f"{top['id']} is predicted {_points(top['accuracy'] - other['accuracy'])} {other['id']}{size} and {time}"


__all__ = ["MAX_FACTS", "compares", "contrast_facts"]
