"""Load: 8 chat sessions at once against one app served on 127.0.0.1, for a bounded time.

The app is the real one (app.create_app + app.launch, Gradio's queue, the real graph with a
SQLite checkpointer, the real knowledge base and meta-model); the LLM is scripted and each
approved training is a quick scripted job whose record is appended to the real knowledge
base (JSONL + Chroma) from the graph's worker threads, concurrently. Each client repeats:
a task with its own marker, approve (train + record), a follow-up question, and checks it
only ever sees its own conversation. At the end every record a client was told about is in
the JSONL and in the index (records lost = 0), and the resident memory grew by a bounded
amount after the warm-up round.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client
from langgraph.checkpoint.sqlite import SqliteSaver

import app as app_module
from agent.chat import ChatAdapter, JobRegistry, Transcript
from agent.context import Context
from agent.graph import compile_graph
from agent.nodes import Nodes
from agent.parts import Parts
from knowledge.schema import TrainConfig
from tests.fakes import FakeProc, ScriptChat, tiny_dataset
from tests.reliability import count, jsonl_ids, real_kb, real_metamodel, seed_sample
from tests.test_app_server import free_port, text_of

CLIENTS = 8
LOAD_SECONDS = 30.0
TIMEOUT = 120


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class QuickJob:
    """A two-epoch job that appends its record to the real knowledge base when it ends."""

    def __init__(self, run_dir: Path, config: TrainConfig, kb: Any) -> None:
        self.id, self.run_dir, self.config, self.kb = run_dir.name, run_dir, config, kb
        self.proc = FakeProc()
        run_dir.mkdir(parents=True, exist_ok=True)

    def events(self) -> Iterator[dict[str, Any]]:
        for event in ({"event": "start", "config": self.config.model_dump()},
                      {"event": "epoch", "epoch": 1, "epochs": 2, "train_loss": 1.0, "val": {"accuracy": 0.6}},
                      {"event": "epoch", "epoch": 2, "epochs": 2, "train_loss": 0.5, "val": {"accuracy": 0.7}},
                      {"event": "end", "status": "ok", "record_id": self.id}):
            with (self.run_dir / "log.jsonl").open("a") as f:
                f.write(json.dumps(event) + "\n")
            yield event

    def finalize(self) -> Any:
        base = seed_sample()[0]
        record = base.model_copy(update={"id": self.id, "run_key": f"load-{self.id}"[:64], "config": self.config})
        self.kb.append(record)
        return record


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    kb = real_kb(tmp_path / "kb", n=120)
    started: list[str] = []

    def start(dataset: str, config: TrainConfig, **kw: Any) -> QuickJob:
        started.append(kw["job_id"])
        return QuickJob(Path(kw["runs"]) / kw["job_id"], config, kb)

    jobs = JobRegistry(start)
    weights = lambda b: b.startswith("efficientnet_lite")  # noqa: E731
    nodes = Nodes(Parts(
        llm=ScriptChat(), judge_llm=ScriptChat(), kb=kb, metamodel=real_metamodel(), start_job=jobs.start,
        weights_available=weights
    ))
    conn = sqlite3.connect(tmp_path / "threads.sqlite", check_same_thread=False)
    context = Context(plot_dir=str(tmp_path / "plots"), allowed_data_dirs=(str(tmp_path / "data"),),
                      runs_dir=str(tmp_path / "runs"))
    adapter = ChatAdapter(compile_graph(nodes, checkpointer=SqliteSaver(conn)), nodes.parts,
                          context=context, jobs=jobs, transcript=Transcript(tmp_path / "threads.sqlite"))
    settings = app_module.AppSettings(port=free_port(), db_path=tmp_path / "threads.sqlite", plot_dir=tmp_path / "plots",
                                      uploads_dir=tmp_path / "uploads", data_dirs=[str(tmp_path / "data")],
                                      secret="test-secret")
    demo = app_module.create_app(app_module.AppParts(adapter=adapter, kb=kb), settings)
    app_module.launch(demo, settings, block=False, quiet=True)
    try:
        yield {"url": f"http://127.0.0.1:{settings.port}/", "kb": kb, "started": started,
               "dataset": tiny_dataset(tmp_path / "data")}
    finally:
        demo.close()
        conn.close()


def _client_loop(k: int, world: dict[str, Any], stop: float, results: dict[int, Any], warm: threading.Barrier) -> None:
    client = Client(world["url"], download_files=False, verbose=False)
    done: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        round_ = 0
        while True:
            thread = f"client{k}-round{round_}"
            marker = f"{100 + k}{round_:03d}"
            task = f"breast ultrasound, 3 classes, case {marker}, 20 minutes on a CPU"
            chat, notice, offer, *_rest = client.submit(task, None, world["dataset"], None, "", [], [], 0, 0, 0, thread,
                                                        api_name="/send").result(timeout=TIMEOUT)
            texts = [text_of(m) for m in chat]
            if not texts or not texts[0].startswith(task) or "Awaiting your approval" not in offer:
                problems.append(f"{thread}: no offer for its own task: {texts[:1]} {notice!r}")
            others = [t for t in texts if re.search(r"case (\d{6})", t) and f"case {marker}" not in t]
            if others:
                problems.append(f"{thread}: sees another conversation: {others[0][:120]}")
            job = client.submit("", None, thread, api_name="/approve")
            job.result(timeout=TIMEOUT)
            chat = job.outputs()[-1][0]
            body = "\n".join(text_of(m) for m in chat)
            record = re.search(r"New knowledge-base record[^`]*`([^`]+)`", body)
            if "Training finished" not in body or not record:
                problems.append(f"{thread}: training not reported: {body[-300:]}")
            else:
                done.append({"thread": thread, "record": record.group(1)})
            why, *_ = client.submit("why this learning rate?", None, "", None, "", [], [], 0, 0, 0, thread,
                                    api_name="/send").result(timeout=TIMEOUT)
            answer = "\n".join(text_of(m) for m in why[-3:])  # the answer, then its SHAP plot
            foreign = [m for m in re.findall(r"case (\d{6})", answer) if m != marker]
            if "why learning rate" not in answer.lower() or foreign:
                problems.append(f"{thread}: follow-up not answered: {answer[:200]}")
            count("load rounds (task + approve + train + follow-up)")
            if round_ == 0:
                warm.wait(timeout=TIMEOUT)
            round_ += 1
            if time.monotonic() > stop:
                break
    except Exception as exc:  # reported by the test, with the client's number
        problems.append(f"client {k}: {type(exc).__name__}: {exc}")
        if round_ == 0:
            warm.abort()
    finally:
        client.close()
        results[k] = {"done": done, "problems": problems}


@pytest.mark.slow
def test_eight_concurrent_chats_no_cross_talk_no_lost_records_bounded_memory(served: dict[str, Any]) -> None:
    results: dict[int, Any] = {}
    rss: dict[str, float] = {"start": rss_mb()}

    def warmed() -> None:
        rss["warm"] = rss_mb()

    warm = threading.Barrier(CLIENTS, action=warmed)
    stop = time.monotonic() + LOAD_SECONDS
    threads = [threading.Thread(target=_client_loop, args=(k, served, stop, results, warm)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=LOAD_SECONDS + 4 * TIMEOUT)
    rss["end"] = rss_mb()

    problems = [p for r in results.values() for p in r["problems"]]
    assert len(results) == CLIENTS and not problems, problems[:5]
    done = [d for r in results.values() for d in r["done"]]
    assert all(len(r["done"]) >= 1 for r in results.values())

    kb = served["kb"]
    ids = jsonl_ids(kb.root)
    told = {d["record"] for d in done}
    lost = {t for t in told if not any(i.startswith(t) for i in ids)}
    count("records checked after load", len(told))
    count("records lost", len(lost))
    assert not lost
    assert len(served["started"]) == len(done) == len(set(served["started"]))  # one job per approval
    assert len(ids) == len(set(ids)) == 120 + len(done)
    kb.sync_index()
    assert set(kb.collection().get(include=[])["ids"]) == set(ids)
    growth = rss["end"] - rss["warm"]
    print(f"\n{CLIENTS} clients, {len(done)} rounds in {LOAD_SECONDS:.0f} s; RSS start {rss['start']:.0f} MB, "
          f"after warm-up {rss['warm']:.0f} MB, end {rss['end']:.0f} MB (+{growth:.0f} MB)")
    count("load: peak RSS growth after warm-up, MB", max(0, round(growth)))
    assert growth < 300, rss
