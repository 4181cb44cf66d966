"""A training run as a job: its own process, its own run folder, cancellable, always recorded.

Run folder (`<runs>/<job id>/`):
- `job.json`      what to run (dataset, config, seed, knowledge base), written before start;
- `log.jsonl`     events as they happen: start (dataset + meta-features), epoch, end;
- `stderr.txt`    the worker's own output, for post-mortems;
- `record.json`   the knowledge-base record, written atomically when the run ends.

Who records what: the worker appends its record to the knowledge base when training ends
(ok, diverged, failed or cancelled). If the worker dies instead (killed, out of memory,
a crash), the parent builds a `failed` record from the start event and the epochs in the
log. Both use the job id as record id, so the record is written once whoever gets there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from knowledge.schema import DatasetInfo, EpochMetrics, ExperimentRecord, Outcome, Provenance, TrainConfig, now_utc
from knowledge.store import KnowledgeBase, atomic_write


def runs_dir() -> Path:
    return Path(os.environ.get("METALLMIX_RUNS", Path.home() / ".metallmix" / "runs"))


def write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON through a temporary file, so readers never see half of it."""
    atomic_write(path, json.dumps(data, indent=1, default=str).encode())


class Job:
    """A training job running in a child process."""

    def __init__(self, run_dir: Path, proc: subprocess.Popen[bytes] | None = None) -> None:
        self.run_dir = run_dir
        self.id = run_dir.name
        self.proc = proc
        self.spec: dict[str, Any] = json.loads((run_dir / "job.json").read_text())
        self._record: ExperimentRecord | None = None

    @classmethod
    def start(
        cls,
        dataset: str,
        config: TrainConfig,
        *,
        seed: int = 0,
        kb_root: str | Path | None = None,
        runs: str | Path | None = None,
        modality: str | None = None,
        body_part: str | None = None,
        source: str = "user",
        threads: int | None = None,
        job_id: str | None = None,
        notes: str | None = None,
    ) -> Job:
        """Write the job spec and start the worker process. Returns at once.

        With a `job_id` whose run folder already exists, nothing new starts: the existing
        job is returned (finished or not), so a caller that re-runs (a graph node resumed
        after a restart) never launches the same training twice.
        """
        job_id = job_id or datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        run_dir = Path(runs or runs_dir()) / job_id
        if (run_dir / "job.json").exists():
            return cls(run_dir, None)
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = {
            "id": job_id,
            "dataset": str(dataset),
            "modality": modality,
            "body_part": body_part,
            "config": config.model_dump(),
            "seed": seed,
            "source": source,
            "kb_root": str(kb_root) if kb_root else None,
            "threads": threads,
            "notes": notes[:2000] if notes else None,
            "created": now_utc().isoformat(),
        }
        write_json(run_dir / "job.json", spec)
        stderr = (run_dir / "stderr.txt").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.jobs", str(run_dir)],
            stdout=stderr, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stderr.close()
        (run_dir / "worker.pid").write_text(str(proc.pid))
        return cls(run_dir, proc)

    def _pid(self) -> int | None:
        """The worker's pid while it runs (also for a job started by another process)."""
        if self.proc is not None:
            return self.proc.pid if self.proc.poll() is None else None
        try:
            pid = int((self.run_dir / "worker.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        # The pid may have been reused by another process: check it is this job's worker.
        return pid if str(self.run_dir).encode() in cmdline and b"tools.jobs" in cmdline else None

    @property
    def running(self) -> bool:
        return self._pid() is not None

    # ------------------------------------------------------------------ watching
    def events(self, poll: float = 0.2) -> Iterator[dict[str, Any]]:
        """Yield log events as they are written, until the worker exits."""
        path = self.run_dir / "log.jsonl"
        pos = 0
        buf = b""
        while True:
            alive = self.running
            if path.exists():
                with path.open("rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos += len(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if not alive:
                return
            time.sleep(poll)

    def cancel(self) -> None:
        """Ask the worker to stop after the current batch; it records the run as cancelled."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)

    def kill(self) -> None:
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def wait(self, progress: bool = False) -> ExperimentRecord | None:
        """Wait for the worker; return the run's record (None if it died before loading the data).

        Ctrl-C cancels the run, which then ends recorded as cancelled (returned, not raised).
        """
        bar = _EpochBar(self.spec["config"]["backbone"]) if progress else None
        try:
            return drive(self, bar, interrupt="record").record
        finally:
            if bar is not None:
                bar.close()

    def finalize(self) -> ExperimentRecord | None:
        """The run's record; when the worker died without one, write a `failed` record from the log.

        Returns None while the worker still runs (nothing is decided for a live job).
        """
        if self.running:
            return None
        path = self.run_dir / "record.json"
        if path.exists():
            record = ExperimentRecord.model_validate_json(path.read_text())
        else:
            record = self._failed_record()
            if record is None:
                return None
            write_json(path, json.loads(record.model_dump_json()))
        if self.spec.get("kb_root"):  # idempotent: the record id is the job id
            KnowledgeBase(self.spec["kb_root"], index=False).append(record)
        self._record = record
        return record

    def _failed_record(self) -> ExperimentRecord | None:
        events = _read_events(self.run_dir / "log.jsonl")
        code = self.proc.returncode if self.proc is not None else None
        tail = (self.run_dir / "stderr.txt").read_text(errors="replace")[-600:] if (self.run_dir / "stderr.txt").exists() else ""
        reason = f"the training process ended without a result (exit code {code})" + (f": {tail.strip()}" if tail.strip() else "")
        return record_from_events(self.id, self.spec, events, status="failed", error=reason)


def record_from_events(job_id: str, spec: dict[str, Any], events: list[dict[str, Any]], *, status: str,
                       error: str | None) -> ExperimentRecord | None:
    """The record of a run that ended without one (killed, cancelled from outside), from its log's
    start event and the epochs it finished; None when it never started (the data never loaded)."""
    start = next((e for e in events if e.get("event") == "start"), None)
    if start is None:
        return None
    history = [
        EpochMetrics(epoch=e["epoch"], train_loss=e.get("train_loss"), val_loss=(e.get("val") or {}).get("loss"),
                     val_accuracy=(e.get("val") or {}).get("accuracy"))
        for e in events if e.get("event") == "epoch" and "val" in e
    ]
    config = TrainConfig.model_validate(start["config"])
    seed = spec["seed"]
    return ExperimentRecord(
        id=job_id,
        run_key=ExperimentRecord.make_run_key(start["dataset"]["fingerprint"], config, seed, spec["source"]),
        dataset=DatasetInfo.model_validate(start["dataset"]),
        config=config,
        weights=start["weights"],
        outcome=Outcome(
            status=status, epochs_run=len(history), history=history, device=start["device"],  # type: ignore[arg-type]
            train_seconds=round(max(0.0, time.time() - start["time"]), 3), error=error[:2000] if error else None,
        ),
        provenance=Provenance(
            source=spec["source"], code_version=start["code_version"], seed=seed, date=now_utc(),
            machine=start["machine"], notes=spec.get("notes"), runner_revision=start.get("runner_revision", 1),
        ),
    )


@dataclass
class Finished:
    """A job driven to its end.

    Attributes:
        record: the run's knowledge-base record (ok, diverged, failed or cancelled); None when
            the worker died before the data loaded, so nothing ran.
        error: why there is no record (error.txt's text, or where to look), else None.
    """

    record: ExperimentRecord | None
    error: str | None


def drive(job: Any, on_event: Callable[[dict[str, Any]], None] | None = None, *,
          interrupt: Literal["raise", "record"] = "raise") -> Finished:
    """Stream a started job's log events to `on_event` until its worker exits; then its record.

    The one way the graph's train node, the tuner and the CLI see a job through. Ctrl-C (or
    any KeyboardInterrupt) cancels the run; with `interrupt="record"` the cancelled run's
    record is returned, with "raise" the interrupt goes on after the worker has ended.

    Args:
        job: a `Job` (or anything with `events()`, `finalize()`, `cancel()`, `run_dir` and
            an optional `proc`).
        on_event: called with each log event as it is written.
        interrupt: what a KeyboardInterrupt does once the run is cancelled.
    """
    try:
        for event in job.events():
            if on_event is not None:
                on_event(event)
    except KeyboardInterrupt:
        job.cancel()
        if interrupt == "raise":
            _reap(job)
            raise
    _reap(job)
    record = job.finalize()
    return Finished(record, None if record is not None else failure_text(Path(job.run_dir)))


def failure_text(run_dir: Path) -> str:
    """Why a job left no record: its error.txt (at most 2,000 characters), else where to look."""
    err = run_dir / "error.txt"
    return err.read_text()[:2000] if err.exists() else f"the job failed before training; see {run_dir}/stderr.txt"


def _reap(job: Any) -> None:
    proc = getattr(job, "proc", None)
    if proc is not None:
        proc.wait()


class _EpochBar:
    """A terminal progress bar over a job's epoch events (the CLI's `train`)."""

    def __init__(self, backbone: str) -> None:
        self.desc = f"train {backbone}"
        self.bar: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") != "epoch":
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=event.get("epochs"), desc=self.desc, unit="epoch")
        self.bar.update(1)
        val = event.get("val") or {}
        self.bar.set_postfix(loss=f"{event.get('train_loss', float('nan')):.3f}", val_acc=f"{val.get('accuracy') or 0:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line from a killed worker
    return out


# ------------------------------------------------------------------------- worker
def _worker(run_dir: Path) -> int:
    spec = json.loads((run_dir / "job.json").read_text())
    log = (run_dir / "log.jsonl").open("a", buffering=1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def emit(event: dict[str, Any]) -> None:
        log.write(json.dumps(event, default=float) + "\n")

    from knowledge.runner_revisions import RUNNER_REVISION
    from tools.datasets import DatasetError, load_dataset, profile_dataset
    from tools.train import code_version, default_device, device_name, machine_name, make_record, resolve, train

    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    try:
        ds = load_dataset(spec["dataset"], modality=spec.get("modality"), body_part=spec.get("body_part"))
        meta = profile_dataset(ds)
        config, pretrained = resolve(TrainConfig.model_validate(spec["config"]))
    except (DatasetError, ValueError) as exc:
        (run_dir / "error.txt").write_text(str(exc))
        emit({"event": "error", "error": str(exc)})
        return 2
    from tools.backbones import build_backbone

    weights = build_backbone(config.backbone, pretrained, config.input_size).weights if pretrained else "none"
    device = default_device()
    emit({
        "event": "start", "time": time.time(), "config": config.model_dump(), "weights": weights,
        "dataset": {"name": ds.name, "fingerprint": ds.fingerprint, "meta": meta.model_dump(), "class_names": ds.class_names[:64]},
        "device": device_name(device), "machine": machine_name(), "code_version": code_version(),
        "runner_revision": RUNNER_REVISION,
    })
    result = train(ds, config, seed=spec["seed"], device=device, on_epoch=lambda e: emit({"event": "epoch", **e}),
                   should_stop=stop.is_set)
    record = make_record(ds, result, seed=spec["seed"], source=spec["source"], record_id=spec["id"], meta=meta,
                         notes=spec.get("notes"))
    write_json(run_dir / "record.json", json.loads(record.model_dump_json()))
    if spec.get("kb_root"):
        KnowledgeBase(spec["kb_root"], index=False).append(record)
    # cache: "hit" when the backbone features (or a frozen prefix's outputs) came from an earlier run's cache
    emit({"event": "end", "status": record.outcome.status, "record_id": record.id, "cache": result.extra.get("cache")})
    return 0


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1])))
