"""Scripted parts shared by the graph, chat-adapter, app, follow-up and reliability tests.

A chat model replaying a script, a knowledge base of a few records, a deterministic meta-model and
training jobs that replay a two-epoch log: with them the real graph routes, interrupts,
checkpoints and renders, and nothing is slow or random. `make_adapter` wires them into a
ChatAdapter.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver

from agent.chat import ChatAdapter, ChatView, JobRegistry, Transcript
from agent.context import Context
from agent.graph import compile_graph
from agent.nodes import Nodes
from agent.parts import Parts
from knowledge.schema import DatasetInfo, ExperimentRecord, MetaFeatures, Outcome, Provenance, TrainConfig, now_utc
from tools.metamodel import Candidate, Explanation, Prediction

TASK = "skin lesion dermoscopy, 8 classes, 2,000 images, I have 15 minutes on a laptop CPU"


DRAFT = {"candidate": "c1", "rationale": "c1 ranks first among the candidates within the constraints; the nearest "
         "past runs agree."}
VERDICT = {"format": 5, "accuracy": 5, "completeness": 5, "critique": "grounded in c1"}
UNKNOWN_INTENT = {"intent": "unknown", "param": "", "value": ""}


class ScriptChat(BaseChatModel):
    """A chat model that replays scripted answers, as LangChain's FakeMessagesListChatModel does.

    `script` maps a structured-output schema's title ("Recommendation", "Verdict", ...) to its
    answers, given out in order; once a title's list runs out its last answer repeats. The
    default script picks the meta-model's first candidate (the draft names only the candidate:
    the graph fills in its configuration), gives full marks as a judge, and reads no intent
    from a follow-up. It never reads the prompt, so a reworded prompt cannot break a test;
    `prompts` keeps every call's messages for the tests that check what was asked.

    With `stream_chunk` > 0 a structured answer goes through the model, as a real one's does:
    its JSON text streams in pieces of that many characters, `token_delay` seconds apart, so
    LangGraph's "messages" stream (and a Stop between two tokens) sees it being written.
    """

    script: dict[str, list[dict[str, Any]]] = {}
    calls: int = 0
    prompts: list[list[BaseMessage]] = []
    stream_chunk: int = 0
    token_delay: float = 0.0

    def __init__(self, script: dict[str, list[dict[str, Any]]] | None = None, **kwargs: Any) -> None:
        full = {"Recommendation": [DRAFT], "Verdict": [VERDICT], **(script or {})}
        super().__init__(script={title: list(answers) for title, answers in full.items()}, prompts=[], **kwargs)
        self._served: Counter[str] = Counter()

    @property
    def _llm_type(self) -> str:
        return "script-chat"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, schema: Any = None,
        **kwargs: Any
    ) -> ChatResult:
        content = "{}" if schema is None else json.dumps(self.answer(schema, messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=content))])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, schema: Any = None,
        **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        text = "{}" if schema is None else json.dumps(self.answer(schema, messages))
        size = self.stream_chunk or len(text)
        for i in range(0, len(text), size):
            time.sleep(self.token_delay)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text[i:i + size]))
            if run_manager:
                run_manager.on_llm_new_token(text[i:i + size], chunk=chunk)
            yield chunk

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:
        if self.stream_chunk:
            return self.bind(schema=schema) | RunnableLambda(lambda message: json.loads(message.content))
        return RunnableLambda(lambda messages: self.answer(schema, messages))

    def answer(self, schema: dict[str, Any], messages: list[BaseMessage]) -> dict[str, Any]:
        self.calls += 1
        self.prompts.append(list(messages))
        answers = self.script.get(str(schema.get("title")))
        if not answers:
            return dict(UNKNOWN_INTENT)
        i = min(self._served[schema["title"]], len(answers) - 1)
        self._served[schema["title"]] += 1
        return dict(answers[i])


def make_record(
    name: str,
    backbone: str,
    mode: str,
    acc: float,
    seconds: float = 30.0,
    status: str = "ok",
    modality: str = "dermoscopy",
) -> ExperimentRecord:
    """A sweep record of a 2,000-image, 8-class dataset, trained at lr 1e-3 for 10 epochs."""
    meta = MetaFeatures(
        n_instances=2000,
        n_classes=8,
        imbalance_ratio=3.0,
        class_entropy=0.95,
        resolution=64,
        channels=3,
        class_size_mean=250,
        class_size_std=60,
        class_size_min=120,
        class_size_max=360,
        modality=modality,
        body_part="skin",
        task_type="multiclass",
    )
    config = TrainConfig.model_validate({"backbone": backbone, "mode": mode, "learning_rate": 1e-3, "epochs": 10})
    ok = status == "ok"
    return ExperimentRecord(
        run_key=f"key-{name}-{backbone}-{mode}-{status}",
        dataset=DatasetInfo(name=name, fingerprint="abcdef0123456789", meta=meta),
        config=config,
        weights="none" if mode == "scratch" else "imagenet:test",
        outcome=Outcome.model_validate(
            {
                "status": status,
                "val_accuracy": acc if ok else None,
                "test_accuracy": acc if ok else None,
                "train_seconds": seconds,
                "device": "cpu:2 cores",
                "error": None if ok else "boom",
            }
        ),
        provenance=Provenance(source="sweep", code_version="test", seed=0, date=now_utc(), machine="test"),
    )


def kb_records(*, failed: bool = True) -> list[ExperimentRecord]:
    """Three finished runs on two datasets and, if `failed`, a failed one."""
    records = [
        make_record("skin_lesion_isic", "efficientnet_lite0", "frozen", 0.78),
        make_record("skin_lesion_isic", "small_cnn", "scratch", 0.61, 120.0),
        make_record("blood_cells_pbc", "efficientnet_lite1", "frozen", 0.85, modality="microscopy"),
    ]
    if failed:
        records.append(
            make_record("blood_cells_pbc", "small_cnn", "scratch", 0.0, status="failed", modality="microscopy")
        )
    return records


class FakeStore:
    """A knowledge base of a few records (`kb_records()` unless given); search returns them all in order."""

    def __init__(self, root: Path, records: Iterable[ExperimentRecord] | None = None) -> None:
        self.root = root
        self._records = list(kb_records() if records is None else records)
        self.synced = 0
        self.queries: list[str] = []  # every search text

    def records(self) -> list[ExperimentRecord]:
        return self._records

    def get(self, record_id: str) -> ExperimentRecord | None:
        return next((r for r in self._records if r.id == record_id), None)

    def append(self, record: ExperimentRecord) -> None:
        self._records.append(record)

    def search(self, text: str, k: int = 10, where: Any = None) -> list[tuple[ExperimentRecord, float]]:
        self.queries.append(text)
        return [(r, 0.1 * (i + 1)) for i, r in enumerate(self._records[:k])]

    def sync_index(self) -> dict[str, int]:
        self.synced += 1
        return {"added": 1, "removed": 0, "total": len(self._records)}

    def stats(self) -> dict[str, Any]:
        recs = self._records
        return {
            "records": len(recs),
            "successful": sum(r.outcome.status == "ok" for r in recs),
            "datasets": dict(Counter(r.dataset.name for r in recs)),
            "backbones": dict(Counter(r.config.backbone for r in recs)),
            "modes": dict(Counter(r.config.mode for r in recs)),
            "statuses": dict(Counter(r.outcome.status for r in recs)),
            "sources": {"sweep": len(recs)},
            "devices": {"cpu:2 cores": len(recs)},
        }


class FakeMetaModel:
    """Deterministic predictions: a base accuracy per backbone/mode, lowered for a far-off learning rate.

    Args:
        png: draw the SHAP plot as a real PNG (matplotlib); else write a few stand-in bytes.
    """

    TABLE = {
        ("efficientnet_lite0", "frozen"): (0.80, 40.0),
        ("efficientnet_lite1", "frozen"): (0.79, 60.0),
        ("small_cnn", "scratch"): (0.62, 300.0),
        ("efficientnet_lite0", "finetune"): (0.82, 2400.0),
    }

    def __init__(self, *, png: bool = True) -> None:
        self.png = png
        self.plots: list[Path] = []  # every SHAP plot written

    def predict(self, meta: MetaFeatures, configs: list[TrainConfig], device: str = "cpu",
                open_fields: Any = ()) -> list[Prediction]:
        out = []
        for c in configs:
            acc, secs = self.TABLE.get((c.backbone, c.mode), (0.5, 100.0))
            acc -= 0.05 * abs(math.log10(c.learning_rate) + 3)
            secs *= c.epochs / 10 * (0.1 if device == "cuda" else 1.0)
            out.append(Prediction(acc, acc - 0.05, acc + 0.05, secs))
        return out

    def stated(self, meta: MetaFeatures, configs: list[TrainConfig], device: str = "cpu",
               open_fields: Any = ()) -> list[Prediction]:
        return self.predict(meta, configs, device, open_fields)  # nothing assumed to average over here

    def candidates(self, meta: MetaFeatures, constraints: Any, retrieved: Any = (), n: int = 6,
                   open_fields: Any = ()) -> list[Candidate]:
        configs = [
            TrainConfig.model_validate({"backbone": b, "mode": m, "learning_rate": 1e-3, "epochs": 10})
            for b, m in self.TABLE
            if (not constraints.backbones or b in constraints.backbones)
            and (not constraints.modes or m in constraints.modes)
        ]
        preds = self.predict(meta, configs, constraints.device)
        ranked = sorted(zip(configs, preds, strict=True), key=lambda cp: -cp[1].accuracy)
        over = False
        if constraints.budget_seconds:
            fit = [cp for cp in ranked if cp[1].seconds <= constraints.budget_seconds]
            over = not fit
            ranked = fit or sorted(ranked, key=lambda cp: cp[1].seconds)
        return [
            Candidate(id=f"c{i}", config=c, prediction=p, origin="generated", support=5, over_budget=over)
            for i, (c, p) in enumerate(ranked[:n], start=1)
        ]

    def support(self, backbone: str, mode: str) -> int:
        return 5 if (backbone, mode) in self.TABLE else 0

    def explain(self, meta: MetaFeatures, config: TrainConfig, open_fields: Any = ()) -> Explanation:
        p = self.predict(meta, [config])[0]
        lr_effect = -0.05 * abs(math.log10(config.learning_rate) + 3) + 0.01
        return Explanation(
            0.7,
            [
                ("mode", config.mode, 0.08),
                ("learning_rate", config.learning_rate, lr_effect),
                ("n_instances", meta.n_instances, 0.02),
            ],
            prediction=p.accuracy,
        )

    def shap_plot(self, meta: MetaFeatures, config: TrainConfig, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.plots.append(path)
        if not self.png:
            path.write_bytes(b"\x89PNG fake")
            return path
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4, 2))
        FigureCanvasAgg(fig)
        ex = self.explain(meta, config)
        fig.add_subplot().barh([n for n, _, _ in ex.contributions], [c for _, _, c in ex.contributions])
        fig.savefig(path, format="png")
        return path


class FakeProc:
    """Stands for the worker process: the train node waits on it."""

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def poll(self) -> int | None:
        return None


class FakeJob:
    """A job that replays a two-epoch log into run_dir/log.jsonl; `gate` (if given) holds it after
    the first epoch. Its record (test accuracy 0.81) is appended to `store`. `timing` (optional):
    the record's `train_seconds` and `feature_seconds`, and the end event's `cache` ("hit": the
    features came from an earlier run's cache)."""

    def __init__(
        self, run_dir: Path, config: TrainConfig, store: FakeStore, gate: threading.Event | None = None,
        timing: dict[str, Any] | None = None,
    ) -> None:
        self.id = run_dir.name
        self.run_dir = run_dir
        self.config = config
        self.store = store
        self.gate = gate
        self.timing = dict(timing or {})
        self.proc = FakeProc()  # a live worker, as far as JobRegistry.cancel is concerned
        self.cancelled = False
        run_dir.mkdir(parents=True, exist_ok=True)

    def _log(self, event: dict[str, Any]) -> dict[str, Any]:
        with (self.run_dir / "log.jsonl").open("a") as f:
            f.write(json.dumps(event) + "\n")
        return event

    def events(self) -> Iterator[dict[str, Any]]:
        yield self._log({"event": "start", "config": self.config.model_dump()})
        yield self._log(
            {"event": "epoch", "epoch": 1, "epochs": 2, "train_loss": 1.0, "val": {"accuracy": 0.6, "loss": 0.9}}
        )
        if self.gate is not None:
            self.gate.wait(timeout=20)
        if self.cancelled:
            yield self._log({"event": "end", "status": "cancelled", "record_id": self.id})
            return
        yield self._log(
            {"event": "epoch", "epoch": 2, "epochs": 2, "train_loss": 0.5, "val": {"accuracy": 0.75, "loss": 0.6}}
        )
        yield self._log({"event": "end", "status": "ok", "record_id": self.id, "cache": self.timing.get("cache")})

    def cancel(self) -> None:
        self.cancelled = True
        if self.gate is not None:
            self.gate.set()

    def finalize(self) -> ExperimentRecord:
        status = "cancelled" if self.cancelled else "ok"
        r = make_record("new_run", self.config.backbone, self.config.mode, 0.81, status=status)
        r = r.model_copy(update={"id": self.id})
        times = {k: float(self.timing[k]) for k in ("train_seconds", "feature_seconds") if k in self.timing}
        if times:
            r = r.model_copy(update={"outcome": r.outcome.model_copy(update=times)})
        if status == "cancelled":
            r = r.model_copy(update={"outcome": r.outcome.model_copy(update={"error": "cancelled by the user"})})
        self.store.append(r)
        return r


class FakeJobs:
    """Records every start; the same job id twice returns the existing job (like Job.start). `timing`:
    each new job's (see FakeJob), settable by a test."""

    def __init__(self, root: Path, store: FakeStore, gate: threading.Event | None = None,
                 timing: dict[str, Any] | None = None) -> None:
        self.root = root
        self.store = store
        self.gate = gate
        self.timing = timing
        self.calls: list[dict[str, Any]] = []
        self.jobs: dict[str, FakeJob] = {}

    def __call__(self, dataset: str, config: TrainConfig, **kw: Any) -> FakeJob:
        self.calls.append({"dataset": dataset, "config": config, **kw})
        job_id = kw["job_id"]
        if job_id not in self.jobs:
            self.jobs[job_id] = FakeJob(self.root / job_id, config, self.store, self.gate, self.timing)
        return self.jobs[job_id]


def tiny_dataset(folder: Path, name: str = "tiny_ultrasound.npz") -> str:
    """A MedMNIST-layout dataset: grey 16x16, 3 classes, 90 images."""
    rng = np.random.default_rng(0)
    arrays: dict[str, Any] = {"modality": np.array("ultrasound"), "body_part": np.array("breast")}
    for split, n in (("train", 60), ("val", 15), ("test", 15)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 16, 16), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(-1, 1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    np.savez(str(path), **arrays)
    return str(path)


def make_adapter(
    tmp: Path,
    *,
    checkpointer: Any = None,
    gate: threading.Event | None = None,
    store: FakeStore | None = None,
    transcript: Transcript | None = None,
    llm: ScriptChat | None = None,
    metamodel: Any = None,
    judge_retries: int = 0,
) -> tuple[ChatAdapter, FakeJobs]:
    """An adapter over the real graph with the scripted parts (`llm`: a ScriptChat of the test's
    own; `metamodel`: e.g. the real one, default FakeMetaModel; `judge_retries`: the context's
    max_judge_retries, 0 as by default); data allowed under `tmp/data`."""
    store = store or FakeStore(tmp / "kb")
    fake_jobs = FakeJobs(tmp / "runs", store, gate)
    jobs = JobRegistry(fake_jobs)
    mm = metamodel if metamodel is not None else FakeMetaModel()
    weights = lambda b: b.startswith("efficientnet_lite")  # noqa: E731
    llm = llm or ScriptChat()
    parts = Parts(llm=llm, judge_llm=llm, kb=store, metamodel=mm, start_job=jobs.start, weights_available=weights)
    graph = compile_graph(Nodes(parts), checkpointer=checkpointer or InMemorySaver())
    context = Context(
        plot_dir=str(tmp / "plots"),
        allowed_data_dirs=(str(tmp / "data"), str(tmp / "uploads")),
        runs_dir=str(tmp / "runs"),
        max_judge_retries=judge_retries,
    )
    adapter = ChatAdapter(
        graph,
        parts,
        context=context,
        jobs=jobs,
        transcript=transcript,
        uploads_dir=tmp / "uploads",
    )
    return adapter, fake_jobs


def last(views: Iterator[ChatView]) -> ChatView:
    """The final view of a stream of views."""
    out = None
    for view in views:
        out = view
    assert out is not None
    return out


def texts(view: ChatView) -> list[str]:
    """A view's messages as text, a file as `<file PATH>`."""
    return [m["content"] if isinstance(m["content"], str) else f"<file {m['content']['path']}>" for m in view.messages]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a test server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_trial(number: int, val: float | None, predicted: float, status: str = "ok", lr: float = 0.001) -> Any:
    """A finished tuning trial (agent.tune.Trial): frozen Lite0 at learning rate `lr`, predicted
    accuracy `predicted` +- 0.05, validation accuracy `val`."""
    from agent.tune import Analysis, Trial
    from agent.tune import PredictedOutcome as TrialPrediction

    return Trial(number=number, config=TrainConfig(backbone="efficientnet_lite0", mode="frozen", learning_rate=lr),
                 source="zero-shot" if number == 1 else "llm", rationale="r",
                 predicted=TrialPrediction(accuracy=predicted, low=predicted - 0.05, high=predicted + 0.05, seconds=10),
                 status=status, val_accuracy=val, seconds=10, analysis=Analysis(labels=[], text=""))
