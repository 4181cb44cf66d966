"""Unit tests for tools.metamodel on a sample of the real seed records.

The sample (300 records, seeded) keeps every test fast; the model is fitted once per
module. Skipped, with the reason, while the sweep has not yet written enough runs.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from knowledge.schema import ExperimentRecord, Outcome, TrainConfig
from knowledge.store import read_seed
from tools.metamodel import (
    ACC_FEATURES,
    MAX_PER_PAIR,
    RETRIEVED_MARGIN,
    TIME_WEIGHT,
    Constraints,
    MetaModel,
    _design,
    _diverse,
    _generate,
    _near_duplicate,
    accuracy_target,
    leave_one_dataset_out,
    time_target,
    usable,
)
from tools.metamodel_features import ACC_MARGIN_SHARE, AccMargin, _predict

SAMPLE = 300
MIN_OK = 100


@pytest.fixture(scope="module")
def records() -> list[ExperimentRecord]:
    """A seeded sample of the seed records (all statuses, so the filter is exercised)."""
    recs = read_seed()
    n_ok = sum(r.outcome.status == "ok" for r in recs)
    if n_ok < MIN_OK:
        pytest.skip(f"the packaged seed has {n_ok} ok records; the meta-model tests need at least {MIN_OK} (run the sweep)")
    return random.Random(0).sample(recs, min(SAMPLE, len(recs)))


@pytest.fixture(scope="module")
def model(records: list[ExperimentRecord]) -> MetaModel:
    return MetaModel.fit(records, seed=0)


@pytest.fixture(scope="module")
def task(records: list[ExperimentRecord]) -> ExperimentRecord:
    """A record of the dataset with the most runs in the sample: its task is the test task."""
    name = Counter(r.dataset.name for r in usable(records)).most_common(1)[0][0]
    return next(r for r in records if r.dataset.name == name)


def _frozen_pair(records: list[ExperimentRecord]) -> tuple[str, int]:
    """The most common frozen backbone and its most common input size."""
    frozen = [r.config for r in usable(records) if r.config.mode == "frozen"]
    backbone = Counter(c.backbone for c in frozen).most_common(1)[0][0]
    size = Counter(c.input_size for c in frozen if c.backbone == backbone).most_common(1)[0][0]
    return backbone, size


def test_fit_and_predict_shapes_and_ranges(model: MetaModel, records: list[ExperimentRecord], task: ExperimentRecord) -> None:
    assert model.n_records == len(usable(records))
    assert model.fitted_at
    for key in ("cv_mae_accuracy_known_dataset", "cv_mae_log_seconds", "fit_seconds"):
        assert key in model.metrics
    configs = [r.config for r in records[:25]]
    preds = model.predict(task.dataset.meta, configs)
    assert len(preds) == len(configs)
    for p in preds:
        assert 0.0 <= p.low <= p.accuracy <= p.high <= 1.0
        assert p.seconds > 0 and math.isfinite(p.seconds)
    assert model.predict(task.dataset.meta, []) == []


def test_failed_runs_are_left_out_and_diverged_kept(records: list[ExperimentRecord]) -> None:
    kept = usable(records)
    assert all(r.outcome.status in ("ok", "diverged") for r in kept)
    for r in kept:
        target = accuracy_target(r)
        if r.outcome.status == "diverged":
            m = r.dataset.meta
            assert target == pytest.approx(m.class_size_max / m.n_instances)
        else:
            assert target == r.outcome.test_accuracy


def test_diverged_runs_teach_accuracy_not_time(records: list[ExperimentRecord]) -> None:
    """A diverged run counts at the majority-class share for accuracy and is left out of the time model."""
    base = usable(records)[0]
    diverged = base.model_copy(update={
        "id": "diverged-test-0001",
        "outcome": Outcome(status="diverged", train_seconds=1.0, device="cpu:2 cores", error="loss became nan"),
    })
    failed = base.model_copy(update={
        "id": "failed-test-00001",
        "outcome": Outcome(status="failed", train_seconds=1.0, device="cpu:2 cores", error="out of memory"),
    })
    m = base.dataset.meta
    assert accuracy_target(diverged) == pytest.approx(m.class_size_max / m.n_instances)
    assert usable([base, diverged, failed]) == [base, diverged]
    d = _design([base, diverged, failed])
    assert len(d.y_acc) == 2 and len(d.y_time) == 1


def test_known_dataset_gets_a_narrower_interval(model: MetaModel, task: ExperimentRecord,
                                               records: list[ExperimentRecord]) -> None:
    """On average over the dataset's configs: the known intervals are binned by predicted accuracy
    (a mid-accuracy bin can be wider than a distance band), the unknown ones by distance."""
    meta = task.dataset.meta
    stranger = meta.model_copy(update={"n_instances": meta.n_instances + 7, "modality": "never-seen"})
    assert model.is_known(meta) and not model.is_known(stranger)
    configs = [r.config for r in records if r.dataset.name == task.dataset.name]
    width = lambda m: sum(p.high - p.low for p in model.predict(m, configs)) / len(configs)  # noqa: E731
    assert width(stranger) >= width(meta) - 1e-9


def test_starved_training_is_predicted_worse(model: MetaModel, records: list[ExperimentRecord]) -> None:
    """One epoch at lr=1e-5 leaves a head near its random init; 10 epochs at 1e-3 train it.

    This is the unambiguous direction in the seed runs (checked on the data: on datasets
    where heads learn, lr <= 1e-4.5 with <= 3 epochs scores 20-40 points lower). A large
    learning rate is *not* reliably worse there: SGD at lr ~1 on a linear head oscillates,
    but keeping the best epoch by validation accuracy rescues most of those runs.
    """
    backbone, size = _frozen_pair(records)
    by_dataset: dict[str, list[float]] = {}
    for r in usable(records):
        if r.config.mode == "frozen":
            by_dataset.setdefault(r.dataset.name, []).append(accuracy_target(r))
    name = max(by_dataset, key=lambda n: float(np.std(by_dataset[n])) if len(by_dataset[n]) >= 10 else -1.0)
    meta = next(r.dataset.meta for r in records if r.dataset.name == name)
    common = {"backbone": backbone, "mode": "frozen", "input_size": size, "batch_size": 64, "optimizer": "adam"}
    starved = TrainConfig(**common, learning_rate=1e-5, epochs=1)
    trained = TrainConfig(**common, learning_rate=1e-3, epochs=10)
    p_starved, p_trained = model.predict(meta, [starved, trained])
    assert p_trained.accuracy > p_starved.accuracy + 0.02


def test_candidates_are_valid_ranked_and_within_constraints(model: MetaModel, records: list[ExperimentRecord], task: ExperimentRecord) -> None:
    meta = task.dataset.meta
    free = model.candidates(meta, Constraints(), n=6)
    assert 1 <= len(free) <= 6
    budget = float(np.median([c.prediction.seconds for c in free])) * 1.5
    backbone, _ = _frozen_pair(records)
    allowed = sorted({backbone, "small_cnn"})
    cands = model.candidates(meta, Constraints(budget_seconds=budget, backbones=allowed), n=6)
    assert cands, "some candidate should fit 1.5x the median predicted time"
    assert [c.id for c in cands] == [f"c{i}" for i in range(1, len(cands) + 1)]
    by_id = {r.id: r for r in records}
    for c in cands:
        TrainConfig.model_validate(c.config.model_dump())  # still inside the search space
        assert c.config.backbone in allowed
        assert c.prediction.seconds <= budget and not c.over_budget
        kind, _, rid = c.origin.partition(":")
        assert kind in ("measured", "retrieved") or c.origin == "generated"
        if kind == "measured":  # a config as a successful run of the knowledge base used it
            assert by_id[rid].config.key() == c.config.key() and by_id[rid].outcome.status == "ok"
    scores = [c.prediction.accuracy - c.spread - TIME_WEIGHT * math.log10(c.prediction.seconds) for c in cands]
    assert scores == sorted(scores, reverse=True)  # (SPREAD_WEIGHT 1)
    for i, a in enumerate(free):
        assert not any(_near_duplicate(a.config, b.config) for b in free[i + 1 :])


def test_diversity_caps_each_backbone_and_mode_among_competitive_configs() -> None:
    lite = [TrainConfig(backbone="efficientnet_lite0", mode="frozen", learning_rate=lr, optimizer=opt)
            for opt in ("adam", "sgd", "adamw") for lr in (1e-3, 1e-2)]
    other = [TrainConfig(backbone="efficientnet_lite1", mode="frozen"), TrainConfig(backbone="small_cnn", mode="scratch")]
    ranked = lite + other
    close = _diverse(ranked, [0.90 - 0.001 * i for i in range(len(ranked))], n=4)
    assert Counter((ranked[i].backbone, ranked[i].mode) for i in close)[("efficientnet_lite0", "frozen")] == MAX_PER_PAIR
    assert close == [0, 1, 6, 7]
    assert len(_diverse(ranked, [0.90 - 0.001 * i for i in range(len(ranked))], n=6)) == 6  # then filled, best first
    far = _diverse(ranked, [0.90] * len(lite) + [0.50, 0.40], n=6)
    assert far == [0, 1, 2, 3, 4, 5], "configs far behind the best do not displace good ones just to be represented"


def test_candidates_keep_a_good_retrieved_config(model: MetaModel, records: list[ExperimentRecord], task: ExperimentRecord) -> None:
    runs = sorted((r for r in usable(records) if r.dataset.name == task.dataset.name), key=accuracy_target)
    best_runs = runs[-5:]
    cands = model.candidates(task.dataset.meta, Constraints(), retrieved=best_runs, n=4)
    retrieved = [c for c in cands if c.origin.startswith("retrieved:")]
    assert retrieved
    assert all(c.origin.split(":", 1)[1] in {r.id for r in best_runs} for c in retrieved)
    assert len({c.config.key() for c in cands}) == len(cands)


def test_a_poor_retrieved_config_is_not_forced_in(model: MetaModel, records: list[ExperimentRecord], task: ExperimentRecord) -> None:
    runs = sorted((r for r in usable(records) if r.dataset.name == task.dataset.name), key=accuracy_target)
    cands = model.candidates(task.dataset.meta, Constraints(), retrieved=runs[:1], n=4)
    top = cands[0].prediction.accuracy - TIME_WEIGHT * math.log10(cands[0].prediction.seconds)
    p = model.predict(task.dataset.meta, [runs[0].config])[0]
    assert p.accuracy - TIME_WEIGHT * math.log10(p.seconds) < top - RETRIEVED_MARGIN, "the worst run is predicted poor"
    assert not any(c.origin.startswith("retrieved:") for c in cands)


def test_nothing_fits_the_budget_gives_the_fastest_flagged(model: MetaModel, task: ExperimentRecord) -> None:
    cands = model.candidates(task.dataset.meta, Constraints(budget_seconds=1e-3), n=3)
    assert cands and all(c.over_budget for c in cands)
    secs = [c.prediction.seconds for c in cands]
    assert secs == sorted(secs)


def test_constraints_state_the_rule() -> None:
    with pytest.raises(ValueError, match="device must be one of"):
        Constraints(device="tpu")
    assert Constraints(device="cuda:0").device == "cuda"
    assert Constraints(device="GPU").device == "cuda"
    assert Constraints(device="cuda:NVIDIA H200").device == "cuda:NVIDIA H200"
    assert Constraints(device="cpu:8 cores").device == "cpu:8 cores"
    with pytest.raises(ValueError, match="device must be one of"):
        Constraints(device="cpu:many cores")
    with pytest.raises(ValueError, match="backbones must be drawn from"):
        Constraints(backbones=["vgg16"])


def test_explanation_adds_up_to_the_prediction(model: MetaModel, task: ExperimentRecord) -> None:
    ex = model.explain(task.dataset.meta, task.config)
    raw = float(_predict(model._acc, model._explain_row(task.dataset.meta, task.config))[0])
    assert ex.base_value + sum(c for _, _, c in ex.contributions) == pytest.approx(raw, abs=1e-3)
    assert ex.prediction == pytest.approx(raw, abs=1e-3)
    pred = model.predict(task.dataset.meta, [task.config])[0].accuracy
    assert pred == pytest.approx(min(max(raw, 0.0), 1.0), abs=1e-6)
    assert [name for name, _, _ in ex.contributions] != [] and {n for n, _, _ in ex.contributions} == set(ACC_FEATURES)
    mags = [abs(c) for _, _, c in ex.contributions]
    assert mags == sorted(mags, reverse=True)
    assert dict((n, v) for n, v, _ in ex.contributions)["learning_rate"] == task.config.learning_rate
    text = ex.text(top=3)
    assert "predicted accuracy by" in text and len(text.splitlines()) == 5


def test_shap_matches_xgboost_treeshap(model: MetaModel, task: ExperimentRecord) -> None:
    """shap.TreeExplainer and XGBoost's own pred_contribs (used for global importance) agree, the
    starting line's part added to its two features in both."""
    ex = model.explain(task.dataset.meta, task.config)
    row = model._explain_row(task.dataset.meta, task.config)
    dm = xgb.DMatrix(row, feature_names=list(ACC_FEATURES), feature_types=model._acc.feature_types, enable_categorical=True)
    native = dict(zip(ACC_FEATURES, model._acc.predict(dm, pred_contribs=True)[0][:-1], strict=True))
    line = AccMargin.of(model._acc)
    for name, part in zip(ACC_FEATURES, line.shap(row, ACC_FEATURES)[0], strict=True):
        native[name] += float(part)
    base = line.reference
    for name, _, c in ex.contributions:
        assert c == pytest.approx(native[name], abs=1e-4)
    assert ex.base_value == pytest.approx(base + float(model._acc.predict(dm, pred_contribs=True)[0][-1]), abs=1e-4)


def test_accuracy_model_starts_from_a_line_in_the_probe(model: MetaModel, task: ExperimentRecord) -> None:
    """The accuracy trees learn the rest of a line in the probe and the majority share (kept with the
    booster): an easier-to-separate dataset starts higher, and a missing probe counts as the median."""
    line = AccMargin.of(model._acc)
    assert line is not None and line.share == ACC_MARGIN_SHARE
    assert line.b > 0, "a higher probe accuracy must start higher"
    row = model._explain_row(task.dataset.meta, task.config)
    probe = ACC_FEATURES.index("probe_accuracy")
    lo, hi, missing = row.copy(), row.copy(), row.copy()
    lo[0, probe], hi[0, probe], missing[0, probe] = 0.5, 0.9, math.nan
    assert line(hi, ACC_FEATURES)[0] - line(lo, ACC_FEATURES)[0] == pytest.approx(line.share * line.b * 0.4)
    filled = row.copy()
    filled[0, probe] = line.probe_fill
    assert line(missing, ACC_FEATURES)[0] == pytest.approx(line(filled, ACC_FEATURES)[0])
    # the trees alone are not the prediction: leaving the line out moves it
    assert abs(float(_predict(model._acc, row)[0]) - float(model._acc.inplace_predict(row)[0])) > 0.05
    assert model._time.attr(AccMargin.ATTR) is None  # the time model starts from ln(work), not this line


def test_global_importance(model: MetaModel) -> None:
    top = model.global_importance(5)
    assert len(top) == 5
    assert all(name in ACC_FEATURES for name, _ in top)
    assert [v for _, v in top] == sorted((v for _, v in top), reverse=True)


def test_shap_plot_writes_a_png(model: MetaModel, task: ExperimentRecord, tmp_path: Path) -> None:
    out = model.shap_plot(task.dataset.meta, task.config, tmp_path / "shap.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_load_or_fit_caches_and_refits_on_change(records: list[ExperimentRecord], task: ExperimentRecord, tmp_path: Path) -> None:
    small = usable(records)[:120]
    first = MetaModel.load_or_fit(small, cache_dir=tmp_path)
    again = MetaModel.load_or_fit(small, cache_dir=tmp_path)
    configs = [r.config for r in small[:10]]
    assert again.fitted_at == first.fitted_at and again.metrics == first.metrics
    assert again.predict(task.dataset.meta, configs) == first.predict(task.dataset.meta, configs)
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 1
    changed = MetaModel.load_or_fit(small[:-1], cache_dir=tmp_path)
    assert changed.n_records == first.n_records - 1
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2


def test_leave_one_dataset_out_reports_per_dataset(records: list[ExperimentRecord]) -> None:
    names = [n for n, _ in Counter(r.dataset.name for r in usable(records)).most_common(3)]
    if len(names) < 2:
        pytest.skip("leave-one-dataset-out needs runs of at least two datasets in the sample")
    subset = [r for r in usable(records) if r.dataset.name in names]
    rows = leave_one_dataset_out(subset)
    assert {row["dataset"] for row in rows} <= set(names) and rows
    for row in rows:
        assert row["regret"] >= 0 and 1 <= row["rank"] <= row["n_runs"]
        assert row["best_accuracy"] >= row["chosen_accuracy"]
        assert 0 <= row["mae"] <= 1


def test_dataset_folds_are_bounded_and_keep_datasets_whole() -> None:
    from tools.metamodel import MAX_DATASET_FOLDS, _folds

    groups = [f"d{i % 30}" for i in range(300)]  # 30 datasets, 10 rows each
    by_dataset, rand = _folds(groups, seed=0)

    assert len(by_dataset) == MAX_DATASET_FOLDS and len(rand) == 5
    assert sorted(np.concatenate(by_dataset).tolist()) == list(range(300))  # every row tested once
    for fold in by_dataset:  # a dataset is never split across folds
        names = {groups[i] for i in fold}
        assert sum(1 for g in groups if g in names) == len(fold)
    few = _folds([f"d{i % 3}" for i in range(30)], seed=0)[0]
    assert len(few) == 3  # up to the bound, one fold per dataset


def test_importance_from_a_sample_ranks_the_seed_features_as_all_rows_do() -> None:
    """Global importance on a seeded sample of rows (IMPORTANCE_ROWS; TreeSHAP over all 100k rows
    was 60 s of a refit, bench/scale.py) ranks features as the full computation does."""
    from tools.metamodel import IMPORTANCE_ROWS, _importance

    seed = read_seed()
    if sum(r.outcome.status == "ok" for r in seed) < MIN_OK:
        pytest.skip("the packaged seed has too few ok records (run the sweep)")
    model = MetaModel.fit(seed, cross_validate=False)
    d = _design(seed)
    full = _importance(model._acc, d.x_acc, seed=0, rows=len(d.y_acc))
    if len(d.y_acc) <= IMPORTANCE_ROWS:  # below the bound the model's importance is over all rows
        assert [model._info["importance"][n] for n in ACC_FEATURES] == pytest.approx(full.tolist(), rel=1e-6)
    names = np.array(ACC_FEATURES)
    for s in range(3):  # the product's sample size: on the 3,445-run seed a 500-row sample missed one feature by 13 %
        part = _importance(model._acc, d.x_acc, seed=s,
                           rows=IMPORTANCE_ROWS if len(d.y_acc) > IMPORTANCE_ROWS else len(d.y_acc) // 2)
        # The first four in order, up to near-ties: the sample's k-th feature is worth the full k-th within
        # 10 % (on the 3,031-run seed the 2nd and 3rd are 2 % apart, the 4th and 5th 5 %, and samples swap
        # them; the 6th is worth a third of the 5th).
        assert full[np.argsort(-part)[:4]] == pytest.approx(np.sort(full)[::-1][:4], rel=0.10)
        near_top8 = set(names[full >= 0.85 * np.sort(full)[::-1][7]])  # a feature within 15 % of the 8th may swap in
        assert set(names[np.argsort(-part)][:8]) <= near_top8
        # within 15 %, or 2.5 % of the top feature's for the small ones (a sample's noise scales with the largest)
        assert part[np.argsort(-full)[:8]] == pytest.approx(full[np.argsort(-full)[:8]], rel=0.15, abs=0.025 * full.max())


def test_cross_validation_folds_train_on_a_bounded_sample(records: list[ExperimentRecord],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Above CV_TRAIN_ROWS, each fold's model learns from a seeded sample of its training rows;
    the two boosters of the model itself always learn from every row."""
    import tools.metamodel as tm

    sizes: list[int] = []
    real = tm._train
    monkeypatch.setattr(tm, "_train", lambda x, y, names, seed: sizes.append(len(y)) or real(x, y, names, seed))
    monkeypatch.setattr(tm, "CV_TRAIN_ROWS", 100)
    n = len(usable(records))
    capped = MetaModel.fit(records, seed=0)
    assert sizes[:2] == [n, n]  # accuracy and time boosters
    assert len(sizes) > 2 and max(sizes[2:]) == 100
    again = MetaModel.fit(records, seed=0)
    assert again._info["residuals"] == capped._info["residuals"]  # seeded: the same sample every refit
    sizes.clear()
    monkeypatch.setattr(tm, "CV_TRAIN_ROWS", 10**9)
    MetaModel.fit(records, seed=0)
    assert max(sizes[2:]) > 100


# ----------------------------------------------------------------- partial fine-tuning
def _finetune_with_freeze(records: list[ExperimentRecord], n: int = 60) -> list[ExperimentRecord]:
    """Synthetic finetune runs made from frozen ones, each at freeze 0, 0.5 and 0.9: freezing
    more is faster (seconds x (1 - 0.7 freeze)) and, here, more accurate (+0.2 x freeze)."""
    out = []
    base = [r for r in usable(records) if r.config.mode == "frozen" and r.outcome.status == "ok"][:n]
    for i, r in enumerate(base):
        for share in (0.0, 0.5, 0.9):
            config = r.config.model_copy(update={"mode": "finetune", "freeze": share})
            acc = min(1.0, 0.6 + 0.2 * share + 0.01 * (i % 5))
            outcome = r.outcome.model_copy(update={
                "test_accuracy": acc, "val_accuracy": acc, "feature_seconds": 0.0,
                "train_seconds": 50.0 * config.epochs * (1 - 0.7 * share),
            })
            out.append(r.model_copy(update={"id": f"freeze-{i}-{share}", "config": config, "outcome": outcome}))
    return out


def test_freeze_is_a_feature_that_moves_predictions(records: list[ExperimentRecord]) -> None:
    assert "freeze" in ACC_FEATURES
    synthetic = _finetune_with_freeze(records)
    model = MetaModel.fit(usable(records) + synthetic, seed=0, cross_validate=False)
    meta, config = synthetic[0].dataset.meta, synthetic[0].config
    none, most = model.predict(meta, [config.model_copy(update={"freeze": 0.0}), config.model_copy(update={"freeze": 0.9})])
    assert most.accuracy > none.accuracy + 0.05
    assert most.seconds < 0.7 * none.seconds
    assert model.global_importance(top=len(ACC_FEATURES))[0][1] > 0
    assert dict(model.global_importance(top=len(ACC_FEATURES)))["freeze"] > 0


def test_freezing_more_is_predicted_cheaper_before_any_run_froze(records: list[ExperimentRecord],
                                                                task: ExperimentRecord) -> None:
    """Fitted on the sample's runs that froze nothing (the seed has partial fine-tunes now), the time
    model's work still shrinks with freeze (the frozen blocks' backward pass is skipped: 1 + 2 x
    (1 - freeze) of 3 passes)."""
    unfrozen = [r for r in records if r.config.freeze == 0]
    assert len(unfrozen) < len(records)  # the sample did hold partial fine-tunes
    model = MetaModel.fit(unfrozen, seed=0, cross_validate=False)
    config = TrainConfig(backbone="efficientnet_lite0", mode="finetune", epochs=10)
    full, half = model.predict(task.dataset.meta, [config, config.model_copy(update={"freeze": 0.5})])
    assert half.seconds == pytest.approx(full.seconds * (1 - 2 / 3 * 0.5), rel=1e-3)


def test_finetune_candidates_offer_the_freeze_levels_past_runs_used() -> None:
    spec = {"n": 3, "input_size": [64], "optimizer": ["adam"], "batch_size": [32], "epochs": [10],
            "weight_decay": [0.0], "dropout": [0.0], "scheduler": ["cosine"], "augmentation": ["none", "flip"],
            "label_smoothing": [0.0], "freeze": [0.0, 0.5, 0.9], "log10_lr": [-4.0, -2.0]}
    levels = {c.freeze for c in _generate("efficientnet_lite0/finetune", spec, seed=0)}
    assert levels == {0.0, 0.5, 0.9}
    no_freeze = {k: v for k, v in spec.items() if k != "freeze"}  # a spec from runs that never froze
    assert {c.freeze for c in _generate("efficientnet_lite0/finetune", no_freeze, seed=0)} == {0.0}
    assert {c.freeze for c in _generate("efficientnet_lite0/finetune", None, seed=0)} == {0.0}
    assert {c.freeze for c in _generate("efficientnet_lite0/frozen", {**spec, "augmentation": ["none"]}, seed=0)} == {0.0}
    a = TrainConfig(backbone="efficientnet_lite0", mode="finetune")
    assert not _near_duplicate(a, a.model_copy(update={"freeze": 0.5}))
    assert not _near_duplicate(a.model_copy(update={"freeze": 0.25}), a.model_copy(update={"freeze": 0.5}))
    assert _near_duplicate(a.model_copy(update={"freeze": 0.75}), a.model_copy(update={"freeze": 0.9}))


def test_candidates_of_a_model_that_learnt_freeze_include_partial_freezing(records: list[ExperimentRecord]) -> None:
    synthetic = _finetune_with_freeze(records)
    model = MetaModel.fit(usable(records) + synthetic, seed=0, cross_validate=False)
    cands = model.candidates(synthetic[0].dataset.meta, Constraints(modes=["finetune"]), n=4)
    assert cands and all(c.config.mode == "finetune" for c in cands)
    assert any(c.config.freeze > 0 for c in cands), [c.config.freeze for c in cands]


# ------------------------------------------------------------------------ devices
def test_a_device_without_runs_is_said_to_be_extrapolated(model: MetaModel, records: list[ExperimentRecord],
                                                          task: ExperimentRecord) -> None:
    n_ok = sum(r.outcome.status == "ok" for r in records)
    assert model.device_support("cpu") == n_ok and model.device_support("cpu:16 cores") == n_ok
    assert model.device_support("cuda") == 0 and model.device_support("cuda:NVIDIA H200") == 0
    assert model.device_note("cpu") is None
    cpu, = model.predict(task.dataset.meta, [task.config], device="cpu:2 cores")
    gpu, = model.predict(task.dataset.meta, [task.config], device="cuda:NVIDIA H200")
    assert cpu.device_note is None and cpu.device_support == n_ok
    assert gpu.device == "cuda:NVIDIA H200" and gpu.device_support == 0
    assert gpu.device_note and "no run in the knowledge base came from a GPU" in gpu.device_note
    assert "extrapolated from CPU runs" in gpu.device_note
    cands = model.candidates(task.dataset.meta, Constraints(device="cuda"), n=2)
    assert cands and all(c.prediction.device_note for c in cands)


def test_a_core_count_no_cpu_run_had_says_what_its_times_rest_on(model: MetaModel) -> None:
    """A CPU run backs any CPU, but the time model only knows the core counts its runs had: a count beyond
    them is predicted as theirs, and the note says which way that errs."""
    counted = {int(k) for k in model._info["devices"]["cpu_cores"]}
    assert counted, "the fixture's CPU runs name their cores"
    more, fewer = max(counted) * 8, None if min(counted) == 1 else 1
    note = model.device_note(f"cpu:{more} cores")
    assert note and f"{more}-core CPU" in note and "likely overestimates" in note
    assert all(f"{k} cores (" in note for k in counted)
    if fewer:
        assert "likely underestimates" in (model.device_note(f"cpu:{fewer} cores") or "")
    assert model.device_note(f"cpu:{min(counted)} cores") is None and model.device_note("cpu") is None


def test_runs_from_a_gpu_teach_its_time_and_back_its_predictions(records: list[ExperimentRecord],
                                                                 task: ExperimentRecord) -> None:
    ok = [r for r in usable(records) if r.outcome.status == "ok"]
    gpu_runs = [r.model_copy(update={"id": f"gpu-{i}", "outcome": r.outcome.model_copy(update={
        "device": "cuda:NVIDIA H200", "train_seconds": r.outcome.train_seconds / 20,
        "feature_seconds": r.outcome.feature_seconds / 20})}) for i, r in enumerate(ok[:150])]
    model = MetaModel.fit(usable(records) + gpu_runs, seed=0, cross_validate=False)
    assert model.device_support("cuda:NVIDIA H200") == 150 and model.device_support("cuda") == 150
    assert model.device_note("cuda:NVIDIA H200") is None
    other = model.device_note("cuda:NVIDIA H100")
    assert other and "NVIDIA H100" in other and "NVIDIA H200 (150 runs)" in other
    cpu, gpu = (model.predict(task.dataset.meta, [task.config], device=d)[0] for d in ("cpu:2 cores", "cuda:NVIDIA H200"))
    assert gpu.device_note is None and gpu.seconds < cpu.seconds / 5


# ------------------------------------------------------------------- early stopping
def test_an_early_stopped_run_is_timed_as_the_full_run(records: list[ExperimentRecord]) -> None:
    base = next(r for r in usable(records) if r.outcome.status == "ok" and r.config.epochs >= 4
                and r.outcome.epochs_run in (None, r.config.epochs))  # a run that trained every epoch it was set
    epochs = base.config.epochs
    stopped = base.model_copy(update={"id": "early-stopped-01", "outcome": base.outcome.model_copy(update={
        "epochs_run": epochs // 2, "train_seconds": 100.0, "feature_seconds": 7.0})})
    full = epochs / (epochs // 2) * 100.0 + 7.0
    assert time_target(stopped) == pytest.approx(full)
    assert time_target(base) == pytest.approx(base.outcome.total_seconds)  # a complete run: as measured
    diverged = stopped.model_copy(update={"outcome": stopped.outcome.model_copy(update={"status": "diverged"})})
    assert time_target(diverged) == pytest.approx(107.0)  # not early stopping: no extrapolation
    d = _design([base, stopped])
    assert np.exp(d.y_time[1]) == pytest.approx(full)


# ------------------------------------------------------------------------ the trust region
@pytest.mark.parametrize(("mode", "freeze", "size", "resolution", "epochs", "cell"), [
    ("finetune", 0.9, 32, 64, 30, "finetune/partial/below/long"),
    ("finetune", 0.9, 32, 28, 30, "finetune/partial/at/long"),  # 28 px images at 32: their own size
    ("finetune", 0.0, 128, 64, 9, "finetune/full/above/short"),
    ("finetune", 0.25, 64, 64, 10, "finetune/partial/at/long"),
    ("frozen", 0.0, 224, 64, 3, "frozen/above/short"),
    ("scratch", 0.0, 48, 64, 40, "scratch/at/long"),
])
def test_config_cell_names_the_kind_of_run(mode: str, freeze: float, size: int, resolution: int, epochs: int,
                                           cell: str) -> None:
    from tools.metamodel import config_cell

    config = TrainConfig(backbone="efficientnet_lite0", mode=mode, freeze=freeze, input_size=size, epochs=epochs)
    assert config_cell(config, resolution) == cell


def _kinds_of_finetune(records: list[ExperimentRecord]) -> list[ExperimentRecord]:
    """Synthetic fine-tunes of two kinds only: full ones at 32 px for 2 epochs, accurate (and fast),
    and partial ones at the images' own size for 20 epochs. No run is partial, small and long."""
    out = []
    base = [r for r in usable(records) if r.config.mode == "frozen" and r.dataset.meta.resolution == 64][:60]
    for i, r in enumerate(base):
        for j, update in enumerate(({"freeze": 0.0, "input_size": 32, "epochs": 2},
                                    {"freeze": 0.9, "input_size": 64, "epochs": 20})):
            config = r.config.model_copy(update={"mode": "finetune", **update})
            acc = 0.95 - 0.01 * (i % 5) if j == 0 else 0.7
            outcome = r.outcome.model_copy(update={"test_accuracy": acc, "val_accuracy": acc, "feature_seconds": 0.0,
                                                   "train_seconds": 3.0 * config.epochs * (1 + j)})
            out.append(r.model_copy(update={"id": f"cell-{i}-{j}", "config": config, "outcome": outcome}))
    return out


def test_generated_candidates_stay_where_runs_were_measured(records: list[ExperimentRecord],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The trees add up "32 px is accurate" and "freezing and long training are fine" into a
    partial, small, long fine-tune no run measured; the trust region keeps such generated configs out
    (`measured=False`: every candidate generated), and without it (MIN_CELL_RUNS 0) they come back, so
    the test can fail."""
    import tools.metamodel_candidates as mc
    from tools.metamodel import config_cell

    synthetic = _kinds_of_finetune(records)
    model = MetaModel.fit(synthetic, seed=0, cross_validate=False)
    meta = synthetic[0].dataset.meta
    assert model.cell_support(synthetic[1].config, 64)[0] == len(synthetic) // 2
    assert model.cell_support(synthetic[1].config.model_copy(update={"input_size": 32}), 64) == (0, 0)
    assert model.cell_evidence(synthetic[1].config.model_copy(update={"input_size": 32}), 64) == (
        "partial fine-tunes below the images' own size for 10 epochs or more", 0, 0, False)
    assert model.cell_evidence(synthetic[1].config, 64)[3] is True

    def cells(n: int = 6) -> set[str]:
        return {config_cell(c.config, meta.resolution) for c in model.candidates(meta, n=n, correct=False, measured=False)}

    inside = cells()
    assert inside and inside <= {"finetune/full/below/short", "finetune/partial/at/long"}, inside
    monkeypatch.setattr(mc, "MIN_CELL_RUNS", 0)
    monkeypatch.setattr(mc, "MIN_CELL_DATASETS", 0)
    assert cells(n=40) - {"finetune/full/below/short", "finetune/partial/at/long"}


def test_candidates_are_configs_the_knowledge_base_measured(records: list[ExperimentRecord],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """With the measured pool, every candidate is a config a run used, as it ran: even with the trust
    region off, the partial, small, long fine-tune the trees would add up (the test above) never comes
    back, and each candidate names the run it comes from."""
    import tools.metamodel_candidates as mc
    from tools.metamodel import config_cell

    synthetic = _kinds_of_finetune(records)
    model = MetaModel.fit(synthetic, seed=0, cross_validate=False)
    meta = synthetic[0].dataset.meta
    monkeypatch.setattr(mc, "MIN_CELL_RUNS", 0)
    monkeypatch.setattr(mc, "MIN_CELL_DATASETS", 0)
    by_id = {r.id: r for r in synthetic}
    found = model.candidates(meta, n=40, correct=False)
    assert found
    for c in found:
        assert c.origin.startswith("measured:"), c.origin
        assert by_id[c.origin.removeprefix("measured:")].config.key() == c.config.key()
    assert {config_cell(c.config, meta.resolution) for c in found} <= {"finetune/full/below/short", "finetune/partial/at/long"}


def test_the_measured_pool_keeps_every_datasets_best_first(records: list[ExperimentRecord]) -> None:
    """measured_spec: distinct configs of successful runs, per backbone and mode; under its cap, each
    dataset's best run comes before any dataset's second, so no dataset is crowded out."""
    from tools.metamodel import measured_spec
    from tools.metamodel_candidates import in_band, lr_bands

    bands = lr_bands(records)
    ok = [r for r in records if r.outcome.status == "ok" and r.outcome.test_accuracy is not None and in_band(r.config, bands)]
    pair = Counter(f"{r.config.backbone}/{r.config.mode}" for r in ok).most_common(1)[0][0]
    mine = [r for r in ok if f"{r.config.backbone}/{r.config.mode}" == pair]
    names = sorted({r.dataset.name for r in mine})
    spec = measured_spec(records, per_pair=len(names))
    by_id = {r.id: r for r in records}
    kept = [by_id[rid] for rid, *_ in spec[pair]]
    assert len(kept) == len(names) and {r.dataset.name for r in kept} == set(names)
    for r in kept:  # each dataset's best (the first of its runs with the best test accuracy)
        assert r.outcome.test_accuracy == max(x.outcome.test_accuracy for x in mine if x.dataset.name == r.dataset.name)
    full = measured_spec(records)
    assert all(len({TrainConfig.model_validate(c).key() for _, c, *_ in rows}) == len(rows) for rows in full.values())
    assert all(by_id[rid].outcome.status == "ok" for rows in full.values() for rid, *_ in rows)
    # each row says where its run was and what it reached there: the record's own dataset and test accuracy
    assert all([name, acc] == [by_id[rid].dataset.name, round(by_id[rid].outcome.test_accuracy, 4)]
               for rows in full.values() for rid, _, name, acc in rows)


def test_the_measured_pool_leaves_out_a_learning_rate_good_runs_of_its_kind_never_used() -> None:
    """lr_bands: per optimizer and mode, the central 90 % of the learning rates of runs in their dataset's top quarter,
    widened by half a decade;
    a measured config outside it (a fine-tune with Adam at 0.548, which one small dataset's run got away with) is no
    candidate, and one inside it stays."""
    from tools.metamodel import measured_spec
    from tools.metamodel_candidates import in_band, lr_bands

    records = read_seed()  # the whole seed: the bands need its 20+ good runs per kind
    bands = lr_bands(records)
    low, high = bands["adam/finetune"]
    assert 1e-5 < low < 1e-3 < high < 0.1  # where fine-tuning with Adam works, as practitioners set it
    base = next(r for r in records if r.config.optimizer == "adam" and r.config.mode == "finetune"
                and r.outcome.status == "ok" and r.outcome.test_accuracy is not None)
    wild = base.model_copy(update={"id": "wild-lr-run", "run_key": "wild-lr-key",
                                   "config": base.config.model_copy(update={"learning_rate": 0.548}),
                                   "outcome": base.outcome.model_copy(update={"test_accuracy": 0.999})})
    tame = base.model_copy(update={"id": "tame-lr-run", "run_key": "tame-lr-key",
                                   "config": base.config.model_copy(update={"learning_rate": 0.001, "epochs": 97}),
                                   "outcome": base.outcome.model_copy(update={"test_accuracy": 0.999})})
    assert not in_band(wild.config, bands) and in_band(tame.config, bands)
    ids = {rid for rows in measured_spec([*records, wild, tame]).values() for rid, *_ in rows}
    assert "tame-lr-run" in ids and "wild-lr-run" not in ids


def test_a_measured_candidate_says_which_run_it_comes_from_and_what_that_run_reached(
        model: MetaModel, task: ExperimentRecord, records: list[ExperimentRecord]) -> None:
    """`measured_run`: for a measured candidate, the record its config comes from, that record's dataset and
    test accuracy; nothing for a generated config, an unknown id, or a config changed after the ranking."""
    by_id = {r.id: r for r in records}
    found = [c for c in model.candidates(task.dataset.meta, n=6) if c.origin.startswith("measured:")]
    assert found
    for c in found:
        run = model.measured_run(c.origin, c.config)
        rec = by_id[run["id"]]
        assert rec.config.key() == c.config.key()
        assert run == {"id": rec.id, "dataset": rec.dataset.name, "test_accuracy": round(rec.outcome.test_accuracy, 4)}
        changed = c.config.model_copy(update={"epochs": c.config.epochs + 1})
        assert model.measured_run(c.origin, changed) is None
    assert model.measured_run("generated") is None
    assert model.measured_run("retrieved:" + found[0].origin.removeprefix("measured:")) is None
    assert model.measured_run("measured:no-such-record") is None


def test_a_model_without_cell_counts_still_gives_candidates(model: MetaModel, task: ExperimentRecord) -> None:
    """A model whose info has no `cells` (or a task where no kind of run was measured) ranks every
    generated config rather than none."""
    cells = model._info.pop("cells")
    try:
        assert model.candidates(task.dataset.meta, n=3)
        assert model.cell_evidence(task.config, task.dataset.meta.resolution) is None
    finally:
        model._info["cells"] = cells
    assert all(model._measured(c.config, task.dataset.meta.resolution) or c.origin != "generated"
               for c in model.candidates(task.dataset.meta, n=6))


# ------------------------------------------------------------------------ the spread of dataset-bootstrap models
def _disputed_finetunes(records: list[ExperimentRecord]) -> list[ExperimentRecord]:
    """Frozen runs as they are, plus synthetic partial fine-tunes on which the datasets disagree:
    0.95 on half of them, 0.35 on the other half."""
    base = [r for r in usable(records) if r.config.mode == "frozen"]
    names = sorted({r.dataset.name for r in base})
    out = list(base)
    for i, r in enumerate(base[:120]):
        acc = 0.95 if names.index(r.dataset.name) % 2 else 0.35
        config = r.config.model_copy(update={"mode": "finetune", "freeze": 0.5, "epochs": 20})
        outcome = r.outcome.model_copy(update={"test_accuracy": acc, "val_accuracy": acc})
        out.append(r.model_copy(update={"id": f"disputed-{i}", "config": config, "outcome": outcome}))
    return out


def test_the_spread_is_wide_where_datasets_disagree_and_survives_a_save(records: list[ExperimentRecord],
                                                                        tmp_path: Path) -> None:
    from tools.metamodel import BAGS

    synthetic = _disputed_finetunes(records)
    model = MetaModel.fit(synthetic, seed=0, cross_validate=False)
    assert len(model._bags) == BAGS
    meta = synthetic[0].dataset.meta
    frozen = next(r.config for r in synthetic if r.config.mode == "frozen")
    disputed = next(r.config for r in synthetic if r.id.startswith("disputed"))
    wide, narrow = model.spread(meta, [disputed, frozen])
    assert wide > 0.05 and wide > 2 * narrow, (wide, narrow)
    loaded = MetaModel.load(model.save(tmp_path / "m"))
    assert loaded.spread(meta, [disputed, frozen]) == pytest.approx([wide, narrow])


def test_candidates_rank_by_the_prediction_less_its_spread(model: MetaModel, task: ExperimentRecord) -> None:
    from tools.metamodel import SPREAD_WEIGHT

    cands = model.candidates(task.dataset.meta, n=6)
    assert all(c.spread >= 0 for c in cands) and any(c.spread > 0 for c in cands)
    assert [c.spread for c in cands] == pytest.approx(model.spread(task.dataset.meta, [c.config for c in cands]))
    score = [c.prediction.accuracy - SPREAD_WEIGHT * c.spread - TIME_WEIGHT * math.log10(max(c.prediction.seconds, 1e-3))
             for c in cands]
    assert score == sorted(score, reverse=True)


def test_a_task_without_a_probe_gets_the_spread_of_the_row_it_is_predicted_at(model: MetaModel,
                                                                             task: ExperimentRecord) -> None:
    """A text-only task has no probe: its prediction is made at the base's median probe, and so is its
    spread, in the ranking (candidates) and asked for on its own (spread)."""
    worded = task.dataset.meta.model_copy(update={"probe_accuracy": None})
    at_median = task.dataset.meta.model_copy(update={"probe_accuracy": model._info["probe_median"]})
    cands = model.candidates(worded, n=6)
    configs = [c.config for c in cands]
    assert [c.spread for c in cands] == pytest.approx(model.spread(at_median, configs))
    assert model.spread(worded, configs) == pytest.approx(model.spread(at_median, configs))


def test_fewer_than_three_datasets_fit_no_bootstrap_models(records: list[ExperimentRecord],
                                                           task: ExperimentRecord) -> None:
    two = sorted({r.dataset.name for r in usable(records)})[:2]
    model = MetaModel.fit([r for r in records if r.dataset.name in two], seed=0, cross_validate=False)
    assert model._bags == [] and model.spread(task.dataset.meta, [task.config]) == [0.0]


def test_images_larger_than_any_in_the_base_count_as_its_largest(model: MetaModel, records: list[ExperimentRecord],
                                                                 task: ExperimentRecord) -> None:
    """512 px scans: a 64 px run is 'below their size' in a way no recorded run measured; the kinds are
    judged at the base's largest resolution instead, so frozen heads and fine-tunes stay in the running."""
    largest = model._info["cells_largest_resolution"]
    assert largest == max(r.dataset.meta.resolution for r in usable(records))
    big = task.dataset.meta.model_copy(update={"resolution": 8 * largest})
    config = TrainConfig(backbone="efficientnet_lite0", mode="frozen", input_size=largest, epochs=10)
    assert model.cell_support(config, 8 * largest) == model.cell_support(config, largest)
    assert model.cell_evidence(config, 8 * largest)[0].startswith("frozen-backbone heads at about")
    modes = {c.config.mode for c in model.candidates(big, n=6)}
    assert modes - {"scratch"}, modes
