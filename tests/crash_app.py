"""Child processes for tests/test_reliability_crash.py, killed with SIGKILL by the test.

    python -m tests.crash_app writer KB_DIR START      # appends records forever, printing each durable id
    python -m tests.crash_app app TMP DATASET          # the app: request, edit, approve, then trains

The app uses the real graph, SQLite checkpointer, knowledge base (JSONL + Chroma, hash
embedder) and training jobs (tools.jobs.Job.start); only the LLM and the meta-model are the
scripted ones of tests/fakes.py. `parts()` is shared with the test, which
rebuilds the same app after the kill.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The small CNN from scratch at 32 px: no weights to load, epochs of a few seconds.
TRAIN_EDIT = {"backbone": "small_cnn", "mode": "scratch", "input_size": 32, "epochs": 60, "batch_size": 32,
              "augmentation": "none"}
TASK = "breast ultrasound, 3 classes, 780 images, 20 minutes on a CPU"


def parts(tmp: Path) -> tuple[Any, Any, Any, sqlite3.Connection]:
    """(graph, knowledge base, context, sqlite connection) of the app on `tmp`."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    from agent.context import Context
    from agent.graph import compile_graph
    from agent.nodes import Nodes
    from agent.parts import Parts
    from knowledge.store import KnowledgeBase
    from tests.fakes import FakeMetaModel, ScriptChat
    from tests.reliability import HashEmbedder
    from tools.jobs import Job

    kb = KnowledgeBase(tmp / "kb", embedder=HashEmbedder())
    nodes = Nodes(Parts(
        llm=ScriptChat(), judge_llm=ScriptChat(), kb=kb, metamodel=FakeMetaModel(), start_job=Job.start,
        weights_available=lambda b: b.startswith("efficientnet_lite")
    ))
    conn = sqlite3.connect(str(tmp / "threads.sqlite"), check_same_thread=False)
    graph = compile_graph(nodes, checkpointer=SqliteSaver(conn))
    return graph, kb, Context(runs_dir=str(tmp / "runs")), conn


def app(tmp: Path, dataset: str) -> None:
    from langgraph.types import Command

    graph, _, context, _ = parts(tmp)
    cfg = {"configurable": {"thread_id": "crash"}}
    out = graph.invoke({"task": TASK, "dataset": dataset}, cfg, context=context)
    print("offered", out["__interrupt__"][0].value["key"], flush=True)
    out = graph.invoke(Command(resume={"action": "edit", "config": TRAIN_EDIT}), cfg, context=context)
    print("edited", out["__interrupt__"][0].value["key"], flush=True)
    for event in graph.stream(Command(resume={"action": "approve"}), cfg, context=context, stream_mode="custom"):
        print(event.get("event") or event.get("type"), flush=True)


def writer(kb_dir: Path, start: int) -> None:
    from knowledge.store import KnowledgeBase
    from tests.reliability import HashEmbedder, seed_sample

    kb = KnowledgeBase(kb_dir, embedder=HashEmbedder())
    base = seed_sample(40)
    i = start
    while True:
        batch = [base[(i + j) % len(base)].model_copy(update={"id": f"crash{i + j:07d}", "run_key": f"crashkey{i + j:07d}"})
                 for j in range(3)]
        kb.append(batch)  # returns after the fsync of the JSONL and the Chroma upsert
        print(" ".join(r.id for r in batch), flush=True)
        i += 3


if __name__ == "__main__":
    if sys.argv[1] == "writer":
        writer(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        app(Path(sys.argv[2]), sys.argv[3])
