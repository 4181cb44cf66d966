"""What the agent runs on, built once and handed around: the chat models, the knowledge base,
the meta-model, the training-job starter and the pretrained-weights check.

    parts = Parts.default(kb_dir="~/.metallmix/kb")         # the real ones, loaded lazily
    parts = Parts(llm=fake, kb=store, metamodel=mm, ...)   # tests inject their own

The graph's nodes, the Recommender, the tuner and the chat adapter all take one `Parts`,
so a part is chosen in one place and every user of it sees the same one. Heavy parts load
on first use: the meta-model is loaded (or fitted and cached) from the knowledge base the
first time a node needs it, and the weights check asks the disk once per backbone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from knowledge.space import BACKBONES


@dataclass
class Parts:
    """The agent's parts.

    Attributes:
        llm: the reasoner's chat model (supports `with_structured_output(dict schema)`).
        kb: the knowledge base (`search`, `records`, `get`, `root`, `sync_index`).
        judge_llm: the judge's chat model; None reuses `llm`.
        metamodel: a fitted meta-model, or a function returning one (called on first use); None
            loads (or fits and caches) one from `kb` on first use.
        start_job: starts a training job (`tools.jobs.Job.start`'s signature); None uses it, or
            a Ray job's starter when METALLMIX_RAY is set.
        weights_available: whether a backbone's pretrained weights exist here; None looks on
            disk (`tools.weights.weights_available`).
    """

    llm: Any
    kb: Any
    judge_llm: Any | None = None
    metamodel: Any | None = None
    start_job: Callable[..., Any] | None = None
    weights_available: Callable[[str], bool] | None = None
    _weights: dict[str, bool] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.judge_llm is None:
            self.judge_llm = self.llm

    @classmethod
    def default(
        cls,
        *,
        kb_dir: str | None = None,
        llm: Any | None = None,
        judge_llm: Any | None = None,
        kb: Any | None = None,
        metamodel: Any | None = None,
        start_job: Callable[..., Any] | None = None,
        weights_available: Callable[[str], bool] | None = None,
    ) -> Parts:
        """The given parts, and the real ones for those not given.

        No `llm`: the configured chat model (`agent.llm.get_chat_model`: Ollama when set up,
        else the embedded llama.cpp model), with a second handle for the judge (the embedded
        model loads once per process and is shared). No `kb`: `knowledge.store.open_default(kb_dir)`.

        Raises:
            agent.llm.LLMUnavailableError: Ollama is configured but not reachable, or lacks the model.
        """
        # The real parts are imported only when one is missing: the LLM factory (llama.cpp,
        # Ollama) and the knowledge base (Chroma) are slow to import.
        if llm is None:
            from agent.llm import get_chat_model, require_ollama

            require_ollama()  # a configured but unreachable server: say so now, with the way out
            llm = get_chat_model(max_tokens=320)
            judge_llm = judge_llm or get_chat_model(max_tokens=160)
        if kb is None:
            from knowledge.store import open_default

            kb = open_default(kb_dir)
        return cls(llm=llm, kb=kb, judge_llm=judge_llm, metamodel=metamodel, start_job=start_job,
                   weights_available=weights_available)

    def get_metamodel(self) -> Any:
        """The meta-model, loaded (or fitted and cached on disk) once."""
        with self._lock:
            if self.metamodel is None:
                from tools.metamodel import MetaModel

                self.metamodel = MetaModel.load_or_fit(self.kb.records())
            elif callable(self.metamodel) and not hasattr(self.metamodel, "predict"):  # a loader
                self.metamodel = self.metamodel()
            return self.metamodel

    def has_weights(self, backbone: str) -> bool:
        """Whether pretrained weights for `backbone` exist here (asked once per backbone)."""
        if backbone not in self._weights:
            if BACKBONES.get(backbone, {}).get("pretrained_source") is None:  # nothing to look for
                self._weights[backbone] = False
            else:
                from tools.weights import weights_available

                self._weights[backbone] = bool((self.weights_available or weights_available)(backbone))
        return self._weights[backbone]

    def job_starter(self) -> Callable[..., Any]:
        """The training-job starter: the injected one, else a Ray job's when METALLMIX_RAY names a
        cluster, else `tools.jobs.Job.start` (`tools.ray_jobs.default_job_starter`)."""
        if self.start_job is None:
            from tools.ray_jobs import default_job_starter

            self.start_job = default_job_starter()
        return self.start_job


__all__ = ["Parts"]
