"""bench.lodo's search baselines on a real Ray cluster (issue 18): a head on 127.0.0.1 started here, real
frozen-head trials on a real dataset, the driver the only writer of the run cache."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

from bench.lodo import Family, search  # noqa: E402
from bench.reference import Runs  # noqa: E402
from tools.ray_head import free_port, local_head  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASET = "head_ct_hemorrhage.npz"  # 139 training images: heads of a second or two


@pytest.fixture(scope="module")
def head() -> Iterator[str]:
    with local_head(num_cpus=2) as address:
        yield address


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.slow
def test_search_trials_on_ray_are_the_local_ones_cached_once_and_never_retrained(
        head: str, shared_data: Path, tmp_path: Path) -> None:
    from bench.lodo_ray import RaySearch
    from tools.datasets import load_dataset

    path = shared_data / DATASET
    # one cheap family (frozen Lite0 heads at 64 px): the space is the benchmark's, only narrowed
    task = SimpleNamespace(name="head_ct_hemorrhage", path=path, ds=load_dataset(path),
                           fams=[Family("efficientnet_lite0", "frozen", 64)])
    local = Runs(tmp_path / "local.jsonl")
    want = search(task, local, "random", 3)

    # random search on Ray: the same configs as without it, each trained once by a worker, cached by the driver
    remote = Runs(tmp_path / "ray.jsonl")
    ray_search = RaySearch(head, remote)
    assert ray_search.device == "cpu" and ray_search.batch == 2  # a head of 2 CPUs, 1 CPU per run
    got = search(task, remote, "random", 3, ray=ray_search)
    assert [c for c, _ in got] == [c for c, _ in want]
    keys = {r["key"] for _, r in got}
    assert keys == {r["key"] for _, r in want}  # the key a local run has: either finds the other's runs
    assert remote.trained == len(keys) and sorted(r["key"] for r in map(_json, _lines(remote.path))) == sorted(keys)
    for (_, g), (_, w) in zip(got, want, strict=True):
        assert g["status"] == w["status"] == "ok"
        assert abs(g["val_accuracy"] - w["val_accuracy"]) <= 0.03  # the same run; float order may differ

    # a rerun (a fresh driver on the same cache) trains nothing and writes nothing
    before = _lines(remote.path)
    again = Runs(remote.path)
    assert search(task, again, "random", 3, ray=RaySearch(head, again)) == got
    assert again.trained == 0 and _lines(remote.path) == before

    # TPE asked one at a time on Ray is the sequential TPE: the same configs, all found in the local cache
    tpe_local = search(task, local, "tpe", 3)
    copy = tmp_path / "copy.jsonl"
    shutil.copy(local.path, copy)
    one = Runs(copy)
    assert [c for c, _ in search(task, one, "tpe", 3, ray=RaySearch(head, one, batch=1))] == [c for c, _ in tpe_local]
    assert one.trained == 0

    # TPE in batches of 2 (the head's slots): trained on Ray, cached once, and a rerun trains nothing
    tpe = search(task, remote, "tpe", 3, ray=ray_search)
    assert len(tpe) == 3 and all(r["status"] == "ok" for _, r in tpe)
    rows = [_json(line) for line in _lines(remote.path)]
    assert len(rows) == len({r["key"] for r in rows})
    rerun = Runs(remote.path)
    assert search(task, rerun, "tpe", 3, ray=RaySearch(head, rerun)) == tpe and rerun.trained == 0


@pytest.mark.slow
def test_a_trial_whose_worker_dies_twice_is_cached_failed_once(head: str, shared_data: Path, tmp_path: Path) -> None:
    """Ray retries a killed worker once; killed again, the trial is cached as failed (saying why), so a rerun
    does not train it again."""
    import os
    import signal
    import time

    from bench.lodo_ray import RaySearch
    from knowledge.schema import TrainConfig
    from tools.datasets import load_dataset
    from tools.ray_head import workers_running
    from tools.ray_runner import DIED

    ds = load_dataset(shared_data / DATASET)
    long = TrainConfig(backbone="small_cnn", mode="scratch", input_size=64, epochs=40, batch_size=16)
    runs = Runs(tmp_path / "runs.jsonl")
    out: dict[str, list] = {}
    ray_search = RaySearch(head, runs)
    thread = threading.Thread(target=lambda: out.update(rows=ray_search.rows(ds, str(shared_data / DATASET), [long])))
    thread.start()
    try:
        for _ in range(2):  # the try and Ray's retry
            deadline = time.monotonic() + 120
            while not (pids := workers_running("train_trial")) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pids, "no Ray worker ran the trial"
            time.sleep(1.0)
            os.kill(next(iter(pids)), signal.SIGKILL)
            while workers_running("train_trial") & pids and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        thread.join(timeout=300)
    (row,) = out["rows"]
    assert row["status"] == "failed" and DIED in row["error"] and "does not train it again" in row["error"]
    assert len(_lines(runs.path)) == 1 and runs.trained == 1
    again = Runs(runs.path)
    assert RaySearch(head, again).rows(ds, str(shared_data / DATASET), [long]) == [row] and again.trained == 0


def _json(line: str) -> dict:
    import json

    return json.loads(line)


def test_lodo_with_no_ray_head_there_says_so_before_any_work(shared_data: Path, tmp_path: Path) -> None:
    # its own process: this one may hold a connection to the test head, which Ray would reuse
    closed = free_port()
    cmd = [sys.executable, "-m", "bench.lodo", "--datasets", "head_ct_hemorrhage", "--no-llm", "--reference", "off",
           "--cache", str(tmp_path / "runs.jsonl"), "--out", str(tmp_path / "lodo.md"), "--ray", f"127.0.0.1:{closed}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr[-2000:]
    assert f"no Ray head answers at 127.0.0.1:{closed}" in done.stderr and "ray start --head" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs.jsonl").exists()
