"""Training on a real Ray cluster (issue 18): a head on 127.0.0.1 started here, real runs on a real
dataset, the faults of docs/RELIABILITY.md (a worker killed mid-run, the driver killed
mid-sweep), cancel, and the messages for a cluster that is not there."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

from knowledge.schema import TrainConfig  # noqa: E402
from knowledge.store import KnowledgeBase  # noqa: E402
from tests.reliability import count  # noqa: E402
from tools.ray_head import free_port, head_processes, local_head, processes, workers_running  # noqa: E402
from tools.sweep import SweepItem, run_sweep, sample_head_config  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
DATASET = "head_ct_hemorrhage.npz"  # 139 training images: runs of seconds


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    """A Ray head on 127.0.0.1 with 2 CPUs (its own temp dir and ports; only its processes are stopped after)."""
    with local_head(num_cpus=2) as address:
        yield address
    assert not head_processes(address), "a process of the stopped Ray head outlived it"


def test_a_stopped_head_leaves_no_ray_process_behind() -> None:
    """The raylet's DashboardAgent and RuntimeEnvAgent, and the workers, used to outlive the head."""
    import ray

    def worker_pid() -> int:  # defined here, so Ray ships it by value
        return os.getpid()

    with local_head(num_cpus=1) as address:
        ray.init(address=address, log_to_driver=False)
        worker = ray.get(ray.remote(worker_pid).remote())
        started = head_processes(address)
        titles = {processes().get(pid, (b"", 0))[0].split(b"\0")[0] for pid in started}
        assert worker in started and {b"ray::DashboardAgent", b"ray::RuntimeEnvAgent"} <= titles, titles
    assert not head_processes(address)  # the session every one of them was in is empty (zombies aside)


def _items(data: Path, n: int, seed: int = 0, **update: object) -> list[SweepItem]:
    rng = random.Random(seed)
    return [SweepItem(str(data / DATASET), sample_head_config(rng, "efficientnet_lite0", 64).model_copy(update=update), 0)
            for _ in range(n)]


def _wait_for(predicate, timeout: float = 120.0) -> object:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_sweep_on_ray_matches_local_records_and_a_rerun_adds_nothing(head: str, shared_data: Path, tmp_path: Path) -> None:
    from tools.ray_runner import run_sweep_ray

    items = _items(shared_data, 6, epochs=3)
    local = KnowledgeBase(tmp_path / "local", index=False)
    run_sweep(items, local, workers=1, progress=False)
    remote = KnowledgeBase(tmp_path / "ray", index=False)
    stats = run_sweep_ray(items, remote, address=head, progress=False)
    assert stats["run"] == stats["ok"] == 6 and stats["worker_died"] == stats["lost"] == stats["duplicates"] == 0
    by_key = {r.run_key: r for r in local.records()}
    got = remote.records()
    assert sorted(r.run_key for r in got) == sorted(by_key)
    for r in got:
        assert r.id == r.run_key and r.provenance.source == "sweep" and r.outcome.status == "ok"
        assert r.config == by_key[r.run_key].config
        # the same run (seed, data, cached features): the same result, up to float summation order on 1 vs 2 threads
        assert abs(r.outcome.val_accuracy - by_key[r.run_key].outcome.val_accuracy) <= 0.03
    again = run_sweep_ray(items, remote, address=head, progress=False)
    assert again["skipped"] == 6 and again["run"] == 0
    assert len(remote.records()) == 6


def test_a_worker_killed_mid_run_is_retried_once_then_recorded_failed(head: str, shared_data: Path, tmp_path: Path) -> None:
    """Run A's worker is killed once (Ray retries it: one ok record); run B's is killed twice (one failed
    record saying why). Nothing is written twice."""
    from tools.ray_runner import DIED, run_sweep_ray

    data = str(shared_data / DATASET)
    long = {"backbone": "small_cnn", "mode": "scratch", "input_size": 64, "epochs": 40, "batch_size": 16}
    a, b = (SweepItem(data, TrainConfig(**long, learning_rate=lr), 0) for lr in (1e-3, 2e-3))
    kb = KnowledgeBase(tmp_path / "kb", index=False)
    out: dict[str, object] = {}
    sweep = threading.Thread(target=lambda: out.update(run_sweep_ray([a, b], kb, address=head, progress=False,
                                                                      in_flight=1)))
    sweep.start()
    try:
        first = _wait_for(lambda: workers_running("run_spec"))
        time.sleep(1.0)
        os.kill(next(iter(first)), signal.SIGKILL)
        count("ray: workers killed mid-run")
        _wait_for(lambda: len(kb.records()) == 1, timeout=300)  # A, retried
        for _ in range(2):  # B's try and its retry
            pids = _wait_for(lambda: workers_running("run_spec"))
            time.sleep(1.0)
            os.kill(next(iter(pids)), signal.SIGKILL)
            count("ray: workers killed mid-run")
            _wait_for(lambda p=pids: not (workers_running("run_spec") & p))
    finally:
        sweep.join(timeout=300)
    records = {r.config.learning_rate: r for r in kb.records()}
    assert len(kb.records()) == len({r.run_key for r in kb.records()}) == 2
    assert records[1e-3].outcome.status == "ok" and records[1e-3].outcome.val_accuracy is not None
    failed = records[2e-3].outcome
    assert failed.status == "failed" and DIED in failed.error and "resumed sweep does not run it again" in failed.error
    assert out["worker_died"] == 1 and out["ok"] == 1
    count("ray: runs retried to ok")
    count("ray: runs recorded failed after a second kill")
    count("ray: records duplicated", 0)


def test_a_killed_driver_resumes_the_sweep_without_duplicates(head: str, shared_data: Path, tmp_path: Path) -> None:
    """`metallmix kb sweep --ray` killed with SIGKILL mid-sweep, then rerun: every planned run once."""
    data = tmp_path / "data"
    data.mkdir()
    (data / DATASET).symlink_to(shared_data / DATASET)
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    (kb_dir / "records.jsonl").touch()  # a knowledge base of its own, not the seed's
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("METALLMIX_RAY", None)
    cmd = [sys.executable, "-m", "agent.cli", "--kb-dir", str(kb_dir), "kb", "sweep", "--plan", "frozen", "--heads", "12",
           "--trainable", "0", "--data-dir", str(data), "--limit", "12", "--ray", head, "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    records = kb_dir / "records.jsonl"
    _wait_for(lambda: proc.poll() is not None or (records.exists() and len(records.read_bytes().splitlines()) >= 3),
              timeout=300)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # still running: killed mid-sweep
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    count("ray: drivers killed mid-sweep")
    before = len(KnowledgeBase(kb_dir, index=False).records())
    assert 3 <= before < 12
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["skipped"] == before and stats["run"] == 12 - before and stats["duplicates"] == 0
    recs = KnowledgeBase(kb_dir, index=False).records()
    assert len(recs) == len({r.run_key for r in recs}) == 12
    assert all(json.loads(line) for line in records.read_text().splitlines())
    count("ray: records checked after a driver kill", len(recs))
    count("ray: records duplicated", 0)


def test_cancel_from_the_job_registry_reaches_the_remote_run(head: str, shared_data: Path, tmp_path: Path) -> None:
    """The chat's cancel (JobRegistry.cancel) and Ctrl-C in the CLI call job.cancel(): the remote worker
    stops at once and the run is recorded as cancelled, with the epochs it finished."""
    from agent.chat.runs import JobRegistry
    from tools.jobs import drive
    from tools.ray_jobs import ray_job_starter

    jobs = JobRegistry(ray_job_starter(head))
    config = TrainConfig(backbone="small_cnn", mode="scratch", input_size=64, epochs=60, batch_size=16)
    job = jobs.start(str(shared_data / DATASET), config, seed=0, kb_root=tmp_path / "kb", runs=tmp_path / "runs")
    seen: list[dict] = []

    def on_event(event: dict) -> None:
        seen.append(event)
        if event.get("event") == "epoch" and event["epoch"] == 2:
            assert jobs.cancel(job.id)

    finished = drive(job, on_event)
    pid = next(e["pid"] for e in seen if e.get("event") == "start")
    _wait_for(lambda: pid not in workers_running("run_spec_events"), timeout=30)  # the remote worker stopped
    record = finished.record
    assert record is not None and record.outcome.status == "cancelled" and 2 <= record.outcome.epochs_run < 60
    assert "cancelled" in record.outcome.error
    assert [r.id for r in KnowledgeBase(tmp_path / "kb", index=False).records()] == [job.id]
    assert (job.run_dir / "record.json").exists() and (job.run_dir / "log.jsonl").read_text().count('"epoch"') >= 2
    count("ray: remote runs cancelled")


def test_parts_follow_the_ray_setting(head: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.parts import Parts
    from tools.jobs import Job

    monkeypatch.setenv("METALLMIX_RAY", head)
    assert Parts(llm=None, kb=None).job_starter().func.__qualname__ == "RayJob.start"
    monkeypatch.delenv("METALLMIX_RAY")
    assert Parts(llm=None, kb=None).job_starter() == Job.start


def test_no_cluster_or_no_ray_gives_a_clear_message(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = free_port()
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "records.jsonl").touch()  # a knowledge base of its own, not the seed's
    base = [sys.executable, "-m", "agent.cli", "--kb-dir", str(tmp_path / "kb"), "kb", "sweep", "--data-dir", str(shared_data),
            "--datasets", "head_ct_hemorrhage", "--limit", "1", "--quiet", "--ray"]
    for address, said in ((f"127.0.0.1:{closed}", f"no Ray head answers at 127.0.0.1:{closed}"),
                          ("not-an-address", "--ray must be 'auto' or HOST:PORT")):
        done = subprocess.run([*base, address], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 3 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not (tmp_path / "kb" / "records.jsonl").read_text()
        count("ray: unreachable or bad addresses refused")
    tune = [sys.executable, "-m", "agent.cli", "--kb-dir", str(tmp_path / "kb"), "tune", "", "--dataset",
            str(shared_data / DATASET), "--yes", "--ray", f"127.0.0.1:{closed}"]
    done = subprocess.run(tune, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and f"no Ray head answers at 127.0.0.1:{closed}" in done.stderr, done.stderr
    count("ray: unreachable or bad addresses refused")
    from tools.ray_runner import RayUnavailableError, connect

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(RayUnavailableError, match=r"pip install -e '\.\[ray\]'"):
        connect("auto")
