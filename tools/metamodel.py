"""The meta-model: past runs -> predicted test accuracy and wall time of a config on a task.

Two XGBoost regressors learn from the knowledge base:

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
is the chance level every accuracy is measured against.

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
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import random
import re
import shutil
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from knowledge import cache_root
from knowledge.schema import ExperimentRecord, MetaFeatures, TrainConfig
from knowledge.space import AUGMENTATIONS, BACKBONES, MODES, OPTIMIZERS, SCHEDULERS
from tools.memory import NoMemoryFit, training_memory
from tools.neighbour_levels import prior, summarise
from tools.novelty import (
    NEAREST_SHOWN,
    OPEN_FIELDS,
    Neighbours,
    band_of,
    calibrate,
    check_open_fields,
    evidence_note,
    open_metas,
)
from tools.weights import weights_available

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
FEATURE_VERSION = 11
# XGBoost threads. Measured at 100k rows with another process on the second core: one accuracy
# booster took 3.1 s with 1 thread and 26 s with 2 (bench/scale.py's store, while bench/lodo ran).
N_THREADS = 1
# Global importance (mean |SHAP|) is computed on at most this many training rows, a seeded
# sample: TreeSHAP over all rows was 60 s of a 100k-record refit, and on the 100k store a
# 2,000-row sample gives the same top-10 features in the same order (bench/scale.py).
IMPORTANCE_ROWS = 2000
# Each cross-validation fold trains on at most this many of its training rows (a seeded sample):
# the 18 fold fits on 80-88k rows each were most of a 100k-record refit with CV (the 13 accuracy
# folds: 27 s, bounded 8.8 s), and on that store the interval quantiles moved by at most 0.002
# and the CV MAE by 0.0004 (bench/scale.py compares the two fits).
CV_TRAIN_ROWS = 20_000
TIME_WEIGHT = 0.005  # ranking: a config 10x slower must be predicted 0.5 points more accurate
MAX_PER_PAIR = 2  # candidates per (backbone, mode) in the first, diverse pass
DIVERSITY_MARGIN = 0.05  # ... among configs scored within this of the best (accuracy points)
RETRIEVED_MARGIN = 0.10  # the best retrieved config is kept when scored within this of the best
POOL_PER_PAIR = 160  # generated configs per (backbone, mode)
# Share of the accuracy model's rows copied with the modality missing (see `_unknown_modality_copies`).
UNKNOWN_MODALITY_SHARE = 0.25
CORRECT_PER_PAIR = 8  # best-scored configs per (backbone, mode) re-ranked by their corrected predictions
# Residual quantiles of the interval: 90 %. Its real coverage (per held-out dataset and per run, for
# datasets within the threshold and beyond it), its mean width and the point error are measured by
# nested leave-one-dataset-out, intervals from a model that never saw the dataset (`python -m
# bench.calibration`), and the current numbers are in docs/BENCHMARKS.md, "Meta-model intervals by
# distance". A new dataset's errors share one offset (its difficulty), so coverage varies by dataset.
INTERVAL = (0.05, 0.95)
MODEL_FILES = ("accuracy.ubj", "seconds.ubj")
META_FILE = "meta.json"

_XGB_PARAMS: dict[str, Any] = {
    "objective": "reg:squarederror",
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

DEVICES = ("cpu", "cuda")
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
ACC_FEATURES = META_FEATURES + CONFIG_FEATURES + DERIVED_FEATURES
TIME_FEATURES = ACC_FEATURES + TIME_EXTRA
# Fixed category lists (codes stay stable when new runs arrive); modality is learnt.
_FIXED_CATEGORIES: dict[str, tuple[str, ...]] = {
    "backbone": tuple(BACKBONES),
    "mode": MODES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "augmentation": AUGMENTATIONS,
    "device": DEVICES,
}
_POOL_FIELDS = (
    "input_size", "optimizer", "batch_size", "epochs", "weight_decay", "dropout", "scheduler", "augmentation",
    "label_smoothing", "freeze",
)


# --------------------------------------------------------------------------- API types
@dataclass
class Constraints:
    """What the user allows: a time budget, a device, backbones and modes.

    Attributes:
        budget_seconds: max predicted wall time (training + feature extraction); None = no limit.
        device: the device the time is predicted for, written as records write it: "cpu",
            "cpu:8 cores", "cuda" or "cuda:NVIDIA H200" ("cuda:0" and the like are read as
            "cuda", "gpu" as "cuda"); kept in that canonical form (see `parse_device`). Where
            no run in the knowledge base came from that kind of device (or GPU model), times
            are extrapolated from other devices' runs, and each prediction's `device_note`
            says so.
        backbones: allowed backbones; None = all.
        modes: allowed modes; None = all.
        max_memory_bytes: the most memory a run may need on `device` (RAM on a CPU, GPU
            memory on CUDA), as `tools.memory.training_memory` estimates it; None = no limit.
    """

    budget_seconds: float | None = None
    device: str = "cpu"
    backbones: list[str] | None = None
    modes: list[str] | None = None
    max_memory_bytes: float | None = None

    def __post_init__(self) -> None:
        self.device = parse_device(self.device).label
        if self.budget_seconds is not None and not self.budget_seconds > 0:
            raise ValueError(f"budget_seconds must be > 0 or None, but got {self.budget_seconds!r}.")
        for name, allowed in (("backbones", tuple(BACKBONES)), ("modes", MODES)):
            bad = [v for v in getattr(self, name) or () if v not in allowed]
            if bad:
                raise ValueError(f"{name} must be drawn from {', '.join(allowed)}, but got {bad!r}.")


@dataclass
class Prediction:
    """Predicted test accuracy with a 90 % interval, and predicted wall time.

    Attributes:
        accuracy: predicted test accuracy, clipped to [0, 1].
        low: 5th percentile of the accuracy (empirical out-of-fold residual quantiles).
        high: 95th percentile of the accuracy.
        seconds: predicted wall time, train_seconds + feature_seconds, on `device`.
        device: the device the time is for (canonical form, see `parse_device`).
        device_support: finished runs in the knowledge base from that device (its kind, and
            its GPU model when one is named); None when unknown.
        device_note: None when runs from that device back the time; else a sentence for the
            user saying the time is extrapolated from other devices' runs.
        distance: how far the task is from the nearest dataset of the knowledge base
            (`tools.novelty.distance`: 0 for a dataset the model learnt from, about 1 for
            another modality); None for a model without its datasets.
        nearest: the nearest datasets, (name, distance), nearest first (up to
            `tools.novelty.NEAREST_SHOWN`).
        evidence_note: None while the task is within the threshold that leave-one-dataset-out
            calibrated; beyond it, a sentence for the user naming the nearest datasets and
            saying the interval is widened to the error measured on held-out datasets that far
            away (and, beyond the farthest one measured, that the error there is unmeasured).
        assumed: the meta-features the interval spans because the user did not state them
            (`open_fields` of `MetaModel.predict`); () when all were given.
        model_accuracy: for a ranked candidate of a task with assumed fields, the prediction at
            the values filled in for them (`accuracy` is then the mean over their plausible values,
            `MetaModel.corrected`); None otherwise.
        evidence_level: what good runs of the same backbone and mode reached on the nearest
            datasets (`tools.neighbour_levels.prior`); None when not looked up or none ran them.
        evidence_runs: how many runs of that backbone and mode on the nearest datasets back
            `evidence_level` (0: none; the level is then all their runs').
    """

    accuracy: float
    low: float
    high: float
    seconds: float
    device: str = "cpu"
    device_support: int | None = None
    device_note: str | None = None
    distance: float | None = None
    nearest: tuple[tuple[str, float], ...] = ()
    evidence_note: str | None = None
    assumed: tuple[str, ...] = ()
    model_accuracy: float | None = None
    evidence_level: float | None = None
    evidence_runs: int | None = None


@dataclass(frozen=True)
class Device:
    """A device as the time model reads it.

    Attributes:
        kind: "cpu" or "cuda".
        cores: the CPU's core count; None when not stated (the time model then takes this
            machine's, `os.cpu_count()`: the assistant trains where it runs).
        gpu: the GPU's model name ("NVIDIA H200"); None when not stated.
    """

    kind: str
    cores: int | None = None
    gpu: str | None = None

    @property
    def label(self) -> str:
        """The canonical string, in the records' form: "cpu:8 cores", "cuda:NVIDIA H200", "cpu", "cuda"."""
        if self.kind == "cpu":
            return f"cpu:{self.cores} cores" if self.cores else "cpu"
        return f"cuda:{self.gpu}" if self.gpu else "cuda"

    @property
    def words(self) -> str:
        """The device for a sentence: "a GPU (NVIDIA H200)", "the CPU (8 cores)"."""
        if self.kind == "cuda":
            return f"a GPU ({self.gpu})" if self.gpu else "a GPU"
        return f"the CPU ({self.cores} cores)" if self.cores else "the CPU"


@dataclass
class Candidate:
    """One ranked recommendation.

    Attributes:
        id: "c1", "c2", ... in rank order, short enough for a small LLM to cite.
        config: the configuration (a valid TrainConfig).
        prediction: its predicted accuracy and time on the task.
        origin: "retrieved:<record id>" for a similar past run's config, else "generated".
        support: knowledge-base runs with the same backbone and mode (0 = no evidence).
        over_budget: True when no candidate fitted the time budget and this is among the fastest.
    """

    id: str
    config: TrainConfig
    prediction: Prediction
    origin: str
    support: int = 0
    over_budget: bool = False


@dataclass
class Explanation:
    """SHAP values of the accuracy model for one (task, config).

    Attributes:
        base_value: the model's mean output (SHAP expected value).
        contributions: (feature name, its value, SHAP contribution), by |contribution| desc.
            The contribution of an assumed field (see `assumed`) is its mean over the grid of
            plausible values (`tools.novelty.OPEN_GRID`, other features as given): a default
            the user never stated is not credited as if it were known. Then, and only then,
            base_value plus the contributions differs from `prediction`.
        prediction: the model's raw (unclipped) output for the task as given; without assumed
            fields, base_value plus all contributions.
        assumed: the features whose values were assumed (the open fields, and the features
            computed from them, such as majority_share); () when all were stated.
    """

    base_value: float
    contributions: list[tuple[str, object, float]]
    prediction: float = float("nan")
    assumed: tuple[str, ...] = ()

    def text(self, top: int = 6) -> str:
        """Short plain text for an LLM prompt: the `top` strongest drivers, in words."""
        lines = [f"Predicted test accuracy {self.prediction:.3f} (average over past runs {self.base_value:.3f})."]
        for name, value, c in self.contributions[:top]:
            verb = "raises" if c >= 0 else "lowers"
            if name in self.assumed:
                lines.append(f"- {name} (assumed, not stated; averaged over plausible values) {verb} predicted "
                             f"accuracy by {c:+.3f}")
                continue
            lines.append(f"- {name}={_fmt(value)} {verb} predicted accuracy by {c:+.3f}")
        rest = self.contributions[top:]
        if rest:
            lines.append(f"- {len(rest)} other features together: {sum(c for _, _, c in rest):+.3f}")
        return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# ------------------------------------------------------------------------- encoding
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


def _acc_matrix(meta_block: np.ndarray, n_train: np.ndarray, cfg_cols: np.ndarray) -> np.ndarray:
    """Meta-feature columns, config columns, then the derived columns (DERIVED_FEATURES)."""
    batch = np.minimum(cfg_cols[:, CONFIG_FEATURES.index("batch_size")], n_train)
    steps = np.ceil(n_train / batch) * cfg_cols[:, CONFIG_FEATURES.index("epochs")]
    return np.hstack([meta_block, cfg_cols, steps[:, None]])


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
_I = {name: i for i, name in enumerate(ACC_FEATURES)}


def _device_row(d: Device, gpus: Sequence[str]) -> list[float]:
    """DEVICE_FEATURES of one device: kind code, CPU cores (NaN on a GPU or when unknown), GPU
    model code (NaN on a CPU, for an unnamed GPU, or a model no record came from)."""
    cores = float(d.cores) if d.kind == "cpu" and d.cores else math.nan
    gpu = _code(gpus, d.gpu) if d.kind == "cuda" and d.gpu else math.nan
    return [_code(DEVICES, d.kind), cores, gpu]


def _time_extra(x_acc: np.ndarray, device: Device | Sequence[Device], gpus: Sequence[str]) -> np.ndarray:
    """The time model's extra columns for rows of the accuracy matrix (one device, or one per row)."""
    devices = [device] * len(x_acc) if isinstance(device, Device) else list(device)
    n = x_acc[:, _I["n_instances"]]
    size = x_acc[:, _I["input_size"]]
    epochs = x_acc[:, _I["epochs"]]
    backbone = x_acc[:, _I["backbone"]].astype(int)
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


def parse_device(device: str | Device) -> Device:
    """Read a device string as records write it (`tools.train.device_name`) or a user gives it.

    "cpu", "cpu:8 cores" (or "cpu:8"), "cuda", "gpu", "cuda:0" (an index: no model) and
    "cuda:NVIDIA H200" are understood, case aside for the kind.

    Raises:
        ValueError: anything else (the message lists the accepted forms).
    """
    if isinstance(device, Device):
        return device
    text = device.strip() if isinstance(device, str) else ""
    kind, _, rest = text.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if kind == "gpu":
        kind = "cuda"
    if kind == "cpu":
        m = re.fullmatch(r"(\d+)(\s*cores?)?", rest, flags=re.IGNORECASE)
        if not rest or (m and int(m.group(1)) > 0):
            return Device("cpu", cores=int(m.group(1)) if m and rest else None)
    elif kind == "cuda":
        return Device("cuda", gpu=None if not rest or rest.isdigit() else rest)
    raise ValueError(
        f"device must be one of {', '.join(DEVICES)} (or 'cpu:N cores', 'cuda:<GPU model>' as records write it), "
        f"but got {device!r}."
    )


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


def _unknown_modality_copies(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
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
    copies[:, _I["modality"]] = math.nan
    return np.vstack([x, copies]), np.concatenate([y, y[rows]])


def _train(x: np.ndarray, y: np.ndarray, names: Sequence[str], seed: int) -> xgb.Booster:
    if tuple(names) == ACC_FEATURES:  # (each CV fold copies only its own training rows)
        x, y = _unknown_modality_copies(x, y, seed)
    dm = xgb.DMatrix(x, y, feature_names=list(names), feature_types=_feature_types(names), enable_categorical=True,
                     base_margin=_margin(x, names))
    return xgb.train({**_XGB_PARAMS, "seed": seed}, dm, _ROUNDS)


def _predict(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    margin = _margin(x, booster.feature_names or ())
    if margin is None:
        return np.asarray(booster.inplace_predict(x), dtype=np.float64)
    return np.asarray(booster.inplace_predict(x, base_margin=margin), dtype=np.float64)


# ------------------------------------------------------------------------ the data
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


def _design(records: Sequence[ExperimentRecord], modalities: list[str] | None = None) -> _Design:
    recs = usable(records)
    if modalities is None:
        modalities = sorted({r.dataset.meta.modality for r in recs})
    parsed = {text: _record_device(text) for text in {r.outcome.device for r in recs}}
    gpus = sorted({d.gpu for d in parsed.values() if d.gpu})
    if not recs:
        empty = np.zeros((0, len(ACC_FEATURES)))
        return _Design(empty, np.zeros(0), [], np.zeros((0, len(TIME_FEATURES))), np.zeros(0), [], modalities, gpus)
    x_acc = _acc_matrix(
        np.vstack([_meta_row(r.dataset.meta, modalities) for r in recs]),
        np.array([_n_train(r.dataset.meta) for r in recs]),
        _config_matrix([r.config for r in recs]),
    )
    y_acc = np.array([accuracy_target(r) for r in recs])
    ok = np.array([r.outcome.status == "ok" for r in recs])
    devices = [parsed[r.outcome.device] for r in recs]
    x_time = np.hstack([x_acc, _time_extra(x_acc, devices, gpus)])[ok]
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
    )
    return np.asarray(np.abs(contribs[:, :-1]).mean(axis=0), dtype=np.float64)


def _binned_q(res: dict[str, Any], acc: np.ndarray) -> np.ndarray:
    """The (low, high) residual quantiles of `_residual_bins` output for each prediction."""
    return np.asarray(res["q"], dtype=np.float64)[np.searchsorted(res["edges"], acc, side="right")]


def _bounds(acc: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point, low, high): raw predictions clipped to [0, 1], and the interval around them."""
    point = np.clip(acc, 0.0, 1.0)
    low = np.minimum(np.clip(acc + q[:, 0], 0.0, 1.0), point)
    high = np.maximum(np.clip(acc + q[:, 1], 0.0, 1.0), point)
    return point, low, high


def _residual_bins(pred: np.ndarray, y: np.ndarray) -> dict[str, list[Any]]:
    """Residual quantiles per quartile of predicted accuracy (one bin when data is scarce)."""
    keep = ~np.isnan(pred)
    pred, resid = pred[keep], (y - pred)[keep]
    if len(resid) < 8:
        return {"edges": [], "q": [[-0.25, 0.25]]}
    n_bins = 4 if len(resid) >= 80 else 1
    edges = [float(e) for e in np.quantile(pred, np.linspace(0, 1, n_bins + 1)[1:-1])]
    which = np.searchsorted(edges, pred, side="right")
    q = [[float(v) for v in np.quantile(resid[which == b], INTERVAL)] for b in range(n_bins)]
    return {"edges": edges, "q": q}


def _neighbours(records: Sequence[ExperimentRecord]) -> Neighbours:
    """The datasets the model learns from, each with the meta most of its runs recorded."""
    by_name: dict[str, Counter[str]] = defaultdict(Counter)
    metas: dict[str, MetaFeatures] = {}
    for r in usable(records):
        key = r.dataset.meta.model_dump_json()
        by_name[r.dataset.name][key] += 1
        metas[key] = r.dataset.meta
    return Neighbours.of({name: metas[c.most_common(1)[0][0]] for name, c in by_name.items()})


def _distance_bands(neighbours: Neighbours, groups: Sequence[str], folds: Sequence[np.ndarray],
                    resid: np.ndarray) -> dict[str, Any]:
    """Residual quantiles of held-out datasets by their distance to the nearest dataset outside
    their fold (`tools.novelty.calibrate`)."""
    arr = np.asarray(groups)
    fold_names = [sorted(set(arr[f].tolist())) for f in folds]
    by_dataset = {name: resid[arr == name] for fold in fold_names for name in fold}
    by_dataset = {name: r[~np.isnan(r)] for name, r in by_dataset.items()}
    return calibrate(neighbours.held_out_distances(fold_names), by_dataset, INTERVAL)


def _pool_spec(records: Sequence[ExperimentRecord]) -> dict[str, dict[str, Any]]:
    """Per 'backbone/mode': how many runs, and the values those runs used."""
    by_pair: dict[str, list[TrainConfig]] = defaultdict(list)
    for r in usable(records):
        by_pair[f"{r.config.backbone}/{r.config.mode}"].append(r.config)
    spec: dict[str, dict[str, Any]] = {}
    for pair, configs in sorted(by_pair.items()):
        entry: dict[str, Any] = {"n": len(configs)}
        for name in _POOL_FIELDS:
            entry[name] = sorted({getattr(c, name) for c in configs})
        lrs = np.log10([c.learning_rate for c in configs])
        entry["log10_lr"] = [float(np.quantile(lrs, 0.02)), float(np.quantile(lrs, 0.98))]
        spec[pair] = entry
    return spec


def _records_key(records: Sequence[ExperimentRecord], seed: int) -> str:
    h = hashlib.sha256(f"v{FEATURE_VERSION}|seed{seed}|n{len(records)}|".encode())
    for rid in sorted(r.id for r in records):
        h.update(rid.encode())
        h.update(b"\n")
    return h.hexdigest()[:24]


def default_cache_dir() -> Path:
    """`knowledge.cache_root()`/metamodel."""
    return cache_root() / "metamodel"


# Asked once per backbone and process: the answer only changes when weights are installed.
_weights_available = functools.cache(weights_available)


# ------------------------------------------------------------------------ the model
class MetaModel:
    """Predicts test accuracy and wall time of configurations for a task, and explains them.

    Build with `fit` or `load_or_fit`. Attributes:
        n_records: records the model learnt from (ok + diverged).
        fitted_at: ISO time of the fit.
        metrics: cross-validated errors (see `fit`) and the fit time.
    """

    def __init__(self, acc: xgb.Booster, seconds: xgb.Booster, info: dict[str, Any]) -> None:
        self._acc = acc
        self._time = seconds
        self._info = info
        self.n_records: int = info["n_records"]
        self.fitted_at: str = info["fitted_at"]
        self.metrics: dict[str, Any] = info["metrics"]
        self._modalities: list[str] = info["modalities"]
        self._gpus: list[str] = info["gpus"]
        self._known = {json.dumps(s) for s in info["known_datasets"]}
        self._neighbours = Neighbours.from_info(info["datasets"])
        self._explainer: Any | None = None
        self._pool: dict[str, tuple[list[TrainConfig], np.ndarray]] | None = None

    # ------------------------------------------------------------------ building
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
            "importance": {n: float(v) for n, v in zip(ACC_FEATURES, importance, strict=True)},
            "probe_median": _probe_median(records),
            "evidence": summarise((r.dataset.name, f"{r.config.backbone}/{r.config.mode}", accuracy_target(r))
                                  for r in usable(records)),
            "xgboost": xgb.__version__,
        }
        info["known_datasets"] = [json.loads(s) for s in info["known_datasets"]]
        return cls(acc, seconds, info)

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
        for name in MODEL_FILES:
            b = xgb.Booster()
            b.load_model(str(Path(folder) / name))
            b.set_param({"nthread": N_THREADS})
            boosters.append(b)
        return cls(boosters[0], boosters[1], info)

    # ---------------------------------------------------------------- predicting
    def _x_acc(self, meta: MetaFeatures, cfg_cols: np.ndarray) -> np.ndarray:
        n = len(cfg_cols)
        return _acc_matrix(np.broadcast_to(_meta_row(meta, self._modalities), (n, len(META_FEATURES))),
                           np.full(n, _n_train(meta)), cfg_cols)

    def _x(self, meta: MetaFeatures, cfg_cols: np.ndarray, device: Device) -> tuple[np.ndarray, np.ndarray]:
        x_acc = self._x_acc(meta, cfg_cols)
        return x_acc, np.hstack([x_acc, _time_extra(x_acc, _on_this_machine(device), self._gpus)])

    def _residual_q(self, meta: MetaFeatures, acc: np.ndarray) -> np.ndarray:
        """The (low, high) residual quantiles for each raw prediction `acc` on the task: the
        random folds' for a known dataset, else the distance band of the task's distance (the
        leave-dataset-out folds' per predicted accuracy when there are no bands)."""
        res = self._info["residuals"]
        if self.is_known(meta):
            return _binned_q(res["known"], acc)
        bands = res["bands"]
        if not bands["q"]:
            return _binned_q(res["new"], acc)
        q = bands["q"][band_of(bands, self.distance(meta))]
        return np.broadcast_to(np.asarray(q, dtype=np.float64), (len(acc), 2))

    def _unprobed(self, meta: MetaFeatures, open_fields: Sequence[str]) -> tuple[MetaFeatures, tuple[str, ...]]:
        """A task without a probe (described in words) is predicted at the knowledge base's median
        probe, and the probe becomes an open field: its interval spans the probe's grid."""
        fields = check_open_fields(open_fields)
        median = self._info.get("probe_median")
        if meta.probe_accuracy is not None or median is None:
            return meta, fields
        return meta.model_copy(update={"probe_accuracy": median}), check_open_fields([*fields, "probe_accuracy"])

    def _predict_cols(self, meta: MetaFeatures, cfg_cols: np.ndarray, device: str | Device = "cpu",
                      open_fields: Sequence[str] = (), marginal: list[np.ndarray] | None = None) -> list[Prediction]:
        """`predict` on encoded configs; `marginal`, when given, receives the mean prediction over the
        open fields' grid (see `MetaModel.marginal`), computed from the same grid predictions."""
        meta, fields = self._unprobed(meta, open_fields)
        if len(cfg_cols) == 0:
            return []
        device = parse_device(device)
        support, note = self.device_support(device), self.device_note(device)
        x_acc, x_time = self._x(meta, cfg_cols, device)
        acc = _predict(self._acc, x_acc)
        secs = np.exp(_predict(self._time, x_time))
        point, low, high = _bounds(acc, self._residual_q(meta, acc))
        grid = open_metas(meta, fields)
        if grid:  # the union of the intervals over plausible values of the fields not stated
            n = len(cfg_cols)
            raw = _predict(self._acc, np.vstack([self._x_acc(m, cfg_cols) for m in grid]))
            for i, m in enumerate(grid):
                a = raw[i * n : (i + 1) * n]
                _, lo, hi = _bounds(a, self._residual_q(m, a))
                low, high = np.minimum(low, lo), np.maximum(high, hi)
            if marginal is not None:
                marginal.append(np.clip(raw, 0.0, 1.0).reshape(len(grid), n).mean(axis=0))
        elif marginal is not None:
            marginal.append(point)
        nearest = tuple(self.nearest_datasets(meta))
        dist = 0.0 if self.is_known(meta) else (nearest[0][1] if nearest else None)
        evidence = self.evidence_note(meta)
        return [Prediction(float(a), float(lo), float(hi), float(s), device=device.label, device_support=support,
                           device_note=note, distance=dist, nearest=nearest, evidence_note=evidence, assumed=fields)
                for a, lo, hi, s in zip(point, low, high, secs, strict=True)]

    def is_known(self, meta: MetaFeatures) -> bool:
        """Whether `meta` matches a dataset the model learnt from (narrower intervals)."""
        return json.dumps(_signature(meta)) in self._known

    def predict(self, meta: MetaFeatures, configs: Sequence[TrainConfig], device: str = "cpu",
                open_fields: Sequence[str] = ()) -> list[Prediction]:
        """Predicted test accuracy (with its interval) and wall time of each config on the task.

        Configs are taken as they will run: pass a `tools.train.resolve`d config when a
        fine-tune may fall back to scratch for want of weights.

        Args:
            meta: the task's meta-features.
            configs: the configurations.
            device: the device the times are for (see `parse_device`).
            open_fields: meta-features the user did not state (drawn from
                `tools.novelty.OPEN_FIELDS`: n_classes, n_instances, imbalance_ratio,
                resolution, channels, probe_accuracy), e.g. a text profile's assumed fields. The prediction
                is for `meta` as given; the interval is the union of the intervals at every
                point of `tools.novelty.OPEN_GRID` over those fields, so it never narrows.

        Raises:
            ValueError: an open field outside OPEN_FIELDS.
        """
        return self._predict_cols(meta, _config_matrix(list(configs)), parse_device(device), open_fields)

    def stated(self, meta: MetaFeatures, configs: Sequence[TrainConfig], device: str = "cpu",
               open_fields: Sequence[str] = ()) -> list[Prediction]:
        """The prediction the user is told for each config on the task: `predict`'s, `corrected`
        (for a task with assumed fields its accuracy is the mean over their plausible values,
        `model_accuracy` keeps the value at the defaults) and with the nearest datasets' evidence.

        `candidates` states its picks through the same path, so the pick, its alternatives, a
        recommendation and a what-if on the same config and profile give the same number.

        Raises:
            ValueError: an open field outside OPEN_FIELDS.
        """
        configs = list(configs)
        return self._stated_cols(meta, configs, _config_matrix(configs), parse_device(device), open_fields)

    def _stated_cols(self, meta: MetaFeatures, configs: Sequence[TrainConfig], cols: np.ndarray, device: Device,
                     open_fields: Sequence[str]) -> list[Prediction]:
        marg: list[np.ndarray] = []
        preds = self._predict_cols(meta, cols, device, open_fields, marg)
        return self.corrected(meta, configs, preds, open_fields, marg[0] if marg else None) if preds else []

    # ---------------------------------------------------------------- evidence
    def nearest_datasets(self, meta: MetaFeatures, k: int = NEAREST_SHOWN) -> list[tuple[str, float]]:
        """The k datasets of the knowledge base nearest to the task, (name, distance), nearest first."""
        return self._neighbours.nearest(meta, k)

    def distance(self, meta: MetaFeatures) -> float:
        """The task's distance to the nearest dataset the model learnt from (`tools.novelty.distance`)."""
        d = self._neighbours.distances(meta)
        return float(d.min()) if len(d) else math.inf

    @property
    def distance_bands(self) -> dict[str, Any]:
        """The calibration of the intervals by distance (`tools.novelty.calibrate`'s JSON):
        band edges, residual quantiles, the datasets behind each band, the threshold and the
        farthest distance measured. Empty bands for a model fitted without cross-validation."""
        return json.loads(json.dumps(self._info["residuals"]["bands"]))

    def evidence_note(self, meta: MetaFeatures) -> str | None:
        """None when the task is a known dataset or within the calibrated threshold; else the
        sentence for the user (`tools.novelty.evidence_note`)."""
        if self.is_known(meta):
            return None
        return evidence_note(self._info["residuals"]["bands"], self.distance(meta), self.nearest_datasets(meta))

    # ---------------------------------------------------------------- devices
    def device_support(self, device: str | Device) -> int:
        """Finished runs in the knowledge base (the time model's rows) from `device`: from that
        GPU model when one is named ("cuda:NVIDIA H200"), else from that kind (cpu or cuda).

        CPU core counts are not told apart: a CPU run is evidence for any CPU (the core count
        is a feature of the time model, not a different kind of device).
        """
        d = parse_device(device)
        counts = self._info["devices"]
        if d.kind == "cuda" and d.gpu:
            return int(counts["gpus"].get(d.gpu, 0))
        return int(counts["kinds"].get(d.kind, 0))

    def device_note(self, device: str | Device) -> str | None:
        """None when runs from `device` back its predicted times; else what the times rest on,
        in a sentence for the user (trees do not extrapolate: an unseen device kind or GPU
        model is predicted like the devices the runs came from)."""
        d = parse_device(device)
        if self.device_support(d):
            return None
        counts = self._info["devices"]
        if d.kind == "cuda" and d.gpu and counts["kinds"].get("cuda"):
            others = ", ".join(f"{g} ({n} runs)" for g, n in sorted(counts["gpus"].items(), key=lambda kv: -kv[1])[:3])
            return (f"no run in the knowledge base came from an {d.gpu}; its times are extrapolated from other GPUs' "
                    f"runs ({others or 'models not recorded'}).")
        if d.kind == "cuda":
            return ("no run in the knowledge base came from a GPU; the times are extrapolated from CPU runs and are "
                    "likely overestimates.")
        if counts["kinds"].get("cuda"):
            return ("no run in the knowledge base came from a CPU; the times are extrapolated from GPU runs and are "
                    "likely underestimates.")
        return "no finished run in the knowledge base says which device it ran on; the times are rough."

    # ---------------------------------------------------------------- the winner's curse
    def marginal(self, meta: MetaFeatures, configs: Sequence[TrainConfig], open_fields: Sequence[str] = ()) -> np.ndarray:
        """Each config's predicted accuracy averaged over the plausible values of the fields the user
        did not state (`tools.novelty.OPEN_GRID`, the probe among them for a task described in
        words), clipped to [0, 1]: the expected accuracy of a task known only up to those fields,
        not the accuracy at the defaults filled in for them. Equal to the prediction when every
        field was given."""
        meta, fields = self._unprobed(meta, open_fields)
        cols = _config_matrix(list(configs))
        grid = open_metas(meta, fields) or [meta]
        raw = _predict(self._acc, np.vstack([self._x_acc(m, cols) for m in grid])).reshape(len(grid), len(cols))
        return np.clip(raw, 0.0, 1.0).mean(axis=0)

    def with_evidence(self, meta: MetaFeatures, configs: Sequence[TrainConfig],
                      preds: Sequence[Prediction]) -> list[Prediction]:
        """`preds` (of `configs` on the task) with what the nearest datasets' runs of the same
        backbone and mode reached (`tools.neighbour_levels.prior`): `evidence_level` and `evidence_runs`."""
        evidence = self._info.get("evidence") or {}
        nearest = [name for name, _ in self.nearest_datasets(meta)]
        out = []
        for c, p in zip(configs, preds, strict=True):
            pr = prior(evidence, nearest, f"{c.backbone}/{c.mode}")
            out.append(dataclasses.replace(p, evidence_level=pr[0], evidence_runs=pr[2]) if pr else p)
        return out

    def corrected(self, meta: MetaFeatures, configs: Sequence[TrainConfig], preds: Sequence[Prediction],
                  open_fields: Sequence[str] = (), marginal: np.ndarray | None = None) -> list[Prediction]:
        """What a ranking should go by (the winner's curse), with the nearest datasets' evidence
        attached (`with_evidence`): for a task with assumed fields (a text profile, and any task
        without a probe) each config's `marginal` accuracy over the plausible values of those
        fields, not its prediction at the defaults filled in for them (`model_accuracy` keeps
        that); for a task stated in full, the prediction as it is. `preds` are `predict`'s for
        `configs` with `open_fields`; `marginal`, when given, is `marginal`'s result for them.

        Shrinking the predictions toward the nearest datasets' evidence (tools.neighbour_levels) was
        measured and dropped (bench/calibration.py, picks among held-out datasets' runs): for a
        full profile it raised the picks' regret (0.062 to 0.085) and their optimism (mean gap
        -0.013 to +0.031), for a text one it raised the gap (+0.079 to +0.146, the model before
        the unknown-modality rows)."""
        preds = self.with_evidence(meta, configs, preds)
        _, fields = self._unprobed(meta, open_fields)
        if not fields:
            return preds
        marg = self.marginal(meta, configs, open_fields) if marginal is None else marginal
        return [dataclasses.replace(p, accuracy=float(a), low=min(p.low, float(a)), high=max(p.high, float(a)),
                                    model_accuracy=p.accuracy) for p, a in zip(preds, marg, strict=True)]

    # ---------------------------------------------------------------- candidates
    def support(self, backbone: str, mode: str) -> int:
        """Knowledge-base runs (ok or diverged) with this backbone and mode."""
        return int(self._info["pool"].get(f"{backbone}/{mode}", {}).get("n", 0))

    def _generated(self, pair: str) -> tuple[list[TrainConfig], np.ndarray]:
        """The generated configs of one 'backbone/mode', built once per model."""
        if self._pool is None:
            self._pool = {}
        if pair not in self._pool:
            configs = _generate(pair, self._info["pool"].get(pair), seed=int(self._info["seed"]))
            self._pool[pair] = (configs, _config_matrix(configs))
        return self._pool[pair]

    def candidates(
        self,
        meta: MetaFeatures,
        constraints: Constraints | None = None,
        retrieved: Sequence[ExperimentRecord] = (),
        n: int = 6,
        open_fields: Sequence[str] = (),
        correct: bool = True,
    ) -> list[Candidate]:
        """The n best configurations for the task within the constraints, best first.

        Generated configs (per supported backbone x mode whose weights exist here) and the
        configs of `retrieved` records are predicted in one batch, those over the time
        budget dropped, and the rest ranked by predicted accuracy minus TIME_WEIGHT per
        decade of seconds. Among configs within DIVERSITY_MARGIN of the best, at most
        MAX_PER_PAIR per backbone x mode, and never two near-duplicates (see `_diverse`); the
        best retrieved config is kept when it fits and scores within RETRIEVED_MARGIN of the
        best (it is evidence an LLM can cite). When nothing fits the budget,
        the fastest configs come back with `over_budget=True`. A memory limit is hard: configs
        estimated (tools.memory) to need more never come back.

        `open_fields` (see `predict`) widen the candidates' intervals. With `correct` (the
        default) the CORRECT_PER_PAIR best-scored configs of each backbone x mode (and every
        retrieved one) are re-scored by `corrected` and ranked by that: a task with assumed fields
        (described in words) gets each config's accuracy averaged over their plausible values
        (`marginal`; `model_accuracy` keeps the prediction at the defaults), and every candidate
        carries what the nearest datasets' runs of its backbone and mode reached.

        Raises:
            ValueError: an open field outside OPEN_FIELDS.
            tools.memory.NoMemoryFit: (a ValueError) no allowed config fits the memory limit.
        """
        open_fields = check_open_fields(open_fields)
        constraints = constraints or Constraints()
        allowed_b = set(constraints.backbones or BACKBONES)
        allowed_m = set(constraints.modes or MODES)

        def runnable(backbone: str, mode: str) -> bool:
            if backbone not in allowed_b or mode not in allowed_m:
                return False
            if BACKBONES[backbone]["pretrained_source"] is None:
                return mode == "scratch"
            return mode == "scratch" or _weights_available(backbone)

        pairs = [p for p in self._info["pool"] if runnable(*p.split("/"))]
        if not pairs:  # no evidence for any allowed pair: generic configs, support 0
            pairs = [f"{b}/{m}" for b in BACKBONES for m in MODES if runnable(b, m)]
        configs: list[TrainConfig] = []
        origins: list[str] = []
        blocks: list[np.ndarray] = []
        for pair in pairs:
            cs, cols = self._generated(pair)
            configs += cs
            origins += ["generated"] * len(cs)
            blocks.append(cols)
        seen = {c.key(): i for i, c in enumerate(configs)}
        extra: list[TrainConfig] = []
        for rec in retrieved:
            c = rec.config
            if not runnable(c.backbone, c.mode):
                continue
            k = c.key()
            if k in seen:
                if origins[seen[k]] == "generated":
                    origins[seen[k]] = f"retrieved:{rec.id}"
                continue
            seen[k] = len(configs)
            configs.append(c)
            extra.append(c)
            origins.append(f"retrieved:{rec.id}")
        if extra:
            blocks.append(_config_matrix(extra))
        if not configs:
            return []
        preds = self._predict_cols(meta, np.vstack(blocks), parse_device(constraints.device))
        acc = np.array([p.accuracy for p in preds])
        secs = np.array([p.seconds for p in preds])
        score = acc - TIME_WEIGHT * np.log10(np.maximum(secs, 1e-3))
        idx = np.arange(len(configs))
        if constraints.max_memory_bytes is not None:  # a hard limit: what needs more never comes back
            need = np.array([training_memory(c, meta.n_instances, constraints.device, meta.n_classes).total
                             for c in configs])
            idx = idx[need <= constraints.max_memory_bytes]
            if not len(idx):
                least = int(np.argmin(need))
                raise NoMemoryFit(constraints.max_memory_bytes, configs[least], float(need[least]))
        over = False
        if constraints.budget_seconds is not None:
            fits = secs[idx] <= constraints.budget_seconds
            if fits.any():
                idx = idx[fits]
            else:
                over = True
                score = -secs  # nothing fits: the fastest first
        order = idx[np.argsort(-score[idx], kind="stable")]
        widened_all = False
        if correct and not over:  # the winner's curse: rank the leaders by their corrected predictions
            per_pair: Counter[str] = Counter()
            head = []
            for i in order:
                pair = f"{configs[i].backbone}/{configs[i].mode}"
                if per_pair[pair] < CORRECT_PER_PAIR or origins[i] != "generated":
                    head.append(int(i))
                    per_pair[pair] += 1
            leaders = [configs[i] for i in head]
            fixed = self._stated_cols(meta, leaders, _config_matrix(leaders), parse_device(constraints.device),
                                      open_fields)
            for i, p in zip(head, fixed, strict=True):
                preds[i] = p
                score[i] = p.accuracy - TIME_WEIGHT * math.log10(max(p.seconds, 1e-3))
            order = np.array(head)[np.argsort(-score[head], kind="stable")]
            widened_all = True
        chosen = _diverse([configs[i] for i in order], score[order].tolist(), n)
        picked = [int(order[j]) for j in chosen]
        retrieved_ok = [int(i) for i in order if origins[i] != "generated"]
        if (
            retrieved_ok and not over and not any(origins[i] != "generated" for i in picked)
            and score[retrieved_ok[0]] >= score[order[0]] - RETRIEVED_MARGIN
        ):  # a similar past run is evidence the LLM can cite: keep the best one if it is in the running
            picked = (picked[: n - 1] if len(picked) >= n else picked) + [retrieved_ok[0]]
            picked.sort(key=lambda i: -score[i])
        if not widened_all and (open_fields or correct):  # only the picks are shown: predicted for them alone
            shown = [configs[i] for i in picked]
            cols, device = _config_matrix(shown), parse_device(constraints.device)
            widened = (self._stated_cols(meta, shown, cols, device, open_fields) if correct  # stated as `stated` would
                       else self._predict_cols(meta, cols, device, open_fields))
            for i, p in zip(picked, widened, strict=True):
                preds[i] = p
        return [
            Candidate(
                id=f"c{rank}", config=configs[i], prediction=preds[i], origin=origins[i],
                support=self.support(configs[i].backbone, configs[i].mode), over_budget=over,
            )
            for rank, i in enumerate(picked, start=1)
        ]

    # ---------------------------------------------------------------- explaining
    def _explain_row(self, meta: MetaFeatures, config: TrainConfig) -> np.ndarray:
        return self._x(meta, _config_matrix([config]), Device("cpu"))[0]

    def explain(self, meta: MetaFeatures, config: TrainConfig, open_fields: Sequence[str] = ()) -> Explanation:
        """SHAP values (shap.TreeExplainer on the accuracy model) for one config on the task.

        `open_fields` (see `predict`): the features they set (the fields themselves and those
        computed from them, e.g. class sizes and majority_share for n_classes) are reported
        with their mean contribution over `tools.novelty.OPEN_GRID` and listed in
        `Explanation.assumed`, so a default is not credited as if the user had stated it.

        Raises:
            ValueError: an open field outside OPEN_FIELDS.
        """
        meta, open_fields = self._unprobed(meta, open_fields)
        grid = open_metas(meta, open_fields)
        if self._explainer is None:
            with warnings.catch_warnings():  # shap 0.51 trips matplotlib's colormap deprecations at import
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                import shap  # ~1 s to import: only when an explanation is asked for

            self._explainer = shap.TreeExplainer(self._acc)
        row = self._explain_row(meta, config)
        values = np.asarray(self._explainer.shap_values(row)).reshape(-1)
        base = float(np.asarray(self._explainer.expected_value).reshape(-1)[0])
        raw = base + float(values.sum())
        shown = _display_values(meta, config)
        assumed: tuple[str, ...] = ()
        if grid:
            rows = np.vstack([row, *(self._explain_row(m, config) for m in grid)])
            varies = ~np.all(np.isclose(rows, rows[0], equal_nan=True), axis=0)
            assumed = tuple(name for name, v in zip(ACC_FEATURES, varies, strict=True) if v)
            averaged = np.asarray(self._explainer.shap_values(rows[1:])).reshape(len(grid), -1).mean(axis=0)
            values = np.where(varies, averaged, values)
        contributions = sorted(
            ((name, shown[name], float(v)) for name, v in zip(ACC_FEATURES, values, strict=True)),
            key=lambda t: -abs(t[2]),
        )
        return Explanation(base, contributions, prediction=raw, assumed=assumed)

    def global_importance(self, top: int = 10) -> list[tuple[str, float]]:
        """Mean |SHAP| of each feature over the training rows (a seeded sample of IMPORTANCE_ROWS
        when there are more), largest first."""
        items = sorted(self._info["importance"].items(), key=lambda kv: -kv[1])
        return [(k, float(v)) for k, v in items[:top]]

    def shap_plot(self, meta: MetaFeatures, config: TrainConfig, path: Path, top: int = 8,
                  open_fields: Sequence[str] = ()) -> Path:
        """A PNG bar chart of the strongest SHAP contributions, for people (assumed fields, see
        `explain`, are labelled as such)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        ex = self.explain(meta, config, open_fields)
        shown = ex.contributions[:top]
        rest = ex.contributions[top:]
        labels = [f"{name} (assumed)" if name in ex.assumed else f"{name} = {_fmt(value)}" for name, value, _ in shown]
        values = [c for _, _, c in shown]
        if rest:
            labels.append(f"{len(rest)} other features")
            values.append(sum(c for _, _, c in rest))
        labels, values = labels[::-1], values[::-1]
        fig = Figure(figsize=(7.5, 0.45 * len(labels) + 1.6), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        colors = ["#2e7d32" if v >= 0 else "#c62828" for v in values]
        if rest:  # the aggregate bar is not one feature: grey, and first after the reversal
            colors[0] = "#9e9e9e"
        ax.barh(range(len(values)), values, color=colors)
        ax.set_yticks(range(len(values)), labels)
        ax.axvline(0, color="#444", linewidth=0.8)
        span = max((abs(v) for v in values), default=0.01) or 0.01
        for i, v in enumerate(values):
            ax.text(v + (0.02 * span if v >= 0 else -0.02 * span), i, f"{v:+.3f}", va="center",
                    ha="left" if v >= 0 else "right", fontsize=8)
        ax.set_xlim(-1.3 * span, 1.3 * span)
        ax.set_xlabel("contribution to predicted test accuracy (SHAP)")
        ax.set_title(
            f"{config.backbone} ({config.mode}): predicted accuracy {ex.prediction:.3f} (average past run {ex.base_value:.3f})",
            fontsize=10,
        )
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
        return path


def _display_values(meta: MetaFeatures, config: TrainConfig) -> dict[str, object]:
    """Each feature's value as a person reads it (the learning rate itself, not its log)."""
    out: dict[str, object] = {name: getattr(meta, name) for name in META_FEATURES if hasattr(meta, name)}
    out["majority_share"] = round(_majority_share(meta), 4)
    out["optimizer_steps"] = int(math.ceil(_n_train(meta) / min(config.batch_size, _n_train(meta))) * config.epochs)
    for name in CONFIG_FEATURES:
        out[name] = getattr(config, name)
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


# ------------------------------------------------------------------ candidate generation
_ANCHORS: tuple[dict[str, Any], ...] = (
    {"optimizer": "adam", "learning_rate": 1e-3, "scheduler": "cosine"},
    {"optimizer": "adamw", "learning_rate": 3e-4, "scheduler": "cosine", "weight_decay": 1e-2},
    {"optimizer": "sgd", "learning_rate": 1e-2, "scheduler": "cosine", "weight_decay": 1e-4},
)
_GENERIC: dict[str, list[Any]] = {  # for a pair the knowledge base has no runs of
    "input_size": [64], "optimizer": ["adam", "adamw", "sgd"], "batch_size": [32, 64], "epochs": [5, 10, 20],
    "weight_decay": [0.0, 1e-4], "dropout": [0.0, 0.2], "scheduler": ["cosine"], "augmentation": ["none", "flip"],
    "label_smoothing": [0.0], "freeze": [0.0], "log10_lr": [-4.0, -1.5],
}
# Configs closer than this in `freeze` are near-duplicates (0.75 and 0.9 both freeze most of
# the backbone); steps of a quarter, as past runs use them, are different options.
FREEZE_DISTINCT = 0.2


def _nearest(values: Sequence[Any], target: Any) -> Any:
    if isinstance(target, str):
        return target if target in values else values[0]
    return min(values, key=lambda v: abs(v - target))


def _generate(pair: str, spec: dict[str, Any] | None, seed: int, k: int = POOL_PER_PAIR) -> list[TrainConfig]:
    """Valid configs for one 'backbone/mode' drawn from the values its past runs used."""
    backbone, mode = pair.split("/")
    # A field the pair's runs do not list (a spec cached before the field existed) takes the
    # generic values: freeze 0 for a finetune pair whose runs never froze part of the backbone.
    spec = {**_GENERIC, **{name: v for name, v in (spec or {}).items() if v}}
    if mode != "finetune":
        spec["freeze"] = [0.0]  # partial freezing belongs to finetune mode (knowledge.space)
    rng = random.Random(f"{seed}|{pair}")
    lo, hi = spec["log10_lr"]
    grid = [round(v, 2) for v in np.arange(math.floor(lo * 4) / 4, hi + 1e-9, 0.25)] or [round(lo, 2)]
    common = {name: Counter(spec[name]).most_common(1)[0][0] for name in _POOL_FIELDS}
    raw: list[dict[str, Any]] = []
    for anchor in _ANCHORS:
        base = dict(common)
        base["epochs"] = max(spec["epochs"])
        base["batch_size"] = _nearest(spec["batch_size"], 64)
        for name, value in anchor.items():
            if name == "learning_rate":
                base[name] = 10 ** min(max(math.log10(value), lo), hi)
            elif name in spec and spec[name]:
                base[name] = _nearest(spec[name], value)
        for size in spec["input_size"]:
            raw.append({**base, "input_size": size})
        for share in spec["freeze"]:  # each freeze level past runs used, at the anchor's settings
            raw.append({**base, "freeze": share})
    for _ in range(k):
        cfg = {name: rng.choice(spec[name]) for name in _POOL_FIELDS}
        cfg["learning_rate"] = float(f"{10 ** rng.choice(grid):.3g}")
        raw.append(cfg)
    out: list[TrainConfig] = []
    keys: set[str] = set()
    for cfg in raw:
        if mode == "frozen":
            cfg["augmentation"] = "none"
        cfg["learning_rate"] = float(f"{min(max(cfg['learning_rate'], 1e-6), 1.0):.3g}")
        try:
            c = TrainConfig(backbone=backbone, mode=mode, **cfg)
        except ValueError:
            continue
        if c.key() not in keys:
            keys.add(c.key())
            out.append(c)
    return out


def _near_duplicate(a: TrainConfig, b: TrainConfig) -> bool:
    return (
        a.backbone == b.backbone and a.mode == b.mode and a.optimizer == b.optimizer and a.input_size == b.input_size
        and abs(math.log10(a.learning_rate) - math.log10(b.learning_rate)) < 0.5
        and abs(a.freeze - b.freeze) < FREEZE_DISTINCT
    )


def _diverse(ranked: Sequence[TrainConfig], scores: Sequence[float], n: int) -> list[int]:
    """Indices into `ranked` (sorted best first, with their `scores`), picked in three passes.

    1. competitive configs (score within DIVERSITY_MARGIN of the best), at most MAX_PER_PAIR
       per backbone x mode, and none a near-duplicate of a pick: the list spans the options
       that are really in the running, not six learning rates of one backbone;
    2. if short: any config, best first, still no near-duplicate (a pair far behind the best
       does not push out good configs just to be represented);
    3. if still short: anything left, best first.
    The picks are returned best first.
    """
    picked: list[int] = []
    per_pair: Counter[tuple[str, str]] = Counter()
    top = scores[0] if len(scores) else 0.0
    for i, c in enumerate(ranked):
        if len(picked) >= n or scores[i] < top - DIVERSITY_MARGIN:
            break
        pair = (c.backbone, c.mode)
        if per_pair[pair] < MAX_PER_PAIR and not any(_near_duplicate(c, ranked[j]) for j in picked):
            picked.append(i)
            per_pair[pair] += 1
    for i, c in enumerate(ranked):
        if len(picked) >= n:
            break
        if i not in picked and not any(_near_duplicate(c, ranked[j]) for j in picked):
            picked.append(i)
    for i in range(len(ranked)):
        if len(picked) >= n:
            break
        if i not in picked:
            picked.append(i)
    return sorted(picked)


# ---------------------------------------------------------------------- evaluation
def leave_one_dataset_out(records: Sequence[ExperimentRecord], *, seed: int = 0) -> list[dict[str, Any]]:
    """For each dataset D: fit without D, then score the model on D's recorded runs.

    Per dataset: `mae` of predicted vs true test accuracy over D's ok runs; `mae_log_seconds`;
    `spearman` between predicted and true accuracy; the recorded config the model ranks
    highest (same score as `candidates`: accuracy minus TIME_WEIGHT per decade of seconds),
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
        score = acc - TIME_WEIGHT * np.log10(np.maximum(secs, 1e-3))
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
]
