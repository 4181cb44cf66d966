"""Variants of the best trial: changes to its configuration that answer what its log said.

A diverged run gets a tenth of the learning rate; an overfitting one more regularisation and
fewer epochs; an underfitting or still improving one more epochs or a higher learning rate; a
run that plateaued early fewer epochs; a converged one (and any with no other variant) a
learning rate either side; a run over its time share half the epochs. Each variant is a valid
configuration, unlike the trial's and the other variants'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agent.tune._models import Analysis, Trial
from knowledge.schema import TrainConfig

N_MODEL_OPTIONS = 4  # the meta-model's untried candidates offered per proposal
MAX_VARIANTS = 3  # variants of the best trial offered per proposal


def _lr(value: float) -> float:
    return float(f"{min(max(value, 1e-6), 1.0):.3g}")


def variants(config: TrainConfig, analysis: Analysis, best_epoch: int | None) -> list[tuple[TrainConfig, str]]:
    """Changes to a trial's config that answer its analysis, each with a short reason."""
    c = config.model_dump()
    out: list[tuple[dict[str, Any], str]] = []
    labels = set(analysis.labels)
    if "diverged" in labels:
        out.append(({**c, "learning_rate": _lr(c["learning_rate"] / 10)}, "learning rate / 10 (it diverged)"))
    if "overfitting" in labels:
        out.append(({**c, "weight_decay": min(max(c["weight_decay"] * 10, 1e-3), 0.1),
                     "dropout": round(min(c["dropout"] + 0.2, 0.5), 2)}, "more weight decay and dropout (overfitting)"))
        if best_epoch and best_epoch < 0.7 * c["epochs"]:
            out.append(({**c, "epochs": max(1, math.ceil(best_epoch * 1.2))}, "fewer epochs (overfitting after its best epoch)"))
    if labels & {"underfitting", "still_improving"}:
        why = "still improving" if "still_improving" in labels else "underfitting"
        out.append(({**c, "epochs": min(c["epochs"] * 2, 300)}, f"twice the epochs ({why})"))
        out.append(({**c, "learning_rate": _lr(c["learning_rate"] * 3)}, f"learning rate x3 ({why})"))
    if "plateaued_early" in labels and best_epoch and c["epochs"] > 1:
        out.append(({**c, "epochs": max(1, min(c["epochs"] - 1, math.ceil(best_epoch * 1.5)))},
                    f"fewer epochs (best at epoch {best_epoch} of {c['epochs']})"))
    if labels & {"converged", "over_time", "plateaued_early"} or not out:
        out.append(({**c, "learning_rate": _lr(c["learning_rate"] * 3)}, "learning rate x3 (explore around the best)"))
        out.append(({**c, "learning_rate": _lr(c["learning_rate"] / 3)}, "learning rate / 3 (explore around the best)"))
    if "over_time" in labels and c["epochs"] > 1:
        out.append(({**c, "epochs": max(1, c["epochs"] // 2)}, "half the epochs (over its time share)"))
    result: list[tuple[TrainConfig, str]] = []
    for data, why in out:
        if data["mode"] == "frozen":
            data["augmentation"] = "none"
        try:
            cfg = TrainConfig.model_validate(data)
        except ValueError:
            continue
        if cfg.key() != config.key() and all(cfg.key() != r.key() for r, _ in result):
            result.append((cfg, why))
    return result


def next_configs(candidates: Sequence[TrainConfig], best: Trial | None, tried: set[str]) -> list[tuple[TrainConfig, str]]:
    """The untried configs to offer next, each once with its origin: up to N_MODEL_OPTIONS of the
    meta-model's `candidates`, then up to MAX_VARIANTS variants of the `best` trial."""
    raw: list[tuple[TrainConfig, str]] = [(c, "meta-model candidate") for c in candidates
                                          if c.key() not in tried][:N_MODEL_OPTIONS]
    if best is not None:
        for cfg, why in variants(best.config, best.analysis, best.best_epoch)[:MAX_VARIANTS]:
            raw.append((cfg, f"variant of trial {best.number}: {why}"))
    seen: set[str] = set()
    unique = []
    for cfg, origin in raw:
        if cfg.key() in tried or cfg.key() in seen:
            continue
        seen.add(cfg.key())
        unique.append((cfg, origin))
    return unique
