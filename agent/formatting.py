"""Text shared by the prompts and the renderings: durations, configurations, predictions, tables, data.

One function per kind of text, so the nodes, the recommendation's rendering, the follow-up
answers, the tuner and the app write each the same way without importing one another. A leaf
module: it imports nothing of the project at module level (`interval_label` reads the
meta-model's INTERVAL only when first asked, since tools.metamodel imports xgboost).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class _Predicted(Protocol):
    accuracy: float
    low: float
    high: float
    seconds: float


def duration_text(seconds: float | None) -> str:
    """A duration the way people read it: "45 s", "12 min", "1.5 h" ("unknown time" for None or NaN)."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown time"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def run_time_text(training: Mapping[str, Any]) -> str:
    """How long a finished run took, its own time first: "in 15 s (the backbone features came from the
    cache; extracting them took 36 s in an earlier run)".

    A run whose features came from an earlier run's cache did not spend their extraction time,
    though the record's total (`seconds`, what time predictions are scored on) includes it.
    Reads the train node's `seconds`, `train_seconds`, `feature_seconds` and `features_cached`;
    a record without the split (an older thread) says its total.
    """
    train, features = training.get("train_seconds"), training.get("feature_seconds") or 0.0
    if train is None or not features:
        return f"in {duration_text(training.get('seconds') if train is None else train)}"
    if training.get("features_cached"):
        return (f"in {duration_text(train)} (the backbone features came from the cache; extracting them took "
                f"{duration_text(features)} in an earlier run)")
    return (f"in {duration_text(train + features)}, of which {duration_text(features)} extracting the backbone "
            "features (cached for the next run on this dataset)")


def config_text(c: Mapping[str, Any] | Any) -> str:
    """One line naming a configuration: "resnet18/finetune 128px adam lr=0.001 bs=64 ep=10 freeze=0.5".

    Takes a TrainConfig or its dict. Backbone, mode, optimizer, learning rate, batch size and
    epochs always; input size, weight decay, dropout, augmentation and freeze only where they
    differ from TrainConfig's defaults. Compact on purpose: the line goes into prompts, where
    every digit is a token (Qwen tokenises numbers digit by digit).
    """
    d: Mapping[str, Any] = c if isinstance(c, Mapping) else c.model_dump()
    extra = []
    if d.get("input_size", 64) != 64:
        extra.append(f"{d['input_size']}px")
    if d.get("weight_decay"):
        extra.append(f"wd={d['weight_decay']:g}")
    if d.get("dropout"):
        extra.append(f"drop={d['dropout']:g}")
    if d.get("augmentation", "none") != "none":
        extra.append(f"aug={d['augmentation']}")
    if d.get("freeze"):
        extra.append(f"freeze={d['freeze']:g}")
    return (f"{d['backbone']}/{d['mode']} {d['optimizer']} lr={d['learning_rate']:g} bs={d['batch_size']} "
            f"ep={d['epochs']}" + (" " + " ".join(extra) if extra else ""))


def prediction_values(p: _Predicted) -> dict[str, float]:
    """A meta-model prediction as the state and the answers keep it: accuracy and its interval to
    4 decimals, seconds to 2."""
    return {"accuracy": round(float(p.accuracy), 4), "low": round(float(p.low), 4),
            "high": round(float(p.high), 4), "seconds": round(float(p.seconds), 2)}


@functools.cache
def interval_label() -> str:
    """What the meta-model's accuracy interval is, from tools.metamodel.INTERVAL: "90 % interval"."""
    from tools.metamodel import INTERVAL  # imports xgboost: only once something is rendered

    return interval_label_for(INTERVAL)


def interval_label_for(quantiles: tuple[float, float]) -> str:
    """The label of the interval between two quantiles: (0.05, 0.95) -> "90 % interval"."""
    low, high = quantiles
    return f"{(high - low) * 100:.0f} % interval"


def accuracy_text(accuracy: float, low: float, high: float) -> str:
    """A predicted accuracy with its interval: "0.78 (0.71-0.84)"."""
    return f"{accuracy:.2f} ({low:.2f}-{high:.2f})"


def interval_text(low: float, high: float) -> str:
    """An accuracy interval with its label: "90 % interval 0.71-0.84"."""
    return f"{interval_label()} {low:.2f}-{high:.2f}"


def fmt_value(value: Any) -> str:
    """A table cell's value: floats to 4 significant digits, the rest as str."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (pipes and newlines in cells escaped), for the chat and the terminal."""
    def cell(v: Any) -> str:
        text = "" if v is None else fmt_value(v)
        return text.replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


# What each column of the evidence tables means (the retrieve step's table, "show similar experiments").
EVIDENCE_COLUMNS = ["run", "dataset", "configuration", "status", "test acc", "time", "distance"]
EVIDENCE_LEGEND = (
    "*Columns:* **run** the id the LLM cites (r1, r2, ...); **dataset** the dataset that past run trained on; "
    "**configuration** backbone/mode, input size when not 64 px, optimizer, learning rate (lr), batch size (bs), "
    "epochs (ep); **status** ok, diverged (the loss blew up) or failed; **test acc** that run's accuracy on its "
    "dataset's held-out test split (0-1; empty when it did not finish); **time** that run's training time "
    "(feature caching included) on the machine it ran on; **distance** cosine distance between your task's "
    "description and the run's (0 = same, up to 2; **lower is nearer**). The runs are picked near your task but "
    "unlike each other (maximal marginal relevance over dataset, backbone, mode, input size and learning rate), "
    "with the nearest dataset's best run among them; the nearest dataset's runs come first, best first."
)
# The meta-model's candidates table (the explain step, "compare the candidates").
CANDIDATE_COLUMNS = ["id", "configuration", "predicted test acc", "predicted time", "past runs", "note"]


def candidate_legend() -> str:
    """What each column of the candidates table means (the interval named as the meta-model computes it)."""
    return (
        "*Columns:* **id** the candidate's id (c1 is the meta-model's best); **configuration** as in the evidence "
        "tables; **predicted test acc** the meta-model's prediction for your task, its "
        f"{interval_label()} in brackets; **predicted time** its training time on your device; **past runs** how "
        "many knowledge-base runs (any dataset, ok or diverged) used this backbone and mode: what the prediction "
        "rests on, more is firmer; **note** over budget (no candidate fits the time budget), recommended (the "
        "configuration of the recommendation), and for a configuration a past run used as is, the dataset it ran "
        "on and the test accuracy it reached there."
    )


def candidate_note(c: dict[str, Any], recommended: bool = False) -> str:
    """The note column of a candidates table: over budget, recommended, where a measured config ran and what it
    reached there ("ran on skin_lesion_isic: 0.65")."""
    m = c.get("measured")
    return "; ".join(w for w in ("over budget" if c.get("over_budget") else "", "recommended" if recommended else "",
                                 f"ran on {m['dataset']}: {m['test_accuracy']:.2f}" if m else "") if w)


def data_text(profile: dict[str, Any]) -> str:
    """One line describing the task's data, for prompts and renderings."""
    m = profile["meta"]
    body = f" {m['body_part']}" if m.get("body_part") else ""
    colour = "RGB" if m["channels"] == 3 else "grey"
    return (f"{m['modality']}{body}, {m['n_classes']} classes, {m['n_instances']} images, {m['resolution']}px {colour}, "
            f"imbalance {m['imbalance_ratio']:.1f}")


__all__ = ["CANDIDATE_COLUMNS", "EVIDENCE_COLUMNS", "EVIDENCE_LEGEND", "accuracy_text", "candidate_legend", "candidate_note", "config_text", "data_text", "duration_text", "fmt_value", "interval_label",
           "interval_label_for", "interval_text", "markdown_table", "prediction_values"]
