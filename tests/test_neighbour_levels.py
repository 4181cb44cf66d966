"""Tests for tools.neighbour_levels (what similar datasets reached), on hand-made numbers.

The meta-model's use of them (a full profile's evidence, a text profile stated over its open
fields: MetaModel.corrected) is tested in tests/test_novelty.py, on its fitted seed sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from tools.neighbour_levels import ALL, EVIDENCE_Q, MIN_RUNS, prior, summarise


def test_summarise_keeps_a_good_run_level_per_dataset_and_pair() -> None:
    runs = [("a", "x/frozen", v) for v in np.linspace(0.5, 0.9, 11)] + [("a", "y/scratch", 0.3)] * 2
    s = summarise(runs)
    assert s["a"]["x/frozen"] == [pytest.approx(float(np.quantile(np.linspace(0.5, 0.9, 11), EVIDENCE_Q))), 11]
    assert s["a"][ALL][1] == 13 and s["a"]["y/scratch"][1] == 2


def test_prior_uses_the_pair_then_falls_back_to_all_runs() -> None:
    s = {"a": {"x/frozen": [0.8, 10], ALL: [0.8, 12]}, "b": {"x/frozen": [0.6, 10], ALL: [0.7, 10]},
         "c": {"x/frozen": [0.9, MIN_RUNS - 1], ALL: [0.9, 20]}}
    mu, support = prior(s, ["a", "b", "c"], "x/frozen")
    assert mu == pytest.approx(0.7) and support == 20, "c has too few runs of the pair to count"
    mu, support = prior(s, ["a", "b", "c"], "z/scratch")
    assert mu == pytest.approx(0.8) and support == 0
    assert prior(s, ["nowhere"], "x/frozen") is None
