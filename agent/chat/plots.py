"""Plots of the chat: the learning curve of a training run (validation accuracy and losses per epoch).

matplotlib is imported when a figure is drawn, not when the chat is imported.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

MARKERS_UP_TO = 30  # epochs: beyond this many points, markers would blur into a thick line
X_TICKS = 8  # at most this many epoch ticks, whole numbers, at any number of epochs


def curve_key(training: Any) -> tuple[Any, ...] | None:
    """What a drawn learning curve shows: its run (job id), epochs so far and whether it ended.

    A panel redraws when the key changes, so it never keeps an earlier run's curve: a tuning
    session's trial 2 (a new job id) replaces trial 1's curve at once, before its first epoch.
    None when there is no run to show.
    """
    if training is None:
        return None
    return (training.job_id, len(training.history), training.done)


def panel_curve(training: Any, shown: list[Any] | None) -> tuple[bool, Any]:
    """Whether the live panel's curve must change, and the figure to put there (None: an empty plot).

    Args:
        training: the run on screen (a TrainingView), or None.
        shown: one cell holding the `curve_key` of what the page shows, updated here; None redraws always.
    """
    key = curve_key(training)
    if shown is not None and shown[0] == key:
        return False, None
    if shown is not None:
        shown[0] = key
    if training is None or not training.history:
        return True, None  # a new run before its first epoch: no curve rather than the previous run's
    return True, learning_curve_figure(training.history, stacked=True)


def learning_curve_figure(history: list[dict[str, Any]], title: str = "", *, stacked: bool = False) -> Any:
    """A matplotlib figure: validation accuracy and losses per epoch.

    Args:
        history: per epoch: `epoch`, `train_loss`, `val_loss`, `val_accuracy`.
        title: a line above both plots.
        stacked: accuracy above loss (a narrow panel beside the chat), else side by side (a message).

    The epoch axis has at most `X_TICKS` whole-number ticks, so it reads at 5 epochs as at 200.
    Colours are for a light background; the page shows the figure inverted in dark mode (app.CSS).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(4.2, 4.6) if stacked else (7.5, 2.8), dpi=100)
    FigureCanvasAgg(fig)
    ax_acc, ax_loss = fig.subplots(2, 1, sharex=True) if stacked else fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    marker = "o" if len(epochs) <= MARKERS_UP_TO else None

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        return [p[0] for p in pts], [float(p[1]) for p in pts]

    x, y = series("val_accuracy")
    ax_acc.plot(x, y, marker=marker, markersize=4, color="#2e7d32", label="val accuracy")
    ax_acc.set_ylim(0, 1)
    ax_acc.set_title("validation accuracy", fontsize=10)
    for key, colour in (("train_loss", "#1565c0"), ("val_loss", "#c62828")):
        x, y = series(key)
        if x:
            ax_loss.plot(x, y, marker=marker, markersize=4, color=colour, label=key.replace("_", " "))
    ax_loss.set_title("loss", fontsize=10)
    for ax in (ax_acc, ax_loss):
        if ax is ax_loss or not stacked:
            ax.set_xlabel("epoch")
        if epochs:
            ax.set_xlim(0.5, max(epochs) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=X_TICKS, integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_learning_curve(history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Write the learning-curve figure as a PNG (atomically) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.png")
    learning_curve_figure(history, title).savefig(tmp, format="png")
    tmp.replace(path)
    return path


__all__ = ["curve_key", "learning_curve_figure", "panel_curve", "save_learning_curve"]
