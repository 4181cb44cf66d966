"""What the chat's pages watch: background work that bumps a version on every change
(`Observed`, the base of a graph run and of a tuning session), and the training panel's
view folded from a job's streamed events (`TrainingView`).

Below both agent.ui_adapter and agent.tune_chat, so neither imports the other for them
(agent.ui_adapter re-exports both names).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from agent.formatting import duration_text


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
            if self.status == "ok" and self.test_accuracy is not None:
                self.message = f"finished: test accuracy {self.test_accuracy:.3f} in {duration_text(self.seconds)}"
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


__all__ = ["Observed", "TrainingView"]
