"""bench.lodo's search baselines on a Ray cluster (`python -m bench.lodo --ray auto|HOST:PORT`, or METALLMIX_RAY).

Without --ray nothing here is imported and the baselines train their trials one after another
in the benchmark's process, as before. With it:

- random search draws its N configs exactly as without Ray (the same seeded sampler), then
  trains every one not cached as a Ray task at once; Ray runs as many at a time as the cluster
  has slots (one GPU per run on a GPU cluster, else `--threads` CPUs per run);
- Optuna TPE asks k trials, trains them in parallel, tells their validation accuracies, and
  asks the next k (k = the cluster's slots). A batch is sampled from the history before it, so
  TPE with k > 1 is not the sequential TPE: its later trials see fewer results (k = 1 is
  exactly the sequential run). The sampler's `constant_liar` marks the trials of a batch as
  running so it does not ask the same point k times;
- a worker trains one run (`bench.reference.train_row`) and returns its row; it writes nothing.
  The driver appends each row to the run cache (bench/results/lodo_runs.jsonl) as it arrives,
  under the same key a local run would have (dataset fingerprint, config, seed, device kind),
  so a rerun, local or on Ray, trains nothing already cached;
- a worker that dies twice (Ray retries once) gives a cached `failed` row saying so, as the
  sweep does (`tools.ray_runner`), so a rerun does not train it for ever. An error of the run
  itself is raised, as a local run's would be.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.reference import HARD_CAP_S, Runs, train_row
from knowledge.schema import TrainConfig

_DATASETS: dict[str, Any] = {}


def train_trial(path: str, fingerprint: str, config: dict[str, Any], seed: int, key: str, threads: int,
                cap_s: float, device: str) -> dict[str, Any]:
    """The Ray task: train one trial on the dataset at `path` (on the worker's filesystem) and return its row."""
    from tools.datasets import load_dataset

    if path not in _DATASETS:  # Ray reuses worker processes: a search sends several trials on one dataset
        _DATASETS.clear()
        _DATASETS[path] = load_dataset(path)
    ds = _DATASETS[path]
    if ds.fingerprint != fingerprint:
        raise ValueError(f"the dataset at {path} on this Ray worker is not the driver's (fingerprint {ds.fingerprint}, "
                         f"expected {fingerprint}): every node must hold the same file at the same path")
    return train_row(ds, TrainConfig.model_validate(config), seed, key, threads=threads, cap_s=cap_s, device=device)


class RaySearch:
    """Trains bench.lodo's search trials on the Ray cluster at `address`; the driver caches them in `runs`."""

    def __init__(self, address: str, runs: Runs, threads: int = 1, batch: int | None = None) -> None:
        from tools.ray_runner import connect, task_options

        self.address, self.runs, self.threads = address, runs, threads
        self.ray = connect(address)
        opts = task_options(self.ray, cpus_per_run=threads)
        self.device = "cuda" if opts["num_gpus"] else "cpu"
        resources = self.ray.cluster_resources()
        slots = int(resources.get("GPU", 0)) if opts["num_gpus"] else int(resources.get("CPU", 1) // threads)
        self.batch = batch or max(1, slots)  # TPE's k: trials asked before any of them is told
        self._task = self.ray.remote(train_trial).options(**opts)

    def rows(self, ds: Any, path: str, configs: list[TrainConfig], seed: int = 0) -> list[dict[str, Any]]:
        """The rows of these configs on D (seed `seed`): cached ones as they are, the rest trained as Ray tasks at
        once and cached here as each arrives (a config drawn twice trains once)."""
        keys = [Runs.key(ds.fingerprint, c, seed, self.device) for c in configs]
        todo = {k: c for k, c in zip(keys, configs, strict=True) if self.runs.current_row(k) is None}  # stale: again
        pending = {self._task.remote(path, ds.fingerprint, c.model_dump(mode="json"), seed, k, self.threads, HARD_CAP_S,
                                     self.device): (k, c, time.monotonic()) for k, c in todo.items()}
        try:
            while pending:
                ready, _ = self.ray.wait(list(pending), num_returns=1)
                key, config, t0 = pending.pop(ready[0])
                self.runs.add(self._result(ready[0], ds, key, config, seed, time.monotonic() - t0))
                self.runs.trained += 1
        except BaseException:  # Ctrl-C or a run's own error: stop the rest; what was cached stays
            for ref in pending:
                self.ray.cancel(ref, force=True)
            raise
        return [self.runs.rows[k] for k in keys]

    def _result(self, ref: Any, ds: Any, key: str, config: TrainConfig, seed: int, wall: float) -> dict[str, Any]:
        from tools.ray_runner import DIED, worker_died

        try:
            return dict(self.ray.get(ref))
        except Exception as exc:
            if not worker_died(exc):
                raise
            from tools.train import code_version

            cfg = config.model_dump(mode="json")
            return {"key": key, "dataset": ds.name, "fingerprint": ds.fingerprint, "seed": seed, "config": cfg,
                    "ran_as": cfg, "weights": None, "status": "failed", "val_accuracy": None, "test_accuracy": None,
                    "train_seconds": 0.0, "feature_seconds": 0.0, "wall_seconds": round(wall, 3),
                    "device": self.device, "code_version": code_version(),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "threads": self.threads,
                    "load": round(os.getloadavg()[0], 2),
                    "error": f"{DIED}; cached as failed, so a rerun does not train it again. {exc}"[:2000]}


__all__ = ["RaySearch", "train_trial"]
