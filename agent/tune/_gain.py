"""Expected gain: how much an untried option may improve on the trials so far, and which trial to keep.

The meta-model predicts test accuracy, and a dataset's errors share one offset (its difficulty,
and here also the gap between validation and test accuracy), so the observed trials calibrate
it (`calibration`). An option's outcome is modelled as Normal(predicted + offset, sigma) with
sigma from the meta-model's 90 % interval, and its expected gain is the expected improvement
over the best observed validation accuracy, E[max(0, X - best)] (`rank_options`). The trial
kept is the best validation accuracy beyond validation noise (`pick`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from agent.tune._models import Option, PredictedOutcome, Trial
from knowledge.schema import TrainConfig

MAX_ACCURACY_GAP = 0.05  # options expected this much below the best option are not offered
Z90 = 1.6449  # the meta-model's interval is its 5th-95th percentile


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _Phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def expected_improvement(mean: float, sigma: float, best: float) -> float:
    """E[max(0, X - best)] for X ~ Normal(mean, sigma)."""
    if sigma <= 0:
        return max(0.0, mean - best)
    z = (mean - best) / sigma
    return (mean - best) * _Phi(z) + sigma * _phi(z)


def sigma_of(p: PredictedOutcome) -> float:
    """The spread of a prediction from its 90 % interval (at least half a point)."""
    return max((p.high - p.low) / (2 * Z90), 0.005)


def validation_se(accuracy: float, n_val: int | None) -> float:
    """The standard error of an accuracy measured on n_val images (0 when n_val is unknown)."""
    if not n_val or n_val <= 0:
        return 0.0
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n_val)


def pick(trials: Sequence[Trial], n_val: int | None) -> tuple[Trial | None, str | None]:
    """The trial to keep, and why it is not simply the best validation accuracy (None when it is).

    Trials that finished ok within one standard error of the best validation accuracy are
    near-ties; the one the meta-model predicts best among them is kept (ties: the earlier).
    """
    ok = [t for t in trials if t.status == "ok" and t.val_accuracy is not None]
    if not ok:
        return None, None
    top = max(ok, key=lambda t: (t.val_accuracy, -t.number))
    se = validation_se(top.val_accuracy, n_val)  # type: ignore[arg-type]
    near = [t for t in ok if t.val_accuracy >= top.val_accuracy - se]  # type: ignore[operator]
    kept = max(near, key=lambda t: (t.predicted.accuracy, -t.number))
    if kept is top:
        return top, None
    return kept, (f"trial {top.number}'s validation accuracy {top.val_accuracy:.3f} is within one standard error "
                  f"({se:.3f} on {n_val} validation images) of trial {kept.number}'s {kept.val_accuracy:.3f}, and "
                  f"the meta-model predicts trial {kept.number} higher ({kept.predicted.accuracy:.3f} vs "
                  f"{top.predicted.accuracy:.3f})")



def calibration(trials: Sequence[Trial]) -> tuple[float, float | None]:
    """(offset, best): mean(observed val - predicted) over ok trials, and the best val accuracy."""
    ok = [t for t in trials if t.status == "ok" and t.val_accuracy is not None]
    if not ok:
        return 0.0, None
    offset = sum(t.val_accuracy - t.predicted.accuracy for t in ok) / len(ok)  # type: ignore[operator]
    return offset, max(t.val_accuracy for t in ok)  # type: ignore[type-var]


def rank_options(
    configs: Sequence[tuple[TrainConfig, str]],
    predictions: Sequence[PredictedOutcome],
    trials: Sequence[Trial],
    remaining: float | None,
) -> list[Option]:
    """The options for the next trial, by expected gain (highest first), ids "o1", "o2", ...

    Args:
        configs: untried configs, each with its origin ("meta-model candidate", "variant of ...").
        predictions: the meta-model's prediction for each config.
        trials: the trials so far, which calibrate the predictions (`calibration`).
        remaining: what is left of the budget (None: no budget); an option that cannot finish
            in it is left out, and so is one expected more than MAX_ACCURACY_GAP below the best.
    """
    offset, best_val = calibration(trials)
    opts = []
    for (cfg, origin), pred in zip(configs, predictions, strict=True):
        if remaining is not None and pred.seconds > remaining:
            continue  # cannot finish in what is left of the budget
        expected = pred.accuracy + offset
        gain = expected_improvement(expected, sigma_of(pred), best_val) if best_val is not None else expected
        opts.append((cfg, origin, pred, expected, gain))
    opts.sort(key=lambda o: -o[4])
    if opts:  # a clearly worse option is never offered: the enum itself keeps the LLM competitive
        top = max(o[3] for o in opts)
        opts = [o for o in opts if o[3] >= top - MAX_ACCURACY_GAP]
    return [Option(id=f"o{i}", config=c, origin=origin, predicted=pred, expected=round(e, 4),
                   expected_gain=round(g, 5)) for i, (c, origin, pred, e, g) in enumerate(opts, start=1)]
