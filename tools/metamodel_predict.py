"""Predicting with the meta-model: the point, the interval by distance (residual quantiles of a
known dataset's random folds, else of held-out datasets in the task's distance band), the fields
left open, the devices, and the number stated to the user (`stated`). Part of `tools.metamodel`."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import xgboost as xgb

from knowledge.schema import ExperimentRecord, MetaFeatures, TrainConfig
from tools.metamodel_features import (
    META_FEATURES,
    _acc_columns,
    _config_matrix,
    _meta_row,
    _n_train,
    _on_this_machine,
    _predict,
    _row_matrix,
    _signature,
    _time_extra,
    usable,
)
from tools.metamodel_types import Device, Prediction, parse_device
from tools.neighbour_levels import prior
from tools.novelty import (
    NEAREST_SHOWN,
    Neighbours,
    band_of,
    beyond_note,
    beyond_range,
    calibrate,
    check_open_fields,
    evidence_note,
    majority_note,
    open_metas,
)

# Residual quantiles of the interval: 90 %. Its real coverage (per held-out dataset and per run, for
# datasets within the threshold and beyond it), its mean width and the point error are measured by
# nested leave-one-dataset-out, intervals from a model that never saw the dataset (`python -m
# bench.calibration`), and the current numbers are in docs/BENCHMARKS.md, "Meta-model intervals by
# distance". A new dataset's errors share one offset (its difficulty), so coverage varies by dataset.
INTERVAL = (0.05, 0.95)


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


class _Predicting:
    """The prediction methods of `tools.metamodel.MetaModel` (which sets these attributes)."""

    _acc: xgb.Booster
    _time: xgb.Booster
    _info: dict[str, Any]
    _modalities: list[str]
    _gpus: list[str]
    _known: set[str]
    _neighbours: Neighbours
    _bags: list[xgb.Booster]

    def _bag_std(self, x_acc: np.ndarray) -> np.ndarray:
        """Per row of the accuracy model: the standard deviation of the dataset-bootstrap boosters'
        predictions (tools.metamodel.BAGS); zeros for a model without them."""
        if not self._bags or not len(x_acc):
            return np.zeros(len(x_acc))
        return np.clip(np.vstack([_predict(b, x_acc) for b in self._bags]), 0.0, 1.0).std(axis=0)

    def _spread_cols(self, meta: MetaFeatures, cfg_cols: np.ndarray) -> np.ndarray:
        """`_bag_std` at the rows `predict` predicts: a task without a probe at the median probe, as its
        point prediction (a missing probe sends every booster down default branches that no training
        row chose, so a spread read there says nothing about the row the prediction is made at)."""
        return self._bag_std(self._x_acc(self._unprobed(meta, ())[0], cfg_cols))

    def spread(self, meta: MetaFeatures, configs: Sequence[TrainConfig]) -> list[float]:
        """How far apart the accuracy models fitted on bootstrap samples of the datasets put each config
        (one standard deviation): large where the prediction rests on few datasets or extrapolates."""
        return [float(v) for v in self._spread_cols(meta, _config_matrix(list(configs)))]

    def _x_row(self, meta: MetaFeatures, cfg_cols: np.ndarray) -> np.ndarray:
        n = len(cfg_cols)
        return _row_matrix(np.broadcast_to(_meta_row(meta, self._modalities), (n, len(META_FEATURES))),
                           np.full(n, _n_train(meta)), cfg_cols)

    def _x_acc(self, meta: MetaFeatures, cfg_cols: np.ndarray) -> np.ndarray:
        return _acc_columns(self._x_row(meta, cfg_cols))

    def _x(self, meta: MetaFeatures, cfg_cols: np.ndarray, device: Device) -> tuple[np.ndarray, np.ndarray]:
        """The accuracy model's and the time model's rows."""
        x_row = self._x_row(meta, cfg_cols)
        return _acc_columns(x_row), np.hstack([x_row, _time_extra(x_row, _on_this_machine(device), self._gpus)])

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
                      open_fields: Sequence[str] = (), marginal: list[np.ndarray] | None = None,
                      spread: list[np.ndarray] | None = None) -> list[Prediction]:
        """`predict` on encoded configs; `marginal`, when given, receives the mean prediction over the
        open fields' grid (see `MetaModel.marginal`), computed from the same grid predictions, and
        `spread` the configs' spread (`_spread_cols`) from the same rows as the point prediction."""
        meta, fields = self._unprobed(meta, open_fields)
        if len(cfg_cols) == 0:
            return []
        device = parse_device(device)
        support, note = self.device_support(device), self.device_note(device)
        x_acc, x_time = self._x(meta, cfg_cols, device)
        acc = _predict(self._acc, x_acc)
        if spread is not None:
            spread.append(self._bag_std(x_acc))
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
        known = self.is_known(meta)
        dist = 0.0 if known else (nearest[0][1] if nearest else None)
        evidence = self.evidence_note(meta)
        if not known and (beyond := beyond_range(meta, self._neighbours.metas, fields)):
            low = np.minimum(low, 1.0 / meta.n_classes)  # an upper bound: the accuracy may be anywhere below
            evidence = " ".join(t for t in (evidence, beyond_note(beyond, meta.n_classes)) if t)

        def noted(a: float) -> str | None:  # below what the largest class alone scores: accuracy says little
            return " ".join(t for t in (evidence, majority_note(meta, self._neighbours.metas, a, fields)) if t) or None

        return [Prediction(float(a), float(lo), float(hi), float(s), device=device.label, device_support=support,
                           device_note=note, distance=dist, nearest=nearest, evidence_note=noted(float(a)),
                           assumed=fields)
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
        counts = self._info["devices"]
        if self.device_support(d):
            return self._cores_note(d, counts.get("cpu_cores") or {})
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

    @staticmethod
    def _cores_note(d: Device, cores: dict[str, int]) -> str | None:
        """For a CPU of a stated core count no run came from: what its times rest on. None otherwise (the
        time model reads the count, but its trees do not extrapolate beyond the counts the runs had)."""
        counted = {int(k): n for k, n in cores.items()}
        if d.kind != "cpu" or not d.cores or not counted or d.cores in counted:
            return None
        seen = ", ".join(f"{k} cores ({n} runs)" for k, n in sorted(counted.items()))
        head = f"no run in the knowledge base came from a {d.cores}-core CPU; the times are"
        if min(counted) < d.cores < max(counted):
            return f"{head} read between its CPU runs ({seen})."
        way = "overestimates" if d.cores > max(counted) else "underestimates"
        return f"{head} those of its CPU runs ({seen}) and likely {way} on {d.cores} cores."

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
            out.append(dataclasses.replace(p, evidence_level=pr[0], evidence_runs=pr[1]) if pr else p)
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
