"""The winner's curse: a pick's predicted accuracy, shrunk toward what similar datasets reached.

A recommendation is the argmax of many noisy predictions, so the pick's prediction is biased
upward: among hundreds of candidates the one the model over-rates most tends to win. The
bias is worst where the model knows least, a task described only in words (its class count,
size and difficulty assumed): such picks were predicted at 0.8-1.0 while the nearest
datasets' runs of the same kind reached far less.

The correction is a precision-weighted (normal-normal, empirical Bayes) average of two
estimates of the candidate's accuracy on the task:

- the meta-model's prediction ``p``, with the spread its own 90 % interval states
  (``sigma = (high - low) / (2 * 1.645)``: wide for a far or text-only task, narrow for a
  dataset the model knows);
- the **evidence**: on each of the nearest datasets (`tools.novelty` distance) that has at
  least MIN_RUNS runs of the candidate's backbone and mode, the EVIDENCE_Q quantile of those
  runs' test accuracies ("what a good config of this kind reached there"); their mean ``mu``,
  with the predictive spread of a new dataset drawn from the same population,
  ``tau^2 = max(var, TAU_FLOOR^2) * (1 + 1/m)`` over the ``m`` datasets. A backbone and mode
  that no near dataset ran fall back to all runs of those datasets (support 0 for the pair).

``shrunk = (p / sigma^2 + mu / tau^2) / (1 / sigma^2 + 1 / tau^2)``. The ranking uses the shrunk
value, so a candidate predicted high with nothing similar behind it no longer wins on the
model's noise alone, and the pick's stated accuracy is the shrunk one. This is for a task
stated in full; a task with assumed fields is ranked by its prediction averaged over their
plausible values instead (`tools.metamodel.MetaModel.corrected`): its interval is a union over
plausible tasks, not the model's error, and shrinking it was measured worse. Measured by
bench/calibration.py (picks among each held-out dataset's recorded runs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

EVIDENCE_Q = 0.9  # a good run of that kind on that dataset
MIN_RUNS = 3  # runs of a pair on a dataset before they count as its evidence
TAU_FLOOR = 0.05  # the evidence is never taken as more certain than this spread
Z90 = 1.645  # a 90 % interval spans +-Z90 sigma of a normal
ALL = "*"  # the key of all runs on a dataset, whatever the pair


def summarise(runs: Iterable[tuple[str, str, float]]) -> dict[str, dict[str, list[float]]]:
    """{dataset: {"backbone/mode" or ALL: [EVIDENCE_Q quantile, runs]}} from (dataset, pair, accuracy)."""
    by: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for dataset, pair, acc in runs:
        by[dataset][pair].append(acc)
        by[dataset][ALL].append(acc)
    return {d: {p: [round(float(np.quantile(v, EVIDENCE_Q)), 4), len(v)] for p, v in sorted(pairs.items())}
            for d, pairs in sorted(by.items())}


def prior(summary: Mapping[str, Mapping[str, Sequence[float]]], nearest: Sequence[str],
          pair: str) -> tuple[float, float, int] | None:
    """(mu, tau, support) of `pair` on the `nearest` datasets; support counts the pair's runs
    there (0 when the fallback to all runs was taken). None when no near dataset has runs."""
    for key in (pair, ALL):
        levels = [summary[d][key] for d in nearest if key in summary.get(d, {}) and summary[d][key][1] >= MIN_RUNS]
        if levels:
            values = np.array([lv[0] for lv in levels], dtype=np.float64)
            tau2 = max(float(values.var()), TAU_FLOOR**2) * (1 + 1 / len(values))
            support = int(sum(lv[1] for lv in levels)) if key == pair else 0
            return float(values.mean()), float(np.sqrt(tau2)), support
    return None


def shrink(point: np.ndarray, low: np.ndarray, high: np.ndarray, mu: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """The precision-weighted average of the predictions (spread from their intervals) and the
    evidence (mu, tau); NaN mu leaves a prediction as it is."""
    sigma = np.maximum((np.asarray(high) - np.asarray(low)) / (2 * Z90), 1e-3)
    w_model, w_ev = 1 / sigma**2, 1 / np.square(np.asarray(tau, dtype=np.float64))
    out = (point * w_model + np.nan_to_num(mu) * w_ev) / (w_model + w_ev)
    return np.where(np.isnan(mu), point, np.clip(out, 0.0, 1.0))

