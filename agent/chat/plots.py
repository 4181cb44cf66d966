"""Plots of the chat: the learning curve of a training run (validation accuracy and losses per epoch).

matplotlib is imported when a figure is drawn, not when the chat is imported.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any


def learning_curve_figure(history: list[dict[str, Any]], title: str = "") -> Any:
    """A matplotlib figure: validation accuracy (left) and losses (right) per epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 2.8), dpi=100)
    FigureCanvasAgg(fig)
    ax_acc, ax_loss = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        return [p[0] for p in pts], [float(p[1]) for p in pts]

    x, y = series("val_accuracy")
    ax_acc.plot(x, y, marker="o", color="#2e7d32", label="val accuracy")
    ax_acc.set_ylim(0, 1)
    ax_acc.set_title("validation accuracy", fontsize=10)
    for key, colour in (("train_loss", "#1565c0"), ("val_loss", "#c62828")):
        x, y = series(key)
        if x:
            ax_loss.plot(x, y, marker="o", color=colour, label=key.replace("_", " "))
    ax_loss.set_title("loss", fontsize=10)
    for ax in (ax_acc, ax_loss):
        ax.set_xlabel("epoch")
        if epochs:
            ax.set_xlim(0.5, max(epochs) + 0.5)
            ax.set_xticks(sorted(set(epochs)))
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


__all__ = ["learning_curve_figure", "save_learning_curve"]
