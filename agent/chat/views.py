"""What the chat screen shows of a thread: the view types and the pieces read off graph state.

Owns `ChatView` (everything one page shows), `TrainingView` (the training panel, folded
from a job's streamed events), `Observed` (background work that pages watch, the base of a
graph run and of a tuning session) and the follow loop over it, the message shapes (Gradio's
messages format: plain dicts), and the parts of a view read off the latest checkpoint: the
pending offer, the training panel, and the pending step of a live run.

The bottom of agent.chat: it imports no other module of the package.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.formatting import run_time_text

if TYPE_CHECKING:
    from agent.chat.runs import LiveRun

NODE_LABELS = {
    "profile": "Profiling the task",
    "retrieve": "Searching similar past experiments",
    "explain": "Scoring candidates with the meta-model",
    "reason": "Asking the LLM for a recommendation",
    "judge": "Judging the draft",
    "respond": "Writing the recommendation",
    "approve": "Waiting for your approval",
    "train": "Training",
    "record": "Recording the run in the knowledge base",
}
SUPERSEDED_BY_TUNING = "superseded by iterative tuning (trial 1 trains this recommendation)"
"""The reason the chat closes a pending offer with when a tuning session starts from it (not the user's words)."""
TERMINAL = ("ok", "diverged", "failed", "cancelled", "error")
STALLED = ("This thread stopped inside training (the app was restarted, or the job could not be "
           "followed). **Resume** re-attaches to the job and records its result.")


# ---------------------------------------------------------------------------- types
@dataclass
class TrainingView:
    """What a training panel shows.

    Attributes:
        job_id: the job's id (its run folder's name).
        run_dir: the job's run folder.
        status: "starting", "features", "training", or a final status (ok, diverged, failed,
            cancelled, error).
        epoch: epochs finished.
        epochs: epochs planned (None until known).
        history: per epoch: `epoch`, `train_loss`, `val_loss`, `val_accuracy`.
        message: one line for people.
        done: whether the run has ended.
        record_id: the knowledge-base record written for the run.
        test_accuracy: the run's test accuracy, when it ended ok.
        seconds: wall time of the run.
        timing: the train node's timings of the finished run (see `run_time_text`).
    """

    job_id: str | None = None
    run_dir: str | None = None
    status: str = "starting"
    epoch: int = 0
    epochs: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    message: str = "starting the training job"
    done: bool = False
    record_id: str | None = None
    test_accuracy: float | None = None
    seconds: float | None = None
    timing: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        if self.done:
            return 1.0
        return min(1.0, self.epoch / self.epochs) if self.epochs else 0.0

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one streamed event (the train node's custom events, or a log line) into the view."""
        kind = event.get("type")
        name = event.get("event")
        if kind == "job":
            self.job_id, self.run_dir = event.get("job_id"), event.get("run_dir")
            return
        if kind == "train_done":
            self.done = True
            self.status = str(event.get("status") or "error")
            self.record_id = event.get("record_id")
            self.test_accuracy = event.get("test_accuracy")
            self.seconds = event.get("seconds")
            self.timing = {k: event.get(k) for k in ("seconds", "train_seconds", "feature_seconds", "features_cached")}
            if self.status == "ok" and self.test_accuracy is not None:
                self.message = f"finished: test accuracy {self.test_accuracy:.3f} {run_time_text(self.timing)}"
            else:
                self.message = f"ended {self.status}" + (f": {event['error']}" if event.get("error") else "")
            return
        if name == "start":
            self.status = "features" if (event.get("config") or {}).get("mode") == "frozen" else "training"
            self.epochs = (event.get("config") or {}).get("epochs", self.epochs)
            self.message = ("extracting backbone features (once per dataset and backbone)" if self.status == "features"
                            else "training started")
        elif name == "epoch":
            self.status = "training"
            self.epoch = int(event.get("epoch") or self.epoch + 1)
            self.epochs = event.get("epochs") or self.epochs
            val = event.get("val") or {}
            self.history.append({"epoch": self.epoch, "train_loss": event.get("train_loss"),
                                 "val_loss": val.get("loss"), "val_accuracy": val.get("accuracy")})
            if event.get("status") == "diverged":
                self.message = f"epoch {self.epoch}: diverged ({event.get('error') or 'non-finite loss'})"
            else:
                acc = val.get("accuracy")
                loss = event.get("train_loss")
                self.message = (f"epoch {self.epoch}/{self.epochs or '?'}"
                                + (f" · val accuracy {acc:.3f}" if acc is not None else "")
                                + (f" · train loss {loss:.3f}" if loss is not None else ""))
        elif name == "end":
            self.status = str(event.get("status") or self.status)
            self.record_id = event.get("record_id") or self.record_id
            self.message = f"worker finished ({self.status}); writing the record"
        elif name == "error":
            self.status = "error"
            self.message = f"the job failed: {event.get('error')}"


@dataclass
class ChatView:
    """Everything the chat screen shows for one thread.

    Attributes:
        thread_id: the conversation's thread id.
        messages: the conversation in Gradio's messages format (plain dicts).
        offer: the configuration awaiting approval (the interrupt's payload), or None.
        training: the latest training run of the thread (live or finished), or None.
        busy: whether a graph run of this thread is in progress.
        stalled: the thread stopped inside training (the app was restarted): `reattach` resumes it.
        notice: a short status line (e.g. why a message was not acted on).
        stoppable: a recommendation is in progress, which Stop ends (the screen shows Stop only then).
        unsent: the message typed was not acted on (something runs, and it is no answer or question for it):
            the screen leaves it in the message box, so no typed word is lost.
    """

    thread_id: str
    messages: list[dict[str, Any]]
    offer: dict[str, Any] | None = None
    training: TrainingView | None = None
    busy: bool = False
    stalled: bool = False
    notice: str | None = None
    stoppable: bool = False
    unsent: bool = False


class Observed:
    """Background work that pages watch: a version bumped on every change, and a wait for it."""

    def __init__(self) -> None:
        self.done = False
        self.version = 0
        self._cond = threading.Condition()

    def changed(self) -> None:
        with self._cond:
            self.version += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the work changes after version `seen` (or `timeout` seconds); the new version."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen or self.done, timeout=timeout)
            return self.version


def follow(work: Observed, view: Callable[[], ChatView], stop: Callable[[], bool],
           poll: float = 0.5) -> Iterator[ChatView]:
    """A view on every change of `work` (or every `poll` seconds), the last one once `stop()` holds.

    `stop` is read before rendering, so the last view shows the work as it was when it stopped.
    """
    seen = -1
    while True:
        seen = work.wait(seen, timeout=poll)
        finished = stop()
        yield view()
        if finished:
            return


# ------------------------------------------------------------------------- messages
def thought(title: str, content: str, *, duration: float | None = None, pending: bool = False,
            log_line: str | None = None) -> dict[str, Any]:
    """A collapsible "thought": one step of the graph, its title and what it found."""
    meta: dict[str, Any] = {"title": title, "status": "pending" if pending else "done"}
    if duration is not None:
        meta["duration"] = round(float(duration), 2)
    if log_line:
        meta["log"] = log_line
    return {"role": "assistant", "content": content or " ", "metadata": meta}


def say(content: str) -> dict[str, Any]:
    """The assistant's message."""
    return {"role": "assistant", "content": content}


def user(content: str) -> dict[str, Any]:
    """The user's message."""
    return {"role": "user", "content": content}


def answer_message(approved: bool, said: str | None = None, reason: str = "") -> dict[str, Any]:
    """The user's answer to an approval question, as their message: the words they typed ("no, too slow"),
    else the button they clicked ("Approve", or "Reject" with the reason given beside it). Never a word they did
    not say: an answer the chat makes itself (a Cancel, an offer closed by tuning) shows no user message."""
    if said:
        return user(said)
    return user("Approve" if approved else "Reject" + (f": {reason}" if reason else ""))


def image(path: str, alt: str) -> dict[str, Any]:
    """A picture (a PNG file) in the assistant's turn."""
    return {"role": "assistant", "content": {"path": path, "alt_text": alt}}


# ------------------------------------------------------------- read off graph state
def thread_config(thread_id: str) -> dict[str, Any]:
    """The graph config that names a thread."""
    return {"configurable": {"thread_id": thread_id}}


def read_job_log(run_dir: str | Path) -> TrainingView:
    """A finished (or running) job's view, rebuilt from its run folder's log."""
    view = TrainingView(job_id=Path(run_dir).name, run_dir=str(run_dir))
    path = Path(run_dir) / "log.jsonl"
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                view.apply(json.loads(line))
            except (json.JSONDecodeError, TypeError, ValueError):
                break  # a torn last line of a killed worker
    return view


def pending_offer(last: Any) -> dict[str, Any] | None:
    """The configuration awaiting approval at the latest checkpoint (the interrupt's payload), or None."""
    if last is None or last.next != ("approve",):
        return None
    payloads = [i.value for t in last.tasks for i in (t.interrupts or ())]
    return payloads[0] if payloads else last.values.get("offer")


def training_view(run: LiveRun | None, last: Any, ran: set[str]) -> TrainingView | None:
    """The training panel: the live run's, else the run the latest request trained, else the one it stopped in.

    While a graph run is live the panel is that run's alone: before its job starts (a second approval in
    the thread, say) it shows nothing, never the thread's earlier run ("ok · epoch 40/40 · test accuracy").
    """
    if run is not None:
        return replace(run.training, history=list(run.training.history)) if run.training is not None else None
    if last is not None and "train" in ran and (last.values.get("training") or {}).get("run_dir"):
        done = dict(last.values["training"])
        training = read_job_log(done["run_dir"])
        training.apply({"type": "train_done", **done})
        return training
    if last is not None and last.next == ("train",) and (last.values.get("training") or {}).get("run_dir"):
        return read_job_log(last.values["training"]["run_dir"])
    return None


def pending_step(run: LiveRun, last: Any) -> list[dict[str, Any]]:
    """The live run's messages not yet in the checkpoints: its request, and its current step as pending."""
    messages: list[dict[str, Any]] = []
    last_id = last.config["configurable"]["checkpoint_id"] if last is not None else None
    # Until the input has gone through __start__, the checkpoints do not show the
    # request yet: show it from the run, and the first real step as pending.
    starting = last is not None and last.next == ("__start__",)
    if run.kind == "request" and (last_id == run.base_checkpoint or starting):
        messages.append(user(run.request or ""))
    if last_id != run.base_checkpoint and last is not None and last.next and not starting:
        step, label = last.next[0], NODE_LABELS.get(last.next[0], last.next[0])
    elif run.kind == "request":
        step, label = "profile", NODE_LABELS["profile"]
    else:
        step, label = "approve", "Applying your answer"
    detail = run.training.message if step == "train" and run.training else ""
    messages.append(thought(f"{label}…", detail or "working", pending=True))
    return messages


__all__ = ["NODE_LABELS", "STALLED", "SUPERSEDED_BY_TUNING", "TERMINAL", "ChatView", "Observed", "TrainingView", "answer_message", "follow",
           "image",
           "pending_offer", "pending_step", "read_job_log", "run_time_text", "say", "thought", "thread_config", "training_view",
           "user"]
