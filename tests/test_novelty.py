"""Tests for tools.novelty (distance to the knowledge base, distance bands, assumed fields) and
for how the meta-model carries them into its predictions.

The model tests fit on a seeded sample of the seed records, as tests/test_metamodel.py does,
once per module; everything else runs on hand-made meta-features and residuals.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from knowledge.schema import ExperimentRecord, MetaFeatures, TrainConfig
from knowledge.store import read_seed
from tools.metamodel import SPREAD_WEIGHT, TIME_WEIGHT, MetaModel, usable
from tools.neighbour_levels import prior
from tools.novelty import (
    MIN_BAND_DATASETS,
    OPEN_FIELDS,
    OPEN_GRID,
    Neighbours,
    band_of,
    beyond_note,
    beyond_range,
    calibrate,
    check_open_fields,
    distance,
    evidence_note,
    majority_note,
    mismatch,
    open_metas,
    vary,
)


def _meta(n: int = 2000, k: int = 2, ratio: float = 2.0, modality: str = "x-ray", body: str | None = "chest",
          resolution: int = 64, channels: int = 1) -> MetaFeatures:
    base = MetaFeatures(n_instances=1000, n_classes=2, imbalance_ratio=1.0, class_entropy=1.0, resolution=resolution,
                        channels=channels, class_size_mean=500, class_size_std=0, class_size_min=500,
                        class_size_max=500, modality=modality, body_part=body, task_type="binary")
    return vary(base, n_instances=n, n_classes=k, imbalance_ratio=ratio)


# ------------------------------------------------------------------------- distance
def test_distance_is_zero_to_itself_and_symmetric() -> None:
    a, b = _meta(), _meta(n=5000, k=4, modality="mri", body="brain")
    assert distance(a, a) == 0.0
    assert distance(a, b) == pytest.approx(distance(b, a))


def test_distance_grows_with_a_modality_mismatch() -> None:
    a = _meta()
    assert mismatch("x-ray", "X-Ray") == 0.0
    assert mismatch("x-ray", "mammography") == pytest.approx(0.5)  # mammography is an x-ray
    assert mismatch("ct", "ct / mri / x-ray (mixed)") == pytest.approx(2 / 3)
    assert mismatch("fundus", "fundus photography") == 0.0 and mismatch("light microscopy", "microscopy") == 0.0
    assert mismatch("unknown", "unknown") == 1.0 and mismatch(None, "chest") == 1.0  # unstated: no evidence it matches
    partial = a.model_copy(update={"modality": "ct / x-ray (mixed)"})
    other = a.model_copy(update={"modality": "ultrasound"})
    assert 0 < distance(a, partial) < distance(a, other) == pytest.approx(1.0)
    assert distance(a, a.model_copy(update={"body_part": "knee"})) == pytest.approx(0.5)


def test_distance_grows_with_size_differences() -> None:
    a = _meta(n=2000)
    sizes = [2000, 4000, 20_000, 200_000]
    d = [distance(a, _meta(n=n)) for n in sizes]
    assert d[0] == 0.0 and d == sorted(d) and len(set(d)) == len(d)
    assert d[2] == pytest.approx(1.0, abs=1e-3)  # a decade of images is one unit
    assert distance(a, _meta(n=200)) == pytest.approx(d[2], abs=1e-3)  # ten times fewer as far as ten times more
    assert distance(a, _meta(k=8)) == pytest.approx(1.0, abs=0.01)  # a factor 4 in classes: one unit


def test_neighbours_name_the_nearest_and_survive_json() -> None:
    metas = {"chest": _meta(), "brain": _meta(modality="mri", body="brain"), "big_chest": _meta(n=20_000)}
    nb = Neighbours.of(metas)
    task = _meta(n=3000)
    near = nb.nearest(task, k=2)
    assert [n for n, _ in near] == ["chest", "big_chest"]
    assert near[0][1] == pytest.approx(distance(task, metas["chest"]), abs=1e-4)
    assert nb.nearest(task, k=1, exclude=["chest"]) == [near[1]]
    again = Neighbours.from_info(nb.to_info())
    assert again == nb and again.nearest(task) == nb.nearest(task)
    held = nb.held_out_distances([["chest", "big_chest"], ["brain"]])
    assert held["chest"] == pytest.approx(distance(metas["chest"], metas["brain"]), abs=1e-4)  # a fold mate is not "other"
    assert held["brain"] == pytest.approx(distance(metas["brain"], metas["chest"]), abs=1e-4)


# ------------------------------------------------------------------------- bands
def _residuals(n_datasets: int, spread: list[float], seed: int = 0) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    dist = {f"d{i:02d}": 0.5 + 0.1 * i for i in range(n_datasets)}
    res = {name: rng.normal(0, spread[i], 40 + 30 * (i % 3)) for i, name in enumerate(dist)}
    return dist, res


def test_bands_are_monotone_outward() -> None:
    # the farthest datasets here erred *less* than the middle ones: their band may not narrow
    dist, res = _residuals(9, [0.02, 0.02, 0.02, 0.15, 0.15, 0.15, 0.01, 0.01, 0.01])
    bands = calibrate(dist, res, (0.05, 0.95))
    assert len(bands["q"]) == 3 and [len(g) for g in bands["datasets"]] == [3, 3, 3]
    for (lo0, hi0), (lo1, hi1) in zip(bands["q"], bands["q"][1:], strict=False):
        assert lo1 <= lo0 and hi1 >= hi0
    assert bands["q"][2] == bands["q"][1]
    assert bands["threshold"] == bands["edges"][0] == pytest.approx((0.7 + 0.8) / 2)
    assert bands["max_measured"] == pytest.approx(1.3)
    assert band_of(bands, 0.0) == 0 and band_of(bands, 1.0) == 1 and band_of(bands, 99.0) == 2


def test_bands_weigh_datasets_equally_and_keep_ties_together() -> None:
    dist = {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5, "e": 0.9, "f": 0.9, "g": 0.9}
    res = {n: np.full(10 if n != "a" else 1000, 0.01 * i) for i, n in enumerate(dist)}
    bands = calibrate(dist, res, (0.05, 0.95))
    assert bands["datasets"][0] == ["a", "b", "c", "d"]  # four at one distance are not split
    # 'a' has 100x the rows of the others yet counts as one dataset of four
    lo, hi = bands["q"][0]
    assert lo < 0.005 and hi > 0.025


def test_too_few_datasets_give_no_bands() -> None:
    dist, res = _residuals(MIN_BAND_DATASETS - 1, [0.1, 0.1])
    bands = calibrate(dist, res, (0.05, 0.95))
    assert bands["q"] == [] and bands["threshold"] is None
    assert evidence_note(bands, 5.0, [("d00", 5.0)]) is None


def test_evidence_note_beyond_the_threshold_names_the_nearest() -> None:
    dist, res = _residuals(9, [0.02] * 3 + [0.1] * 6)
    bands = calibrate(dist, res, (0.05, 0.95))
    assert evidence_note(bands, bands["threshold"] - 0.01, [("d00", 0.6)]) is None
    note = evidence_note(bands, 1.0, [("d03", 1.0), ("d04", 1.05)])
    assert note and "d03 (1.00)" in note and "d04 (1.05)" in note and "widened" in note
    assert "unmeasured" not in note
    far = evidence_note(bands, 5.0, [("d08", 5.0)])
    assert far and "unmeasured" in far and f"{bands['max_measured']:.2f}" in far


# ------------------------------------------------------------------------- assumed fields
def test_open_fields_are_checked_and_varied_consistently() -> None:
    with pytest.raises(ValueError, match="open_fields must be drawn from"):
        check_open_fields(["n_classes", "modality"])
    assert check_open_fields(["channels", "n_classes", "n_classes"]) == ("n_classes", "channels")
    meta = _meta()
    assert open_metas(meta, ()) == []
    grid = open_metas(meta, ["n_classes", "imbalance_ratio"])
    assert len(grid) == len(OPEN_GRID["n_classes"]) * len(OPEN_GRID["imbalance_ratio"])
    for m in grid:
        assert m.n_instances == meta.n_instances and m.modality == meta.modality
        assert m.class_size_min <= m.class_size_max and (m.task_type == "binary") == (m.n_classes == 2)
    assert {m.n_classes for m in grid} == set(OPEN_GRID["n_classes"])
    assert set(OPEN_FIELDS) == {"n_classes", "n_instances", "imbalance_ratio", "resolution", "channels", "probe_accuracy"}
    assert {m.probe_accuracy for m in open_metas(meta, ["probe_accuracy"])} == set(OPEN_GRID["probe_accuracy"])


def test_beyond_range_flags_only_stated_fields_past_the_harder_edge() -> None:
    known = [_meta(n=1000, k=2), _meta(n=5000, k=8, ratio=3.0), _meta(n=3000, k=4)]
    many = _meta(n=2000, k=102)
    found = beyond_range(many, known)
    assert found[0] == "102 classes (the knowledge base's datasets have 2 to 8)"
    assert any("smallest class" in f for f in found)  # 2,000 images over 102 classes: far smaller classes
    assert beyond_range(many, known, open_fields=["n_classes"]) == []  # an assumed count is not the user's
    assert beyond_range(many, known[:2]) == []  # two datasets make no range
    few = beyond_range(_meta(n=200, k=2), known)
    assert few[0] == "200 images (its datasets have 1,000 to 5,000)"
    assert beyond_range(_meta(n=800, k=2), known) == []  # a little past the edge is not flagged
    assert beyond_range(_meta(n=50_000, k=2), known) == []  # more images than any: the easier direction
    note = beyond_note(found, 102)
    assert note is not None and "upper bound" in note and "(0.01)" in note and "102 classes" in note
    assert beyond_note([], 2) is None


def test_a_prediction_below_what_the_largest_class_alone_scores_is_said_to_say_little() -> None:
    known = [_meta(n=1000, k=2), _meta(n=5000, k=8, ratio=3.0), _meta(n=3000, k=3, ratio=2.7)]
    skewed = _meta(n=1500, k=2, ratio=7.3)  # 12 % positives: the largest class holds 88 %
    share = skewed.class_size_max / skewed.n_instances
    note = majority_note(skewed, known, 0.68)
    assert note is not None and f"would score {share:.2f} here" in note and "more than the meta-model predicts" in note
    assert "at most 67 % of the images" in note and "macro F1 and AUC" in note  # the base's most skewed
    assert majority_note(skewed, known, 0.90) is None  # predicted above it: accuracy still says something
    assert majority_note(skewed, known, 0.68, open_fields=["imbalance_ratio"]) is None  # the imbalance was assumed
    # a task no more skewed than the base's datasets: the note, without the claim about the base
    within = majority_note(_meta(n=1000, k=2, ratio=1.5), [*known, _meta(n=900, k=2, ratio=9.0)], 0.5)
    assert within is not None and "less imbalanced" not in within


# ------------------------------------------------------------------------- the meta-model
@pytest.fixture(scope="module")
def records() -> list[ExperimentRecord]:
    recs = read_seed()
    names = {r.dataset.name for r in usable(recs)}
    if len(names) < 2 * MIN_BAND_DATASETS:
        pytest.skip(f"the packaged seed holds {len(names)} datasets; distance bands need {2 * MIN_BAND_DATASETS} (run the sweep)")
    return random.Random(0).sample(recs, min(400, len(recs)))


@pytest.fixture(scope="module")
def model(records: list[ExperimentRecord]) -> MetaModel:
    return MetaModel.fit(records, seed=0)


@pytest.fixture(scope="module")
def known(records: list[ExperimentRecord]) -> ExperimentRecord:
    name = Counter(r.dataset.name for r in usable(records)).most_common(1)[0][0]
    return next(r for r in usable(records) if r.dataset.name == name)


def _stranger(meta: MetaFeatures) -> MetaFeatures:
    """Another modality and body part, and 30x the images: farther than any dataset of the base."""
    return vary(meta, n_instances=meta.n_instances * 30).model_copy(
        update={"modality": "never-seen imaging", "body_part": "nowhere"})


def test_a_known_dataset_is_at_distance_zero(model: MetaModel, known: ExperimentRecord) -> None:
    p = model.predict(known.dataset.meta, [known.config])[0]
    assert p.distance == 0.0 and p.evidence_note is None and p.assumed == ()
    assert p.nearest[0] == (known.dataset.name, 0.0) and len(p.nearest) == 3
    assert [d for _, d in p.nearest] == sorted(d for _, d in p.nearest)


def test_the_fitted_bands_are_monotone(model: MetaModel) -> None:
    bands = model.distance_bands
    assert len(bands["q"]) >= 2 and bands["threshold"] is not None
    assert bands["edges"] == sorted(bands["edges"])
    for (lo0, hi0), (lo1, hi1) in zip(bands["q"], bands["q"][1:], strict=False):
        assert lo1 <= lo0 <= 0 <= hi0 <= hi1


def test_an_unseen_modality_gets_a_wider_interval_and_a_note(model: MetaModel, known: ExperimentRecord) -> None:
    meta = known.dataset.meta
    unseen = meta.model_copy(update={"modality": "never-seen imaging", "body_part": "nowhere"})
    configs = [known.config, TrainConfig(backbone="small_cnn", mode="scratch")]
    near = model.predict(meta, configs)
    far = model.predict(unseen, configs)
    bands = model.distance_bands
    for a, b in zip(near, far, strict=True):
        assert b.distance == pytest.approx(math.sqrt(1 + 0.5**2), abs=1e-3)  # a modality and a body part away
        assert b.distance > bands["threshold"]  # type: ignore[operator]
        assert (b.high - b.low) > (a.high - a.low)
        assert b.evidence_note is not None and "widened" in b.evidence_note
        for name, _ in b.nearest:
            assert name in b.evidence_note
    # beyond the farthest distance leave-one-out measured: the farthest band, and the note says so
    p = model.predict(_stranger(meta), configs[:1])[0]
    assert p.distance is not None and p.distance > bands["max_measured"]
    assert p.evidence_note is not None and "unmeasured" in p.evidence_note
    assert p.accuracy - p.low >= -bands["q"][-1][0] - 1e-9 or p.low == 0.0
    # near a dataset yet not one of them: the band of its distance, and no note within the threshold
    close = vary(meta, n_instances=int(meta.n_instances * 1.3))
    p = model.predict(close, configs[:1])[0]
    assert not model.is_known(close) and 0 < p.distance <= bands["threshold"] and p.evidence_note is None  # type: ignore[operator]


def test_a_task_past_the_edge_of_the_data_is_an_upper_bound_down_to_guessing(model: MetaModel,
                                                                             known: ExperimentRecord) -> None:
    most = max(m.n_classes for m in model._neighbours.metas)
    meta = vary(known.dataset.meta, n_classes=most * 10)
    p = model.predict(meta, [known.config])[0]
    assert p.evidence_note is not None and f"{most * 10} classes" in p.evidence_note and "upper bound" in p.evidence_note
    assert p.low <= 1 / (most * 10) + 1e-9
    stated = model.stated(meta, [known.config])[0]  # what the user is told goes through the same path
    assert stated.evidence_note == p.evidence_note and stated.low <= 1 / (most * 10) + 1e-9
    assumed = model.predict(meta, [known.config], open_fields=["n_classes", "n_instances"])[0]
    assert "upper bound" not in (assumed.evidence_note or "")  # a default is not the user's word


def test_open_fields_widen_the_interval_and_never_narrow_it(model: MetaModel, known: ExperimentRecord,
                                                            records: list[ExperimentRecord]) -> None:
    meta = vary(known.dataset.meta, n_classes=2, n_instances=2000, imbalance_ratio=2.0)  # a text profile's defaults
    configs = [r.config for r in usable(records)[:15]]
    given = model.predict(meta, configs)
    opened = model.predict(meta, configs, open_fields=["n_classes", "imbalance_ratio"])
    for g, o in zip(given, opened, strict=True):
        assert o.accuracy == g.accuracy  # the point is for the meta as given
        assert o.low <= g.low and o.high >= g.high
        assert o.assumed == ("n_classes", "imbalance_ratio") and o.distance == g.distance
    assert sum(o.high - o.low for o in opened) > sum(g.high - g.low for g in given) + 0.01
    more = model.predict(meta, configs, open_fields=["n_classes", "imbalance_ratio", "n_instances"])
    assert all(m.low <= o.low and m.high >= o.high for m, o in zip(more, opened, strict=True))
    with pytest.raises(ValueError, match="open_fields must be drawn from"):
        model.predict(meta, configs, open_fields=["budget"])


def test_candidates_carry_the_distance_and_the_open_fields(model: MetaModel, known: ExperimentRecord) -> None:
    stranger = _stranger(known.dataset.meta)
    plain = model.candidates(stranger, n=3, correct=False)
    opened = model.candidates(stranger, n=3, open_fields=["n_classes"], correct=False)
    assert [c.config for c in plain] == [c.config for c in opened]  # ranked by the prediction as given
    for a, b in zip(plain, opened, strict=True):
        assert a.prediction.evidence_note and a.prediction.nearest == b.prediction.nearest
        assert b.prediction.low <= a.prediction.low and b.prediction.high >= a.prediction.high
        assert b.prediction.assumed == ("n_classes",) and a.prediction.assumed == ()
    # ranked by the corrected predictions (the mean over the open field), they carry the same distance and fields
    for c in model.candidates(stranger, n=3, open_fields=["n_classes"]):
        assert c.prediction.evidence_note and c.prediction.nearest == plain[0].prediction.nearest
        assert c.prediction.assumed == ("n_classes",) and c.prediction.model_accuracy is not None


def test_explain_does_not_credit_an_assumed_field_as_known(model: MetaModel, known: ExperimentRecord) -> None:
    meta = vary(known.dataset.meta, n_classes=2, n_instances=2000, imbalance_ratio=2.0)
    plain = model.explain(meta, known.config)
    opened = model.explain(meta, known.config, open_fields=["imbalance_ratio"])
    assert plain.assumed == () and "imbalance_ratio" in opened.assumed and "n_classes" not in opened.assumed
    assert opened.prediction == pytest.approx(plain.prediction)  # the prediction is for the meta as given
    given = {n: c for n, _, c in plain.contributions}
    averaged = {n: c for n, _, c in opened.contributions}
    for name in set(given) - set(opened.assumed):
        assert averaged[name] == pytest.approx(given[name])
    grid = open_metas(meta, ["imbalance_ratio"])  # the mean over the grid, by the model's own TreeSHAP
    rows = np.vstack([model._explain_row(m, known.config) for m in grid])
    mean = np.asarray(model._explainer.shap_values(rows)).mean(axis=0)  # type: ignore[union-attr]
    from tools.metamodel import ACC_FEATURES

    assert averaged["imbalance_ratio"] == pytest.approx(float(mean[ACC_FEATURES.index("imbalance_ratio")]), abs=1e-6)
    text = opened.text(top=len(opened.contributions))
    assert "imbalance_ratio (assumed, not stated" in text and "imbalance_ratio=" not in text
    # the headline is the model at the assumed values, which the stated accuracy (a mean over them) is not
    assert f"Predicted test accuracy {opened.prediction:.3f} at the assumed values" in text
    assert "at the assumed values" not in plain.text()


def test_save_and_load_keep_the_distances(model: MetaModel, known: ExperimentRecord, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    again = MetaModel.load(tmp_path / "m")
    stranger = _stranger(known.dataset.meta)
    configs = [known.config]
    for meta in (known.dataset.meta, stranger):
        assert again.predict(meta, configs, open_fields=["channels"]) == model.predict(meta, configs, open_fields=["channels"])
    assert again.distance_bands == model.distance_bands
    assert math.isclose(again.distance(stranger), model.distance(stranger))


def test_without_cross_validation_there_is_no_note(records: list[ExperimentRecord], known: ExperimentRecord) -> None:
    quick = MetaModel.fit(records, seed=0, cross_validate=False)
    p = quick.predict(_stranger(known.dataset.meta), [known.config])[0]
    assert p.distance is not None and p.distance > 1 and p.evidence_note is None
    assert 0 <= p.low <= p.accuracy <= p.high <= 1


def test_an_unseen_modality_is_predicted_like_the_known_ones_on_average(model: MetaModel, known: ExperimentRecord) -> None:
    """A modality no record has is missing to the trees; the accuracy model learnt from copies of
    rows with the modality missing, so such a task is predicted within the range the known
    modalities span, not wherever a split's default branch happens to lead."""
    meta = known.dataset.meta
    modalities = model._modalities
    assert len(modalities) >= 2
    known_preds = [model.predict(meta.model_copy(update={"modality": m}), [known.config])[0].accuracy for m in modalities]
    unseen = model.predict(meta.model_copy(update={"modality": "never-seen imaging"}), [known.config])[0].accuracy
    assert min(known_preds) - 1e-6 <= unseen <= max(known_preds) + 1e-6
    shap_unseen = dict((n, c) for n, _, c in model.explain(meta.model_copy(update={"modality": "never-seen imaging"}),
                                                            known.config).contributions)["modality"]
    shap_known = [dict((n, c) for n, _, c in model.explain(meta.model_copy(update={"modality": m}),
                                                           known.config).contributions)["modality"] for m in modalities]
    assert abs(shap_unseen) <= max(abs(c) for c in shap_known) + 1e-9


# ------------------------------------------------ what the nearest datasets reached (tools.neighbour_levels)
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
        assert expected is not None and p.evidence_level == pytest.approx(expected[0]) and p.evidence_runs == expected[1]
    scores = [c.prediction.accuracy - SPREAD_WEIGHT * c.spread - TIME_WEIGHT * np.log10(c.prediction.seconds)
              for c in cands]  # as candidates ranks them
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
