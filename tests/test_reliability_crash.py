"""Crashes: kill -9 of a knowledge-base writer, of the app mid-training and of its training job.

After every kill the knowledge base is checked the way the design promises: the JSONL has
no partial line (a torn tail is dropped on read and cut by the next sync or writer), every
record the writer saw durably appended is still there (records lost = 0), and once synced
the Chroma index holds exactly the JSONL's ids (no orphan, none missing). The killed app's
thread is reopened from its SQLite checkpoints: the approval is intact, resuming re-attaches
to the (killed) job by id, and the run is recorded as failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from knowledge.store import KnowledgeBase, read_records
from tests.reliability import HashEmbedder, count, jsonl_ids

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.crash_app", *args], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _index_ids(kb: KnowledgeBase) -> set[str]:
    return set(kb.collection().get(include=[])["ids"])


@pytest.mark.slow
def test_kill_9_of_a_writer_loses_no_durable_record_and_leaves_no_orphan(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    durable: list[str] = []
    for round_, delay in enumerate((0.3, 0.9, 1.7, 2.6)):
        child = _child("writer", str(root), str(round_ * 100_000))
        assert child.stdout is not None
        first = child.stdout.readline()  # the writer is up and has appended once
        assert first.strip(), child.stderr.read() if child.stderr else ""
        durable += first.split()
        time.sleep(delay)  # then dies somewhere in an append: in the JSONL write, the fsync or Chroma
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        durable += out.split()  # every id printed was appended (and fsynced) before the kill
        count("kill -9 of a knowledge-base writer")

        data = (root / "records.jsonl").read_bytes()
        whole = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
        for line in whole.splitlines():
            json.loads(line)  # every complete line is a record
        ids = [r.id for r in read_records(root / "records.jsonl")]  # a torn tail is dropped here
        lost = set(durable) - set(ids)
        count("records checked after a kill", len(durable))
        count("records lost", len(lost))
        assert not lost
        assert len(ids) == len(set(ids))  # nothing written twice

    kb = KnowledgeBase(root, embedder=HashEmbedder())
    kb.sync_index()  # what the next search does
    assert _index_ids(kb) == set(jsonl_ids(root)) == set(r.id for r in kb.records())
    # A new writer trims any torn tail before appending: the file ends with whole lines again.
    extra = kb.records()[0].model_copy(update={"id": "after-crash", "run_key": "after-crash-key"})
    assert kb.append(extra) == 1
    assert (root / "records.jsonl").read_bytes().endswith(b"\n") and jsonl_ids(root)[-1] == "after-crash"
    assert _index_ids(kb) == set(jsonl_ids(root))


@pytest.mark.slow
def test_kill_9_of_the_app_and_its_job_mid_training_resumes_and_records_a_failed_run(
    tmp_path: Path, shared_data: Path
) -> None:
    from tests.crash_app import TRAIN_EDIT, parts

    dataset = str(shared_data / "busi_ultrasound.npz")
    app = _child("app", str(tmp_path), dataset)
    assert app.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = app.stdout.readline().strip()
        if not line and app.poll() is not None:
            break
        lines.append(line)
        if line == "epoch":  # the job is training: its worker has written its start event
            break
    assert lines and lines[-1] == "epoch", (lines, app.stderr.read() if app.stderr else "")
    offered_key = next(x.split()[1] for x in lines if x.startswith("edited"))
    run_dir = next((tmp_path / "runs").iterdir())
    worker = int((run_dir / "worker.pid").read_text())

    os.kill(app.pid, signal.SIGKILL)  # the app dies while it follows the job
    app.communicate()
    os.kill(worker, signal.SIGKILL)  # and so does the job
    for _ in range(100):
        if not Path(f"/proc/{worker}").exists() or "zombie" in _status(worker):
            break
        time.sleep(0.05)
    count("kill -9 of the app mid-training")
    count("kill -9 of a training job")

    graph, kb, context, conn = parts(tmp_path)
    cfg: dict[str, Any] = {"configurable": {"thread_id": "crash"}}
    state = graph.get_state(cfg)
    approval, offer = state.values["approval"], state.values["offer"]
    assert state.next == ("train",)  # stopped inside training, not lost and not re-asked
    assert approval["key"] == offer["key"] == offered_key and approval["dataset"] == dataset
    assert {k: approval["config"][k] for k in TRAIN_EDIT} == TRAIN_EDIT
    assert state.values["decision"] == {"status": "approved"}

    out = graph.invoke(None, cfg, context=context)  # what the chat's Resume does
    conn.close()

    training = out["training"]
    assert training["status"] == "failed" and training["record_id"] == run_dir.name
    assert "ended without a result" in training["error"]
    records = read_records(tmp_path / "kb" / "records.jsonl")
    assert [(r.id, r.outcome.status) for r in records] == [(run_dir.name, "failed")]
    assert records[0].config.model_dump() == approval["config"]  # the approved config, and only it
    assert out["recorded"]["record_id"] == run_dir.name and out["recorded"]["index"]["total"] == 1
    assert _index_ids(kb) == {run_dir.name}  # Chroma synced: no orphan, none missing
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the job was not started twice
    count("records checked after a kill", 1)


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "gone"
