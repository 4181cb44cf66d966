"""The one-call Python API of a recommendation, and the Recommender that runs the graph.

    from agent import recommend
    rec = recommend("skin lesion dermoscopy, 8 classes, 2,000 images, I have 15 minutes on a laptop CPU")
    print(render_text(rec))

`recommend` runs the graph up to the approval interrupt (nothing trains); `Recommender`
keeps the parts (LLM, knowledge base, meta-model) warm across calls and can resume a
thread with an approval, an edit or a rejection. The Recommendation object and its
rendering live in `agent.recommendation` (re-exported here).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agent.context import Context
from agent.errors import TaskError
from agent.graph import build_graph
from agent.parts import Parts
from agent.recommendation import (
    CandidateItem,
    CheckItem,
    EvidenceItem,
    Recommendation,
    TaskProfile,
    Verdict,
    build_recommendation,
    render_text,
)
from agent.state import InputState, Limits


# --------------------------------------------------------------------------------- API
def warm_llm(llm: Any) -> None:
    """Load an embedded LLM and read the reasoner's system prompt into its cache (agent.llm's
    `warm`); other chat models (Ollama, a test's fake) are left as they are."""
    warm = getattr(llm, "warm", None)
    if callable(warm):
        from agent.prompts import prompt

        warm(prompt("reason_system").strip())


class Recommender:
    """The graph with its parts, built once and kept warm; one thread per request.

    Args:
        parts: the agent's parts (agent.parts.Parts); None builds them with `Parts.default`
            from the keywords below (the embedded or Ollama LLM, the default knowledge base).
        llm, judge_llm, kb, kb_dir, metamodel, start_job: parts to use instead of the defaults,
            when `parts` is None (see `Parts.default`).
        checkpointer: None keeps threads in memory (InMemorySaver).
        context: default run settings (agent.context.Context).
    """

    def __init__(
        self,
        *,
        parts: Parts | None = None,
        llm: Any | None = None,
        judge_llm: Any | None = None,
        kb: Any | None = None,
        kb_dir: str | None = None,
        metamodel: Any | None = None,
        checkpointer: Any | None = None,
        context: Context | None = None,
        start_job: Callable[..., Any] | None = None,
    ) -> None:
        self.parts = parts or Parts.default(kb_dir=kb_dir, llm=llm, judge_llm=judge_llm, kb=kb, metamodel=metamodel,
                                            start_job=start_job)
        self.kb = self.parts.kb
        self.context = context or Context()
        self.graph = build_graph(self.parts, checkpointer=checkpointer or InMemorySaver())

    def warm_up(self) -> None:
        """Load the embedder, the Chroma index, the meta-model and the embedded LLM (with the
        reasoner's system prompt read into its cache) now rather than on the first request."""
        hits = self.kb.search("warm up", k=1)
        mm = self.parts.get_metamodel()
        if hits:  # the first explanation imports shap and builds its explainer (~1 s)
            record = hits[0][0]
            mm.explain(record.dataset.meta, record.config)
        warm_llm(self.parts.llm)

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
        max_params: float | None = None,
        max_model_mb: float | None = None,
        max_memory_gb: float | None = None,
    ) -> tuple[Recommendation, dict[str, Any]]:
        """Run one request up to the approval interrupt.

        Returns:
            The recommendation and the interrupt payload (the offered config and how to resume).

        Raises:
            agent.errors.TaskError: bad input (a ValueError; the message says what to change).
            agent.errors.OutOfScope: (a TaskError) the text asks for no image-classification set-up;
                the message says what the tool does and what to type.
        """
        # The graph's state is JSON of known types: refuse anything else here, with the rule,
        # rather than fail inside a node with an AttributeError.
        if text is not None and not isinstance(text, str):
            raise TaskError(f"the task must be text, but got {type(text).__name__}.")
        if dataset is not None and not isinstance(dataset, (str, os.PathLike)):
            raise TaskError(f"dataset must be a path (text), but got {type(dataset).__name__}.")
        dataset = os.fspath(dataset) if dataset is not None else None
        thread_id = thread_id or uuid.uuid4().hex
        constraints = Limits()
        if budget_minutes is not None:
            constraints["budget_minutes"] = budget_minutes
        if device is not None:
            constraints["device"] = device
        if backbones:
            constraints["backbones"] = list(backbones)
        if modes:
            constraints["modes"] = list(modes)
        if max_params is not None:
            constraints["max_params"] = max_params
        if max_model_mb is not None:
            constraints["max_model_mb"] = max_model_mb
        if max_memory_gb is not None:
            constraints["max_memory_gb"] = max_memory_gb
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
        return self.graph.invoke(Command(resume=answer), {"configurable": {"thread_id": thread_id}},
                                 context=context or self.context)


_DEFAULT: dict[str | None, Recommender] = {}
_DEFAULT_LOCK = threading.Lock()


def default_recommender(kb_dir: str | None = None) -> Recommender:
    """One Recommender with the real parts per knowledge-base folder and process.

    A knowledge base that is exactly the seed and has no index yet (a fresh install, a new
    --kb-dir) gets the seed's index built at setup (`python -m agent.warm`) instead of
    embedding ~2,000 records before its first answer.
    """
    with _DEFAULT_LOCK:
        if kb_dir not in _DEFAULT:
            from knowledge.seed_index import install_seed_index
            from knowledge.store import open_default

            kb = open_default(kb_dir)
            install_seed_index(kb)
            _DEFAULT[kb_dir] = Recommender(kb=kb)
        return _DEFAULT[kb_dir]


def recommend(
    text: str,
    *,
    dataset: str | None = None,
    budget_minutes: float | None = None,
    device: str | None = None,
    backbones: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    max_params: float | None = None,
    max_model_mb: float | None = None,
    max_memory_gb: float | None = None,
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
        max_params: the most parameters the backbone may have (a hard limit; also read from the text).
        max_model_mb: the largest model file in MB, float32 weights (a hard limit; also read from the text).
        max_memory_gb: the most memory a run may need in GB, RAM on a CPU and GPU memory on CUDA (a hard
            limit on the estimate of tools.memory; also read from the text).
        llm, judge_llm, kb, metamodel: parts to use instead of the defaults.
        kb_dir: folder of the default knowledge base.
        context: run settings (agent.context.Context).
        thread_id: the thread to run in (a new one by default).

    Raises:
        agent.errors.TaskError: bad input (a ValueError whose message says what to change).
        agent.errors.OutOfScope: (a TaskError) the text asks for no image-classification set-up; the message
            says what the tool does and what to type. The CLI exits 2 with it.
    """
    if llm is None and kb is None and metamodel is None and judge_llm is None:
        r = default_recommender(kb_dir)
    else:
        r = Recommender(llm=llm, judge_llm=judge_llm, kb=kb, kb_dir=kb_dir, metamodel=metamodel)
    return r.recommend(text, dataset=dataset, budget_minutes=budget_minutes, device=device, backbones=backbones,
                       modes=modes, thread_id=thread_id, context=context, max_params=max_params,
                       max_model_mb=max_model_mb, max_memory_gb=max_memory_gb)


__all__ = ["CandidateItem", "CheckItem", "EvidenceItem", "Recommendation", "Recommender", "TaskProfile", "Verdict",
           "build_recommendation", "default_recommender", "recommend", "render_text"]
