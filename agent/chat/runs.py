"""Live runs: the graph runs and training jobs the chat has going in background threads.

Owns `JobRegistry` (the training jobs this process started, by id, so the screen can cancel
one), `LiveRun` (one graph run of a thread, observed by any number of pages) and `LiveRuns`
(at most one live run per thread, each driven in its own thread, so a closed browser tab does
not stop a training run; any page of that thread can attach to it again), and the wait for a
job that outlived the app (`while_job_runs`).

A run streams the reasoner's tokens (LangGraph's "messages" mode, the reason node only: the
judge's calls are tagged "nostream"): `LiveRun.draft` is the rationale written so far, read
out of the partial JSON. `LiveRun.stop()` ends a recommendation at the next node or token: a
callback (`StopSwitch`) raises `RunStopped` inside the run, so LangGraph records it as the
step's error at the last finished checkpoint, which stays consistent for the next message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from pydantic_core import from_json

from agent.chat.views import Observed, TrainingView, say, thread_config
from agent.context import Context

log = logging.getLogger(__name__)

STOPPED_BY_USER = "stopped by the user"
"""The error a stopped run leaves at its checkpoint (`RunStopped`'s message)."""
STOPPED = "Stopped."
"""What the chat says where a recommendation was stopped."""
WRITING = "*The LLM is writing why…*"
"""The head of the reasoner's rationale while it streams (the card, or a retry's draft, replaces it)."""

STOPPABLE = ("profile", "retrieve", "explain", "reason", "judge", "respond")
"""The nodes a Stop ends: the recommendation's. The approval waits anyway; training has its own Cancel."""
DRAFT_INTERVAL = 0.1
"""Seconds between two streamed updates of the draft (a page re-renders the conversation on each)."""


class RunStopped(BaseException):
    """Raised inside a graph run the user stopped.

    A BaseException, like KeyboardInterrupt: the nodes catch `Exception` from the LLM (a bad
    answer counts as an attempt), and a stop must end the run, not count as an attempt.
    """


class StopSwitch(BaseCallbackHandler):
    """A callback that stops a graph run at its next recommendation node or LLM token once `set`."""

    raise_error = True  # LangChain re-raises what a callback raises only when asked to

    def __init__(self) -> None:
        self.event = threading.Event()

    def set(self) -> None:
        self.event.set()

    def _check(self, metadata: dict[str, Any] | None) -> None:
        if self.event.is_set() and (metadata or {}).get("langgraph_node") in STOPPABLE:
            raise RunStopped(STOPPED_BY_USER)

    def on_chain_start(self, serialized: Any, inputs: Any, *, metadata: dict[str, Any] | None = None,
                       **kwargs: Any) -> None:
        self._check(metadata)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        self._check(metadata)

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        if self.event.is_set():
            raise RunStopped(STOPPED_BY_USER)


def writing(rationale: str) -> dict[str, Any]:
    """The reasoner's rationale as it streams in, under `WRITING`."""
    return say(f"{WRITING}\n\n{rationale} ▍")


def partial_rationale(raw: str) -> str | None:
    """The `rationale` of a JSON answer still being written (None until its text begins)."""
    try:
        value = from_json(raw, allow_partial="trailing-strings")
    except ValueError:
        return None
    text = value.get("rationale") if isinstance(value, dict) else None
    return text if isinstance(text, str) and text.strip() else None


class JobRegistry:
    """Starts training jobs for the graph and keeps them by id, so the screen can cancel one.

    Args:
        start_job: the job starter (`tools.jobs.Job.start`'s signature); None means Job.start.
    """

    def __init__(self, start_job: Callable[..., Any] | None = None) -> None:
        self._start = start_job
        self._jobs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start(self, dataset: str, config: Any, **kwargs: Any) -> Any:
        """Start (or re-attach to) a job; same signature as `tools.jobs.Job.start`."""
        if self._start is None:
            from tools.jobs import Job

            self._start = Job.start
        job = self._start(dataset, config, **kwargs)
        with self._lock:
            self._jobs[str(job.id)] = job
        return job

    def get(self, job_id: str) -> Any | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop; False when this process does not hold the job's worker."""
        job = self.get(job_id)
        if job is None or getattr(job, "proc", "absent") is None:
            return False
        job.cancel()
        return True


class LiveRun(Observed):
    """One graph run of a thread in a background thread, observed by any number of pages."""

    def __init__(self, thread_id: str, kind: str, request: str | None, base_checkpoint: str | None) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.kind = kind
        self.request = request
        self.base_checkpoint = base_checkpoint
        self.training: TrainingView | None = None
        self.error: str | None = None
        self.draft: str | None = None  # the reasoner's rationale as it streams, until the judge has read it
        self.stopped = False
        self.switch = StopSwitch()

    @property
    def stoppable(self) -> bool:
        """A recommendation in progress (not training, not an answer to an offer)."""
        return self.kind == "request" and not self.done and self.training is None

    def stop(self) -> bool:
        """Stop the run at its next recommendation node or LLM token; False when it is not stoppable."""
        if not self.stoppable:
            return False
        self.switch.set()
        return True


class LiveRuns:
    """The graph runs of every thread: at most one at a time per thread, each in a background thread.

    Args:
        graph: the compiled graph the runs stream.
        context: run settings passed to every graph run.
        anchor: the thread's current checkpoint id (where a new run starts from).

    Attributes:
        stream_tokens: stream the reasoner's tokens into `LiveRun.draft` (bench.chat_stream turns it
            off for its baseline: the words then come with the card).
    """

    def __init__(self, graph: Any, context: Context, anchor: Callable[[str], str | None]) -> None:
        self.graph = graph
        self.context = context
        self._anchor = anchor
        self.stream_tokens = True
        self._runs: dict[str, LiveRun] = {}
        self._lock = threading.Lock()

    def latest(self, thread_id: str) -> LiveRun | None:
        """The thread's latest run, live or finished."""
        with self._lock:
            return self._runs.get(thread_id)

    def live(self, thread_id: str) -> LiveRun | None:
        """The thread's run in progress, or None."""
        run = self.latest(thread_id)
        return run if run is not None and not run.done else None

    def launch(self, thread_id: str, payload: Any, kind: str, request: str | None = None) -> LiveRun | None:
        """Start streaming `payload` through the graph in a background thread; None when a run is in progress."""
        with self._lock:
            current = self._runs.get(thread_id)
            if current is not None and not current.done:
                return None
            run = LiveRun(thread_id, kind, request, self._anchor(thread_id))
            self._runs[thread_id] = run
        threading.Thread(target=self._drive, args=(run, payload), name=f"graph-{thread_id[:8]}", daemon=True).start()
        return run

    def _drive(self, run: LiveRun, payload: Any) -> None:
        config: dict[str, Any] = {**thread_config(run.thread_id), "callbacks": [run.switch]}
        writing: tuple[Any, str] | None = None  # (the reasoner call being streamed, its text so far)
        shown = 0.0
        try:
            modes = ["updates", "custom", "messages"] if self.stream_tokens else ["updates", "custom"]
            for mode, chunk in self.graph.stream(payload, config, context=self.context, stream_mode=modes):
                if mode == "messages":
                    message, meta = chunk
                    if meta.get("langgraph_node") != "reason" or not isinstance(message.content, str):
                        continue
                    call = (meta.get("langgraph_checkpoint_ns"), getattr(message, "id", None))  # a retry is a new call
                    writing = (call, (writing[1] if writing and writing[0] == call else "") + message.content)
                    draft = partial_rationale(writing[1])
                    if draft is None or draft == run.draft or time.monotonic() - shown < DRAFT_INTERVAL:
                        continue
                    run.draft, shown = draft, time.monotonic()
                elif mode == "updates":
                    if isinstance(chunk, dict) and {"judge", "respond"} & chunk.keys():
                        run.draft = None  # judged: the card (or a retry's new draft) takes its place
                    elif isinstance(chunk, dict) and "reason" in chunk:
                        written = ((chunk["reason"] or {}).get("draft") or {}).get("rationale")
                        run.draft = written or run.draft  # the whole (tidied) rationale, its last tokens too
                elif mode == "custom" and isinstance(chunk, dict) and chunk.get("type") in ("job", "train", "train_done"):
                    if run.training is None:
                        run.training = TrainingView()
                    run.training.apply(chunk)
                run.changed()
        except RunStopped:  # the user's Stop: the checkpoint holds it as the stopped step's error
            run.stopped = True
            log.info("graph run of thread %s stopped by the user", run.thread_id)
        except Exception as exc:  # shown in the chat (the checkpoint holds the task error too)
            run.error = f"{type(exc).__name__}: {exc}"
            log.info("graph run of thread %s ended with %s", run.thread_id, run.error)
        finally:
            run.draft = None
            run.done = True
            run.changed()


def while_job_runs(run_dir: Path, *, wait_seconds: float, poll: float, idle_seconds: float) -> Iterator[None]:
    """Yield every `poll` seconds until the job in `run_dir` has written its record.

    Stops early when the folder is gone, after `wait_seconds`, or when the job's log has not
    grown for `idle_seconds` (the worker is gone), so a still-running job is not mistaken for
    a dead one and a dead one is not waited on for ever.
    """
    deadline = time.monotonic() + wait_seconds
    last_size = -1
    idle_since = time.monotonic()
    while run_dir.exists() and not (run_dir / "record.json").exists() and time.monotonic() < deadline:
        size = (run_dir / "log.jsonl").stat().st_size if (run_dir / "log.jsonl").exists() else 0
        if size != last_size:
            last_size, idle_since = size, time.monotonic()
        elif time.monotonic() - idle_since > idle_seconds:
            break  # no progress for that long: the worker is gone
        yield
        time.sleep(poll)


__all__ = ["DRAFT_INTERVAL", "STOPPABLE", "STOPPED", "STOPPED_BY_USER", "WRITING", "JobRegistry", "LiveRun",
           "LiveRuns", "RunStopped", "StopSwitch", "partial_rationale", "while_job_runs", "writing"]
