"""Training as a job: own process, run folder, cancel, and a kill that leaves the KB consistent."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from knowledge.schema import TrainConfig
from knowledge.store import KnowledgeBase, read_records
from tools.jobs import Job

SLOW = TrainConfig(backbone="small_cnn", mode="scratch", input_size=32, epochs=60, batch_size=32)


def _wait_for_epoch(job: Job, n: int = 1, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = job.run_dir / "log.jsonl"
        if log.exists() and log.read_text().count('"event": "epoch"') >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"no epoch logged in {timeout} s: {(job.run_dir / 'stderr.txt').read_text()[-2000:]}")


def _consistent(kb_root: Path) -> list:
    data = (kb_root / "records.jsonl").read_bytes()
    assert data.endswith(b"\n")
    for line in data.splitlines():
        json.loads(line)  # no torn line
    return read_records(kb_root / "records.jsonl")


def test_job_runs_logs_and_records(tmp_path: Path, shared_data: Path) -> None:
    cfg = TrainConfig(backbone="efficientnet_lite0", mode="frozen", epochs=2)
    job = Job.start(str(shared_data / "busi_ultrasound.npz"), cfg, kb_root=tmp_path / "kb", runs=tmp_path / "runs")
    record = job.wait()
    assert record is not None and record.outcome.status == "ok"
    assert record.id == job.id and record.provenance.source == "user"
    events = [json.loads(x)["event"] for x in (job.run_dir / "log.jsonl").read_text().splitlines()]
    assert events == ["start", "epoch", "epoch", "end"]
    assert [r.id for r in _consistent(tmp_path / "kb")] == [job.id]
    # Same job id again: nothing new starts, the same record comes back, nothing is written twice.
    again = Job.start(str(shared_data / "busi_ultrasound.npz"), cfg, kb_root=tmp_path / "kb", runs=tmp_path / "runs", job_id=job.id)
    assert again.proc is None and again.wait() == record
    assert len(_consistent(tmp_path / "kb")) == 1


def test_kill_9_during_training_records_a_failed_run(tmp_path: Path, shared_data: Path) -> None:
    kb_root = tmp_path / "kb"
    KnowledgeBase(kb_root, index=False).append([])  # an existing KB
    job = Job.start(str(shared_data / "busi_ultrasound.npz"), SLOW, kb_root=kb_root, runs=tmp_path / "runs")
    _wait_for_epoch(job)
    assert job.proc is not None
    os.kill(job.proc.pid, signal.SIGKILL)
    record = job.wait()
    assert record is not None and record.outcome.status == "failed"
    assert "exit code -9" in (record.outcome.error or "")
    assert record.outcome.epochs_run >= 1 and record.outcome.history[0].val_accuracy is not None
    assert [r.id for r in _consistent(kb_root)] == [job.id]
    assert (job.run_dir / "record.json").exists()


def test_cancel_records_a_cancelled_run(tmp_path: Path, shared_data: Path) -> None:
    job = Job.start(str(shared_data / "busi_ultrasound.npz"), SLOW, kb_root=tmp_path / "kb", runs=tmp_path / "runs")
    _wait_for_epoch(job)
    job.cancel()
    record = job.wait()
    assert record is not None and record.outcome.status == "cancelled"
    assert _consistent(tmp_path / "kb")[0].outcome.status == "cancelled"


def test_bad_dataset_fails_before_training_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"")
    job = Job.start(str(bad), SLOW, kb_root=tmp_path / "kb", runs=tmp_path / "runs")
    assert job.wait() is None
    assert "0 bytes" in (job.run_dir / "error.txt").read_text()
    assert not (tmp_path / "kb" / "records.jsonl").exists()


def test_worker_killed_before_loading_data_leaves_no_record(tmp_path: Path, shared_data: Path) -> None:
    job = Job.start(str(shared_data / "busi_ultrasound.npz"), SLOW, kb_root=tmp_path / "kb", runs=tmp_path / "runs")
    assert job.proc is not None
    job.proc.kill()  # immediately: python has not even imported torch yet
    assert job.wait() is None
    assert not (tmp_path / "kb" / "records.jsonl").exists()


def test_a_new_process_reattaches_to_a_running_job(tmp_path: Path, shared_data: Path) -> None:
    """An app restarted mid-training finds the job by id: it neither restarts nor fails it."""
    job = Job.start(str(shared_data / "busi_ultrasound.npz"), SLOW, kb_root=tmp_path / "kb", runs=tmp_path / "runs")
    _wait_for_epoch(job)
    attached = Job.start(str(shared_data / "busi_ultrasound.npz"), SLOW, kb_root=tmp_path / "kb",
                         runs=tmp_path / "runs", job_id=job.id)
    assert attached.proc is None and attached.running
    assert attached.finalize() is None  # a live job is not judged
    attached.cancel()  # through the recorded pid
    record = attached.wait()
    assert record is not None and record.outcome.status == "cancelled"
    assert job.wait() == record
    assert [r.outcome.status for r in _consistent(tmp_path / "kb")] == ["cancelled"]


class _ScriptedJob:
    """A job whose log is a list of events; an event "interrupt" raises KeyboardInterrupt there."""

    def __init__(self, run_dir: Path, events: list[dict], record: object | None = "record") -> None:
        self.run_dir, self._events, self._record = run_dir, events, record
        self.cancelled = False

    def events(self):
        for event in self._events:
            if event.get("event") == "interrupt":
                raise KeyboardInterrupt
            yield event

    def cancel(self) -> None:
        self.cancelled = True

    def finalize(self):
        return self._record


def test_drive_streams_every_event_then_returns_the_record(tmp_path: Path) -> None:
    from tools.jobs import drive

    seen: list[dict] = []
    job = _ScriptedJob(tmp_path, [{"event": "start"}, {"event": "epoch", "epoch": 1}, {"event": "end"}])

    finished = drive(job, seen.append)

    assert [e["event"] for e in seen] == ["start", "epoch", "end"]
    assert finished.record == "record" and finished.error is None and not job.cancelled


def test_drive_without_a_record_says_why_from_error_txt_or_where_to_look(tmp_path: Path) -> None:
    from tools.jobs import drive

    assert drive(_ScriptedJob(tmp_path, [], record=None)).error == \
        f"the job failed before training; see {tmp_path}/stderr.txt"
    (tmp_path / "error.txt").write_text("cannot read the dataset: not an .npz")
    assert drive(_ScriptedJob(tmp_path, [], record=None)).error == "cannot read the dataset: not an .npz"


def test_drive_cancels_on_ctrl_c_and_records_or_raises_as_asked(tmp_path: Path) -> None:
    import pytest

    from tools.jobs import drive

    events = [{"event": "start"}, {"event": "interrupt"}, {"event": "end"}]
    job = _ScriptedJob(tmp_path, events, record="cancelled record")
    assert drive(job, interrupt="record").record == "cancelled record" and job.cancelled

    job = _ScriptedJob(tmp_path, events)
    with pytest.raises(KeyboardInterrupt):
        drive(job)
    assert job.cancelled


def test_write_json_replaces_whole_or_not_at_all_and_leaves_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one atomic writer (knowledge.store.atomic_write): a rename that fails keeps the old file
    and removes the temporary (a fixed `.tmp` name was left behind, and shared by two writers)."""
    from tools.jobs import write_json

    path = tmp_path / "record.json"
    write_json(path, {"n": 1})
    assert json.loads(path.read_text()) == {"n": 1}

    def no_rename(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"n": 2})
    assert json.loads(path.read_text()) == {"n": 1} and [p.name for p in tmp_path.iterdir()] == ["record.json"]
