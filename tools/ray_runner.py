"""Training runs on a Ray cluster: one Ray task per run, results back to the one knowledge-base writer.

Used when a Ray address is given (`--ray auto|HOST:PORT`, or `METALLMIX_RAY`); without one,
nothing here is imported and runs stay local subprocesses (tools.jobs, tools.sweep).

- A worker trains one config (`tools.train.train`) and returns its record as JSON; it never
  writes the knowledge base. The driver (this process) appends each record as it arrives
  (`ray.wait`), skipping run keys the knowledge base already holds, and the record id is the
  run key, so a write is idempotent whoever repeats it.
- Resources per run: one GPU when the cluster has GPUs (the run then trains on CUDA), one CPU
  otherwise (`cpus_per_run`), with that many torch threads.
- A worker killed mid-run (kill -9, out of memory, a lost node) is retried once by Ray itself
  (`max_retries=1`, system failures only; an exception of the run is not retried); killed
  again, the run is recorded as failed with the reason, so a resumed sweep does not retry it
  for ever. A driver killed mid-sweep takes its running tasks with it; the next sweep skips
  every run key already written, so it resumes where it stopped without duplicates.
- Datasets are read from the worker's own filesystem at the path the driver names: on a
  cluster the data must sit at the same path on every node (here, one machine, it does).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from knowledge.runner_revisions import RUNNER_REVISION
from knowledge.schema import DatasetInfo, ExperimentRecord, Outcome, Provenance, TrainConfig, now_utc

log = logging.getLogger(__name__)

RAY_ENV = "METALLMIX_RAY"
INSTALL_HINT = "pip install -e '.[ray]'"
# Settings a worker reads that the driver's environment sets (a cluster's workers do not inherit it).
FORWARDED_ENV = ("METALLMIX_CACHE", "METALLMIX_MAX_DATASET_BYTES", "HF_HUB_OFFLINE")


class RayUnavailableError(RuntimeError):
    """Ray was asked for but is not installed, or the cluster cannot be reached."""


def ray_address(value: str | None = None) -> str | None:
    """The Ray address to use: `value` (a --ray flag), else $METALLMIX_RAY, else None (run locally)."""
    address = (value if value is not None else os.environ.get(RAY_ENV, "")).strip()
    return address or None


def _check_reachable(address: str) -> None:
    """A HOST:PORT that refuses connections fails here in a second, not after Ray's long retries."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailableError(
            f"--ray must be 'auto' or HOST:PORT of a Ray head (e.g. 127.0.0.1:6379), but got {address!r}."
        )
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise RayUnavailableError(
            f"no Ray head answers at {address} ({exc.strerror or exc}). Start one (`ray start --head --port={port}`) "
            f"or pass its address; without --ray (and with {RAY_ENV} unset) runs train locally."
        ) from exc


_connected: str | None = None  # the address `connect` initialised Ray with in this process


def connect(address: str) -> Any:
    """The `ray` module, connected to the cluster at `address` (once per process).

    Raises:
        RayUnavailableError: no ray package, no cluster at `address`, or this process is already
            connected to another address (Ray holds one cluster per process).
    """
    global _connected
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            f"training on Ray needs the ray package, which is not installed: {INSTALL_HINT}. "
            f"Without --ray (and with {RAY_ENV} unset) runs train locally."
        ) from exc
    if ray.is_initialized():
        if _connected is not None and address != _connected:
            raise RayUnavailableError(
                f"this process is connected to the Ray cluster at {_connected!r}, but {address!r} was asked for; "
                f"Ray holds one cluster per process. Pass {_connected!r} again (--ray or {RAY_ENV}), or run the "
                f"work for {address!r} in a process of its own."
            )
        return ray
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                 runtime_env={"env_vars": {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailableError(
            f"cannot connect to the Ray cluster at {address!r}: {exc}. Start one (`ray start --head`) or pass "
            f"its HOST:PORT; without --ray (and with {RAY_ENV} unset) runs train locally."
        ) from exc
    _connected = address
    return ray


def cluster_has_gpu(ray: Any) -> bool:
    return float(ray.cluster_resources().get("GPU", 0)) >= 1


def task_options(ray: Any, *, cpus_per_run: int = 1, gpu: bool | None = None) -> dict[str, Any]:
    """Ray options of one run: one GPU on a GPU cluster, else `cpus_per_run` CPUs; retried once
    when its worker dies, never for an error of the run itself."""
    gpu = cluster_has_gpu(ray) if gpu is None else gpu
    return {"num_cpus": cpus_per_run, "num_gpus": 1 if gpu else 0, "max_retries": 1, "retry_exceptions": False}


# ------------------------------------------------------------------------ worker side
_LOADED: dict[tuple[str, str | None, str | None], tuple[Any, Any]] = {}


def _load(path: str, modality: str | None, body_part: str | None) -> tuple[Any, Any]:
    """The dataset and its meta-features, kept in the worker process for the next run on it
    (Ray reuses worker processes; a sweep sends many runs on one dataset)."""
    key = (path, modality, body_part)
    if key not in _LOADED:
        from tools.datasets import load_dataset, profile_dataset

        ds = load_dataset(path, modality=modality, body_part=body_part)
        if len(_LOADED) >= 2:
            _LOADED.clear()
        _LOADED[key] = (ds, profile_dataset(ds))
    return _LOADED[key]


def execute(spec: dict[str, Any], emit: Callable[[dict[str, Any]], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> str:
    """Train one run spec in this process and return its record as JSON (written nowhere).

    spec: dataset, modality, body_part, config (dict), seed, source, id (the record id),
    notes, patience, threads, device ("cpu" or "cuda"). `emit` gets a start event (what a
    record of a killed run is built from) and each epoch's metrics.
    """
    import torch

    from tools.train import code_version, device_name, machine_name, make_record, resolve, train

    torch.set_num_threads(max(1, int(spec.get("threads") or 1)))
    ds, meta = _load(spec["dataset"], spec.get("modality"), spec.get("body_part"))
    config = TrainConfig.model_validate(spec["config"])
    device = torch.device(spec.get("device") or "cpu")
    if emit is not None:
        from tools.backbones import build_backbone

        resolved, pretrained = resolve(config)
        weights = build_backbone(resolved.backbone, pretrained, resolved.input_size).weights if pretrained else "none"
        emit({
            "event": "start", "time": time.time(), "config": resolved.model_dump(), "weights": weights,
            "dataset": {"name": ds.name, "fingerprint": ds.fingerprint, "meta": meta.model_dump(),
                        "class_names": ds.class_names[:64]},
            "device": device_name(device), "machine": machine_name(), "code_version": code_version(),
            "runner_revision": RUNNER_REVISION, "pid": os.getpid(),
        })
    result = train(ds, config, seed=spec["seed"], device=device, patience=spec.get("patience"), should_stop=should_stop,
                   on_epoch=(lambda e: emit({"event": "epoch", **e})) if emit is not None else None)
    record = make_record(ds, result, seed=spec["seed"], source=spec["source"], record_id=spec["id"], meta=meta,
                         notes=spec.get("notes"))
    return record.model_dump_json()


def run_spec(spec: dict[str, Any]) -> str:
    """The Ray task of a sweep run: its record as JSON."""
    return execute(spec)


# ------------------------------------------------------------------------ driver side
def failed_record(spec: dict[str, Any], run_key: str, dataset: DatasetInfo, error: str, seconds: float) -> ExperimentRecord:
    """The record of a run whose worker died on every try: status failed, the reason, no metrics;
    `seconds`: the driver's wall time from submission to the last death."""
    from tools.backbones import build_backbone
    from tools.train import code_version, machine_name, resolve

    config, pretrained = resolve(TrainConfig.model_validate(spec["config"]))
    return ExperimentRecord(
        id=spec["id"], run_key=run_key, dataset=dataset, config=config,
        weights=build_backbone(config.backbone, pretrained, config.input_size).weights if pretrained else "none",
        outcome=Outcome(status="failed", epochs_run=0, train_seconds=round(max(0.0, seconds), 3),
                        device=spec.get("device") or "cpu", error=error[:2000]),
        provenance=Provenance(source=spec["source"], code_version=code_version(), seed=spec["seed"], date=now_utc(),
                              machine=f"ray worker (driver {machine_name()})"[:200], notes=spec.get("notes"),
                              runner_revision=RUNNER_REVISION),
    )


def worker_died(exc: BaseException) -> bool:
    """True for a system failure of the worker (killed, out of memory, node lost), False for an error of the run."""
    try:
        from ray.exceptions import NodeDiedError, OutOfMemoryError, WorkerCrashedError
    except ImportError:  # pragma: no cover - ray is there whenever a Ray error is
        return False
    return isinstance(exc, WorkerCrashedError | OutOfMemoryError | NodeDiedError)


DIED = ("its Ray worker died twice (killed, out of memory or its node lost): Ray retried the run once and the retry "
        "died too")



# ----------------------------------------------------------------------------- sweep
def run_sweep_ray(
    items: list[Any],
    kb: Any,
    *,
    address: str,
    max_minutes: float | None = None,
    progress: bool = True,
    cpus_per_run: int = 1,
    gpu: bool | None = None,
    in_flight: int | None = None,
) -> dict[str, Any]:
    """Run the sweep items (`tools.sweep.SweepItem`) not yet in `kb` as Ray tasks; returns counts.

    Records are appended here as they arrive, by this process alone (the results ready at once
    in one append, so a writer that falls behind catches up in batches). At most
    `in_flight` tasks are submitted at once (default: twice the runs the cluster can hold),
    so a 10,000-run plan never sits in Ray's queue and a time limit stops between runs.
    Ctrl-C cancels the runs in flight (force) and re-raises; what was appended stays.
    """
    from collections import deque

    from tools.sweep import pending_items

    ray = connect(address)
    todo = pending_items(items, kb)
    opts = task_options(ray, cpus_per_run=cpus_per_run, gpu=gpu)
    resources = ray.cluster_resources()
    slots = int(resources.get("GPU", 0)) if opts["num_gpus"] else int(resources.get("CPU", 1) // cpus_per_run)
    window = in_flight or max(2, 2 * slots)
    task = ray.remote(run_spec).options(**opts)
    device = "cuda" if opts["num_gpus"] else "cpu"
    stats = {"planned": len(items), "skipped": len(items) - len(todo), "run": 0, "ok": 0, "worker_died": 0,
             "lost": 0, "duplicates": 0}
    written = kb.run_keys()
    infos: dict[str, DatasetInfo] = {}
    deadline = time.monotonic() + max_minutes * 60 if max_minutes else None
    queue = deque(todo)
    pending: dict[Any, tuple[Any, str, dict[str, Any], float]] = {}
    bar = _progress_bar(len(todo), progress)
    try:
        while queue or pending:
            while queue and len(pending) < window and (deadline is None or time.monotonic() < deadline):
                item, key = queue.popleft()
                # The record id is the run key, unless a stale record of this run holds it (a run measured
                # again after a runner fix, knowledge.runner_revisions): that one gets the revision too.
                rid = key if kb.get(key) is None else f"{key}.r{RUNNER_REVISION}"
                spec = {"dataset": item.dataset, "config": item.config.model_dump(), "seed": item.seed,
                        "source": "sweep", "id": rid, "notes": item.notes, "patience": item.patience,
                        "threads": cpus_per_run, "device": device}
                pending[task.remote(spec)] = (item, key, spec, time.monotonic())
            if not pending:
                break
            refs = list(pending)
            # Every result that is ready goes into one append: a writer that falls behind catches up in batches.
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            if not ready:
                ready, _ = ray.wait(refs, num_returns=1)
            batch: list[ExperimentRecord] = []
            for ref in ready:
                item, key, spec, t0 = pending.pop(ref)
                try:
                    record = ExperimentRecord.model_validate_json(ray.get(ref))
                except Exception as exc:
                    if not worker_died(exc):  # an error of the run itself: not recorded, the next sweep tries again
                        log.warning("a sweep run on %s raised in its Ray worker: %s", item.dataset, exc)
                        stats["lost"] += 1
                        continue
                    log.warning("a sweep run on %s is recorded as failed: %s", item.dataset, DIED)
                    if item.dataset not in infos:
                        infos[item.dataset] = _dataset_info(item.dataset)
                    reason = f"{DIED}; recorded as failed, so a resumed sweep does not run it again. {exc}"
                    record = failed_record(spec, key, infos[item.dataset], reason, time.monotonic() - t0)
                    stats["worker_died"] += 1
                if record.run_key in written:  # two planned items that resolve to one run: written once
                    stats["duplicates"] += 1
                    continue
                written.update((record.run_key, key))
                batch.append(record)
            # The record id is the run key: a second driver on the same knowledge base is skipped by append itself.
            kb.append(batch)
            stats["run"] += len(batch)
            stats["ok"] += sum(r.outcome.status == "ok" for r in batch)
            if bar is not None:
                bar.update(len(batch))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return stats


def _dataset_info(path: str) -> DatasetInfo:
    from tools.datasets import load_dataset, profile_dataset

    ds = load_dataset(path)
    return DatasetInfo(name=ds.name, fingerprint=ds.fingerprint, meta=profile_dataset(ds), class_names=ds.class_names[:64])


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # a bare GPU machine: no progress bar
        return None
    return tqdm(total=total, desc="sweep (ray)", unit="run")


__all__ = ["DIED", "INSTALL_HINT", "RAY_ENV", "RayUnavailableError", "cluster_has_gpu", "connect", "execute",
           "failed_record", "ray_address", "run_spec", "run_sweep_ray", "task_options", "worker_died"]
