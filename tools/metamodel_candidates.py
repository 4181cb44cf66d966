"""The meta-model's candidates: configs the knowledge base measured (on any dataset), configs
generated per (backbone, mode) only where it measured none, plus retrieved ones, predicted in one
batch, filtered by the constraints, ranked by their stated accuracy with a light preference for
speed, and made diverse. Part of `tools.metamodel`."""

from __future__ import annotations

import functools
import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from knowledge.schema import ExperimentRecord, MetaFeatures, TrainConfig
from knowledge.space import BACKBONES, MODES
from tools.memory import NoMemoryFit, training_memory
from tools.metamodel_features import _config_matrix, usable
from tools.metamodel_predict import _Predicting
from tools.metamodel_types import Candidate, Constraints, parse_device
from tools.novelty import check_open_fields
from tools.weights import weights_available

TIME_WEIGHT = 0.005  # ranking: a config 10x slower must be predicted 0.5 points more accurate


# Ranking: the prediction minus this many standard deviations of the dataset-bootstrap boosters
# (tools.metamodel.BAGS, `spread`): of two configs predicted alike, the one fewer datasets vouch for
# ranks lower. The stated accuracy stays the model's prediction.
SPREAD_WEIGHT = 1.0


MAX_PER_PAIR = 2  # candidates per (backbone, mode) in the first, diverse pass


DIVERSITY_MARGIN = 0.05  # ... among configs scored within this of the best (accuracy points)


RETRIEVED_MARGIN = 0.10  # the best retrieved config is kept when scored within this of the best


POOL_PER_PAIR = 160  # generated configs per (backbone, mode)


# The measured pool: the candidates are configs some successful run of the knowledge base used, each
# as it ran (on another dataset), not configs drawn field by field from the values past runs used.
# Drawn configs combined values no good run had combined: on the 3,492-run seed, with brain_tumor_mri
# held out, the top generated config was a partial fine-tune with Adam at lr 0.316 (a rate the sweeps
# use only as a deliberately poor setting), predicted 0.864; the trees, flat where no run splits
# them, scored it like its neighbours. A measured config sits on a row the trees fitted, so its
# prediction carries what that run reached. bench/lodo.py compares both pools on real runs
# (`metamodel-top1` against `metamodel-generated` in docs/BENCHMARKS.md: mean regret 0.053 against 0.058,
# median 0.034 against 0.065, on the 3,492-run seed; within one dataset's swing). Per (backbone, mode) at
# most MEASURED_PER_PAIR configs: every dataset's best first, in turn, so a large knowledge base
# keeps each dataset's strongest.
MEASURED_PER_PAIR = 300


CORRECT_PER_PAIR = 8  # best-scored configs per (backbone, mode) re-ranked by their corrected predictions


# The trust region: a generated config is ranked only where the knowledge base has measured its
# kind of run (`config_cell`) at least MIN_CELL_RUNS times on MIN_CELL_DATASETS datasets. Outside
# it the trees extrapolate additively from neighbouring cells: the sixth LODO run picked Lite
# partial fine-tunes at 32 px for 30 epochs on six 64 px datasets, a cell no run had measured (its
# evidence was 1-3 epoch full fine-tunes at 32 px), predicted 0.52-0.80 and measured 0.37-0.64.
MIN_CELL_RUNS = 3
MIN_CELL_DATASETS = 2
LONG_EPOCHS = 10  # a run of this many epochs or more is a long one (the sweeps' short runs are 1-6)


def config_cell(config: TrainConfig, resolution: int) -> str:
    """The coarse kind of run `config` is on a dataset of images `resolution` px on a side:
    mode, for a fine-tune whether part of the backbone stays frozen, input size below, at or above
    the images' own (a quarter either way counts as at), short or long training. Recorded runs are
    counted by it (`cell_counts`) and generated candidates are kept to cells with evidence."""
    part = "" if config.mode != "finetune" else ("/partial" if config.freeze else "/full")
    size = config.input_size / max(resolution, 1)
    where = "below" if size < 0.75 else ("at" if size <= 1.25 else "above")
    length = "long" if config.epochs >= LONG_EPOCHS else "short"
    return f"{config.mode}{part}/{where}/{length}"


_CELL_WORDS = {
    "frozen": "frozen-backbone heads", "scratch": "trainings from scratch", "finetune/full": "full fine-tunes",
    "finetune/partial": "partial fine-tunes", "below": "below the images' own size", "at": "at about the images' own size",
    "above": "above the images' own size", "short": f"for under {LONG_EPOCHS} epochs",
    "long": f"for {LONG_EPOCHS} epochs or more",
}


def cell_words(cell: str) -> str:
    """A `config_cell` in words: "partial fine-tunes below the images' own size for 10 epochs or more"."""
    *kind, where, length = cell.split("/")
    return " ".join(_CELL_WORDS.get(part, part) for part in ("/".join(kind), where, length))


def cell_counts(records: Sequence[ExperimentRecord]) -> dict[str, list[int]]:
    """Per `config_cell`: [runs, datasets] among the usable records."""
    runs: Counter[str] = Counter()
    datasets: dict[str, set[str]] = defaultdict(set)
    for r in usable(records):
        cell = config_cell(r.config, r.dataset.meta.resolution)
        runs[cell] += 1
        datasets[cell].add(r.dataset.name)
    return {cell: [runs[cell], len(datasets[cell])] for cell in sorted(runs)}


_POOL_FIELDS = (
    "input_size", "optimizer", "batch_size", "epochs", "weight_decay", "dropout", "scheduler", "augmentation",
    "label_smoothing", "freeze",
)


# Where good runs put their learning rate: per optimizer and mode, the central LR_BAND_SHARE of the learning
# rates of the runs in their dataset's top quarter (GOOD_QUANTILE), once LR_BAND_MIN_RUNS such runs exist, widened
# by half a decade either side (LR_BAND_MARGIN, the step of a coarse learning-rate grid: 1e-3, 3e-3, 1e-2). A
# measured config outside it is left out of the pool: one sweep run of a partial fine-tune with Adam at 0.548 reached
# 0.875 on a 200-image dataset, and the thirteenth LODO run picked it for another (it tested 0.886 where the best run
# reached 0.995). Good Adam(W) fine-tunes of the 3,662-run seed lie between 1.4e-4 and 8.6e-3.
GOOD_QUANTILE = 0.75
LR_BAND_SHARE = 0.90
LR_BAND_MARGIN = 10 ** 0.5
LR_BAND_MIN_RUNS = 20


def lr_bands(records: Sequence[ExperimentRecord]) -> dict[str, tuple[float, float]]:
    """Per 'optimizer/mode': the (low, high) learning rates of good runs (see LR_BAND_SHARE)."""
    ok = [r for r in records if r.outcome.status == "ok" and r.outcome.test_accuracy is not None]
    by_dataset: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        by_dataset[r.dataset.name].append(float(r.outcome.test_accuracy))  # type: ignore[arg-type]
    good_from = {name: float(np.quantile(accs, GOOD_QUANTILE)) for name, accs in by_dataset.items()}
    rates: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        if float(r.outcome.test_accuracy) >= good_from[r.dataset.name]:  # type: ignore[arg-type]
            rates[f"{r.config.optimizer}/{r.config.mode}"].append(math.log10(r.config.learning_rate))
    tail = (1 - LR_BAND_SHARE) / 2
    return {kind: (10 ** float(np.quantile(v, tail)) / LR_BAND_MARGIN, 10 ** float(np.quantile(v, 1 - tail)) * LR_BAND_MARGIN)
            for kind, v in sorted(rates.items()) if len(v) >= LR_BAND_MIN_RUNS}


def in_band(config: TrainConfig, bands: dict[str, tuple[float, float]]) -> bool:
    """Whether `config`'s learning rate lies where good runs of its optimizer and mode put theirs (no band: yes)."""
    low, high = bands.get(f"{config.optimizer}/{config.mode}", (0.0, math.inf))
    return low <= config.learning_rate <= high


def measured_spec(records: Sequence[ExperimentRecord], per_pair: int = MEASURED_PER_PAIR) -> dict[str, list[list[Any]]]:
    """Per 'backbone/mode': [record id, config as JSON, dataset, test accuracy] of up to `per_pair` distinct
    configs of successful runs whose learning rate lies where good runs of their kind put theirs (`lr_bands`),
    every dataset's best-scoring first in turn (its best, then each dataset's second, ...). The dataset and
    accuracy are what the run reached with the config as it ran there (`MetaModel.measured_run`: the card says
    where a candidate comes from)."""
    bands = lr_bands(records)
    by_pair: dict[str, dict[str, list[ExperimentRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.outcome.status == "ok" and r.outcome.test_accuracy is not None and in_band(r.config, bands):
            by_pair[f"{r.config.backbone}/{r.config.mode}"][r.dataset.name].append(r)
    spec: dict[str, list[list[Any]]] = {}
    for pair, per_dataset in sorted(by_pair.items()):
        queues = [sorted(rs, key=lambda r: (-float(r.outcome.test_accuracy or 0.0), r.id))
                  for _, rs in sorted(per_dataset.items())]
        seen: set[str] = set()
        picked: list[list[Any]] = []
        for rank in range(max(len(q) for q in queues)):
            for q in queues:
                if rank < len(q) and len(picked) < per_pair and (k := q[rank].config.key()) not in seen:
                    seen.add(k)
                    picked.append([q[rank].id, q[rank].config.model_dump(mode="json"), q[rank].dataset.name,
                                   round(float(q[rank].outcome.test_accuracy or 0.0), 4)])
        spec[pair] = picked
    return spec


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


# Asked once per backbone and process: the answer only changes when weights are installed.
_weights_available = functools.cache(weights_available)


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


def can_run(backbone: str, mode: str, constraints: Constraints) -> bool:
    """Whether a (backbone, mode) may be offered here: allowed by `constraints`, and a mode other than scratch only
    for a backbone with pretrained weights installed on this machine."""
    if backbone not in (constraints.backbones or BACKBONES) or mode not in (constraints.modes or MODES):
        return False
    if BACKBONES[backbone]["pretrained_source"] is None:
        return mode == "scratch"
    return mode == "scratch" or _weights_available(backbone)


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


class _Ranking(_Predicting):
    """The candidate methods of `tools.metamodel.MetaModel`."""

    _pool: dict[str, tuple[list[TrainConfig], np.ndarray]]
    _measured_pool: dict[str, tuple[list[TrainConfig], list[str], np.ndarray]]
    _measured_runs: dict[str, list[Any]]

    def support(self, backbone: str, mode: str) -> int:
        """Knowledge-base runs (ok or diverged) with this backbone and mode."""
        return int(self._info["pool"].get(f"{backbone}/{mode}", {}).get("n", 0))

    def cell_support(self, config: TrainConfig, resolution: int) -> tuple[int, int]:
        """(runs, datasets) of the knowledge base in `config`'s `config_cell` on images of `resolution` px.

        Images larger than every dataset the knowledge base holds count as its largest: whether a
        run is below their size can only be judged where runs were measured (512 px scans are
        downsized to 224 px or less by everyone, and the base has no run that says how much that costs)."""
        runs, datasets = self._info.get("cells", {}).get(self._cell(config, resolution), (0, 0))
        return int(runs), int(datasets)

    def _cell(self, config: TrainConfig, resolution: int) -> str:
        """`config_cell` with images larger than the knowledge base's largest counted as its largest."""
        largest = self._info.get("cells_largest_resolution")
        return config_cell(config, min(resolution, largest) if largest else resolution)

    def cell_evidence(self, config: TrainConfig, resolution: int) -> tuple[str, int, int, bool] | None:
        """What the knowledge base measured of `config`'s kind of run: (the kind in words, runs, datasets,
        whether that is inside the trust region); None for a model fitted before runs were counted by kind."""
        if "cells" not in self._info:
            return None
        return (cell_words(self._cell(config, resolution)), *self.cell_support(config, resolution),
                self._measured(config, resolution))

    def _measured(self, config: TrainConfig, resolution: int) -> bool:
        """Whether `config` is inside the trust region (see MIN_CELL_RUNS)."""
        runs, datasets = self.cell_support(config, resolution)
        return runs >= MIN_CELL_RUNS and datasets >= MIN_CELL_DATASETS

    def _generated(self, pair: str) -> tuple[list[TrainConfig], np.ndarray]:
        """The generated configs of one 'backbone/mode', built once per model."""
        if pair not in self._pool:
            configs = _generate(pair, self._info["pool"].get(pair), seed=int(self._info["seed"]))
            self._pool[pair] = (configs, _config_matrix(configs))
        return self._pool[pair]

    def _measured_configs(self, pair: str) -> tuple[list[TrainConfig], list[str], np.ndarray]:
        """The measured pool of one 'backbone/mode' (MEASURED_PER_PAIR): configs, origins, encoded rows."""
        if pair not in self._measured_pool:
            rows = self._info.get("measured", {}).get(pair, [])
            configs = [TrainConfig.model_validate(row[1]) for row in rows]
            self._measured_pool[pair] = (configs, [f"measured:{row[0]}" for row in rows], _config_matrix(configs))
        return self._measured_pool[pair]

    def measured_run(self, origin: str, config: TrainConfig | None = None) -> dict[str, Any] | None:
        """The run a measured candidate's config comes from ("measured:<record id>"): {"id", "dataset",
        "test_accuracy"}, what that run reached on its own dataset with this config. None for any other
        origin, or when `config` (given) is not that run's config (a config changed after the ranking)."""
        if not origin.startswith("measured:"):
            return None
        rid = origin.removeprefix("measured:")
        row = self._measured_runs.get(rid)
        if row is None or (config is not None and TrainConfig.model_validate(row[1]).key() != config.key()):
            return None
        return {"id": rid, "dataset": str(row[2]), "test_accuracy": float(row[3])}

    def candidates(
        self,
        meta: MetaFeatures,
        constraints: Constraints | None = None,
        retrieved: Sequence[ExperimentRecord] = (),
        n: int = 6,
        open_fields: Sequence[str] = (),
        correct: bool = True,
        measured: bool = True,
    ) -> list[Candidate]:
        """The n best configurations for the task within the constraints, best first.

        The configs the knowledge base measured (per supported backbone x mode whose weights exist
        here, MEASURED_PER_PAIR; origin "measured:<record id>"), configs generated for a backbone x mode it
        measured none of, and the configs of `retrieved` records are predicted in one batch, those over the time
        budget dropped, and the rest ranked by predicted accuracy minus SPREAD_WEIGHT times its
        `spread` and minus TIME_WEIGHT per decade of seconds. Generated configs are kept to kinds of
        run the knowledge base measured (MIN_CELL_RUNS). Among configs within DIVERSITY_MARGIN of the best, at most
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

        With `measured=False` every backbone x mode gets generated configs instead of its measured pool
        (the ranking before the measured pool, kept for bench/lodo.py's comparison).

        Raises:
            ValueError: an open field outside OPEN_FIELDS.
            tools.memory.NoMemoryFit: (a ValueError) no allowed config fits the memory limit.
        """
        open_fields = check_open_fields(open_fields)
        constraints = constraints or Constraints()

        pairs = [p for p in self._info["pool"] if can_run(*p.split("/"), constraints)]
        if not pairs:  # no evidence for any allowed pair: generic configs, support 0
            pairs = [f"{b}/{m}" for b in BACKBONES for m in MODES if can_run(b, m, constraints)]
        pooled = []  # (configs, origins, rows) per pair: the measured pool, else generated configs
        for pair in pairs:
            cs, names, cols = self._measured_configs(pair) if measured else ([], [], None)
            if not cs:
                cs, cols = self._generated(pair)
                names = ["generated"] * len(cs)
            pooled.append((cs, names, cols))
        inside = [np.array([self._measured(c, meta.resolution) for c in cs], dtype=bool) for cs, _, _ in pooled]
        if any(m.any() for m in inside):  # the trust region; with no measured cell at all, everything
            pooled = [([c for c, ok in zip(cs, m, strict=True) if ok], [o for o, ok in zip(names, m, strict=True) if ok],
                       cols[m]) for (cs, names, cols), m in zip(pooled, inside, strict=True)]
        configs: list[TrainConfig] = []
        origins: list[str] = []
        blocks: list[np.ndarray] = []
        for cs, names, cols in pooled:
            if not cs:
                continue
            configs += cs
            origins += names
            blocks.append(cols)
        seen = {c.key(): i for i, c in enumerate(configs)}
        extra: list[TrainConfig] = []
        for rec in retrieved:
            c = rec.config
            if not can_run(c.backbone, c.mode, constraints):
                continue
            k = c.key()
            if k in seen:
                if not origins[seen[k]].startswith("retrieved:"):
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
        cols = np.vstack(blocks)
        spreads: list[np.ndarray] = []
        preds = self._predict_cols(meta, cols, parse_device(constraints.device), spread=spreads)
        acc = np.array([p.accuracy for p in preds])
        secs = np.array([p.seconds for p in preds])
        spread = SPREAD_WEIGHT * spreads[0]
        score = acc - spread - TIME_WEIGHT * np.log10(np.maximum(secs, 1e-3))
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
                if per_pair[pair] < CORRECT_PER_PAIR or origins[i].startswith("retrieved:"):
                    head.append(int(i))
                    per_pair[pair] += 1
            leaders = [configs[i] for i in head]
            fixed = self._stated_cols(meta, leaders, _config_matrix(leaders), parse_device(constraints.device),
                                      open_fields)
            for i, p in zip(head, fixed, strict=True):
                preds[i] = p
                score[i] = p.accuracy - spread[i] - TIME_WEIGHT * math.log10(max(p.seconds, 1e-3))
            order = np.array(head)[np.argsort(-score[head], kind="stable")]
            widened_all = True
        chosen = _diverse([configs[i] for i in order], score[order].tolist(), n)
        picked = [int(order[j]) for j in chosen]
        retrieved_ok = [int(i) for i in order if origins[i].startswith("retrieved:")]
        if (
            retrieved_ok and not over and not any(origins[i].startswith("retrieved:") for i in picked)
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
                spread=float(spread[i]) / SPREAD_WEIGHT if SPREAD_WEIGHT else 0.0,
            )
            for rank, i in enumerate(picked, start=1)
        ]
