"""Explaining the meta-model's accuracy predictions with SHAP (one value per field, assumed
fields averaged over their plausible values), in text and as a bar chart. Part of `tools.metamodel`."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.schema import MetaFeatures, TrainConfig
from tools.metamodel_features import (
    ACC_FEATURES,
    CONFIG_FEATURES,
    META_FEATURES,
    AccMargin,
    _config_matrix,
    _majority_share,
    _n_train,
)
from tools.metamodel_predict import _Predicting
from tools.metamodel_types import Device, Explanation, _fmt
from tools.novelty import open_metas


def _display_values(meta: MetaFeatures, config: TrainConfig) -> dict[str, object]:
    """Each feature's value as a person reads it (the learning rate itself, not its log)."""
    out: dict[str, object] = {name: getattr(meta, name) for name in META_FEATURES if hasattr(meta, name)}
    out["majority_share"] = round(_majority_share(meta), 4)
    out["optimizer_steps"] = int(math.ceil(_n_train(meta) / min(config.batch_size, _n_train(meta))) * config.epochs)
    for name in CONFIG_FEATURES:
        out[name] = getattr(config, name)
    return out


class _Explaining(_Predicting):
    """The explaining methods of `tools.metamodel.MetaModel`."""

    _explainer: Any | None

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
        row = self._explain_row(meta, config)  # (1, n_features)
        line = AccMargin.of(self._acc)

        def shap_values(rows: np.ndarray) -> np.ndarray:  # the trees' values plus the starting line's
            values = np.asarray(self._explainer.shap_values(rows)).reshape(len(rows), -1)
            return values + line.shap(rows, ACC_FEATURES) if line is not None else values

        values = shap_values(row)[0]
        base = float(np.asarray(self._explainer.expected_value).reshape(-1)[0]) + (line.reference if line else 0.0)
        raw = base + float(values.sum())
        shown = _display_values(meta, config)
        assumed: tuple[str, ...] = ()
        if grid:
            rows = np.vstack([row, *(self._explain_row(m, config) for m in grid)])
            varies = ~np.all(np.isclose(rows, rows[0], equal_nan=True), axis=0)
            assumed = tuple(name for name, v in zip(ACC_FEATURES, varies, strict=True) if v)
            averaged = shap_values(rows[1:]).mean(axis=0)
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
