"""The meta-model: past runs -> predicted test accuracy and wall time of a config on a task.

Two XGBoost regressors learn from the knowledge base, each fitting the median (absolute error;
see `tools.metamodel_features._XGB_PARAMS`):

- **accuracy**: test accuracy from the task's meta-features and the configuration. Runs that
  diverged are real evidence of bad settings and are kept, with the accuracy of a
  constant majority-class classifier as their target (``class_size_max / n_instances``):
  a diverged run leaves the user no better than that, and finite runs that collapse score
  the same, so the two kinds of failure agree. Failed and cancelled runs are left out
  (they say something about the machine, not the settings).
- **time**: ``ln(train_seconds + feature_seconds)`` of the runs that finished, from the same
  features plus the device (its kind, cpu or cuda; the CPU's core count; the GPU's model, a
  category learnt from the records like modality) and three "work" features (log10 of
  pixels, of images seen, of pixel-epochs), boosted from a start of ln(megapixels processed)
  so that the trees learn a cost per unit of work, which carries over to datasets of other
  sizes (see `_margin`; partial freezing shrinks that work, see `_trainable_work`).
  Frozen runs report the one-time feature extraction in ``feature_seconds``, so a first
  run's time is predicted honestly. Diverged runs stopped early: not time evidence. A run
  that early stopping ended (status ok, ``epochs_run < config.epochs``) is: its time target
  is the full run's, ``train_seconds * epochs / epochs_run`` (+ ``feature_seconds``), since
  its per-epoch time is representative and the config it is recorded under asks for all
  the epochs (see `time_target`).

Devices: the user's device is a string like the records' ``outcome.device``: "cpu",
"cpu:8 cores", "cuda", "cuda:0" or "cuda:NVIDIA H200" (see `parse_device`). Trees cannot
extrapolate to a device kind or GPU model no run came from, so `device_support` counts the
runs behind a device and each `Prediction` carries a `device_note` saying when its time is
extrapolated from other devices' runs.

Features keep one readable name per original field (categoricals use XGBoost's native
categorical splits, so SHAP gives one value per field). ``task_type`` and ``pretrained``
are not features: the first is ``n_classes == 2`` and the second is ``mode != "scratch"`` in
every record (``tools.train.resolve`` records a fine-tune without weights as scratch), and a
duplicate feature would only split SHAP credit arbitrarily. ``majority_share`` is added: it
is the chance level every accuracy is measured against. The accuracy model leaves out the raw
size and the class-size statistics (`ACC_LEFT_OUT`): with a dozen datasets they name the
dataset a run came from, and a model that learns names does not carry over to a new task.
Its trees start from a line in the probe accuracy and the majority share (`AccMargin`, half
of the line and half the mean accuracy), which moves an unseen dataset's level with its probe
where trees alone would give it a neighbour's; SHAP splits the line's part between those two.

Interval: a 90 % interval from the empirical 5th/95th percentiles of out-of-fold
residuals. For a task whose meta-features match a dataset in the knowledge base, the
residuals of a random 5-fold split, per quartile of predicted accuracy. For a new task, those
of leave-one-dataset-out folds by distance band (`tools.novelty`): each held-out dataset's
residuals are labelled with its distance to the nearest dataset outside its fold, and a task
gets the band of its own distance to the nearest dataset, so the interval widens as the
task moves away from the evidence; beyond a threshold calibrated on those folds each
prediction carries an `evidence_note` naming the nearest datasets. (Without bands, fewer
than three held-out datasets, the leave-dataset-out residuals per quartile of predicted
accuracy, as before.) Fields the user did not state (`open_fields`) widen the interval to the
union of the intervals over a grid of plausible values (`tools.novelty.OPEN_GRID`). On a large
knowledge base each fold's model learns from a seeded sample of CV_TRAIN_ROWS rows.

Candidates are drawn, per (backbone, mode) the knowledge base has runs of, from the values
those runs used (a seeded random set plus sensible anchors), together with the configs of
retrieved similar runs; then filtered by the constraints, predicted in one batch, ranked
by predicted accuracy with a light preference for speed, and made diverse: among the
configs in the running, at most two per (backbone, mode) and no near-duplicates. A task with
assumed fields has its leaders ranked by, and stated at, their mean prediction over the
plausible values of those fields (`MetaModel.corrected`), not at the defaults filled in for
them; each candidate carries what the nearest datasets' runs of its backbone and mode reached.

Threads: XGBoost runs single-threaded here (``N_THREADS``): on a handful of rows a
second thread only adds synchronisation, and on a busy machine it costs 10x.

Code: this module fits, caches and loads the model (`MetaModel`) and scores it by leave-one-
dataset-out; the rest lives in modules it re-exports: `tools.metamodel_types` (the API types),
`tools.metamodel_features` (encoding, targets, the boosters), `tools.metamodel_predict`
(predictions, intervals by distance, the number stated to the user), `tools.metamodel_candidates`
(generating and ranking configs) and `tools.metamodel_explain` (SHAP).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from knowledge import cache_root
from knowledge.schema import ExperimentRecord, TrainConfig
from tools.metamodel_candidates import (
    CORRECT_PER_PAIR,
    DIVERSITY_MARGIN,
    FREEZE_DISTINCT,
    MAX_PER_PAIR,
    MEASURED_PER_PAIR,
    MIN_CELL_DATASETS,
    MIN_CELL_RUNS,
    POOL_PER_PAIR,
    RETRIEVED_MARGIN,
    SPREAD_WEIGHT,
    TIME_WEIGHT,
    _diverse,
    _generate,
    _near_duplicate,
    _pool_spec,
    _Ranking,
    cell_counts,
    config_cell,
    measured_spec,
)
from tools.metamodel_explain import _Explaining
from tools.metamodel_features import (
    _ROUNDS,
    _XGB_PARAMS,
    ACC_FEATURES,
    CONFIG_FEATURES,
    META_FEATURES,
    N_THREADS,
    TIME_FEATURES,
    UNKNOWN_MODALITY_SHARE,
    AccMargin,
    _config_matrix,
    _design,
    _device_counts,
    _feature_types,
    _predict,
    _probe_median,
    _signature,
    _train,
    accuracy_target,
    time_target,
    usable,
)
from tools.metamodel_predict import INTERVAL, _binned_q, _bounds, _distance_bands, _neighbours, _residual_bins
from tools.metamodel_types import DEVICES, Candidate, Constraints, Device, Explanation, Prediction, parse_device
from tools.neighbour_levels import summarise
from tools.novelty import OPEN_FIELDS, Neighbours, calibrate

# Bump when features, targets or model settings change: it invalidates cached models.
# 5: above IMPORTANCE_ROWS / CV_TRAIN_ROWS usable records, importance and interval residuals
# come from seeded subsamples (same outputs below them, e.g. on the 1,878 seed records).
# 6: `freeze` (partial fine-tuning) is a config feature and scales the time model's work;
# the device is its kind plus CPU cores and GPU model; early-stopped runs' time targets are
# extrapolated to the full run.
# 7: the info keeps each dataset's name and meta (`datasets`) and the residuals of held-out
# datasets by distance band (`residuals.bands`, tools.novelty): intervals widen with distance.
# 8: the threshold is the nearest band's edge (models cached by the code in between put it elsewhere).
# 10: the info keeps each dataset's evidence (`tools.neighbour_levels.summarise`), shown with candidates.
# 11: the accuracy model also learns from a copy of a quarter of its rows with the modality missing.
# 12: the accuracy model leaves out the raw size and the class-size statistics (ACC_LEFT_OUT).
# 13: the accuracy model starts from a line in the probe and the majority share (AccMargin).
# 14: the info counts the runs in each kind of run (`cells`, tools.metamodel_candidates.config_cell).
# 15: BAGS accuracy boosters on bootstrap samples of the datasets (`bags`), whose disagreement ranks.
# 16: the info keeps the largest resolution the kinds of run were counted at (`cells_largest_resolution`).
# 17: both boosters fit the median (reg:absoluteerror, tools.metamodel_features._XGB_PARAMS).
# 18: the info keeps the measured pool (`measured`, tools.metamodel_candidates.measured_spec): candidates
# are configs past runs used.
# 19: each measured config keeps the dataset its run was on and the test accuracy it reached there.
# 20: the measured pool keeps configs whose learning rate lies where good runs of their kind put theirs (lr_bands).
FEATURE_VERSION = 20


# Accuracy boosters fitted on bootstrap samples of the datasets (whole datasets drawn with
# replacement): their spread on a config is how much the prediction depends on which datasets
# the knowledge base happens to hold, the uncertainty a new dataset meets. Candidates are ranked by
# the prediction minus that spread (tools.metamodel_candidates.SPREAD_WEIGHT). Picks among each
# held-out dataset's recorded runs (`python -m bench.calibration`, the 2,861-run seed): regret
# 0.034 -> 0.027, stated above real 0.019 -> 0.010.
BAGS = 6


# Global importance (mean |SHAP|) is computed on at most this many training rows, a seeded
# sample: TreeSHAP over all rows was 60 s of a 100k-record refit, and on the 100k store a
# 2,000-row sample gives the same top-10 features in the same order (bench/scale.py).
IMPORTANCE_ROWS = 2000


# Each cross-validation fold trains on at most this many of its training rows (a seeded sample):
# the 18 fold fits on 80-88k rows each were most of a 100k-record refit with CV (the 13 accuracy
# folds: 27 s, bounded 8.8 s), and on that store the interval quantiles moved by at most 0.002
# and the CV MAE by 0.0004 (bench/scale.py compares the two fits).
CV_TRAIN_ROWS = 20_000


MODEL_FILES = ("accuracy.ubj", "seconds.ubj")
BAG_FILE = "accuracy-bag{}.ubj"


META_FILE = "meta.json"


MAX_DATASET_FOLDS = 8  # beyond this many datasets, several share a fold (the cost is one fit per fold)


def _folds(groups: Sequence[str], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Test-index folds: leave-datasets-out (one dataset per fold, or with more than
    MAX_DATASET_FOLDS datasets, that many folds of whole datasets), and 5 random ones.

    Bounded because each fold is a full fit: one fold per dataset made a 400-dataset
    knowledge base's refit take hours (bench/scale.py).
    """
    n = len(groups)
    by_dataset: list[np.ndarray] = []
    names = sorted(set(groups))
    if len(names) >= 2:
        arr = np.array(groups)
        if len(names) > MAX_DATASET_FOLDS:
            order = np.random.default_rng(seed).permutation(len(names))
            fold_of = {names[j]: i % MAX_DATASET_FOLDS for i, j in enumerate(order)}
            ids = np.array([fold_of[g] for g in groups])
            by_dataset = [np.flatnonzero(ids == k) for k in range(MAX_DATASET_FOLDS)]
        else:
            by_dataset = [np.flatnonzero(arr == g) for g in names]
    rand: list[np.ndarray] = []
    if n >= 20:
        perm = np.random.default_rng(seed).permutation(n)
        rand = [perm[i::5] for i in range(5)]
    return by_dataset, rand


def _oof(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], names: Sequence[str], seed: int) -> np.ndarray:
    """Out-of-fold predictions (NaN where a row is in no fold); each fold's model is trained on
    at most CV_TRAIN_ROWS of the other rows, a seeded sample."""
    out = np.full(len(y), np.nan)
    rng = np.random.default_rng(seed)
    for test in folds:
        train = np.ones(len(y), dtype=bool)
        train[test] = False
        rows = np.flatnonzero(train)
        if len(rows) < 2:
            continue
        if len(rows) > CV_TRAIN_ROWS:
            rows = np.sort(rng.choice(rows, CV_TRAIN_ROWS, replace=False))
        out[test] = _predict(_train(x[rows], y[rows], names, seed), x[test])
    return out


def _importance(booster: xgb.Booster, x: np.ndarray, seed: int, rows: int | None = None) -> np.ndarray:
    """Mean |SHAP| per feature over the rows of `x`, or a seeded sample of `rows` of them
    (IMPORTANCE_ROWS by default). XGBoost's own TreeSHAP: the same values as
    shap.TreeExplainer, without importing shap."""
    rows = IMPORTANCE_ROWS if rows is None else rows
    if len(x) > rows:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), rows, replace=False))]
    contribs = booster.predict(
        xgb.DMatrix(x, feature_names=list(ACC_FEATURES), feature_types=_feature_types(ACC_FEATURES),
                    enable_categorical=True),
        pred_contribs=True,
    )[:, :-1]
    line = AccMargin.of(booster)
    if line is not None:  # the starting line's part is the features' too
        contribs += line.shap(x, ACC_FEATURES)
    return np.asarray(np.abs(contribs).mean(axis=0), dtype=np.float64)


def _records_key(records: Sequence[ExperimentRecord], seed: int) -> str:
    h = hashlib.sha256(f"v{FEATURE_VERSION}|seed{seed}|n{len(records)}|".encode())
    for rid in sorted(r.id for r in records):
        h.update(rid.encode())
        h.update(b"\n")
    return h.hexdigest()[:24]


def default_cache_dir() -> Path:
    """`knowledge.cache_root()`/metamodel."""
    return cache_root() / "metamodel"


class MetaModel(_Ranking, _Explaining):
    """Predicts test accuracy and wall time of configurations for a task, and explains them.

    Build with `fit` or `load_or_fit`. Attributes:
        n_records: records the model learnt from (ok + diverged).
        fitted_at: ISO time of the fit.
        metrics: cross-validated errors (see `fit`) and the fit time.
    """

    def __init__(self, acc: xgb.Booster, seconds: xgb.Booster, info: dict[str, Any],
                 bags: Sequence[xgb.Booster] = ()) -> None:
        self._acc = acc
        self._time = seconds
        self._bags = list(bags)
        self._info = info
        self.n_records: int = info["n_records"]
        self.fitted_at: str = info["fitted_at"]
        self.metrics: dict[str, Any] = info["metrics"]
        self._modalities: list[str] = info["modalities"]
        self._gpus: list[str] = info["gpus"]
        self._known = {json.dumps(s) for s in info["known_datasets"]}
        self._neighbours = Neighbours.from_info(info["datasets"])
        self._explainer: Any | None = None
        self._pool: dict[str, tuple[list[TrainConfig], np.ndarray]] = {}  # per pair, built on first use
        self._measured_pool: dict[str, tuple[list[TrainConfig], list[str], np.ndarray]] = {}
        # record id -> its measured_spec row (where a measured candidate's config ran, and what it reached there)
        self._measured_runs: dict[str, list[Any]] = {row[0]: row for rows in info.get("measured", {}).values()
                                                     for row in rows}

    @classmethod
    def fit(cls, records: Sequence[ExperimentRecord], *, seed: int = 0, cross_validate: bool = True) -> MetaModel:
        """Fit both models on `records` (ok and diverged runs; others are ignored).

        Args:
            records: knowledge-base records.
            seed: seeds XGBoost's row/column sampling and the random folds.
            cross_validate: compute out-of-fold residuals for the intervals and `metrics`
                (leave-one-dataset-out and random 5-fold; each fold trains on at most
                CV_TRAIN_ROWS rows), and the distance bands and threshold of the intervals
                (`tools.novelty.calibrate`). False is 2-4x faster; intervals then come from
                in-sample residuals and are too narrow, and no evidence note is ever given:
                for evaluation loops only.

        Raises:
            ValueError: fewer than 10 usable records.
        """
        start = time.perf_counter()
        records = list(records)
        d = _design(records)
        neighbours = _neighbours(records)
        if len(d.y_acc) < 10 or len(d.y_time) < 5:
            raise ValueError(
                f"the meta-model needs at least 10 ok/diverged records (5 ok), but got {len(d.y_acc)} "
                f"({len(d.y_time)} ok); run the sweep (`metallmix sweep`) or import records first."
            )
        acc = _train(d.x_acc, d.y_acc, ACC_FEATURES, seed)
        seconds = _train(d.x_time, d.y_time, TIME_FEATURES, seed)
        bags = _bags(d.x_acc, d.y_acc, d.groups_acc, seed)
        metrics: dict[str, Any] = {"n_accuracy_rows": len(d.y_acc), "n_time_rows": len(d.y_time),
                                   "n_datasets": len(set(d.groups_acc))}
        if cross_validate:
            by_ds, rand = _folds(d.groups_acc, seed)
            oof_new = _oof(d.x_acc, d.y_acc, by_ds, ACC_FEATURES, seed) if by_ds else np.full(len(d.y_acc), np.nan)
            oof_in = _oof(d.x_acc, d.y_acc, rand, ACC_FEATURES, seed) if rand else np.full(len(d.y_acc), np.nan)
            _, rand_t = _folds(d.groups_time, seed)
            oof_t = _oof(d.x_time, d.y_time, rand_t, TIME_FEATURES, seed) if rand_t else np.full(len(d.y_time), np.nan)
            metrics.update(
                cv_mae_accuracy_known_dataset=_mae(oof_in, d.y_acc),
                cv_mae_accuracy_new_dataset=_mae(oof_new, d.y_acc),
                cv_mae_log_seconds=_mae(oof_t, d.y_time),
            )
            if not math.isnan(metrics["cv_mae_log_seconds"]):
                metrics["cv_seconds_error_factor"] = round(math.exp(metrics["cv_mae_log_seconds"]), 3)
            fallback = oof_in if rand else _predict(acc, d.x_acc)
            residuals = {
                "known": _residual_bins(fallback, d.y_acc),
                "new": _residual_bins(oof_new if by_ds else fallback, d.y_acc),
                "bands": _distance_bands(neighbours, d.groups_acc, by_ds, d.y_acc - oof_new),
            }
        else:  # no held-out datasets: no bands, so no threshold and no evidence notes
            in_sample = _residual_bins(_predict(acc, d.x_acc), d.y_acc)
            residuals = {"known": in_sample, "new": in_sample, "bands": calibrate({}, {}, INTERVAL)}
        importance = _importance(acc, d.x_acc, seed)
        metrics["fit_seconds"] = round(time.perf_counter() - start, 3)
        info = {
            "feature_version": FEATURE_VERSION,
            "seed": seed,
            "n_records": len(d.y_acc),
            "fitted_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "metrics": metrics,
            "modalities": d.modalities,
            "gpus": d.gpus,
            "devices": _device_counts(usable(records)),
            # one json.dumps per dataset, not per record (0.5 s at 100k records)
            "known_datasets": sorted({json.dumps(list(s)) for s in {tuple(_signature(r.dataset.meta)) for r in usable(records)}}),
            "residuals": residuals,
            "datasets": neighbours.to_info(),
            "pool": _pool_spec(records),
            "measured": measured_spec(records),
            "cells": cell_counts(records),
            "cells_largest_resolution": max((r.dataset.meta.resolution for r in usable(records)), default=None),
            "importance": {n: float(v) for n, v in zip(ACC_FEATURES, importance, strict=True)},
            "probe_median": _probe_median(records),
            "evidence": summarise((r.dataset.name, f"{r.config.backbone}/{r.config.mode}", accuracy_target(r))
                                  for r in usable(records)),
            "xgboost": xgb.__version__,
        }
        info["known_datasets"] = [json.loads(s) for s in info["known_datasets"]]
        info["bags"] = len(bags)
        return cls(acc, seconds, info, bags)

    @classmethod
    def load_or_fit(cls, records: Sequence[ExperimentRecord], cache_dir: Path | None = None) -> MetaModel:
        """The model for exactly these records: from the disk cache, else fitted and cached.

        The cache key hashes the record ids, their count and FEATURE_VERSION, so a changed
        knowledge base refits. Default folder: `default_cache_dir()`.
        """
        records = list(records)
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        key = _records_key(records, seed=0)
        folder = root / key
        if (folder / META_FILE).is_file():
            try:
                return cls.load(folder)
            except (OSError, ValueError, KeyError, xgb.core.XGBoostError):
                shutil.rmtree(folder, ignore_errors=True)  # a damaged cache is refitted, never trusted
        model = cls.fit(records, seed=0)
        try:
            model.save(folder)
            _prune(root, keep=folder)
        except OSError:
            pass  # a read-only cache only costs the next caller a refit
        return model

    def save(self, folder: Path) -> Path:
        """Write the two boosters (XGBoost UBJSON) and a metadata JSON, atomically."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self._acc.save_model(str(tmp / MODEL_FILES[0]))
        self._time.save_model(str(tmp / MODEL_FILES[1]))
        for i, bag in enumerate(self._bags):
            bag.save_model(str(tmp / BAG_FILE.format(i)))
        (tmp / META_FILE).write_text(json.dumps(self._info))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race with the same content
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: Path) -> MetaModel:
        """Load a model written by `save`.

        Raises:
            ValueError: written by a different feature version.
        """
        info = json.loads((Path(folder) / META_FILE).read_text())
        if info.get("feature_version") != FEATURE_VERSION:
            raise ValueError(
                f"cached meta-model has feature_version={info.get('feature_version')!r}, "
                f"but this code needs {FEATURE_VERSION}; it will be refitted."
            )
        boosters = []
        for name in (*MODEL_FILES, *(BAG_FILE.format(i) for i in range(int(info.get("bags", 0))))):
            b = xgb.Booster()
            b.load_model(str(Path(folder) / name))
            b.set_param({"nthread": N_THREADS})
            boosters.append(b)
        return cls(boosters[0], boosters[1], info, boosters[2:])


def _bags(x: np.ndarray, y: np.ndarray, groups: Sequence[str], seed: int, n: int = BAGS) -> list[xgb.Booster]:
    """`n` accuracy boosters, each on a bootstrap sample of the datasets (see BAGS); none below 3 datasets."""
    names = sorted(set(groups))
    if len(names) < 3:
        return []
    rows = {name: np.flatnonzero(np.asarray(groups) == name) for name in names}
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        idx = np.concatenate([rows[names[j]] for j in rng.integers(0, len(names), len(names))])
        if len(idx) > CV_TRAIN_ROWS:  # bounded as the cross-validation folds are
            idx = rng.choice(idx, CV_TRAIN_ROWS, replace=False)
        out.append(_train(x[idx], y[idx], ACC_FEATURES, seed + i))
    return out


def _mae(pred: np.ndarray, y: np.ndarray) -> float:
    keep = ~np.isnan(pred)
    return round(float(np.abs(pred[keep] - y[keep]).mean()), 5) if keep.any() else float("nan")


def _prune(root: Path, keep: Path, max_models: int = 4) -> None:
    """Remove all but the newest cached models."""
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for p in folders[max_models:]:
        if p != keep:
            shutil.rmtree(p, ignore_errors=True)


def leave_one_dataset_out(records: Sequence[ExperimentRecord], *, seed: int = 0) -> list[dict[str, Any]]:
    """For each dataset D: fit without D, then score the model on D's recorded runs.

    Per dataset: `mae` of predicted vs true test accuracy over D's ok runs; `mae_log_seconds`;
    `spearman` between predicted and true accuracy; the recorded config the model ranks
    highest (same score as `candidates`: accuracy minus its spread and TIME_WEIGHT per decade of seconds),
    its true accuracy, the best recorded one's, `regret` (best minus chosen), `rank` of the
    chosen among D's runs (1 = best; diverged runs count at the majority-class share) and
    `random_regret`, the expected regret of picking a recorded run at random.
    """
    recs = usable(records)
    names = sorted({r.dataset.name for r in recs})
    out: list[dict[str, Any]] = []
    for name in names:
        test = [r for r in recs if r.dataset.name == name]
        train = [r for r in recs if r.dataset.name != name]
        if len(train) < 10:
            continue
        model = MetaModel.fit(train, seed=seed, cross_validate=False)
        meta = test[0].dataset.meta
        preds = model.predict(meta, [r.config for r in test])
        acc = np.array([p.accuracy for p in preds])
        secs = np.array([p.seconds for p in preds])
        truth = np.array([accuracy_target(r) for r in test])
        ok = np.array([r.outcome.status == "ok" for r in test])
        true_secs = np.array([time_target(r) for r in test])
        spread = SPREAD_WEIGHT * np.array(model.spread(meta, [r.config for r in test]))
        score = acc - spread - TIME_WEIGHT * np.log10(np.maximum(secs, 1e-3))
        chosen = int(np.argmax(score))
        best = float(truth.max())
        out.append({
            "dataset": name,
            "n_runs": len(test),
            "mae": _mae(acc[ok], truth[ok]),
            "mae_log_seconds": _mae(np.log(secs[ok]), np.log(np.maximum(true_secs[ok], 0.01))),
            "spearman": _spearman(acc, truth),
            "chosen_id": test[chosen].id,
            "chosen": _short(test[chosen].config),
            "chosen_accuracy": float(truth[chosen]),
            "chosen_seconds": float(true_secs[chosen]),
            "best_accuracy": best,
            "regret": round(best - float(truth[chosen]), 5),
            "rank": int(1 + (truth > truth[chosen]).sum()),
            "random_regret": round(best - float(truth.mean()), 5),
        })
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (ties averaged); NaN when either side is constant."""
    from scipy.stats import rankdata

    if len(a) < 3:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return round(float(np.corrcoef(ra, rb)[0, 1]), 4)


def _short(c: TrainConfig) -> str:
    return (f"{c.backbone}/{c.mode} {c.input_size}px {c.optimizer} lr={c.learning_rate:g} bs={c.batch_size} "
            f"ep={c.epochs}" + (f" freeze={c.freeze:g}" if c.freeze else ""))


__all__ = [
    "OPEN_FIELDS", "Candidate", "Constraints", "Device", "Explanation", "MetaModel", "Prediction", "accuracy_target",
    "default_cache_dir", "leave_one_dataset_out", "parse_device", "time_target", "usable",
    # the settings and helpers of the modules split off this one, as callers, tests and benches import them here
    "ACC_FEATURES", "CONFIG_FEATURES", "CORRECT_PER_PAIR", "DEVICES", "DIVERSITY_MARGIN", "FREEZE_DISTINCT", "INTERVAL",
    "MAX_PER_PAIR", "MEASURED_PER_PAIR", "META_FEATURES", "MIN_CELL_DATASETS", "MIN_CELL_RUNS", "N_THREADS", "POOL_PER_PAIR", "RETRIEVED_MARGIN", "SPREAD_WEIGHT", "TIME_FEATURES", "TIME_WEIGHT",
    "UNKNOWN_MODALITY_SHARE", "_ROUNDS", "_XGB_PARAMS", "_binned_q", "_bounds", "_config_matrix", "_design", "_diverse",
    "_feature_types", "_generate", "_near_duplicate", "_predict", "_train", "cell_counts", "config_cell", "measured_spec",
]
