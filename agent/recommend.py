"""The recommendation: its object, its human rendering, and the one-call Python API.

    from agent import recommend
    rec = recommend("skin lesion dermoscopy, 8 classes, 2,000 images, I have 15 minutes on a laptop CPU")
    print(render_text(rec))

`recommend` runs the graph up to the approval interrupt (nothing trains); `Recommender`
keeps the parts (LLM, knowledge base, meta-model) warm across calls and can resume a
thread with an approval, an edit or a rejection.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from knowledge.schema import MetaFeatures, TrainConfig

if TYPE_CHECKING:
    from agent.context import Context
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


class Recommendation(_Model):
    """A recommended backbone + hyperparameters, with its evidence and how it was reached."""

    backbone: str
    mode: str
    pretrained: bool
    weights: str = Field(description="'none', or where the pretrained weights come from.")
    config: TrainConfig
    expected_accuracy: float = Field(description="The meta-model's predicted test accuracy of `config`.")
    accuracy_interval: tuple[float, float] = Field(description="Its 80 % interval (low, high).")
    expected_seconds: float = Field(description="Predicted wall time: training + feature extraction.")
    llm_expected_accuracy: float | None = Field(description="What the LLM said it expects (checked by the judge).")
    rationale: str
    cited: list[str] = Field(description="Candidate ids and knowledge-base record ids the rationale relies on.")
    evidence: list[EvidenceItem]
    candidates: list[CandidateItem]
    shap_summary: str
    shap_contributions: list[tuple[str, Any, float]]
    shap_plot: str | None
    verdict: Verdict
    fallback: bool
    fallback_reason: str | None
    warnings: list[str]
    profile: TaskProfile
    timings: dict[str, float] = Field(description="Seconds per node (up to respond), and 'total' when run by recommend().")
    llm_seconds: float = Field(description="Seconds spent inside LLM calls (a part of the timings).")
    llm_timings: dict[str, float] = Field(description="Seconds inside LLM calls per node (reason, judge).")
    thread_id: str | None = None


def _summary(config: dict[str, Any]) -> str:
    return (f"{config['backbone']}/{config['mode']} {config['optimizer']} lr={config['learning_rate']:g} "
            f"bs={config['batch_size']} ep={config['epochs']}" + (f" freeze={config['freeze']:g}" if config.get("freeze") else ""))


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
) -> Recommendation:
    """Assemble the Recommendation from the state (called by the respond node)."""
    from agent.nodes import _minutes

    profile = state["profile"]
    candidates = state["candidates"]
    evidence = state.get("evidence", [])
    alias_to_id = {e["alias"]: e["id"] for e in evidence}
    top = candidates[0]
    if fallback_reason is not None:
        rationale = (
            f"Fallback (the LLM's drafts did not pass the judge): the meta-model's top candidate {top['id']}, "
            f"predicted test accuracy {prediction['accuracy']:.2f} ({prediction['low']:.2f}-{prediction['high']:.2f}) "
            f"in about {_minutes(prediction['seconds'])}."
        )
    else:
        assert draft is not None
        rationale = draft.rationale.strip()
    cited_ids = [alias_to_id.get(c, c) for c in cited]
    cited_set = set(cited)
    warnings = []
    budget = profile.get("budget_seconds")
    if budget and prediction["seconds"] > budget:
        warnings.append(
            f"predicted {_minutes(prediction['seconds'])} exceeds the budget of {_minutes(budget)}"
            + ("; no candidate fits it, this is among the fastest" if all(c.get("over_budget") for c in candidates)
               else "")
        )
    if prediction.get("device_note"):  # the time on the user's device rests on other devices' runs
        warnings.append(f"training time on {profile['device']}: {prediction['device_note']}")
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
        cited=cited_ids,
        evidence=[
            EvidenceItem(
                alias=e["alias"], id=e["id"], dataset=e["dataset"], summary=_summary(e["config"]), status=e["status"],
                test_accuracy=e["test_accuracy"], seconds=e["seconds"], distance=e["distance"],
                cited=e["alias"] in cited_set,
            )
            for e in evidence
        ],
        candidates=[CandidateItem.model_validate(c) for c in candidates],
        shap_summary=shap_summary,
        shap_contributions=[tuple(c) for c in contributions],
        shap_plot=shap_plot,
        verdict=Verdict(
            passed=bool(verdict["passed"]), attempts=int(verdict["attempt"]),
            checks=[CheckItem.model_validate(c) for c in verdict["checks"]], scores=verdict.get("scores"),
            critique=verdict.get("critique"), judged_by=verdict["judged_by"], judge_error=verdict.get("judge_error"),
            overruled=verdict.get("overruled"),
        ),
        fallback=fallback_reason is not None,
        fallback_reason=fallback_reason,
        warnings=warnings,
        profile=TaskProfile.model_validate({k: profile.get(k) for k in TaskProfile.model_fields}),
        timings={k: round(v, 4) for k, v in timings.items()},
        llm_seconds=round(sum(llm_timings.values()), 4),
        llm_timings=llm_timings,
    )


# -------------------------------------------------------------------------- rendering
def render_text(rec: Recommendation) -> str:
    """The recommendation for people: the card, why, evidence, assumptions, judge, timings."""
    from agent.nodes import _minutes, data_text

    c = rec.config
    lines: list[str] = []
    head = f"Recommendation: {c.backbone}, {c.mode}"
    head += f" (pretrained: {rec.weights})" if rec.pretrained else " (random init)"
    if rec.fallback:
        head += "  [FALLBACK: meta-model's best, the LLM's drafts did not pass the judge]"
    lines.append(head)
    lines.append(
        f"  {c.optimizer}, learning rate {c.learning_rate:g}, batch {c.batch_size}, {c.epochs} epochs, input {c.input_size} px, "
        f"weight decay {c.weight_decay:g}, dropout {c.dropout:g}, {c.scheduler} schedule, augmentation {c.augmentation}, "
        f"label smoothing {c.label_smoothing:g}"
        + (f", first {c.freeze:.0%} of the backbone frozen" if c.freeze else "")
    )
    budget = f" (budget {_minutes(rec.profile.budget_seconds)})" if rec.profile.budget_seconds else ""
    lines.append(
        f"Expected test accuracy {rec.expected_accuracy:.2f} (80 % interval {rec.accuracy_interval[0]:.2f}-"
        f"{rec.accuracy_interval[1]:.2f}); expected training time {_minutes(rec.expected_seconds)} on {rec.profile.device}"
        f"{budget}"
    )
    lines.append(f"Why: {rec.rationale}")
    if rec.fallback_reason:
        lines.append(f"Fallback reason: {rec.fallback_reason}")
    cited = [e for e in rec.evidence if e.cited]
    cands = {x.id for x in rec.candidates}
    cited_cands = [x for x in rec.cited if x in cands]
    if cited_cands or cited:
        lines.append("Evidence cited:")
        for cid in cited_cands:
            x = next(x for x in rec.candidates if x.id == cid)
            lines.append(f"  {cid}: meta-model candidate {_summary(x.config.model_dump())}, predicted {x.accuracy:.2f} "
                         f"in {_minutes(x.seconds)} ({x.support} past runs of this backbone and mode)")
        for e in cited:
            acc = f"test {e.test_accuracy:.2f}" if e.test_accuracy is not None else e.status
            lines.append(f"  {e.alias}: {e.dataset} {e.summary}: {acc}, {_minutes(e.seconds)} (record {e.id[:12]})")
    lines.append("SHAP (what drives the predicted accuracy):")
    lines += [f"  {line.lstrip('- ')}" for line in rec.shap_summary.splitlines()]
    if rec.shap_plot:
        lines.append(f"  plot: {rec.shap_plot}")
    p = rec.profile
    lines.append("Task: " + data_text(p.model_dump(mode="json")) + f" (from the {p.source})")
    if p.assumed:
        lines.append("Assumed (not stated): " + ", ".join(p.assumed))
    for note in p.notes:
        lines.append(f"Note: {note}")
    for w in rec.warnings:
        if not w.startswith("assumed"):
            lines.append(f"Warning: {w}")
    v = rec.verdict
    scores = ", ".join(f"{k} {s}" for k, s in (v.scores or {}).items())
    state = "passed" if v.passed else "failed"
    lines.append(f"Judge: {state} on draft {v.attempts} ({v.judged_by}{': ' + scores if scores else ''})"
                 + (f": {v.critique}" if v.critique else ""))
    alts = [x for x in rec.candidates if x.config != rec.config][:3]
    if alts:
        lines.append("Alternatives: " + "; ".join(f"{x.id} {x.config.backbone}/{x.config.mode} {x.accuracy:.2f} in "
                                                   f"{_minutes(x.seconds)}" for x in alts))
    total = rec.timings.get("total", sum(v for k, v in rec.timings.items() if k != "total"))
    per_node = ", ".join(f"{k} {v:.2f}" for k, v in rec.timings.items() if k != "total")
    lines.append(f"Time: {total:.1f} s (LLM {rec.llm_seconds:.1f} s; {per_node})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- API
class Recommender:
    """The graph with its parts, built once and kept warm; one thread per request.

    Args:
        llm: the reasoner's chat model; None means `agent.llm.get_chat_model()`.
        judge_llm: the judge's chat model; None means a second `get_chat_model()` handle
            (the embedded model is loaded once per process and shared).
        kb: the knowledge base; None means `knowledge.store.open_default(kb_dir)`.
        kb_dir: folder of the default knowledge base.
        metamodel: None loads (or fits and caches) one from the knowledge base on first use.
        checkpointer: None keeps threads in memory (InMemorySaver).
        context: default run settings (agent.context.Context).
        start_job: the training-job starter (tests inject a fake).
    """

    def __init__(
        self,
        *,
        llm: Any | None = None,
        judge_llm: Any | None = None,
        kb: Any | None = None,
        kb_dir: str | None = None,
        metamodel: Any | None = None,
        checkpointer: Any | None = None,
        context: Context | None = None,
        start_job: Callable[..., Any] | None = None,
    ) -> None:
        from langgraph.checkpoint.memory import InMemorySaver

        from agent.context import Context
        from agent.graph import compile_graph
        from agent.nodes import Nodes

        if llm is None:
            from agent.llm import get_chat_model, require_ollama

            require_ollama()  # a configured but unreachable server: say so now, with the way out
            llm = get_chat_model(max_tokens=320)
            judge_llm = judge_llm or get_chat_model(max_tokens=160)
        if kb is None:
            from knowledge.store import open_default

            kb = open_default(kb_dir)
        self.kb = kb
        self.context = context or Context()
        self.nodes = Nodes(llm=llm, judge_llm=judge_llm, store=kb, metamodel=metamodel, start_job=start_job)
        self.graph = compile_graph(self.nodes, checkpointer=checkpointer or InMemorySaver())

    def warm_up(self) -> None:
        """Load the embedder, the Chroma index and the meta-model now rather than on the first request."""
        hits = self.kb.search("warm up", k=1)
        mm = self.nodes.metamodel
        if hits:  # the first explanation imports shap and builds its explainer (~1 s)
            record = hits[0][0]
            mm.explain(record.dataset.meta, record.config)

    def run(
        self,
        text: str,
        *,
        dataset: str | None = None,
        budget_minutes: float | None = None,
        device: str | None = None,
        backbones: Sequence[str] | None = None,
        modes: Sequence[str] | None = None,
        thread_id: str | None = None,
        context: Context | None = None,
    ) -> tuple[Recommendation, dict[str, Any]]:
        """Run one request up to the approval interrupt.

        Returns:
            The recommendation and the interrupt payload (the offered config and how to resume).

        Raises:
            agent.nodes.TaskError: bad input (a ValueError; the message says what to change).
        """
        import os

        from agent.nodes import TaskError
        from agent.state import Constraints, InputState

        # The graph's state is JSON of known types: refuse anything else here, with the rule,
        # rather than fail inside a node with an AttributeError.
        if text is not None and not isinstance(text, str):
            raise TaskError(f"the task must be text, but got {type(text).__name__}.")
        if dataset is not None and not isinstance(dataset, (str, os.PathLike)):
            raise TaskError(f"dataset must be a path (text), but got {type(dataset).__name__}.")
        dataset = os.fspath(dataset) if dataset is not None else None
        thread_id = thread_id or uuid.uuid4().hex
        constraints = Constraints()
        if budget_minutes is not None:
            constraints["budget_minutes"] = budget_minutes
        if device is not None:
            constraints["device"] = device
        if backbones:
            constraints["backbones"] = list(backbones)
        if modes:
            constraints["modes"] = list(modes)
        start = time.perf_counter()
        out = self.graph.invoke(
            InputState(task=text or "", dataset=dataset, constraints=constraints),
            {"configurable": {"thread_id": thread_id}},
            context=context or self.context,
        )
        total = time.perf_counter() - start
        rec = Recommendation.model_validate(out["recommendation"])
        rec.timings["total"] = round(total, 4)
        rec.thread_id = thread_id
        interrupts = out.get("__interrupt__") or []
        payload = interrupts[0].value if interrupts else {}
        return rec, payload

    def recommend(self, text: str, **kwargs: Any) -> Recommendation:
        """`run` without the interrupt payload."""
        return self.run(text, **kwargs)[0]

    def resume(self, thread_id: str, answer: Any, *, context: Context | None = None) -> dict[str, Any]:
        """Answer the approval of a thread: {"action": "approve"} | "edit" | "reject" (see agent.nodes)."""
        from langgraph.types import Command

        return self.graph.invoke(Command(resume=answer), {"configurable": {"thread_id": thread_id}},
                                 context=context or self.context)


_DEFAULT: dict[str | None, Recommender] = {}
_DEFAULT_LOCK = threading.Lock()


def default_recommender(kb_dir: str | None = None) -> Recommender:
    """One Recommender with the real parts per knowledge-base folder and process."""
    with _DEFAULT_LOCK:
        if kb_dir not in _DEFAULT:
            _DEFAULT[kb_dir] = Recommender(kb_dir=kb_dir)
        return _DEFAULT[kb_dir]


def recommend(
    text: str,
    *,
    dataset: str | None = None,
    budget_minutes: float | None = None,
    device: str | None = None,
    backbones: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    llm: Any | None = None,
    judge_llm: Any | None = None,
    kb: Any | None = None,
    kb_dir: str | None = None,
    metamodel: Any | None = None,
    context: Context | None = None,
    thread_id: str | None = None,
) -> Recommendation:
    """Recommend a backbone and hyperparameters for a task, with a grounded rationale.

    Runs the graph up to the approval interrupt: nothing trains. With no parts given, the
    real ones are built once per process and reused (the first call loads them).

    Args:
        text: the task in words ("skin lesion dermoscopy, 8 classes, 2,000 images, 15 minutes on a laptop CPU").
        dataset: a dataset path; its meta-features are computed from the data.
        budget_minutes: training time budget (overrides the text).
        device: "cpu" or "cuda"/"gpu" (overrides the text).
        backbones: allowed backbones.
        modes: allowed modes.
        llm, judge_llm, kb, metamodel: parts to use instead of the defaults.
        kb_dir: folder of the default knowledge base.
        context: run settings (agent.context.Context).
        thread_id: the thread to run in (a new one by default).

    Raises:
        agent.nodes.TaskError: bad input (a ValueError whose message says what to change).
    """
    if llm is None and kb is None and metamodel is None and judge_llm is None:
        r = default_recommender(kb_dir)
    else:
        r = Recommender(llm=llm, judge_llm=judge_llm, kb=kb, kb_dir=kb_dir, metamodel=metamodel)
    return r.recommend(text, dataset=dataset, budget_minutes=budget_minutes, device=device, backbones=backbones,
                       modes=modes, thread_id=thread_id, context=context)


__all__ = ["Recommendation", "Recommender", "build_recommendation", "default_recommender", "recommend", "render_text"]
