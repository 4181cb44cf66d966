"""Reading a trial's per-epoch log in code (no LLM): what went wrong, what the curve says, the time.

`analyze` labels a run diverged, failed or cancelled; then, for a run that finished, overfitting
(validation loss rising again while training loss falls), underfitting (at chance level, or
training loss barely falling), still improving at its last epoch, plateaued early or
converged; and over time when it took more than its share of the budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agent.tune._models import Analysis


def analyze(
    history: Sequence[Any],
    *,
    status: str,
    seconds: float,
    chance: float | None = None,
    predicted_seconds: float | None = None,
    share_seconds: float | None = None,
    error: str | None = None,
) -> Analysis:
    """Read a trial's per-epoch log (train loss, val loss, val accuracy per epoch).

    Args:
        history: per-epoch metrics (EpochMetrics or dicts with epoch, train_loss, val_loss, val_accuracy).
        status: the run's status.
        seconds: the trial's wall time.
        chance: the majority-class share (accuracy of always answering the largest class).
        predicted_seconds: what the meta-model predicted.
        share_seconds: the time this trial was allowed (its share of the budget).
        error: the run's error message, if any.
    """
    rows = [h if isinstance(h, dict) else h.model_dump() for h in history]
    labels: list[str] = []
    parts: list[str] = []
    _read_failure(rows, status, error, labels, parts)
    if status == "ok":
        _read_curve(rows, chance, labels, parts)
    _read_time(seconds, predicted_seconds, share_seconds, labels, parts)
    return Analysis(labels=labels, text=" ".join(parts))


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _read_failure(rows: list[dict[str, Any]], status: str, error: str | None, labels: list[str], parts: list[str]) -> None:
    """Adds "diverged" (a NaN/inf training loss), "failed" or "cancelled", with its sentence."""
    train = [r.get("train_loss") for r in rows]
    n = len(rows)
    if status == "diverged" or any(v is not None and not _finite(v) for v in train):
        bad = next((r["epoch"] for r in rows if r.get("train_loss") is None or not _finite(r["train_loss"])), n or 1)
        labels.append("diverged")
        parts.append(f"diverged: the training loss became NaN/inf at epoch {bad}; the learning rate is too high.")
    elif status in ("failed", "cancelled", "error"):
        labels.append("cancelled" if status == "cancelled" else "failed")
        what = "was cancelled" if status == "cancelled" else "failed"
        parts.append(f"the run {what} after {n} epoch(s)" + (f": {error[:160]}" if error else "") + ".")


def _read_curve(rows: list[dict[str, Any]], chance: float | None, labels: list[str], parts: list[str]) -> None:
    """Adds what the learning curve of a finished run says (after any label `_read_failure` gave)."""
    train = [r.get("train_loss") for r in rows]
    val_loss = [r.get("val_loss") for r in rows]
    val_acc = [r.get("val_accuracy") for r in rows]
    n = len(rows)
    if not (n and [a for a in val_acc if _finite(a)]):
        return
    best_i = max(range(n), key=lambda i: (val_acc[i] if _finite(val_acc[i]) else -1.0, -i))
    best_acc = val_acc[best_i]
    losses = [(i, v) for i, v in enumerate(val_loss) if _finite(v)]
    min_i, min_loss = min(losses, key=lambda t: t[1]) if losses else (best_i, None)
    last_loss = val_loss[-1] if _finite(val_loss[-1]) else None
    first_train, last_train = train[0], train[-1]
    if (
        min_loss is not None and last_loss is not None and n >= 3 and min_i < n - 1
        and last_loss > min_loss * 1.10 + 0.01 and _finite(first_train) and _finite(last_train)
        and last_train < train[min_i]
    ):
        labels.append("overfitting")
        parts.append(
            f"overfitting: validation loss rose from {min_loss:.3f} (epoch {min_i + 1}) to {last_loss:.3f} while "
            f"training loss fell to {last_train:.3f}; best validation accuracy {best_acc:.3f} at epoch {best_i + 1} of {n}."
        )
    elif chance is not None and best_acc <= chance + 0.02:
        labels.append("underfitting")
        parts.append(f"underfitting: validation accuracy {best_acc:.3f} is at chance level (majority class "
                     f"{chance:.3f}).")
    elif _finite(first_train) and _finite(last_train) and n >= 2 and last_train > 0.9 * first_train:
        labels.append("underfitting")
        parts.append(f"underfitting: training loss barely fell ({first_train:.3f} to {last_train:.3f} in {n} epochs); "
                     "the learning rate may be too low or the run too short.")
    if "overfitting" not in labels and n >= 2 and best_i == n - 1 and _finite(val_acc[-2]) \
            and val_acc[-1] - val_acc[-2] >= 0.005:
        labels.append("still_improving")
        parts.append(f"still improving at the last epoch (validation accuracy {val_acc[-2]:.3f} to "
                     f"{val_acc[-1]:.3f}); more epochs may help.")
    if not labels and n >= 4 and best_i + 1 <= n // 2:
        labels.append("plateaued_early")
        parts.append(f"plateaued early: best validation accuracy {best_acc:.3f} at epoch {best_i + 1} of {n}; the "
                     "later epochs cost time without gain.")
    if not labels:
        labels.append("converged")
        parts.append(f"converged: best validation accuracy {best_acc:.3f} at epoch {best_i + 1} of {n}"
                     + (f", validation loss lowest at epoch {min_i + 1}." if losses else "."))


def _read_time(seconds: float, predicted_seconds: float | None, share_seconds: float | None, labels: list[str],
               parts: list[str]) -> None:
    """Adds the time sentence, and "over_time" when the run took more than 1.2 x its share of the budget."""
    time_text = f"took {seconds:.0f} s"
    if predicted_seconds:
        time_text += f" (predicted {predicted_seconds:.0f} s)"
    if share_seconds and seconds > share_seconds * 1.2:
        labels.append("over_time")
        time_text += f", more than its share of the budget ({share_seconds:.0f} s)"
    parts.append(time_text[0].upper() + time_text[1:] + ".")
