"""Tests for tools.neighbour_levels (what similar datasets reached) and for the meta-model's
winner's-curse correction (MetaModel.corrected).

The pure functions run on hand-made numbers; the model tests fit on a seeded sample of the
seed records, as tests/test_metamodel.py does.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from knowledge.schema import ExperimentRecord
from knowledge.store import read_seed
from tools.metamodel import TIME_WEIGHT, MetaModel, usable
from tools.neighbour_levels import ALL, EVIDENCE_Q, MIN_RUNS, TAU_FLOOR, prior, summarise
from tools.novelty import vary


def test_summarise_keeps_a_good_run_level_per_dataset_and_pair() -> None:
    runs = [("a", "x/frozen", v) for v in np.linspace(0.5, 0.9, 11)] + [("a", "y/scratch", 0.3)] * 2
    s = summarise(runs)
    assert s["a"]["x/frozen"] == [pytest.approx(float(np.quantile(np.linspace(0.5, 0.9, 11), EVIDENCE_Q))), 11]
    assert s["a"][ALL][1] == 13 and s["a"]["y/scratch"][1] == 2


def test_prior_uses_the_pair_then_falls_back_to_all_runs() -> None:
    s = {"a": {"x/frozen": [0.8, 10], ALL: [0.8, 12]}, "b": {"x/frozen": [0.6, 10], ALL: [0.7, 10]},
         "c": {"x/frozen": [0.9, MIN_RUNS - 1], ALL: [0.9, 20]}}
    mu, tau, support = prior(s, ["a", "b", "c"], "x/frozen")
    assert mu == pytest.approx(0.7) and support == 20, "c has too few runs of the pair to count"
    assert tau == pytest.approx(np.sqrt(0.01 * 1.5))  # var of (0.8, 0.6), times 1 + 1/2 datasets
    mu, tau, support = prior(s, ["a", "b", "c"], "z/scratch")
    assert mu == pytest.approx(0.8) and support == 0
    assert tau >= TAU_FLOOR
    assert prior(s, ["nowhere"], "x/frozen") is None


# ------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def records() -> list[ExperimentRecord]:
    recs = read_seed()
    if len({r.dataset.name for r in usable(recs)}) < 6:
        pytest.skip("the packaged seed holds too few datasets for nearest-dataset evidence (run the sweep)")
    return random.Random(0).sample(recs, min(400, len(recs)))


@pytest.fixture(scope="module")
def model(records: list[ExperimentRecord]) -> MetaModel:
    return MetaModel.fit(records, seed=0)


@pytest.fixture(scope="module")
def known(records: list[ExperimentRecord]) -> ExperimentRecord:
    name = Counter(r.dataset.name for r in usable(records)).most_common(1)[0][0]
    return next(r for r in usable(records) if r.dataset.name == name)


def test_a_full_profile_keeps_its_prediction_and_carries_the_evidence(model: MetaModel,
                                                                     known: ExperimentRecord) -> None:
    cands = model.candidates(known.dataset.meta, n=4)
    assert cands
    nearest = [name for name, _ in model.nearest_datasets(known.dataset.meta)]
    summary = model._info["evidence"]
    for c in cands:
        p = c.prediction
        assert p.model_accuracy is None, "a task stated in full is not corrected"
        assert p.accuracy == pytest.approx(model.predict(known.dataset.meta, [c.config])[0].accuracy)
        expected = prior(summary, nearest, f"{c.config.backbone}/{c.config.mode}")
        assert expected is not None and p.evidence_level == pytest.approx(expected[0]) and p.evidence_runs == expected[2]
    scores = [c.prediction.accuracy - TIME_WEIGHT * np.log10(c.prediction.seconds) for c in cands]
    assert scores == sorted(scores, reverse=True)
    plain = model.candidates(known.dataset.meta, n=4, correct=False)
    assert [c.config for c in plain] == [c.config for c in cands]
    assert all(c.prediction.evidence_level is None for c in plain)


def test_a_text_profile_states_its_pick_averaged_over_what_it_left_open(model: MetaModel,
                                                                         known: ExperimentRecord) -> None:
    """A task described in words (no probe, class count and size assumed) is ranked by, and its pick
    stated at, the mean prediction over the plausible values of the assumed fields, not the
    prediction at the defaults filled in for them."""
    text = vary(known.dataset.meta, n_classes=2, n_instances=2000, imbalance_ratio=2.0).model_copy(
        update={"probe_accuracy": None})
    fields = ("n_classes", "n_instances", "imbalance_ratio")
    cands = model.candidates(text, n=3, open_fields=fields)
    assert cands
    configs = [c.config for c in cands]
    marginal = model.marginal(text, configs, fields)
    at_defaults = model.predict(text, configs, open_fields=fields)
    for c, m, d in zip(cands, marginal, at_defaults, strict=True):
        assert c.prediction.accuracy == pytest.approx(float(m))
        assert c.prediction.model_accuracy == pytest.approx(d.accuracy)
        assert c.prediction.low <= c.prediction.accuracy <= c.prediction.high
        assert set(c.prediction.assumed) == {*fields, "probe_accuracy"}
    stated = model.marginal(known.dataset.meta, configs)
    assert np.allclose(stated, [p.accuracy for p in model.predict(known.dataset.meta, configs)]), \
        "with every field given the mean is the prediction itself"
