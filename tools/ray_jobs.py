"""A training job that runs as a Ray task: the same face as `tools.jobs.Job` (events, cancel,
finalize, wait), so the graph's train node, the chat and the tuner drive it unchanged.

The worker streams its events back (a Ray streaming generator: start, each epoch, then the
record as JSON); this process, the driver, writes them to the local run folder (`log.jsonl`,
`record.json`, as a local job does) and appends the record to the knowledge base: workers
never write it. Cancel is `ray.cancel(..., force=True)`: it reaches the remote run wherever it
runs, and the run is recorded as cancelled with the epochs it finished. A worker that dies is
retried once by Ray; dying again, the run is recorded as failed.

    start = ray_job_starter("auto")            # Job.start's signature
    job = start(dataset, config, seed=0, kb_root=kb.root)
    record = job.wait()
"""

from __future__ import annotations

import functools
import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from knowledge.schema import ExperimentRecord, TrainConfig, now_utc
from knowledge.store import KnowledgeBase
from tools.jobs import _EpochBar, _read_events, drive, record_from_events, runs_dir, write_json
from tools.ray_runner import DIED, connect, execute, ray_address, task_options, worker_died


def run_spec_events(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The Ray task of a job (a streaming generator): its events as they happen, then
    {"event": "record", "record": <record JSON>}. Training runs in a thread so that each
    epoch's event leaves the worker at once."""
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["record"] = execute(spec, emit=events.put)
        except BaseException as exc:  # handed to the driver as this task's error
            out["error"] = exc
        finally:
            events.put(None)

    thread = threading.Thread(target=work, name="train", daemon=True)
    thread.start()
    while (event := events.get()) is not None:
        yield event
    thread.join()
    if "error" in out:
        raise out["error"]
    yield {"event": "record", "record": out["record"]}


class RayJob:
    """A training job running as a Ray task, driven from this process."""

    def __init__(self, run_dir: Path, ray: Any = None, gen: Any = None) -> None:
        self.run_dir = run_dir
        self.id = run_dir.name
        self.spec: dict[str, Any] = json.loads((run_dir / "job.json").read_text())
        self._ray = ray
        self._gen = gen
        self._events: list[dict[str, Any]] = []
        self._record_json: str | None = None
        self._error: BaseException | None = None
        self._cancelled = False
        self._done = gen is None

    @classmethod
    def start(
        cls,
        dataset: str,
        config: TrainConfig,
        *,
        address: str,
        seed: int = 0,
        kb_root: str | Path | None = None,
        runs: str | Path | None = None,
        modality: str | None = None,
        body_part: str | None = None,
        source: str = "user",
        threads: int | None = None,
        job_id: str | None = None,
        notes: str | None = None,
    ) -> RayJob:
        """Submit the run to the Ray cluster at `address`; returns at once (`tools.jobs.Job.start`'s
        arguments). A `job_id` whose run already has a record starts nothing and returns that job.
        One that has none is submitted again: its driver died, and Ray ended its task with it."""
        job_id = job_id or datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        run_dir = Path(runs or runs_dir()) / job_id
        if (run_dir / "record.json").exists():
            return cls(run_dir)
        ray = connect(address)
        opts = task_options(ray, cpus_per_run=threads or 1)
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "id": job_id, "dataset": str(dataset), "modality": modality, "body_part": body_part,
            "config": config.model_dump(), "seed": seed, "source": source,
            "kb_root": str(kb_root) if kb_root else None, "threads": opts["num_cpus"],
            "device": "cuda" if opts["num_gpus"] else "cpu", "notes": notes[:2000] if notes else None,
            "created": now_utc().isoformat(), "ray": address,
        }
        write_json(run_dir / "job.json", spec)
        (run_dir / "log.jsonl").unlink(missing_ok=True)  # a dead driver's partial log
        gen = ray.remote(run_spec_events).options(num_returns="streaming", **opts).remote(spec)
        return cls(run_dir, ray, gen)

    @property
    def running(self) -> bool:
        return not self._done

    def events(self, poll: float = 0.2) -> Iterator[dict[str, Any]]:
        """Yield the run's events as the worker sends them (each also written to log.jsonl)."""
        if self._gen is None:  # finished before this process: its log
            yield from _read_events(self.run_dir / "log.jsonl")
            return
        with (self.run_dir / "log.jsonl").open("a", buffering=1) as log:
            try:
                for ref in self._gen:
                    event = self._ray.get(ref)
                    if event.get("event") == "record":
                        self._record_json = event["record"]
                        continue
                    self._events.append(event)
                    log.write(json.dumps(event, default=float) + "\n")
                    yield event
            except Exception as exc:  # cancelled, the worker died twice, or the run raised
                self._error = exc
            finally:
                self._done = True

    def cancel(self) -> None:
        """Stop the remote run now (its worker is killed); it is recorded as cancelled."""
        if self._gen is not None and not self._done:
            self._cancelled = True
            self._ray.cancel(self._gen, force=True)

    def finalize(self) -> ExperimentRecord | None:
        """The run's record, appended to the knowledge base by this process; None while it runs,
        or when it never started (error.txt says why)."""
        if self.running:
            return None
        path = self.run_dir / "record.json"
        if path.exists():
            record = ExperimentRecord.model_validate_json(path.read_text())
        elif self._record_json is not None:
            record = ExperimentRecord.model_validate_json(self._record_json)
        else:
            record = self._record_without_result()
            if record is None:
                return None
        if not path.exists():
            write_json(path, json.loads(record.model_dump_json()))
        if self.spec.get("kb_root"):  # idempotent: the record id is the job id
            KnowledgeBase(self.spec["kb_root"], index=False).append(record)
        return record

    def _record_without_result(self) -> ExperimentRecord | None:
        exc = self._error
        if self._cancelled:
            status, error = "cancelled", "cancelled: the Ray task was cancelled (its worker stopped at once)"
        elif exc is not None and worker_died(exc):
            status, error = "failed", f"{DIED}. {exc}"
        else:
            cause = getattr(exc, "cause", None) or exc
            (self.run_dir / "error.txt").write_text(str(cause)[:2000] if cause else "the Ray task ended without a record")
            return None
        record = record_from_events(self.id, self.spec, self._events, status=status, error=error)
        if record is None:
            (self.run_dir / "error.txt").write_text(f"the run ended before training started: {error}")
        return record

    def wait(self, progress: bool = False) -> ExperimentRecord | None:
        """Wait for the run; its record (Ctrl-C cancels it, then returns the cancelled record)."""
        bar = _EpochBar(self.spec["config"]["backbone"]) if progress else None
        try:
            return drive(self, bar, interrupt="record").record
        finally:
            if bar is not None:
                bar.close()


def ray_job_starter(address: str) -> Callable[..., RayJob]:
    """A job starter with `tools.jobs.Job.start`'s signature that runs each job on the Ray cluster at `address`."""
    connect(address)  # a missing package or an unreachable cluster is said now, before anything is proposed
    return functools.partial(RayJob.start, address=address)


def default_job_starter() -> Callable[..., Any]:
    """`ray_job_starter` when METALLMIX_RAY names a cluster, else the local `tools.jobs.Job.start`."""
    address = ray_address()
    if address is None:
        from tools.jobs import Job

        return Job.start
    return ray_job_starter(address)


__all__ = ["RayJob", "default_job_starter", "ray_job_starter", "run_spec_events"]
