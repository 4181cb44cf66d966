"""The deterministic checks of a draft: one small function per rule, listed in `CHECKS`.

Each check reads a `DraftCase` (the draft and everything it is judged against) and returns
its finding: what to fix, one sentence per problem, or nothing when the rule holds.
`run_checks` walks the table in order and stops at the first rule whose input is missing
(no draft, no configuration, no prediction), so the verdict lists the checks that could run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from agent.judge._config import validate_config
from agent.judge._draft import Draft
from agent.judge._facts import Facts, stated_of
from agent.judge._grounding import compares, quoted_accuracies, quoted_ids, unsupported
from agent.judge._reading import DURATION
from knowledge.schema import TrainConfig

BATCH_SIZES = (8, 16, 32, 64, 128, 256)


@dataclass
class Check:
    """One deterministic check: its name, whether it passed, and what to fix if not."""

    name: str
    ok: bool
    message: str = ""


@dataclass(frozen=True)
class DraftCase:
    """One draft and what it is judged against (the arguments of `run_checks`)."""

    draft: Draft | None
    draft_error: str | None
    candidates: Sequence[dict[str, Any]]
    evidence_aliases: Sequence[str]
    config: TrainConfig | None
    config_error: str | None
    prediction: dict[str, float] | None
    profile: dict[str, Any]
    weights_available: Callable[[str], bool]
    accuracy_tolerance: float
    max_accuracy_gap: float
    shown_accuracies: Sequence[float]
    evidence: Sequence[dict[str, Any]]

    @property
    def ids(self) -> set[str]:
        """The candidates' ids."""
        return {c["id"] for c in self.candidates}

    @property
    def known(self) -> set[str]:
        """The ids a rationale may name: the candidates' and the past runs' shown to the LLM."""
        return self.ids | set(self.evidence_aliases)


def _schema(case: DraftCase) -> list[str]:
    """The answer is a draft: a JSON object with the fields the schema describes."""
    if case.draft is None:
        return [f"the answer is not valid: {case.draft_error or 'no answer'}; answer with "
                "the JSON object the schema describes."]
    return []


def _search_space(case: DraftCase) -> list[str]:
    """The candidate exists, the batch size is one of BATCH_SIZES, the configuration is in the space."""
    draft = case.draft
    assert draft is not None
    ids = case.ids
    problems = []
    if draft.candidate not in ids:
        problems.append(f"candidate must be one of {', '.join(sorted(ids))}, but got {draft.candidate!r}.")
    if draft.batch_size not in BATCH_SIZES:
        problems.append(f"batch_size must be one of {', '.join(map(str, BATCH_SIZES))}, but got {draft.batch_size}.")
    if case.config is None:
        problems.append(case.config_error or "the configuration is outside the search space.")
    return problems


def _constraints(case: DraftCase) -> list[str]:
    """The user's backbones and modes, weights for a frozen backbone, and a candidate's backbone and mode."""
    config = case.config
    assert config is not None
    _, problems = validate_config(
        config.model_dump(), backbones=case.profile.get("backbones"), modes=case.profile.get("modes"),
        weights_available=case.weights_available,
    )
    pairs = {(c["config"]["backbone"], c["config"]["mode"]) for c in case.candidates}
    if (config.backbone, config.mode) not in pairs:
        problems.append(
            f"{config.backbone} in mode {config.mode!r} is not among the candidates "
            f"({', '.join(sorted(f'{b}/{m}' for b, m in pairs))}); keep the backbone and mode of the candidate you start from."
        )
    return problems


def _citations(case: DraftCase) -> list[str]:
    """The draft cites at least one id, and every id it cites is a candidate or a past run shown."""
    draft = case.draft
    assert draft is not None
    known = case.known
    unknown = [c for c in draft.cite if c not in known]
    if not draft.cite:
        return ["name at least one candidate or past run by its id (e.g. c1, r1) in the rationale."]
    if unknown:
        return [f"cited ids must be among {', '.join(sorted(known))}, but got {', '.join(unknown)}."]
    return []


def _grounded(case: DraftCase) -> list[str]:
    """The rationale states only what the evidence shows and the user said (`unsupported`): its ids,
    numbers, values, comparisons, and any budget or limit."""
    draft, config = case.draft, case.config
    assert draft is not None and config is not None
    shown = [*case.shown_accuracies, *(v for c in case.candidates for v in (c["accuracy"], c.get("low"), c.get("high"))
                                       if v is not None)]
    runs: dict[str, Any] = {c["id"]: c for c in case.candidates} | {e["alias"]: e for e in case.evidence}
    if draft.candidate in runs:  # the pick's configuration is the draft's (a draft may set its own values)
        runs[draft.candidate] = {**runs[draft.candidate], "config": config.model_dump(mode="json")}
    facts = Facts(known=frozenset(case.known), shown=tuple(shown), runs=runs, candidates=case.candidates,
                  about=(draft.candidate,), stated=stated_of(case.profile),
                  image_size=(case.profile.get("meta") or {}).get("resolution"))
    problems = unsupported(draft.rationale, facts)
    return ["the rationale must state only what the evidence shows and the user said, but " + "; ".join(problems)
            + "."] if problems else []


_RANK = re.compile(r"\b(?:most|least|highest|lowest|best|fastest|quickest|slowest|cheapest|better|faster|quicker|"
                   r"higher|lower|above|below|ahead|behind|more accurate|less accurate|within|fits?|outperform\w*)\b", re.I)


def _specific(case: DraftCase) -> list[str]:
    """The rationale says why with evidence; passing over the first candidate takes a comparison or a past run."""
    draft = case.draft
    assert draft is not None
    named, quoted = quoted_ids(draft.rationale), quoted_accuracies(draft.rationale)
    # The pick's own id with its settings says no why ("The candidate c1 uses efficientnet_lite0 with a learning
    # rate of 0.00943", which the LLM judge scored 5 of 5): a reason is a number it is predicted or measured to reach
    # or take, another run it is set against, or a rank among the candidates.
    specific = bool(quoted or [i for i in named if i != draft.candidate] or _RANK.search(draft.rationale)
                    or DURATION.search(draft.rationale))
    why = ("the rationale must say why with the evidence: quote the pick's predicted accuracy or time, or set it against "
           "another candidate or past run (e.g. c2, r1); its name and settings alone say no why.")
    top = case.candidates[0]["id"] if case.candidates else draft.candidate
    if draft.candidate not in (top, _objective_first(case)):
        # Passing over the meta-model's first candidate takes a reason with evidence, not only the pick's name
        # ("c2 uses AdamW, which suits medical images" passed on a retry in bench.lodo and tested 1.4 points worse),
        # nor another id with settings only ("c2 uses a smaller batch size than c1", for a pick 3x slower).
        # Nor its own accuracy alone when it is predicted below the first ("c4 is predicted to reach 0.69", c1
        # 0.72, the user asking to compare the two): that number says nothing of what the points buy. A pick
        # predicted at least as accurate and as fast as the first carries its reason in its own numbers.
        pick = next((c for c in case.candidates if c["id"] == draft.candidate), None)
        first = case.candidates[0] if case.candidates else None
        ahead = pick is not None and first is not None and round(pick["accuracy"], 2) >= round(first["accuracy"], 2) \
            and pick["seconds"] <= first["seconds"] * 1.05
        specific = compares(draft.rationale, draft.candidate) or bool(quoted_ids(draft.rationale, "r")) or bool(
            ahead and quoted)
        why = (f"{draft.candidate} is not the meta-model's first candidate ({top}); say why with the evidence: compare "
               f"it with {top} (predicted accuracy, training time) or name a past run that supports it.")
    return [] if specific else [why]


def _objective_first(case: DraftCase) -> str | None:
    """The candidate the objective the user stated picks ("quick": the fastest within GOOD_ENOUGH of the most
    accurate; "maximise accuracy": the most accurate); its reason is the user's own words. None without one."""
    from agent.goals import quick_first

    objective = ((case.profile.get("goals") or {}).get("objective"))
    if not case.candidates or objective not in ("speed", "accuracy"):
        return None
    if objective == "speed":
        return quick_first(case.candidates, lambda c: c["accuracy"], lambda c: c["seconds"])[0]["id"]
    return max(case.candidates, key=lambda c: c["accuracy"])["id"]


def _metric(case: DraftCase) -> list[str]:
    """The meta-model predicts the configuration, and the expected accuracy lies within its interval."""
    draft, prediction, tolerance = case.draft, case.prediction, case.accuracy_tolerance
    assert draft is not None
    if prediction is None:
        return ["the meta-model could not predict this configuration."]
    low, high = prediction["low"] - tolerance, prediction["high"] + tolerance
    if not low <= draft.expected_accuracy <= high:
        return [
            f"expected_accuracy must lie within the meta-model's interval {prediction['low']:.2f}-{prediction['high']:.2f} "
            f"(+-{tolerance:g}) for this config, but got {draft.expected_accuracy:.2f}; use its prediction "
            f"{prediction['accuracy']:.2f}."
        ]
    return []


def _competitive(case: DraftCase) -> list[str]:
    """The configuration is predicted no more than `max_accuracy_gap` below the best candidate."""
    prediction = case.prediction
    assert prediction is not None
    best = max(case.candidates, key=lambda c: c["accuracy"])
    if prediction["accuracy"] < best["accuracy"] - case.max_accuracy_gap:
        return [
            f"the meta-model predicts {prediction['accuracy']:.2f} for this config, more than {case.max_accuracy_gap:g} "
            f"below {best['id']} ({best['accuracy']:.2f}); start from {best['id']} or keep its hyperparameters."
        ]
    return []


OBJECTIVE_SLACK = 1.1  # "quick": up to 10 % slower than the fastest good-enough candidate (the estimates' noise)
OBJECTIVE_POINTS = 0.01  # "maximise accuracy": at most a point below the candidate the objective ranks first


def _objective(case: DraftCase) -> list[str]:
    """The pick keeps to the objective the text states (agent.goals): "quick, good enough" takes nothing slower
    than the fastest candidate within GOOD_ENOUGH of the most accurate; "maximise accuracy" nothing predicted
    more than OBJECTIVE_POINTS below the candidate that objective ranks first (c1). A draft that trades the
    user's own objective away (a slower config for "quick") passed every other check before. The backbone the
    user means to train comes first (`_asked_for`)."""
    from agent.goals import GOOD_ENOUGH, quick_first

    goals = case.profile.get("goals") or {}
    objective, words = goals.get("objective"), (goals.get("words") or {}).get("objective")
    prediction = case.prediction
    assert prediction is not None
    pool = list(case.candidates)
    if (asked := _asked_for(goals, case)) is not None:
        return [asked]
    if (wanted := meant(goals)) is not None:
        # "quick settings for resnet18": the objective is held among what the user means to train
        pool = [c for c in pool if wanted(c["config"])] or pool
    if objective == "speed" and pool:
        fastest = quick_first(pool, lambda c: c["accuracy"], lambda c: c["seconds"])[0]
        if prediction["seconds"] > fastest["seconds"] * OBJECTIVE_SLACK + 1:
            return [f"the user asked for {words!r}: {fastest['id']} is predicted within {GOOD_ENOUGH * 100:.0f} points of "
                    f"the most accurate in ~{fastest['seconds']:.0f} s, but this config needs ~{prediction['seconds']:.0f} "
                    f"s; start from {fastest['id']}."]
    elif objective == "accuracy" and pool:
        first = max(pool, key=lambda c: c["accuracy"]) if len(pool) < len(case.candidates) else pool[0]
        if prediction["accuracy"] < first["accuracy"] - OBJECTIVE_POINTS:
            return [f"the user asked for {words!r}: {first['id']} is predicted {first['accuracy']:.2f}, but this config "
                    f"{prediction['accuracy']:.2f}; start from {first['id']}."]
    return []


def meant(goals: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    """What the user means to train, as a test on a config (as JSON): the backbone and mode of agent.goals `use` /
    `use_mode` (either alone: "settings to fine-tune efficientnet lite1?", "what should I fine-tune?"), or any side
    of a comparison ("compare lite0 and lite2"); None when the text names none."""
    use, mode = goals.get("use"), goals.get("use_mode")
    if use or mode:
        return lambda cfg: use in (None, cfg["backbone"]) and mode in (None, cfg.get("mode"))
    sides = set(goals.get("compare") or ())
    if sides:
        return lambda cfg: bool(sides & {cfg["backbone"], cfg.get("mode")})
    return None


def _asked_for(goals: dict[str, Any], case: DraftCase) -> str | None:
    """What the user means to train (`meant`) is the pick whenever a candidate of it is offered: "settings to
    fine-tune efficientnet lite1?" answered with small_cnn from scratch, predicted a point higher, ignored the
    question and passed every check; "compare lite0 and lite2" was answered with lite1."""
    wanted = meant(goals)
    if wanted is None or case.config is None or wanted(case.config.model_dump(mode="json")):
        return None
    asked = next((c for c in case.candidates if wanted(c["config"])), None)
    if asked is None:
        return None
    words = goals.get("words") or {}
    cfg = asked["config"]
    if goals.get("use") or goals.get("use_mode"):
        said = words.get("use") or goals.get("use") or goals.get("use_mode")
        kind = " ".join(k for k in (goals.get("use"), goals.get("use_mode")) if k)
        head = f"the user asked about {said!r}: {asked['id']} is {kind}"
    else:
        head = (f"the user asked to compare {' and '.join(goals['compare'])} ({words.get('compare', 'compare')!r}): "
                f"{asked['id']} is {cfg['backbone']} {cfg.get('mode')}, the best of them")
    return f"{head}, but this config is {case.config.backbone} {case.config.mode}; start from {asked['id']}."


def _budget(case: DraftCase) -> list[str]:
    """The predicted training time fits the budget (when some candidate fits it)."""
    prediction = case.prediction
    assert prediction is not None
    budget = case.profile.get("budget_seconds")
    fits = [c for c in case.candidates if budget is None or c["seconds"] <= budget]
    if budget is not None and fits and prediction["seconds"] > budget:
        fastest = min(fits, key=lambda c: c["seconds"])
        return [
            f"predicted training time must be <= the budget of {budget:.0f} s, but this config needs "
            f"~{prediction['seconds']:.0f} s; fewer epochs or a candidate that fits (e.g. {fastest['id']})."
        ]
    return []


class Rule(NamedTuple):
    """A row of `CHECKS`: the check's name, its function, and the input it needs (None: none)."""

    name: str
    check: Callable[[DraftCase], list[str]]
    needs: Literal["draft", "config", "prediction"] | None


# Every rule a draft is held to, in the order the checks run and the verdict lists them.
CHECKS: tuple[Rule, ...] = (
    Rule("schema", _schema, None),
    Rule("search_space", _search_space, "draft"),
    Rule("constraints", _constraints, "config"),
    Rule("citations", _citations, "config"),
    Rule("grounded", _grounded, "config"),
    Rule("specific", _specific, "config"),
    Rule("metric", _metric, "config"),
    Rule("competitive", _competitive, "prediction"),
    Rule("objective", _objective, "prediction"),
    Rule("budget", _budget, "prediction"),
)


def run_checks(
    *,
    draft: Draft | None,
    draft_error: str | None,
    candidates: Sequence[dict[str, Any]],
    evidence_aliases: Sequence[str],
    config: TrainConfig | None,
    config_error: str | None,
    prediction: dict[str, float] | None,
    profile: dict[str, Any],
    weights_available: Callable[[str], bool],
    accuracy_tolerance: float,
    max_accuracy_gap: float,
    shown_accuracies: Sequence[float] = (),
    evidence: Sequence[dict[str, Any]] = (),
) -> list[Check]:
    """The deterministic checks of one draft, in the order of `CHECKS`.

    The checks stop at the first rule whose input is missing: with no draft only `schema` is
    listed (failed), with no configuration the list ends at `search_space` (failed), and with
    no prediction at `metric` (failed).

    `shown_accuracies` are the accuracies the prompt showed besides the candidates' (a
    rationale may quote only those) and `evidence` the past runs it showed (`alias`,
    `test_accuracy`, `config`), so what the rationale says of "r2" is held to r2.
    """
    case = DraftCase(
        draft=draft, draft_error=draft_error, candidates=candidates, evidence_aliases=evidence_aliases,
        config=config, config_error=config_error, prediction=prediction, profile=profile,
        weights_available=weights_available, accuracy_tolerance=accuracy_tolerance,
        max_accuracy_gap=max_accuracy_gap, shown_accuracies=shown_accuracies, evidence=evidence,
    )
    checks: list[Check] = []
    for rule in CHECKS:
        if rule.needs is not None and getattr(case, rule.needs) is None:
            break
        problems = rule.check(case)
        checks.append(Check(rule.name, not problems, " ".join(problems)))
    return checks
