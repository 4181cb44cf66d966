"""The chat adapter against the real graph with scripted parts.

The graph is the real one (agent.graph.compile_graph), its parts are scripted: a rule-based
chat model that answers from the prompt's candidate list, a three-record knowledge base, a
deterministic meta-model, and training jobs that replay a log. So routing, interrupts,
checkpoints and the adapter's rendering are all real; nothing is slow or random.

The fakes here are also used by tests/test_followup.py, tests/test_app_server.py and the
browser test.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver

from agent.context import Context
from agent.graph import compile_graph
from agent.nodes import Nodes
from agent.ui_adapter import (
    ChatAdapter,
    ChatView,
    JobRegistry,
    TrainingView,
    Transcript,
    kb_best_rows,
    kb_filters,
    kb_rows,
    prepare_dataset,
    read_job_log,
)
from knowledge.schema import DatasetInfo, ExperimentRecord, MetaFeatures, Outcome, Provenance, TrainConfig, now_utc
from tools.metamodel import Candidate, Explanation, Prediction

TASK = "skin lesion dermoscopy, 8 classes, 2,000 images, I have 15 minutes on a laptop CPU"
_CANDIDATE = re.compile(r"c\d+ \S+/\S+ .*lr=\S+ .*: [\d.]+, ")  # a candidate line of the reason prompt


# ------------------------------------------------------------------------------- fakes
class RuleChat(BaseChatModel):
    """A chat model that answers like a careful reasoner: it picks the top candidate of the
    prompt and cites it (and the first past run offered); as a judge it gives full marks."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "rule-chat"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="{}"))])

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:
        return RunnableLambda(lambda messages: self.answer(schema, messages))

    def answer(self, schema: dict[str, Any], messages: list[BaseMessage]) -> dict[str, Any]:
        self.calls += 1
        title = schema.get("title")
        if title == "Verdict":
            return {"format": 5, "accuracy": 5, "completeness": 5, "critique": "grounded in c1"}
        if title != "Recommendation":
            return {"intent": "unknown", "param": "", "value": ""}
        text = str(messages[-1].content)
        line = next(x.strip() for x in text.splitlines() if _CANDIDATE.match(x.strip()))  # the best candidate
        cid, pair = line.split()[:2]
        backbone, mode = pair.split("/")
        lr, bs, ep, acc = (
            re.search(p, line).group(1)  # type: ignore[union-attr]
            for p in (r"lr=(\S+)", r"bs=(\d+)", r"ep=(\d+)", r": ([\d.]+), ")
        )
        cite_enum = re.findall(r"^([cr]\d+) ", text, re.M)  # the ids the prompt shows
        runs = {a: float(acc) for a, acc in re.findall(r"^(r\d+) .*: ([\d.]+), ", text, re.M) if a in cite_enum}
        cite = [cid] + sorted(runs, key=lambda a: -runs[a])[:1]  # the best past run shown
        return {
            "candidate": cid,
            "backbone": backbone,
            "mode": mode,
            "learning_rate": float(lr),
            "batch_size": int(bs),
            "epochs": int(ep),
            "expected_accuracy": float(acc),
            "rationale": f"{cid} has the best predicted accuracy ({acc}) within the constraints; the nearest "
            "past runs agree.",
            "cite": cite,
        }


def make_record(
    name: str,
    backbone: str,
    mode: str,
    acc: float,
    seconds: float = 30.0,
    status: str = "ok",
    modality: str = "dermoscopy",
) -> ExperimentRecord:
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


class FakeStore:
    """A knowledge base of a few records; search returns them in order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._records = [
            make_record("skin_lesion_isic", "efficientnet_lite0", "frozen", 0.78),
            make_record("skin_lesion_isic", "small_cnn", "scratch", 0.61, 120.0),
            make_record("blood_cells_pbc", "efficientnet_lite1", "frozen", 0.85, modality="microscopy"),
            make_record("blood_cells_pbc", "small_cnn", "scratch", 0.0, status="failed", modality="microscopy"),
        ]
        self.synced = 0

    def records(self) -> list[ExperimentRecord]:
        return self._records

    def get(self, record_id: str) -> ExperimentRecord | None:
        return next((r for r in self._records if r.id == record_id), None)

    def append(self, record: ExperimentRecord) -> None:
        self._records.append(record)

    def search(self, text: str, k: int = 10, where: Any = None) -> list[tuple[ExperimentRecord, float]]:
        return [(r, 0.1 * (i + 1)) for i, r in enumerate(self._records[:k])]

    def sync_index(self) -> dict[str, int]:
        self.synced += 1
        return {"added": 1, "removed": 0, "total": len(self._records)}

    def stats(self) -> dict[str, Any]:
        from collections import Counter

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
    """Deterministic predictions: a base accuracy per backbone/mode, lowered for a far-off learning rate."""

    TABLE = {
        ("efficientnet_lite0", "frozen"): (0.80, 40.0),
        ("efficientnet_lite1", "frozen"): (0.79, 60.0),
        ("small_cnn", "scratch"): (0.62, 300.0),
        ("efficientnet_lite0", "finetune"): (0.82, 2400.0),
    }

    def predict(self, meta: MetaFeatures, configs: list[TrainConfig], device: str = "cpu") -> list[Prediction]:
        out = []
        for c in configs:
            acc, secs = self.TABLE.get((c.backbone, c.mode), (0.5, 100.0))
            acc -= 0.05 * abs(math.log10(c.learning_rate) + 3)
            secs *= c.epochs / 10 * (0.1 if device == "cuda" else 1.0)
            out.append(Prediction(acc, acc - 0.05, acc + 0.05, secs))
        return out

    def candidates(self, meta: MetaFeatures, constraints: Any, retrieved: Any = (), n: int = 6) -> list[Candidate]:
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

    def explain(self, meta: MetaFeatures, config: TrainConfig) -> Explanation:
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
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4, 2))
        FigureCanvasAgg(fig)
        ex = self.explain(meta, config)
        fig.add_subplot().barh([n for n, _, _ in ex.contributions], [c for _, _, c in ex.contributions])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
        return path


class FakeProc:
    """Stands for the worker process: the train node waits on it."""

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def poll(self) -> int | None:
        return None


class FakeJob:
    """A job that replays a two-epoch log; `gate` (if given) holds it after the first epoch."""

    def __init__(self, run_dir: Path, config: TrainConfig, store: FakeStore, gate: threading.Event | None) -> None:
        self.id = run_dir.name
        self.run_dir = run_dir
        self.config = config
        self.store = store
        self.gate = gate
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
        yield self._log({"event": "end", "status": "ok", "record_id": self.id})

    def cancel(self) -> None:
        self.cancelled = True
        if self.gate is not None:
            self.gate.set()

    def finalize(self) -> ExperimentRecord:
        status = "cancelled" if self.cancelled else "ok"
        r = make_record("new_run", self.config.backbone, self.config.mode, 0.81, status=status)
        r = r.model_copy(update={"id": self.id})
        if status == "cancelled":
            r = r.model_copy(update={"outcome": r.outcome.model_copy(update={"error": "cancelled by the user"})})
        self.store.append(r)
        return r


class FakeJobs:
    """Records every start; the same job id twice returns the existing job (like Job.start)."""

    def __init__(self, root: Path, store: FakeStore, gate: threading.Event | None = None) -> None:
        self.root = root
        self.store = store
        self.gate = gate
        self.calls: list[dict[str, Any]] = []
        self.jobs: dict[str, FakeJob] = {}

    def __call__(self, dataset: str, config: TrainConfig, **kw: Any) -> FakeJob:
        self.calls.append({"dataset": dataset, "config": config, **kw})
        job_id = kw["job_id"]
        if job_id not in self.jobs:
            self.jobs[job_id] = FakeJob(self.root / job_id, config, self.store, self.gate)
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
) -> tuple[ChatAdapter, FakeJobs]:
    """An adapter over the real graph with the scripted parts; data allowed under `tmp/data`."""
    store = store or FakeStore(tmp / "kb")
    fake_jobs = FakeJobs(tmp / "runs", store, gate)
    jobs = JobRegistry(fake_jobs)
    mm = FakeMetaModel()
    weights = lambda b: b.startswith("efficientnet_lite")  # noqa: E731
    llm = RuleChat()
    nodes = Nodes(llm=llm, judge_llm=llm, store=store, metamodel=mm, start_job=jobs.start, weights_available=weights)
    graph = compile_graph(nodes, checkpointer=checkpointer or InMemorySaver())
    context = Context(
        plot_dir=str(tmp / "plots"),
        allowed_data_dirs=(str(tmp / "data"), str(tmp / "uploads")),
        runs_dir=str(tmp / "runs"),
    )
    adapter = ChatAdapter(
        graph,
        kb=store,
        metamodel=mm,
        context=context,
        jobs=jobs,
        transcript=transcript,
        uploads_dir=tmp / "uploads",
        weights_available=weights,
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
    return [m["content"] if isinstance(m["content"], str) else f"<file {m['content']['path']}>" for m in view.messages]


def titles(view: ChatView) -> list[str]:
    return [m["metadata"]["title"] for m in view.messages if m.get("metadata", {}).get("title")]


# ------------------------------------------------------------------------------- tests
@pytest.fixture
def adapter(tmp_path: Path) -> ChatAdapter:
    return make_adapter(tmp_path)[0]


@pytest.fixture
def dataset(tmp_path: Path) -> str:
    return tiny_dataset(tmp_path / "data")


def test_a_task_streams_each_step_as_a_thought_then_the_card_and_the_shap_plot(adapter: ChatAdapter) -> None:
    views = list(adapter.submit("t1", TASK))

    assert views[0].busy and views[0].messages[0] == {"role": "user", "content": TASK}
    assert any(m.get("metadata", {}).get("status") == "pending" for v in views[:-1] for m in v.messages)
    final = views[-1]
    assert not final.busy and final.offer is not None and final.offer["type"] == "approval"
    heads = titles(final)
    order = ["Profile:", "Retrieved 4 similar", "Meta-model:", "LLM draft 1:", "Judge: draft 1 passed"]
    assert [next(i for i, t in enumerate(heads) if t.startswith(o)) for o in order] == sorted(
        next(i for i, t in enumerate(heads) if t.startswith(o)) for o in order
    )
    assert all(m["metadata"]["status"] == "done" for m in final.messages if m.get("metadata"))
    card = next(t for t in texts(final) if t.startswith("### Recommendation"))
    assert "efficientnet_lite0, frozen" in card and "Expected test accuracy 0.80" in card and "Approve" in card
    image = next(m for m in final.messages if isinstance(m["content"], dict))
    assert Path(image["content"]["path"]).is_file() and "SHAP" in image["content"]["alt_text"]
    retrieved = next(m for m in final.messages if m.get("metadata", {}).get("title", "").startswith("Retrieved"))
    assert "| run | dataset |" in retrieved["content"] and "skin_lesion_isic" in retrieved["content"]


def test_approve_streams_training_progress_then_metrics_record_and_curve(tmp_path: Path, dataset: str) -> None:
    gate = threading.Event()  # the job waits after epoch 1 until this page has seen it
    adapter, _ = make_adapter(tmp_path, gate=gate)
    last(adapter.submit("t1", TASK, dataset=dataset))

    views = []
    for view in adapter.approve("t1"):
        views.append(view)
        if view.training is not None and view.training.epoch == 1:
            gate.set()

    live = [v.training for v in views if v.training is not None and not v.training.done]
    assert any(t.epoch == 1 and t.history[0]["val_accuracy"] == 0.6 and t.fraction == 0.5 for t in live)
    assert any(m.get("metadata", {}).get("title") == "Training…" for v in views for m in v.messages)
    final = views[-1]
    assert final.training is not None and final.training.done and final.training.status == "ok"
    assert [h["epoch"] for h in final.training.history] == [1, 2] and final.training.fraction == 1.0
    body = "\n".join(texts(final))
    assert "Approve" in body and "Approved: training" in body and "Training finished: **test accuracy 0.810**" in body
    assert "New knowledge-base record" in body
    curve = [
        m for m in final.messages if isinstance(m["content"], dict) and "Learning curve" in m["content"]["alt_text"]
    ]
    assert curve and Path(curve[0]["content"]["path"]).is_file()
    assert final.offer is None and not final.busy


def test_plain_language_replies_resume_the_interrupt(tmp_path: Path, dataset: str) -> None:
    adapter, jobs = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK, dataset=dataset))

    edited = last(adapter.submit("t1", "change epochs to 3"))
    assert edited.offer is not None and edited.offer["config"]["epochs"] == 3 and jobs.calls == []
    assert "Edit: epochs=3" in texts(edited)

    refused = last(adapter.submit("t1", "lr=5"))
    assert refused.offer is not None and "learning_rate must satisfy" in refused.offer["error"]

    last(adapter.submit("t1", "yes, go ahead"))
    (call,) = jobs.calls
    assert call["config"].epochs == 3


def test_reject_in_words_ends_without_training(tmp_path: Path, dataset: str) -> None:
    adapter, jobs = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK, dataset=dataset))

    view = last(adapter.submit("t1", "no, too slow for me"))

    assert jobs.calls == [] and view.offer is None
    assert "Reject: too slow for me" in texts(view)


def test_buttons_edit_with_json_and_reject(adapter: ChatAdapter, dataset: str) -> None:
    last(adapter.submit("t1", TASK, dataset=dataset))

    view = last(adapter.edit("t1", '{"batch_size": 32}'))
    assert view.offer is not None and view.offer["config"]["batch_size"] == 32

    nothing = last(adapter.edit("t1", "make it better"))
    assert "Say what to change" in (nothing.notice or "")

    done = last(adapter.reject("t1", "not now"))
    assert done.offer is None and last(adapter.approve("t1")).notice is not None


def test_followups_are_answered_from_the_state_and_kept(adapter: ChatAdapter) -> None:
    last(adapter.submit("t1", TASK))

    why = last(adapter.submit("t1", "why this learning rate?"))
    body = texts(why)
    assert body[-2] == "why this learning rate?" or body[-3] == "why this learning rate?"
    answer = next(t for t in reversed(body) if t.startswith("**Why learning rate"))
    assert "| learning_rate |" in answer and "chosen" in answer

    whatif = last(adapter.submit("t1", "what about resnet18?"))
    text = texts(whatif)[-1]
    assert "resnet18" in text and "scratch" in text and "use it" in text

    used = last(adapter.submit("t1", "use it"))
    assert used.offer is not None and used.offer["config"]["backbone"] == "resnet18"
    assert used.offer["config"]["mode"] == "scratch"

    similar = last(adapter.submit("t1", "show similar experiments"))
    assert "| run | dataset | configuration |" in texts(similar)[-1]


def test_a_question_without_data_says_what_is_missing(adapter: ChatAdapter) -> None:
    view = last(adapter.submit("fresh", "why this learning rate?"))

    assert "no recommendation in this conversation yet" in texts(view)[-1]
    training = last(adapter.submit("fresh", "how did training go?"))
    assert "no training run" in texts(training)[-1].lower()


def test_a_short_unclear_message_gets_help_not_a_run(adapter: ChatAdapter) -> None:
    view = last(adapter.submit("t1", "hello"))

    assert "Describe your imaging task" in texts(view)[-1] and view.offer is None
    assert adapter.graph.get_state(adapter.config("t1")).next == ()


def test_bad_input_is_shown_as_a_message(adapter: ChatAdapter, tmp_path: Path) -> None:
    outside = tiny_dataset(tmp_path / "elsewhere")

    view = last(adapter.submit("t1", "breast ultrasound", dataset=outside))

    assert "outside the allowed folders" in texts(view)[-1] and view.offer is None


def test_history_and_pending_approval_survive_a_restart(tmp_path: Path, dataset: str) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = tmp_path / "threads.sqlite"
    conn = sqlite3.connect(db, check_same_thread=False)
    first, _ = make_adapter(tmp_path, checkpointer=SqliteSaver(conn), transcript=Transcript(db))
    last(first.submit("t1", TASK, dataset=dataset))
    last(first.submit("t1", "epochs=3"))
    before = last(first.submit("t1", "why frozen?"))
    conn.close()

    conn = sqlite3.connect(db, check_same_thread=False)
    second, jobs = make_adapter(tmp_path, checkpointer=SqliteSaver(conn), transcript=Transcript(db))
    after = second.view("t1")

    assert texts(after) == texts(before) and titles(after) == titles(before)
    assert after.offer is not None and after.offer["config"]["epochs"] == 3
    last(second.approve("t1"))
    assert len(jobs.calls) == 1
    conn.close()


def test_threads_are_isolated(adapter: ChatAdapter) -> None:
    last(adapter.submit("alice", TASK))
    bob = last(adapter.submit("bob", "why this learning rate?"))

    assert "no recommendation in this conversation yet" in texts(bob)[-1]
    assert not any("Recommendation" in t for t in texts(bob))
    assert adapter.view("alice").offer is not None and adapter.view("bob").offer is None


def test_cancel_stops_the_running_job(tmp_path: Path, dataset: str) -> None:
    gate = threading.Event()
    adapter, jobs = make_adapter(tmp_path, gate=gate)
    last(adapter.submit("t1", TASK, dataset=dataset))
    views: list[ChatView] = []
    consumer = threading.Thread(target=lambda: views.extend(adapter.approve("t1")))
    consumer.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(v.training and v.training.epoch == 1 for v in views):
        time.sleep(0.05)

    busy = last(adapter.submit("t1", "breast ultrasound, 3 classes"))
    assert "Still working" in (busy.notice or "")
    message = adapter.cancel("t1")
    consumer.join(timeout=20)

    assert "Cancelling" in message and not consumer.is_alive()
    final = views[-1]
    assert final.training is not None and final.training.status == "cancelled"
    assert "Training ended **cancelled**" in "\n".join(texts(final))
    assert adapter.cancel("t1") == "No training job is running in this conversation."


def test_a_page_can_attach_to_a_running_training(tmp_path: Path, dataset: str) -> None:
    gate = threading.Event()
    adapter, _ = make_adapter(tmp_path, gate=gate)
    last(adapter.submit("t1", TASK, dataset=dataset))
    started = adapter.approve("t1")
    next(started)  # the run is launched; this page goes away
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (adapter.view("t1").training or TrainingView()).epoch:
        time.sleep(0.05)

    attached = adapter.follow("t1")
    view = next(attached)
    assert view.busy and view.training is not None and view.training.epoch == 1
    assert view.messages[-1]["metadata"]["status"] == "pending"
    gate.set()
    final = last(attached)
    assert not final.busy and final.training is not None and final.training.status == "ok"


def test_uploads_are_copied_or_safely_unpacked(tmp_path: Path, dataset: str) -> None:
    uploads = tmp_path / "uploads"
    copied = prepare_dataset(dataset, uploads)
    assert Path(copied).parent == uploads and Path(copied).read_bytes() == Path(dataset).read_bytes()

    good = tmp_path / "folder.zip"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("xray/normal/a.png", b"x")
        z.writestr("xray/pneumonia/b.png", b"y")
    folder = Path(prepare_dataset(good, uploads))
    assert folder.name == "xray" and (folder / "normal" / "a.png").is_file()

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../escape.txt", b"x")
    with pytest.raises(ValueError, match="outside the archive"):
        prepare_dataset(evil, uploads)
    assert not (tmp_path / "escape.txt").exists()
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(ValueError, match=".npz file or a .zip"):
        prepare_dataset(text, uploads)


def test_read_job_log_rebuilds_the_training_view(tmp_path: Path) -> None:
    run = tmp_path / "job-1"
    run.mkdir()
    lines = [
        {"event": "start", "config": {"mode": "frozen", "epochs": 2}},
        {"event": "epoch", "epoch": 1, "epochs": 2, "train_loss": 0.7, "val": {"accuracy": 0.5, "loss": 0.8}},
    ]
    (run / "log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{torn")

    view = read_job_log(run)

    assert view.epoch == 1 and view.epochs == 2 and view.history[0]["val_accuracy"] == 0.5 and not view.done
    assert view.fraction == 0.5 and "val accuracy 0.500" in view.message


def test_knowledge_base_tables(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)

    assert kb_filters(store)["status"] == ["failed", "ok"]
    rows = kb_rows(store, dataset="skin_lesion_isic", status="all")
    assert {r[1] for r in rows} == {"skin_lesion_isic"} and len(rows) == 2
    assert kb_rows(store, status="failed")[0][10] == "failed"
    best = {r[0]: r for r in kb_best_rows(store)}
    assert best["blood_cells_pbc"][2] == 0.85 and best["blood_cells_pbc"][3] == "efficientnet_lite1"
    assert best["skin_lesion_isic"][1] == 2


def test_a_thread_stopped_inside_training_resumes_and_records_the_job(tmp_path: Path, dataset: str) -> None:
    adapter, jobs = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK, dataset=dataset))
    real_start = adapter.jobs._start

    def lost(*args: Any, **kwargs: Any) -> Any:  # the process following the job goes away
        raise RuntimeError("the app was stopped")

    adapter.jobs._start = lost
    stopped = last(adapter.approve("t1"))
    assert stopped.stalled and not stopped.busy and "the app was stopped" in "\n".join(texts(stopped))
    assert adapter.graph.get_state(adapter.config("t1")).next == ("train",)

    adapter.jobs._start = real_start
    views = list(adapter.reattach("t1", poll=0.01, idle_seconds=0.05))

    final = views[-1]
    assert not final.stalled and final.training is not None and final.training.status == "ok"
    assert "Training finished" in "\n".join(texts(final)) and len(jobs.calls) == 1
