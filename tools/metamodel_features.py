"""The meta-model's features and targets: records and tasks encoded as the XGBoost matrices
(one readable column per field, categoricals native), the time model's work margin, and the
boosters' training and prediction. Part of `tools.metamodel`, whose docstring describes the model."""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import xgboost as xgb

from knowledge.schema import ExperimentRecord, MetaFeatures, TrainConfig
from knowledge.space import AUGMENTATIONS, BACKBONES, MODES, OPTIMIZERS, SCHEDULERS
from tools.metamodel_types import DEVICES, Device, parse_device

# XGBoost threads. Measured at 100k rows with another process on the second core: one accuracy
# booster took 3.1 s with 1 thread and 26 s with 2 (bench/scale.py's store, while bench/lodo ran).
N_THREADS = 1


# Share of the accuracy model's rows copied with the modality missing (see `_unknown_modality_copies`).
UNKNOWN_MODALITY_SHARE = 0.25


# Both boosters fit the median (absolute error), not the mean: what is judged is the point
# prediction's absolute error, and a held-out dataset's runs include diverged and collapsed ones
# whose targets sit far from the rest. `python -m bench.metamodel --booster` on the 3,170-run seed
# (13 datasets, XGBoost seeds 0-2): MAE per held-out dataset 0.0783 -> 0.0738, top-1 regret among
# its runs 0.043 -> 0.036 (top-5 0.047 -> 0.054); the fits take 1.7x as long. The time model's CV
# error of ln seconds went 0.159 -> 0.147 (`bench.metamodel`'s "cross-validated errors").
_XGB_PARAMS: dict[str, Any] = {
    "objective": "reg:absoluteerror",
    "eta": 0.05,
    "max_depth": 4,  # leave-one-dataset-out: as good as depth 6-8 (MAE, rank correlation), 3x cheaper
    "min_child_weight": 2,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "max_cat_to_onehot": 1,
    "max_bin": 128,
    "tree_method": "hist",
    "nthread": N_THREADS,
}


_ROUNDS = 400


# Meta-features, in column order; `modality` is categorical (its categories come from the data).
META_FEATURES = (
    "n_instances", "n_classes", "imbalance_ratio", "class_entropy", "majority_share", "resolution", "channels",
    "class_size_mean", "class_size_std", "class_size_min", "class_size_max", "modality", "probe_accuracy",
)


CONFIG_FEATURES = (
    "backbone", "mode", "input_size", "optimizer", "learning_rate", "batch_size", "epochs", "weight_decay",
    "dropout", "scheduler", "augmentation", "label_smoothing", "freeze",
)


# The device: its kind (cpu/cuda, a fixed category), the CPU's core count (NaN on a GPU) and
# the GPU's model (a category learnt from the records, like modality; NaN on a CPU).
DEVICE_FEATURES = ("device", "device_cpu_cores", "device_gpu")


TIME_EXTRA = DEVICE_FEATURES + ("backbone_params_m", "log10_pixels", "log10_images_seen", "log10_pixel_epochs")


# Derived from both: how many optimizer steps the run takes (training images / batch size x epochs).
# A small dataset with a large batch gets few steps and underfits at a modest learning rate,
# a three-way interaction trees find hard to learn from 8 datasets on their own.
DERIVED_FEATURES = ("optimizer_steps",)


# One row per (task, config): what `_row_matrix` builds and the time model reads.
ROW_FEATURES = META_FEATURES + CONFIG_FEATURES + DERIVED_FEATURES


# Left out of the accuracy model. With a dozen datasets, the raw size and the four class-size
# statistics single out the dataset a row came from, and the trees learnt "this dataset" instead
# of what carries over to a new one (the class count, imbalance, majority share and entropy,
# which stay, describe the label distribution without naming the set). `python -m bench.metamodel
# --features` on the 2,832-run seed, leave-one-dataset-out, mean of XGBoost seeds 0-2: point error
# 0.086 -> 0.081 over runs and 0.094 -> 0.087 over datasets; the ranking of a held-out dataset's
# runs unchanged (Spearman 0.61 -> 0.62, top-5 regret 0.059 both). The size still reaches the
# model through `optimizer_steps`, and the time model keeps every column.
ACC_LEFT_OUT = ("n_instances", "class_size_mean", "class_size_std", "class_size_min", "class_size_max")


ACC_FEATURES = tuple(f for f in ROW_FEATURES if f not in ACC_LEFT_OUT)


_ACC_COLUMNS = np.array([ROW_FEATURES.index(f) for f in ACC_FEATURES])


TIME_FEATURES = ROW_FEATURES + TIME_EXTRA


# Fixed category lists (codes stay stable when new runs arrive); modality is learnt.
_FIXED_CATEGORIES: dict[str, tuple[str, ...]] = {
    "backbone": tuple(BACKBONES),
    "mode": MODES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "augmentation": AUGMENTATIONS,
    "device": DEVICES,
}


def _code(categories: Sequence[str], value: str) -> float:
    try:
        return float(categories.index(value))
    except ValueError:  # unseen category: missing, XGBoost sends it the default way
        return math.nan


def _meta_row(meta: MetaFeatures, modalities: Sequence[str]) -> np.ndarray:
    return np.array(
        [
            meta.n_instances, meta.n_classes, meta.imbalance_ratio, meta.class_entropy,
            meta.class_size_max / meta.n_instances, meta.resolution, meta.channels, meta.class_size_mean,
            meta.class_size_std, meta.class_size_min, meta.class_size_max, _code(modalities, meta.modality),
            math.nan if meta.probe_accuracy is None else meta.probe_accuracy,
        ],
        dtype=np.float64,
    )


def _n_train(meta: MetaFeatures) -> float:
    """Training images: the recorded split, else the usual 70 % of all images."""
    return float(meta.split_sizes.get("train") or max(1, round(0.7 * meta.n_instances)))


def _row_matrix(meta_block: np.ndarray, n_train: np.ndarray, cfg_cols: np.ndarray) -> np.ndarray:
    """ROW_FEATURES: meta-feature columns, config columns, then the derived columns (DERIVED_FEATURES)."""
    batch = np.minimum(cfg_cols[:, CONFIG_FEATURES.index("batch_size")], n_train)
    steps = np.ceil(n_train / batch) * cfg_cols[:, CONFIG_FEATURES.index("epochs")]
    return np.hstack([meta_block, cfg_cols, steps[:, None]])


def _acc_columns(x_row: np.ndarray) -> np.ndarray:
    """The accuracy model's columns (ACC_FEATURES) of a `_row_matrix`."""
    return x_row[:, _ACC_COLUMNS]


def _config_row(c: TrainConfig) -> list[float]:
    cats = _FIXED_CATEGORIES
    return [
        _code(cats["backbone"], c.backbone), _code(cats["mode"], c.mode), c.input_size,
        _code(cats["optimizer"], c.optimizer), math.log10(c.learning_rate), c.batch_size, c.epochs, c.weight_decay,
        c.dropout, _code(cats["scheduler"], c.scheduler), _code(cats["augmentation"], c.augmentation),
        c.label_smoothing, c.freeze,
    ]


def _config_matrix(configs: Sequence[TrainConfig]) -> np.ndarray:
    return np.array([_config_row(c) for c in configs], dtype=np.float64).reshape(len(configs), len(CONFIG_FEATURES))


_PARAMS_M = np.array([BACKBONES[b]["params_m"] for b in BACKBONES], dtype=np.float64)


_I = {name: i for i, name in enumerate(ROW_FEATURES)}  # (TIME_FEATURES starts with these)


def _device_row(d: Device, gpus: Sequence[str]) -> list[float]:
    """DEVICE_FEATURES of one device: kind code, CPU cores (NaN on a GPU or when unknown), GPU
    model code (NaN on a CPU, for an unnamed GPU, or a model no record came from)."""
    cores = float(d.cores) if d.kind == "cpu" and d.cores else math.nan
    gpu = _code(gpus, d.gpu) if d.kind == "cuda" and d.gpu else math.nan
    return [_code(DEVICES, d.kind), cores, gpu]


def _time_extra(x_row: np.ndarray, device: Device | Sequence[Device], gpus: Sequence[str]) -> np.ndarray:
    """The time model's extra columns for the rows of a `_row_matrix` (one device, or one per row)."""
    devices = [device] * len(x_row) if isinstance(device, Device) else list(device)
    n = x_row[:, _I["n_instances"]]
    size = x_row[:, _I["input_size"]]
    epochs = x_row[:, _I["epochs"]]
    backbone = x_row[:, _I["backbone"]].astype(int)
    dev = np.array([_device_row(d, gpus) for d in devices], dtype=np.float64).reshape(len(devices), len(DEVICE_FEATURES))
    return np.column_stack(
        [dev, _PARAMS_M[backbone], np.log10(n * size**2), np.log10(n * epochs), np.log10(n * epochs * size**2)]
    )


def _record_device(text: str) -> Device:
    """A record's device; a string `parse_device` cannot read (a literature record's free text)
    counts as a CPU of unknown cores, as before devices were parsed."""
    try:
        return parse_device(text)
    except ValueError:
        return Device("cuda" if re.search(r"cuda|gpu|nvidia", text, re.IGNORECASE) else "cpu")


def _on_this_machine(d: Device) -> Device:
    """A CPU with no stated core count is this machine's: the assistant trains where it runs."""
    return Device("cpu", cores=os.cpu_count() or 1) if d.kind == "cpu" and d.cores is None else d


def _majority_share(meta: MetaFeatures) -> float:
    return meta.class_size_max / meta.n_instances


def _probe_median(records: Sequence[ExperimentRecord]) -> float | None:
    """The median probe accuracy over the datasets (each once): what a task without a probe
    (described in words) is predicted at, with the probe's whole grid as its interval."""
    probes = {r.dataset.fingerprint: r.dataset.meta.probe_accuracy for r in records
              if r.dataset.meta.probe_accuracy is not None}
    return round(float(np.median(list(probes.values()))), 4) if probes else None


def _signature(meta: MetaFeatures) -> list[Any]:
    """What identifies a dataset among the knowledge base's (exact meta-feature match)."""
    return [meta.n_instances, meta.n_classes, meta.resolution, meta.channels, meta.class_size_min,
            meta.class_size_max, meta.modality]


def _feature_types(names: Sequence[str]) -> list[str]:
    return ["c" if n in _FIXED_CATEGORIES or n in ("modality", "device_gpu") else "q" for n in names]


def _margin(x: np.ndarray, names: Sequence[str]) -> np.ndarray | None:
    """The time model's starting point: ln(work), so its trees learn ln(seconds per unit of work).

    Work is megapixels run through the network: n_instances * input_size^2 for frozen runs
    (one feature extraction dominates; the head's epochs are cheap), times epochs for trainable
    ones. Trees cannot extrapolate, but a per-unit cost carries over to a dataset of another
    size (on the seed runs, leave-one-dataset-out MAE of ln(seconds) fell from 0.82 to 0.69 with it).
    """
    if tuple(names) != TIME_FEATURES:
        return None
    n, size, epochs = x[:, _I["n_instances"]], x[:, _I["input_size"]], x[:, _I["epochs"]]
    frozen = x[:, _I["mode"]] == _code(MODES, "frozen")
    per_epoch = _trainable_work(x[:, _I["freeze"]])
    return np.log(n * size**2 * np.where(frozen, 1.0, epochs * per_epoch) * 1e-6)


def _trainable_work(freeze: np.ndarray) -> np.ndarray:
    """The work of one epoch of partial fine-tuning, relative to training the whole network.

    A training step costs a forward pass and a backward pass of about twice its work
    (gradients for the activations and for the weights). Blocks frozen from the input side
    need neither (no trainable block lies before them), only their forward pass: work
    1 + 2 * (1 - freeze), out of 3. Folded into the time model's starting point (not left
    to a tree feature) because it must hold before any run with freeze > 0 is recorded:
    trees learn nothing from a feature that is 0 in every row, while the start moves every
    prediction, so freezing more is predicted cheaper from the first request; the trees
    then correct the prior from real runs through the `freeze` feature (blocks differ in
    cost, and early blocks at full resolution cost most).
    """
    return 1.0 - (2.0 / 3.0) * np.nan_to_num(freeze)


def _unknown_modality_copies(x: np.ndarray, y: np.ndarray, seed: int,
                             names: Sequence[str] = ACC_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """`x`, `y` with a seeded UNKNOWN_MODALITY_SHARE of their rows appended again, modality missing.

    A modality no record has (or "unknown") is encoded as missing, and XGBoost sends a missing
    value down each split's default branch, the one its training rows happened to favour: an
    unseen modality got a SHAP credit (+0.044 on one text profile) that no evidence backs.
    Rows whose modality is missing teach the trees what a task of any modality averages, so
    "unknown" means "like the datasets on average". In nested leave-one-dataset-out
    (the held-out dataset's modality unseen in 7 of 13 folds) this lowered the MAE from 0.085
    to 0.079 over runs and from 0.094 to 0.088 over datasets (half the rows: 0.077 and 0.089).
    """
    n = int(round(UNKNOWN_MODALITY_SHARE * len(y)))
    if n == 0:
        return x, y
    rows = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
    copies = x[rows].copy()
    copies[:, list(names).index("modality")] = math.nan
    return np.vstack([x, copies]), np.concatenate([y, y[rows]])


# The accuracy model's starting point (see `AccMargin`): this share of a linear fit of accuracy on
# the probe and the majority share, the rest the mean accuracy.
ACC_MARGIN_SHARE = 0.5


@dataclass(frozen=True)
class AccMargin:
    """The accuracy model's starting point: how hard a dataset is, from two meta-features.

    ``margin = share * (a + b * probe_accuracy + c * majority_share) + (1 - share) * mean``,
    least squares over the training rows (a missing probe counts as their median). The trees
    learn the rest. Trees alone give an unseen dataset the level of a dataset they split it
    with, a step; the line moves with the probe in between, and half of it (ACC_MARGIN_SHARE)
    averages the two estimates of the offset, which was most of the held-out error.
    `python -m bench.metamodel --margin` (nested leave-one-dataset-out: each held-out dataset's
    share chosen by an inner leave-one-dataset-out on the others) measures it; the inner choice
    was 0.25 or 0.5 in every fold, never 0 or 1 (a full line extrapolates too far).

    Stored with the booster (`save`, an XGBoost attribute), so a loaded model predicts the same.
    """

    share: float
    a: float
    b: float
    c: float
    mean: float
    probe_fill: float  # what a missing probe counts as (the training rows' median)
    probe_mean: float  # the training rows' means: SHAP's reference point for the line
    majority_mean: float

    ATTR = "acc_margin"

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, names: Sequence[str], share: float = ACC_MARGIN_SHARE) -> AccMargin:
        probe, majority = cls._columns(x, names, None)
        fill = float(np.nanmedian(probe)) if np.isfinite(probe).any() else 0.5
        probe = np.where(np.isnan(probe), fill, probe)
        design = np.c_[np.ones(len(y)), probe, majority]
        (a, b, c), *_ = np.linalg.lstsq(design, y, rcond=None)
        return cls(share, float(a), float(b), float(c), float(np.mean(y)), fill, float(probe.mean()),
                   float(majority.mean()))

    @staticmethod
    def _columns(x: np.ndarray, names: Sequence[str], fill: float | None) -> tuple[np.ndarray, np.ndarray]:
        names = list(names)
        probe = x[:, names.index("probe_accuracy")]
        if fill is not None:
            probe = np.where(np.isnan(probe), fill, probe)
        return probe, x[:, names.index("majority_share")]

    def __call__(self, x: np.ndarray, names: Sequence[str]) -> np.ndarray:
        probe, majority = self._columns(x, names, self.probe_fill)
        return self.share * (self.a + self.b * probe + self.c * majority) + (1 - self.share) * self.mean

    @property
    def reference(self) -> float:
        """The line at the training means: what SHAP's base value adds for it."""
        return self.share * (self.a + self.b * self.probe_mean + self.c * self.majority_mean) + (1 - self.share) * self.mean

    def shap(self, x: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """The line's exact SHAP values, one column per name (zero but for its two features): added to
        the trees' values, they and `reference` sum to the prediction."""
        probe, majority = self._columns(x, names, self.probe_fill)
        out = np.zeros((len(x), len(names)))
        out[:, list(names).index("probe_accuracy")] = self.share * self.b * (probe - self.probe_mean)
        out[:, list(names).index("majority_share")] = self.share * self.c * (majority - self.majority_mean)
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def of(cls, booster: xgb.Booster) -> AccMargin | None:
        raw = booster.attr(cls.ATTR)
        return cls(**json.loads(raw)) if raw else None


def _has_acc_margin(names: Sequence[str]) -> bool:
    return tuple(names) != TIME_FEATURES and {"probe_accuracy", "majority_share"} <= set(names)


def _train(x: np.ndarray, y: np.ndarray, names: Sequence[str], seed: int) -> xgb.Booster:
    """One booster: the time model (TIME_FEATURES) or the accuracy model (ACC_FEATURES)."""
    if tuple(names) == ACC_FEATURES:  # (each CV fold copies only its own training rows)
        x, y = _unknown_modality_copies(x, y, seed)
    return _boost(x, y, names, seed)


def _boost(x: np.ndarray, y: np.ndarray, names: Sequence[str], seed: int,
           acc_margin_share: float = ACC_MARGIN_SHARE, overrides: dict[str, Any] | None = None) -> xgb.Booster:
    """`_train` on rows as given: the time model's start is ln(work), any other's an `AccMargin`.
    `overrides` replace XGBoost settings of `_XGB_PARAMS` (bench/metamodel.py compares them)."""
    params = {**_XGB_PARAMS, **(overrides or {}), "seed": seed}
    line = AccMargin.fit(x, y, names, acc_margin_share) if _has_acc_margin(names) else None
    if line is not None:
        margin = line(x, names)
        params["base_score"] = 0.0  # the margin is the whole start, so the trees and SHAP agree on it
    else:
        margin = _margin(x, names)
    dm = xgb.DMatrix(x, y, feature_names=list(names), feature_types=_feature_types(names), enable_categorical=True,
                     base_margin=margin)
    booster = xgb.train(params, dm, _ROUNDS)
    if line is not None:
        booster.set_attr(**{AccMargin.ATTR: line.to_json()})
    return booster


def _predict(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    names = booster.feature_names or ()
    line = AccMargin.of(booster)
    margin = line(x, names) if line is not None else _margin(x, names)
    if margin is None:
        return np.asarray(booster.inplace_predict(x), dtype=np.float64)
    return np.asarray(booster.inplace_predict(x, base_margin=margin), dtype=np.float64)


@dataclass
class _Design:
    """The training matrices built from records."""

    x_acc: np.ndarray
    y_acc: np.ndarray
    groups_acc: list[str]
    x_time: np.ndarray
    y_time: np.ndarray
    groups_time: list[str]
    modalities: list[str]
    gpus: list[str]


def usable(records: Iterable[ExperimentRecord]) -> list[ExperimentRecord]:
    """The records the meta-model learns from: status ok or diverged."""
    return [r for r in records if r.outcome.status in ("ok", "diverged")]


def accuracy_target(record: ExperimentRecord) -> float:
    """Test accuracy of an ok run; the majority-class share for a diverged one."""
    if record.outcome.status == "ok" and record.outcome.test_accuracy is not None:
        return float(record.outcome.test_accuracy)
    return _majority_share(record.dataset.meta)


def time_target(record: ExperimentRecord) -> float:
    """The wall time of the config in `record`, in seconds: training + feature extraction.

    A run that early stopping ended (status ok, fewer epochs run than configured) took
    ``train_seconds`` for ``epochs_run`` epochs; its per-epoch time is representative, so the
    config's full run is ``train_seconds * epochs / epochs_run`` (the extraction is once).
    """
    o = record.outcome
    train = o.train_seconds
    if o.status == "ok" and 0 < o.epochs_run < record.config.epochs:
        train *= record.config.epochs / o.epochs_run
    return train + o.feature_seconds


def _records_rows(records: Sequence[ExperimentRecord], modalities: Sequence[str]) -> np.ndarray:
    """The `_row_matrix` of records (ROW_FEATURES: every column, before the accuracy model's pick)."""
    return _row_matrix(
        np.vstack([_meta_row(r.dataset.meta, modalities) for r in records]),
        np.array([_n_train(r.dataset.meta) for r in records]),
        _config_matrix([r.config for r in records]),
    )


def _design(records: Sequence[ExperimentRecord], modalities: list[str] | None = None) -> _Design:
    recs = usable(records)
    if modalities is None:
        modalities = sorted({r.dataset.meta.modality for r in recs})
    parsed = {text: _record_device(text) for text in {r.outcome.device for r in recs}}
    gpus = sorted({d.gpu for d in parsed.values() if d.gpu})
    if not recs:
        empty = np.zeros((0, len(ACC_FEATURES)))
        return _Design(empty, np.zeros(0), [], np.zeros((0, len(TIME_FEATURES))), np.zeros(0), [], modalities, gpus)
    x_row = _records_rows(recs, modalities)
    x_acc = _acc_columns(x_row)
    y_acc = np.array([accuracy_target(r) for r in recs])
    ok = np.array([r.outcome.status == "ok" for r in recs])
    devices = [parsed[r.outcome.device] for r in recs]
    x_time = np.hstack([x_row, _time_extra(x_row, devices, gpus)])[ok]
    y_time = np.log(np.maximum([time_target(r) for r in recs], 0.01))[ok]
    groups = [r.dataset.name for r in recs]
    return _Design(x_acc, y_acc, groups, x_time, y_time, [g for g, k in zip(groups, ok, strict=True) if k], modalities,
                   gpus)


def _device_counts(records: Sequence[ExperimentRecord]) -> dict[str, Any]:
    """Finished runs (the time model's rows) per device kind, per GPU model and per CPU core count."""
    kinds: Counter[str] = Counter()
    gpus: Counter[str] = Counter()
    cores: Counter[str] = Counter()
    for text, n in Counter(r.outcome.device for r in records if r.outcome.status == "ok").items():
        d = _record_device(text)
        kinds[d.kind] += n
        if d.gpu:
            gpus[d.gpu] += n
        if d.kind == "cpu" and d.cores:
            cores[str(d.cores)] += n
    return {"kinds": dict(kinds), "gpus": dict(gpus), "cpu_cores": dict(cores)}
