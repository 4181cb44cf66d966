"""The recommendation: its object (pydantic models), how it is assembled from the graph's
state, and its rendering for people.

The model lives apart from the API that runs the graph (`agent.recommend`): the respond
node builds a Recommendation, and the chat, the tuner and the Optuna export read one,
without importing the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agent.facts import compares
from agent.formatting import accuracy_text, config_text, data_text, duration_text, interval_text
from agent.judge import verdict_summary
from knowledge.schema import MetaFeatures, TrainConfig

if TYPE_CHECKING:
    from agent.judge import Draft
    from agent.state import State


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvidenceItem(_Model):
    """A past run retrieved for the task."""

    alias: str = Field(description="The short id the LLM cites, r1, r2, ...")
    id: str = Field(description="The knowledge-base record id.")
    dataset: str
    summary: str
    status: str
    test_accuracy: float | None
    seconds: float
    distance: float
    cited: bool = False


class MeasuredRun(_Model):
    """The past run a measured candidate's config comes from, and what it reached on its own dataset."""

    id: str
    dataset: str
    test_accuracy: float


class CandidateItem(_Model):
    """One of the meta-model's ranked candidates."""

    id: str
    config: TrainConfig
    accuracy: float
    low: float
    high: float
    seconds: float
    origin: str
    support: int = 0
    over_budget: bool = False
    spread: float = Field(default=0.0, description="How far apart models fitted on bootstrap samples of the datasets "
                                                   "put it (one standard deviation); the ranking subtracts it.")
    measured: MeasuredRun | None = Field(default=None, description="For a config a past run used as is: that run, its "
                                                                   "dataset and the test accuracy it reached there.")


class Alternative(_Model):
    """A candidate other than the pick that a user may prefer, and what it trades."""

    id: str
    role: str = Field(description="Why it is shown: 'more accurate', 'faster', 'another mode', 'another backbone', "
                                  "'asked to compare', \"a past run's config\".")
    trade: str = Field(description="What it trades against the pick: accuracy points and time (and, for a past "
                                   "run's config, what that run reached on its dataset).")


class CheckItem(_Model):
    name: str
    ok: bool
    message: str = ""


class Verdict(_Model):
    """The judge's final word on the recommended draft (or on the last draft, for a fallback)."""

    passed: bool
    attempts: int = Field(description="Drafts the reasoner wrote (1 + retries).")
    checks: list[CheckItem]
    scores: dict[str, int] | None = Field(description="LLM-judge scores 1-5: format, accuracy, completeness.")
    critique: str | None
    judged_by: str = Field(description="'checks+llm', or 'checks' when the LLM judge was off or failed.")
    judge_error: str | None = None
    overruled: str | None = Field(default=None, description="An LLM-judge objection the deterministic checks "
                                                           "verified false, and why it was overruled.")
    min_score: float | None = Field(default=None, description="What each LLM-judge score had to reach.")
    trimmed: str | None = Field(default=None, description="The clause cut from the end of the LLM's rationale, which "
                                                          "the grounding check refused (agent.judge.trimmed).")


class TaskProfile(_Model):
    """What the recommendation is for, and what was assumed about it."""

    source: str = Field(description="'dataset' (computed from the data) or 'text' (read from the task text).")
    dataset: str | None
    dataset_name: str | None
    meta: MetaFeatures
    assumed: list[str] = Field(description="Fields not stated by the user, with the value used.")
    notes: list[str]
    budget_seconds: float | None
    device: str
    backbones: list[str] | None
    modes: list[str] | None
    read: dict[str, str] = Field(default_factory=dict, description="Each field read from the task text, with the "
                                                                    "words it came from.")
    limits: list[str] = Field(default_factory=list, description="Every limit the pick was filtered by: what it is, "
                                                                "the words it came from, what it left out.")
    max_memory_bytes: float | None = Field(default=None, description="The most memory a run may need on the device "
                                                                     "(tools.memory's estimate), from a stated limit.")
    scope: str = Field(default="medical_image_classification", description="What the text asks for (tools.scope), "
                                                                           "or 'dataset'.")
    goals: dict[str, Any] = Field(default_factory=dict, description="The objective, worries and comparison the text "
                                                                    "states, with their words (agent.goals).")


class Recommendation(_Model):
    """A recommended backbone + hyperparameters, with its evidence and how it was reached."""

    backbone: str
    mode: str
    pretrained: bool
    weights: str = Field(description="'none', or where the pretrained weights come from.")
    config: TrainConfig
    expected_accuracy: float = Field(description="The meta-model's predicted test accuracy of `config`.")
    accuracy_interval: tuple[float, float] = Field(description="Its interval (low, high): the quantiles tools.metamodel.INTERVAL.")
    expected_seconds: float = Field(description="Predicted wall time: training + feature extraction.")
    llm_expected_accuracy: float | None = Field(description="What the LLM said it expects (checked by the judge).")
    rationale: str
    reasons: list[str] = Field(default_factory=list, description=(
        "Contrasts computed in code (agent.facts) that the reasoner was given, shown after a rationale that "
        "restates the ranking without comparing the pick with anything: what the alternatives would give."))
    cited: list[str] = Field(description="Candidate ids and knowledge-base record ids the rationale relies on.")
    evidence: list[EvidenceItem]
    candidates: list[CandidateItem]
    alternatives: list[Alternative] = Field(default_factory=list, description="Candidates to choose instead, each "
                                                                              "with its role and trade.")
    shap_summary: str
    shap_contributions: list[tuple[str, Any, float]]
    shap_plot: str | None
    verdict: Verdict
    fallback: bool
    fallback_reason: str | None
    rejected_draft: str | None = Field(default=None, description="On a fallback, the LLM's last draft as it wrote "
                                                                 "it (the one the judge rejected), to read beside the reason.")
    warnings: list[str]
    profile: TaskProfile
    timings: dict[str, float] = Field(description="Seconds per node (up to respond), and 'total' when run by recommend().")
    llm_seconds: float = Field(description="Seconds spent inside LLM calls (a part of the timings).")
    llm_timings: dict[str, float] = Field(description="Seconds inside LLM calls per node (reason, judge).")
    thread_id: str | None = None


# A prediction this far above the best similar past run is flagged as optimistic: the meta-model
# extrapolates, and nothing it learnt from reached that accuracy on a task like this one.
OPTIMISM_MARGIN = 0.05


def build_recommendation(
    *,
    state: State,
    config: TrainConfig,
    prediction: dict[str, Any],
    cited: list[str],
    shap_summary: str,
    contributions: list[list[Any]],
    shap_plot: str | None,
    draft: Draft | None,
    fallback_reason: str | None,
    weights: str,
    timings: dict[str, float],
    facts: list[str] | None = None,
) -> Recommendation:
    """Assemble the Recommendation from the state (called by the respond node)."""
    profile = state["profile"]
    candidates = state["candidates"]
    evidence = state.get("evidence", [])
    alias_to_id = {e["alias"]: e["id"] for e in evidence}
    top = candidates[0]
    reasons: list[str] = []
    if fallback_reason is not None:
        drafts = "draft" if state.get("attempts", 1) <= 1 else "drafts"
        # The contrasts computed in code (agent.facts) say why, in the words the reasoner was given.
        why = "".join(f"; {f}" for f in facts or [])
        rationale = (
            f"Fallback (the LLM's {drafts} did not pass the judge): the meta-model's top candidate {top['id']}, "
            f"predicted test accuracy {accuracy_text(prediction['accuracy'], prediction['low'], prediction['high'])} "
            f"in about {duration_text(prediction['seconds'])}{why}."
        )
    else:
        assert draft is not None
        rationale = draft.rationale.strip()
        if facts and config.key() == TrainConfig.model_validate(top["config"]).key() and not compares(rationale, top["id"]):
            reasons = list(facts)  # the draft restates the ranking; the contrasts it was given say why
    cited_ids = [alias_to_id.get(c, c) for c in cited]
    cited_set = set(cited)
    warnings = []
    budget = profile.get("budget_seconds")
    if budget and prediction["seconds"] > budget:
        warnings.append(
            f"predicted {duration_text(prediction['seconds'])} exceeds the budget of {duration_text(budget)}"
            + ("; no candidate fits it, this is among the fastest" if all(c.get("over_budget") for c in candidates)
               else "")
        )
    if prediction.get("device_note"):  # the time on the user's device rests on other devices' runs
        warnings.append(f"training time on {profile['device']}: {prediction['device_note']}")
    if prediction.get("evidence_note"):  # the task is far from every dataset the knowledge base has seen
        warnings.append(prediction["evidence_note"])
    # Compared with the near runs only: the evidence also shows other datasets' runs, for contrast.
    ran = [e for e in evidence if e.get("test_accuracy") is not None and e.get("near", True)]
    best = max(ran, key=lambda e: e["test_accuracy"], default=None)
    if best is not None and prediction["accuracy"] > best["test_accuracy"] + OPTIMISM_MARGIN:
        warnings.append(f"the predicted accuracy {prediction['accuracy']:.2f} is above every similar past run "
                        f"(the best, {best['alias']} on {best['dataset']}, reached {best['test_accuracy']:.2f}): "
                        "treat it as optimistic")
    if profile["assumed"]:
        warnings.append("assumed (not stated): " + ", ".join(profile["assumed"]))
    verdict = dict(state["verdict"])
    llm_timings = {k: round(v, 4) for k, v in (state.get("llm_seconds") or {}).items()}
    return Recommendation(
        backbone=config.backbone,
        mode=config.mode,
        pretrained=weights != "none",
        weights=weights,
        config=config,
        expected_accuracy=prediction["accuracy"],
        accuracy_interval=(prediction["low"], prediction["high"]),
        expected_seconds=prediction["seconds"],
        llm_expected_accuracy=None if draft is None else draft.expected_accuracy,
        rationale=rationale,
        reasons=reasons,
        cited=cited_ids,
        evidence=[
            EvidenceItem(
                alias=e["alias"], id=e["id"], dataset=e["dataset"], summary=config_text(e["config"]), status=e["status"],
                test_accuracy=e["test_accuracy"], seconds=e["seconds"], distance=e["distance"],
                cited=e["alias"] in cited_set,
            )
            for e in evidence
        ],
        candidates=[CandidateItem.model_validate(c) for c in candidates],
        alternatives=alternatives(config, prediction, candidates, evidence,
                                  compare=(profile.get("goals") or {}).get("compare") or ()),
        shap_summary=shap_summary,
        shap_contributions=[tuple(c) for c in contributions],
        shap_plot=shap_plot,
        verdict=Verdict(
            passed=bool(verdict["passed"]), attempts=int(verdict["attempt"]),
            checks=[CheckItem.model_validate(c) for c in verdict["checks"]], scores=verdict.get("scores"),
            critique=verdict.get("critique"), judged_by=verdict["judged_by"], judge_error=verdict.get("judge_error"),
            overruled=verdict.get("overruled"), min_score=verdict.get("min_score"), trimmed=verdict.get("trimmed"),
        ),
        fallback=fallback_reason is not None,
        fallback_reason=fallback_reason,
        rejected_draft=(state.get("draft_text") or None) if fallback_reason is not None else None,
        warnings=warnings,
        profile=TaskProfile.model_validate({k: profile.get(k) for k in TaskProfile.model_fields}),
        timings={k: round(v, 4) for k, v in timings.items()},
        llm_seconds=round(sum(llm_timings.values()), 4),
        llm_timings=llm_timings,
    )


def alternatives(config: TrainConfig, prediction: dict[str, Any], candidates: list[dict[str, Any]],
                 evidence: Sequence[dict[str, Any]] = (), compare: Sequence[str] = ()) -> list[Alternative]:
    """The candidates a user may choose instead of the pick, one per role: the most accurate (when
    it beats the pick), the fastest within GOOD_ENOUGH of the pick, the best of another mode and
    of another backbone, any the user asked to compare (added for the comparison, or the best candidate of each
    side of `compare`, the backbones or modes the text compares, that the pick is not), and the config of a similar
    past run (`evidence`) that reached more than the pick is predicted to; each with what it trades, and a past
    run's config with what that run reached."""
    from agent.goals import GOOD_ENOUGH, PAST_RUN_MARGIN

    runs = {e["id"]: e for e in evidence if e.get("test_accuracy") is not None}

    pick = config.key()
    others = [c for c in candidates if TrainConfig.model_validate(c["config"]).key() != pick]
    acc, secs = prediction["accuracy"], max(prediction["seconds"], 1e-9)
    chosen: list[tuple[dict[str, Any], str]] = []

    def add(c: dict[str, Any] | None, role: str) -> None:
        if c is not None and all(c["id"] != x["id"] for x, _ in chosen):
            chosen.append((c, role))

    for c in others:
        if c.get("origin") in ("requested", "asked"):
            add(c, "asked to compare" if c["origin"] == "requested" else "you asked for")
    for side in compare:  # "compare lite0 fine-tuned against small_cnn": the other side, already a candidate
        if side not in (config.backbone, config.mode):
            add(max((c for c in others if side in (c["config"]["backbone"], c["config"]["mode"])),
                    key=lambda c: c["accuracy"], default=None), "asked to compare")
    add(max((c for c in others if c["accuracy"] >= acc + SHOWN_GAIN), key=lambda c: c["accuracy"], default=None),
        "more accurate")
    add(min((c for c in others if c["seconds"] < secs and c["accuracy"] >= acc - GOOD_ENOUGH),
            key=lambda c: c["seconds"], default=None), "faster")
    add(max((c for c in others if c["config"]["mode"] != config.mode), key=lambda c: c["accuracy"], default=None),
        "another mode")
    add(max((c for c in others if c["config"]["backbone"] != config.backbone), key=lambda c: c["accuracy"],
            default=None), "another backbone")

    def run_of(c: dict[str, Any]) -> dict[str, Any] | None:
        return runs.get(str(c.get("origin", "")).removeprefix("retrieved:"))

    beat = [(r["test_accuracy"], c) for c in others if (r := run_of(c)) and r["test_accuracy"] >= acc + PAST_RUN_MARGIN]
    add(max(beat, key=lambda rc: rc[0])[1] if beat else None, "a past run's config")
    spread = next((c.get("spread", 0.0) for c in candidates if TrainConfig.model_validate(c["config"]).key() == pick), 0.0)
    out = []
    for c, role in chosen:
        trade = _trade(c, acc, secs, spread, why_not=role == "more accurate")
        if r := run_of(c):  # what the run it comes from reached, beside what is predicted for it here
            same = TrainConfig.model_validate(r["config"]).key() == TrainConfig.model_validate(c["config"]).key()
            trade += (f"; {r['alias']} reached {r['test_accuracy']:.2f} with it on {r['dataset']}" if same else
                      f"; {r['alias']} reached {r['test_accuracy']:.2f} on {r['dataset']} with it as it ran there, "
                      "before the changes asked for")
        elif m := c.get("measured"):  # a config a past run used as is, outside the retrieved evidence
            trade += f"; it reached {m['test_accuracy']:.2f} on {m['dataset']} as run there"
        out.append(Alternative(id=c["id"], role=role, trade=trade))
    return out


def measured_text(config: dict[str, Any], candidates: Sequence[dict[str, Any]]) -> str | None:
    """Where the recommended config comes from, when a past run used it exactly as recommended: the
    dataset and what that run reached there (a fact from the knowledge base, beside the prediction
    for the user's task). None when the config is not a measured one or was changed after the ranking."""
    ran = [c for c in candidates if c.get("measured")]
    if not ran:
        return None
    key = TrainConfig.model_validate(config).key()
    for c in ran:
        m = c["measured"]
        if TrainConfig.model_validate(c["config"]).key() == key:
            return (f"this exact configuration ran on {m['dataset']} (record {m['id'][:12]}) and reached test accuracy "
                    f"{m['test_accuracy']:.2f} there; the expected accuracy above is the meta-model's for this task")
    return None


# An alternative is "more accurate" only by a gain the card can show (+0.01 at two decimals); a gain
# of +0.0003 read "more accurate (+0.00 ...)" and said nothing a user could choose by.
SHOWN_GAIN = 0.005


def _trade(c: dict[str, Any], acc: float, secs: float, spread: float = 0.0, why_not: bool = False) -> str:
    """What choosing `c` over the pick trades. With `why_not` (an alternative predicted more accurate
    than the pick), also why the ranking put it below: its prediction is less certain (the ranking
    takes the spread off) or it costs more time; any difference in certainty is then named."""
    diff, ratio = c["accuracy"] - acc, c["seconds"] / secs
    time = f"{ratio:.1f}x the time" if ratio >= 1.05 else f"{1 / ratio:.1f}x faster" if ratio <= 0.95 else "about the same time"
    mine = c.get("spread", 0.0)
    doubt = ""
    if mine > spread + (0.0 if why_not else 0.01):
        digits = 2 if round(mine, 2) != round(spread, 2) else 3
        doubt = f", less certain (±{mine:.{digits}f} against ±{spread:.{digits}f})"
    return f"{diff:+.2f} predicted accuracy, {time}{doubt}"


# -------------------------------------------------------------------------- rendering
def _goal_words(goals: dict[str, Any]) -> dict[str, str]:
    """The goals read from the text (agent.goals), named as the card shows them, with their words:
    {"objective=accuracy": "best accuracy", "worry=overfitting": "...", "compare=small_cnn vs resnet18": "..."}."""
    words = goals.get("words") or {}
    named = {"objective": f"objective={goals.get('objective')}", "overfitting": "worry=overfitting",
             "label_noise": "worry=label noise",
             "compare": "compare=" + " vs ".join(goals.get("compare") or ()),
             "use": (f"use={goals.get('use')}" + (f" ({goals['use_mode']})" if goals.get("use_mode") else "")
                     if goals.get("use") else f"mode={goals.get('use_mode')}"),
             "metric": "measure other than accuracy", "inference": "need at inference",
             "scratch_only": "modes=scratch only", "avoid": "backbones ruled out", "size_of": "size of a named model"}
    return {named.get(k, k): w for k, w in words.items()}


def render_text(rec: Recommendation) -> str:
    """The recommendation for people: the card, why, evidence, assumptions, judge, timings."""
    c = rec.config
    lines: list[str] = []
    head = f"Recommendation: {c.backbone}, {c.mode}"
    head += f" (pretrained: {rec.weights})" if rec.pretrained else " (random init)"
    if rec.fallback:
        head += "  [FALLBACK: meta-model's best, no LLM draft passed the judge]"
    lines.append(head)
    lines.append(
        f"  {c.optimizer}, learning rate {c.learning_rate:g}, batch {c.batch_size}, {c.epochs} epochs, input {c.input_size} px, "
        f"weight decay {c.weight_decay:g}, dropout {c.dropout:g}, {c.scheduler} schedule, augmentation {c.augmentation}, "
        f"label smoothing {c.label_smoothing:g}"
        + (f", first {c.freeze:.0%} of the backbone frozen" if c.freeze else "")
    )
    budget = f" (budget {duration_text(rec.profile.budget_seconds)})" if rec.profile.budget_seconds else ""
    lines.append(
        f"Expected test accuracy {rec.expected_accuracy:.2f} ({interval_text(*rec.accuracy_interval)}); "
        f"expected training time {duration_text(rec.expected_seconds)} on {rec.profile.device}"
        f"{budget}"
    )
    if source := measured_text(c.model_dump(mode="json"), [x.model_dump(mode="json") for x in rec.candidates]):
        lines.append(f"Measured: {source}")
    lines.append(f"Why: {rec.rationale}")
    if rec.reasons:
        lines.append(f"In numbers: {'; '.join(rec.reasons)}.")
    if rec.fallback_reason:
        lines.append(f"Fallback reason: {rec.fallback_reason}")
    if rec.rejected_draft:
        lines.append(f"Rejected draft: {rec.rejected_draft}")
    cited = [e for e in rec.evidence if e.cited]
    cands = {x.id for x in rec.candidates}
    cited_cands = [x for x in rec.cited if x in cands]
    if cited_cands or cited:
        lines.append("Evidence cited:")
        for cid in cited_cands:
            x = next(x for x in rec.candidates if x.id == cid)
            lines.append(f"  {cid}: meta-model candidate {config_text(x.config)}, predicted {x.accuracy:.2f} "
                         f"in {duration_text(x.seconds)} ({x.support} past runs of this backbone and mode)")
        for e in cited:
            acc = f"test {e.test_accuracy:.2f}" if e.test_accuracy is not None else e.status
            lines.append(f"  {e.alias}: {e.dataset} {e.summary}: {acc}, {duration_text(e.seconds)} (record {e.id[:12]})")
    lines.append("SHAP (what drives the predicted accuracy):")
    lines += [f"  {line.lstrip('- ')}" for line in rec.shap_summary.splitlines()]
    if rec.shap_plot:
        lines.append(f"  plot: {rec.shap_plot}")
    p = rec.profile
    lines.append("Task: " + data_text(p.model_dump(mode="json")) + f" (from the {p.source})")
    read = {**p.read, **_goal_words(p.goals)}
    if read:
        lines.append("Read from your text: " + "; ".join(f"{k} <- {w!r}" for k, w in read.items()))
    if p.assumed:
        lines.append("Assumed (not stated): " + ", ".join(p.assumed))
    for limit in p.limits:
        lines.append(f"Limit: {limit}")
    for note in [*p.notes, *(p.goals.get("notes") or [])]:
        lines.append(f"Note: {note}")
    for w in rec.warnings:
        if not w.startswith("assumed"):
            lines.append(f"Warning: {w}")
    v = rec.verdict
    state = "passed" if v.passed else "failed"
    lines.append(f"Judge: {state} on draft {v.attempts} ({v.judged_by}). {verdict_summary(v.model_dump(mode='json'))}"
                 + (f". Critique: {v.critique}" if v.critique and not v.overruled else ""))
    by_id = {x.id: x for x in rec.candidates}
    if rec.alternatives:
        lines.append("Alternatives:")
        for a in rec.alternatives:
            x = by_id[a.id]
            lines.append(f"  {a.role}: {a.id} {config_text(x.config)}, {x.accuracy:.2f} in {duration_text(x.seconds)} "
                         f"({a.trade})")
    total = rec.timings.get("total", sum(v for k, v in rec.timings.items() if k != "total"))
    per_node = ", ".join(f"{k} {v:.2f}" for k, v in rec.timings.items() if k != "total")
    lines.append(f"Time: {total:.1f} s (LLM {rec.llm_seconds:.1f} s; {per_node})")
    return "\n".join(lines)


__all__ = ["Alternative", "CandidateItem", "CheckItem", "EvidenceItem", "MeasuredRun", "Recommendation", "TaskProfile",
           "Verdict", "build_recommendation", "measured_text", "render_text"]
