"""What the nearest datasets' runs of a backbone and mode reached: the evidence beside a prediction.

    summary = summarise((dataset, "backbone/mode", accuracy) for each run)   # at fit time
    mu, runs = prior(summary, nearest_dataset_names, "efficientnet_lite0/frozen")

On each of the nearest datasets (`tools.novelty` distance) that has at least MIN_RUNS runs of
the candidate's backbone and mode, the EVIDENCE_Q quantile of those runs' test accuracies
("what a good config of this kind reached there"); `mu` is their mean. A backbone and mode
that no near dataset ran fall back to all runs of those datasets (support 0 for the pair). The meta-model attaches it to each candidate
(`Prediction.evidence_level`, `evidence_runs`), so a prediction far above what similar
datasets reached can be told apart.

Used as a correction it did not hold up: shrinking each candidate's prediction toward ``mu``
(a precision-weighted average, the model's spread read from its interval) was measured in
bench/calibration.py (picks among each held-out dataset's recorded runs) and made the picks
worse or no better (see `tools.metamodel.MetaModel.corrected`), so predictions are not moved
toward it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

EVIDENCE_Q = 0.9  # a good run of that kind on that dataset
MIN_RUNS = 3  # runs of a pair on a dataset before they count as its evidence
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
          pair: str) -> tuple[float, int] | None:
    """(mu, support) of `pair` on the `nearest` datasets; support counts the pair's runs
    there (0 when the fallback to all runs was taken). None when no near dataset has runs."""
    for key in (pair, ALL):
        levels = [summary[d][key] for d in nearest if key in summary.get(d, {}) and summary[d][key][1] >= MIN_RUNS]
        if levels:
            values = np.array([lv[0] for lv in levels], dtype=np.float64)
            support = int(sum(lv[1] for lv in levels)) if key == pair else 0
            return float(values.mean()), support
    return None

