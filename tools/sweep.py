"""The sweep that fills the knowledge base with real, measured runs.

The plan is random search over the search space, shaped by what a CPU can afford:
- frozen pretrained backbones (features extracted once, heads train in seconds) carry
  most of the runs, over every hyperparameter a head has, including poor settings
  (learning rates up to 1.0, one epoch, heavy dropout), as real histories do;
- trainable runs (scratch CNNs, fine-tuned EfficientNet-Lite) are fewer, shorter and at
  smaller input sizes, sized by the dataset so each costs seconds to a few minutes.

Plans (`PLANS`):
- "frozen": the plan the first seed was built with (above).
- "cpu": what a practitioner would train, at the price a 2-core CPU can pay: partial
  fine-tunes of EfficientNet-Lite on cached frozen prefixes (`freeze`, see tools.train), a few
  full fine-tunes where the dataset is small, small_cnn from scratch for 15-40 epochs, resnet18
  and mobilenet_v3_small from scratch for 8-30 epochs (mostly 32 px), and frozen heads for
  datasets the knowledge base has none of; deliberately poor settings too. Each dataset gets 24
  fine-tunes, then 48 more (their own random stream, planned after everything else) so that
  fine-tunes can reach a quarter of the seed's runs.
  Ordered cheapest and most informative first: every dataset's first runs (the ones it lacks
  most) come before anyone's later ones, each tier by estimated cost.
- "gpu": the same kinds at 64 to 224 px, full fine-tunes included, many more per dataset;
  sized so one 10-minute session on one GPU yields several hundred runs (several workers
  share the device).
- "stale": the knowledge base's own sweep runs whose records are stale (measured before a
  runner fix that changes them, knowledge.runner_revisions), measured again as they ran,
  cheapest first (`plan_stale`).
`--to-targets` (cpu and gpu plans) keeps only the plan's pending runs that bring each dataset up to
the seed's targets (`TARGETS`: 20 fine-tunes, 10 scratch runs of 15+ epochs), counting what the
knowledge base holds, the dataset that costs least to complete first, then fine-tunes, every
dataset's cheapest in turn, until they are a quarter of the successful runs (`TARGET_SHARE`,
`select_to_targets`).
Trainable runs of 15 epochs or more stop early on validation accuracy (patience 5; the
record's `epochs_run` and notes say so).

It is resumable: every finished run is appended to the JSONL at once, and items whose
run key is already there are skipped, so a sweep killed at any point (kill -9 included)
resumes where it stopped without duplicates. Several worker processes share the cores.
A run whose record is stale (measured before a runner fix that changes it, see
knowledge.runner_revisions) is not done: the sweep measures it again, in its plan place, and the
new record supersedes the old one.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowledge.schema import ExperimentRecord, TrainConfig
from knowledge.store import KnowledgeBase, coverage_kind, training_coverage
from knowledge.targets import TARGET_SHARE, TARGETS, TO_TARGETS_HELP, finetunes_to_share

log = logging.getLogger(__name__)

HEAD_EPOCHS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 40)
BATCHES = (16, 32, 64, 128, 256)
WEIGHT_DECAYS = (0.0, 0.0, 1e-5, 1e-4, 1e-3, 1e-2, 5e-2)
DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)
SMOOTHING = (0.0, 0.0, 0.05, 0.1, 0.2)


PATIENCE = 5  # early stopping on validation accuracy, for trainable runs of >= EARLY_STOP_FROM epochs
EARLY_STOP_FROM = 15


@dataclass(frozen=True)
class SweepItem:
    dataset: str  # path of the dataset file or folder
    config: TrainConfig
    seed: int
    plan: str = "frozen"
    early_stop: bool | None = None  # None: the plans' rule (trainable runs of EARLY_STOP_FROM epochs or more)
    why: str | None = None  # said in the record's notes after the plan

    @property
    def patience(self) -> int | None:
        rule = self.config.mode != "frozen" and self.config.epochs >= EARLY_STOP_FROM
        return PATIENCE if (rule if self.early_stop is None else self.early_stop) else None

    @property
    def notes(self) -> str:
        stop = f"; early stopping on val accuracy, patience {self.patience}" if self.patience else ""
        return f"sweep plan {self.plan}{stop}" + (f"; {self.why}" if self.why else "")

    @property
    def group(self) -> tuple[str, str, str, int]:
        """Runs that share loaded data and cached features go to one worker together."""
        kind = "frozen" if self.config.mode == "frozen" else "train"
        return (self.dataset, kind, self.config.backbone, self.config.input_size)


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.3g}")


def sample_head_config(rng: random.Random, backbone: str, input_size: int) -> TrainConfig:
    return TrainConfig(
        backbone=backbone,
        mode="frozen",
        input_size=input_size,
        optimizer=rng.choice(("sgd", "adam", "adamw", "rmsprop")),
        learning_rate=_log_uniform(rng, 1e-5, 1.0),
        batch_size=rng.choice(BATCHES),
        epochs=rng.choice(HEAD_EPOCHS),
        weight_decay=rng.choice(WEIGHT_DECAYS),
        dropout=rng.choice(DROPOUTS),
        scheduler=rng.choice(("constant", "cosine", "step", "warmup_cosine")),
        augmentation="none",
        label_smoothing=rng.choice(SMOOTHING),
    )


def sample_trainable_config(rng: random.Random, backbone: str, mode: str, input_size: int, max_epochs: int) -> TrainConfig:
    return TrainConfig(
        backbone=backbone,
        mode=mode,  # type: ignore[arg-type]
        input_size=input_size,
        optimizer=rng.choice(("sgd", "adam", "adamw")),
        learning_rate=_log_uniform(rng, 1e-4, 0.3),
        batch_size=rng.choice((32, 64, 128)),
        epochs=rng.randint(1, max_epochs),
        weight_decay=rng.choice(WEIGHT_DECAYS),
        dropout=rng.choice((0.0, 0.2, 0.5)),
        scheduler=rng.choice(("constant", "cosine", "warmup_cosine")),
        augmentation=rng.choice(("none", "flip", "light", "strong")),
        label_smoothing=rng.choice(SMOOTHING),
    )


def plan_sweep(
    datasets: dict[str, int], *, heads_per_feature_set: int = 60, trainable_per_dataset: int = 6, seed: int = 0
) -> list[SweepItem]:
    """A reproducible plan for `datasets` (path -> number of training images).

    Feature sets: EfficientNet-Lite0/1/2 at 64 px for every dataset, plus Lite0 at 96 and
    128 px where the dataset is small enough for the extraction to stay cheap. About 5 %
    of head configs are repeated with a second seed, so seed noise is measured too.
    """
    rng = random.Random(seed)
    items: list[SweepItem] = []
    for path, n_train in sorted(datasets.items()):
        feature_sets = [("efficientnet_lite0", 64), ("efficientnet_lite1", 64), ("efficientnet_lite2", 64)]
        if n_train <= 2500:
            feature_sets += [("efficientnet_lite0", 96), ("efficientnet_lite0", 128)]
        for backbone, size in feature_sets:
            for _ in range(heads_per_feature_set):
                cfg = sample_head_config(rng, backbone, size)
                items.append(SweepItem(path, cfg, 0))
                if rng.random() < 0.05:
                    items.append(SweepItem(path, cfg, 1))
        # Trainable runs, scaled so that one costs about as much on a big set as on a small one.
        small = n_train <= 2500
        trainable = [("small_cnn", "scratch", 64 if small else 32, 6 if small else 3)] * max(1, trainable_per_dataset // 2)
        trainable += [("mobilenet_v3_small", "scratch", 48 if small else 32, 4 if small else 2)]
        trainable += [("efficientnet_lite0", "finetune", 64 if n_train <= 1000 else 32, 3 if small else 1)]
        trainable += [("resnet18", "scratch", 32, 2 if small else 1)]
        for backbone, mode, size, max_epochs in trainable[:trainable_per_dataset]:
            items.append(SweepItem(path, sample_trainable_config(rng, backbone, mode, size, max_epochs), 0))
    return items


# ----------------------------------------------------------- fine-tuning plans (cpu, gpu)
PLANS = ("frozen", "cpu", "gpu", "stale")
LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
_LITE_COST = {"efficientnet_lite0": 1.0, "efficientnet_lite1": 1.3, "efficientnet_lite2": 1.6}
# Seconds per training image per epoch for one sweep worker (1 thread) on this project's 2-core
# CPU at 64 px, scaled by pixels, backbone and trainable share. Measured: a full Lite0 fine-tune
# ran at ~116 images/s on 2 threads (ENVIRONMENT.md), so ~60 on one; the first cpu-plan sweep's
# records (2 workers, 2026-12-04) gave medians of ~390 images/s for small_cnn and ~250 for Lite0
# with freeze 0.75 (0.25 trainable: ~4x the full fine-tune, as the share below assumes).
_FULL_FT_S = 1 / 60
_SMALL_CNN_S = 1 / 390


@dataclass(frozen=True)
class PlanSize:
    """How many runs of each kind a plan gives one dataset."""

    finetune: int  # pretrained Lite fine-tunes, full or partial
    scratch: int  # small_cnn from scratch, >= 15 epochs mostly
    heads: int  # frozen heads per Lite backbone, only for datasets the knowledge base has no runs of
    other_scratch: int = 0  # resnet18 / mobilenet_v3_small from scratch, 8+ epochs (their own random stream)
    more_finetune: int = 0  # fine-tunes after all the above (their own random stream), for the seed's share


# The cpu plan's 24 fine-tunes per dataset brought each dataset to its 20 but left fine-tunes at 9 %
# of the seed's runs (the frozen plan's heads are most of it); 48 more per dataset, from their own
# stream so every run planned before stays planned, are enough for the 25 % (`TARGET_SHARE`).
PLAN_SIZES = {"cpu": PlanSize(finetune=24, scratch=12, heads=8, other_scratch=4, more_finetune=48),
              "gpu": PlanSize(finetune=48, scratch=16, heads=8, other_scratch=8)}

OTHER_SCRATCH = ("resnet18", "mobilenet_v3_small")  # the space's other from-scratch backbones


def estimated_seconds(config: TrainConfig, n_train: int) -> float:
    """A rough CPU cost of one run, for ordering a plan (never recorded anywhere)."""
    pixels = (config.input_size / 64) ** 2
    epochs = config.epochs * (0.7 if config.epochs >= EARLY_STOP_FROM else 1.0)
    if config.mode == "frozen":
        return 0.5 + 1e-5 * n_train * epochs
    if config.backbone == "small_cnn":
        return n_train * epochs * pixels * _SMALL_CNN_S
    trainable = 1 - config.freeze
    live_prefix = config.freeze if config.freeze and config.augmentation in ("light", "strong") else 0.0
    share = max(0.08, trainable) + live_prefix / 3  # a live frozen prefix costs its forward pass
    return n_train * epochs * pixels * _FULL_FT_S * _LITE_COST.get(config.backbone, 1.0) * share


def _lites() -> tuple[str, ...]:
    """The Lite backbones whose weight packages are installed here (all of them with the project)."""
    from tools.backbones import weights_available

    return tuple(b for b in LITES if weights_available(b)) or ("efficientnet_lite0",)


def _decays(optimizer: str) -> tuple[float, ...]:
    """Weight decays to sample (four each: the random stream stays aligned with the plans before).

    SGD couples the decay to the gradient step, and momentum 0.9 multiplies it tenfold, so SGD is
    used with small decays; Adam(W) keeps the wider set. (This was first blamed for a mednist
    partial fine-tune that collapsed to one class at evaluation, test 0.171 at weight decay 5e-2;
    measured again by runner revision 2, the same run scored 0.999: the collapse was the
    BatchNorm momentum that revision fixed, knowledge/runner_revisions.py, not the decay. The
    decays stay as they are, so the plans' random streams do too.)
    """
    return (0.0, 1e-4, 5e-4, 5e-3) if optimizer == "sgd" else (0.0, 1e-4, 1e-2, 5e-2)


def _sample_finetune(rng: random.Random, n_train: int, side: int, device: str) -> TrainConfig:
    gpu = device == "gpu"
    small = n_train <= 1500
    backbone = rng.choices(LITES, weights=(6, 2, 2) if not gpu else (4, 3, 3))[0]
    lites = _lites()
    if backbone not in lites:
        backbone = lites[0]
    freezes = (0.0, 0.25, 0.5, 0.75, 0.9)
    freeze = rng.choices(freezes, weights=(1, 1, 1, 1, 1) if gpu else ((1 if small else 0), 1, 2, 3, 3))[0]
    if gpu:
        sizes, weights = (64, 96, 128, 224), (3, 2, 3, 2)
    else:
        sizes, weights = (64, 96, 128), ((5, 2, 2) if small else (8, 1, 0))
    size = rng.choices(sizes, weights=weights)[0]
    if side < 64 and rng.random() < 0.3:
        size = 32  # a low-resolution dataset at (close to) its own size, too
    optimizer = rng.choices(("adamw", "adam", "sgd"), weights=(5, 2, 3))[0]
    poor = rng.random() < 0.1  # deliberately poor: far too large or too small a learning rate, or too short
    if poor:
        lr = rng.choice((_log_uniform(rng, 0.1, 1.0), _log_uniform(rng, 1e-6, 1e-5)))
    else:
        lr = _log_uniform(rng, 1e-4, 1e-2) if optimizer != "sgd" else _log_uniform(rng, 1e-3, 1e-1)
    epochs = rng.randint(2, 6) if poor and rng.random() < 0.5 else rng.randint(15, 30 if not gpu else 40)
    return TrainConfig(
        backbone=backbone, mode="finetune", freeze=freeze, input_size=size, optimizer=optimizer, learning_rate=lr,
        batch_size=rng.choice((32, 64, 128)), epochs=epochs, weight_decay=rng.choice(_decays(optimizer)),
        dropout=rng.choice((0.0, 0.2, 0.3, 0.5)),
        scheduler=rng.choices(("warmup_cosine", "cosine", "constant", "step"), weights=(4, 3, 2, 1))[0],
        augmentation=rng.choices(("none", "flip", "light", "strong"), weights=(4, 5, 1 if small or gpu else 0, 1 if gpu else 0))[0],
        label_smoothing=rng.choice((0.0, 0.0, 0.1)),
    )


def _sample_scratch(rng: random.Random, n_train: int, side: int, device: str) -> TrainConfig:
    gpu = device == "gpu"
    size = rng.choices((32, 64, 96, 128) if gpu else (32, 64, 96), weights=(1, 4, 2, 2) if gpu else (1, 4, 1))[0]
    if side < 64 and rng.random() < 0.5:
        size = 32
    optimizer = rng.choices(("adamw", "adam", "sgd"), weights=(4, 2, 4))[0]
    poor = rng.random() < 0.1
    if poor:
        lr = _log_uniform(rng, 0.3, 1.0) if optimizer == "sgd" else _log_uniform(rng, 0.05, 0.5)
    else:
        lr = _log_uniform(rng, 3e-4, 1e-2) if optimizer != "sgd" else _log_uniform(rng, 3e-3, 0.2)
    return TrainConfig(
        backbone="small_cnn", mode="scratch", input_size=size, optimizer=optimizer, learning_rate=lr,
        batch_size=rng.choice((32, 64, 128)), epochs=rng.randint(15, 40 if not gpu else 60),
        weight_decay=rng.choice(_decays(optimizer)), dropout=rng.choice((0.0, 0.2, 0.5)),
        scheduler=rng.choices(("warmup_cosine", "cosine", "constant", "step"), weights=(3, 3, 2, 2))[0],
        augmentation=rng.choices(("none", "flip", "light", "strong"), weights=(2, 3, 3, 2))[0],
        label_smoothing=rng.choice((0.0, 0.0, 0.1)),
    )


def _sample_other_scratch(rng: random.Random, n_train: int, side: int, device: str) -> TrainConfig:
    """resnet18 or mobilenet_v3_small from scratch for 8 to 30 epochs (40 on a GPU). The recommender
    can propose them, and before this the seed held them almost only at 1 to 3 epochs, so the
    meta-model extrapolated what more epochs would give; mostly 32 px on a CPU (their cost grows
    with the pixels), 64 px on small sets."""
    gpu = device == "gpu"
    cfg = _sample_scratch(rng, n_train, side, device)
    small = n_train <= 1500
    size = rng.choices((32, 64, 96, 128), weights=(1, 3, 1, 1))[0] if gpu else (64 if small and rng.random() < 0.5 else 32)
    return cfg.model_copy(update={
        "backbone": rng.choice(OTHER_SCRATCH), "input_size": size, "epochs": rng.randint(8, 40 if gpu else 30),
    })


def plan_trainable(
    datasets: dict[str, tuple[int, int]],
    *,
    device: str = "cpu",
    seed: int = 0,
    size: PlanSize | None = None,
    known: set[str] | None = None,
) -> list[SweepItem]:
    """The "cpu" or "gpu" plan for `datasets` (path -> (training images, image side)).

    `known`: dataset names (file stems) the knowledge base already has runs of; the others
    also get frozen heads on each Lite backbone, so every dataset has the cheap baseline too.
    Ordered cheapest and most informative first: tier t holds every dataset's runs of rank
    5t..5t+4 within its kind (frozen heads are tier 0), each tier sorted by estimated cost.
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', but got {device!r}.")
    size = size or PLAN_SIZES[device]
    known = known or set()
    ranked: list[tuple[int, float, int, SweepItem]] = []
    for path, (n_train, side) in sorted(datasets.items()):
        rng = random.Random(f"{seed}|{device}|{Path(path).stem}")
        kinds: dict[str, list[TrainConfig]] = {"finetune": [], "scratch": [], "frozen": [], "other_scratch": [],
                                                 "more_finetune": []}
        keys: set[str] = set()
        for kind, n, sample, stream in (
            ("finetune", size.finetune, _sample_finetune, rng),
            ("scratch", size.scratch, _sample_scratch, rng),
            # Kinds added later draw from streams of their own, so the runs planned before stay as they were.
            ("other_scratch", size.other_scratch, _sample_other_scratch, random.Random(f"{seed}|{device}|{Path(path).stem}|other")),
            ("more_finetune", size.more_finetune, _sample_finetune, random.Random(f"{seed}|{device}|{Path(path).stem}|more")),
        ):
            while len(kinds[kind]) < n:
                cfg = sample(stream, n_train, side, device)
                if cfg.key() not in keys:
                    keys.add(cfg.key())
                    kinds[kind].append(cfg)
        if Path(path).stem not in known:
            for backbone in _lites():
                kinds["frozen"] += [sample_head_config(rng, backbone, 64) for _ in range(size.heads)]
        for kind, configs in kinds.items():
            for rank, cfg in enumerate(configs):
                tier = 0 if kind == "frozen" else rank // 5 + (1000 if kind == "more_finetune" else 0)  # those last
                cost = estimated_seconds(cfg, n_train)
                ranked.append((tier, cost, len(ranked), SweepItem(path, cfg, 0, device)))
    ranked.sort(key=lambda t: t[:3])
    return [item for *_, item in ranked]


def select_to_targets(
    todo: list[SweepItem],
    coverage: dict[str, dict[str, int]],
    sizes: dict[str, tuple[int, int]],
    targets: dict[str, int] | None = None,
    *,
    held: tuple[int, int] | None = None,
    share: float = TARGET_SHARE,
) -> list[SweepItem]:
    """Of a plan's pending items (`todo`, not in the knowledge base yet), only those that bring each
    dataset up to `targets` (default `TARGETS`), given what it has (`coverage`: dataset name ->
    counts, `training_coverage(...)["per_dataset"]`): per dataset and kind the cheapest ones by
    `estimated_seconds`, as many as it lacks. Ordered dataset by dataset, the one whose runs cost
    least in all first, each dataset's runs cheapest first: a sweep stopped early has brought the
    most datasets to the targets (cheapest first across datasets would leave every dataset short).
    A dataset the plan has too few items for gets what there is.

    With `held` (fine-tunes, successful runs the knowledge base has), fine-tunes follow until they
    would be `share` of the successful runs (counting every selected run as successful): round by
    round every dataset's cheapest remaining one, each round cheapest first, so a sweep stopped
    early has added to every dataset rather than only to the smallest."""
    targets = TARGETS if targets is None else targets
    wanted: dict[tuple[str, str], list[tuple[float, int, SweepItem]]] = {}
    for order, item in enumerate(todo):
        kind = coverage_kind(item.config, pretrained=True)  # the plans fine-tune pretrained Lite backbones only
        if kind in targets or (held and kind == "finetune"):
            cost = estimated_seconds(item.config, sizes[item.dataset][0])
            wanted.setdefault((item.dataset, kind), []).append((cost, order, item))
    chosen: dict[str, list[tuple[float, int, SweepItem]]] = {}
    rest: dict[str, list[tuple[float, int, SweepItem]]] = {}
    for (path, kind), found in wanted.items():
        lacking = max(0, targets.get(kind, 0) - coverage.get(Path(path).stem, {}).get(kind, 0))
        found = sorted(found, key=lambda t: t[:2])
        chosen.setdefault(path, []).extend(found[:lacking])
        if kind == "finetune":
            rest[path] = found[lacking:]
    by_cost = sorted(chosen.items(), key=lambda kv: (sum(t[0] for t in kv[1]), kv[0]))
    picked = [item for _, runs in by_cost for *_, item in sorted(runs, key=lambda t: t[:2])]
    if not held:
        return picked
    more = finetunes_to_share(held[0] + sum(i.config.mode == "finetune" for i in picked), held[1] + len(picked), share)
    rounds = sorted(((rank, cost, order, item) for runs in rest.values() for rank, (cost, order, item) in enumerate(runs)),
                    key=lambda t: t[:3])
    return picked + [item for *_, item in rounds[:more]]


def plan_to_targets(items: list[SweepItem], kb: KnowledgeBase, sizes: dict[str, tuple[int, int]]) -> list[SweepItem]:
    """`select_to_targets` for a plan's `items` against what `kb` holds, the share of fine-tunes included."""
    from knowledge.runner_revisions import is_stale

    records = kb.records()
    ok = [r for r in records if r.outcome.status == "ok"]
    coverage = training_coverage(ok)
    # A run measured again in a stale record's place replaces it (knowledge.seed_merge): it adds no run toward the
    # targets, so counting it as one left the share short (session 30: 30 planned, 2 of them stale, 2 short).
    # `--plan stale` measures those again.
    stale = {r.run_key for r in records if is_stale(r)}
    return select_to_targets([item for item, key in pending_items(items, kb) if key not in stale],
                             coverage["per_dataset"], sizes, held=(coverage["finetunes"], len(ok)))


def datasets_with_heads(records: list[ExperimentRecord]) -> set[str]:
    """Datasets that have frozen-head runs from outside the cpu/gpu plans: the `known` of
    `plan_trainable`. The plans' own heads do not count, so a plan stays the same when it is
    resumed after it has written some of them."""
    own = ("sweep plan cpu", "sweep plan gpu")
    return {r.dataset.name for r in records if r.config.mode == "frozen" and not (r.provenance.notes or "").startswith(own)}


def plan_stale(records: list[ExperimentRecord], data_dir: str | Path, device: str | None = None) -> list[SweepItem]:
    """The "stale" plan: every sweep run whose only record is stale (measured before a runner fix that
    changes it, knowledge.runner_revisions), measured again as it ran (config as it ran, seed; early
    stopping only where the stale run stopped early), on its dataset in `data_dir` (matched by
    fingerprint: a dataset not there is left out), on the kind of device that measured it (`device`,
    "cpu" or "cuda"; None: this machine's), so the new record keeps that device's time. Cheapest
    first, by the stale run's own seconds. The new record has the stale one's run key, so it
    supersedes it (`KnowledgeBase.records`, `knowledge.seed_merge`)."""
    from knowledge.runner_revisions import RUNNER_REVISION, is_stale
    from tools.datasets import load_dataset

    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    stale: dict[str, ExperimentRecord] = {}
    for r in records:
        kind = "cuda" if r.outcome.device.startswith("cuda") else "cpu"
        if r.provenance.source == "sweep" and kind == device and is_stale(r):
            stale.setdefault(r.run_key, r)
    if not stale:
        return []
    wanted = {r.dataset.fingerprint for r in stale.values()}
    paths = {fp: str(p) for p in sorted(Path(data_dir).glob("*.npz")) if (fp := load_dataset(p).fingerprint) in wanted}
    return [
        SweepItem(paths[r.dataset.fingerprint], r.config, r.provenance.seed, plan="stale",
                  early_stop="early stopping" in (r.provenance.notes or ""),
                  why=f"measured again by runner revision {RUNNER_REVISION}: the record of "
                      f"{r.provenance.code_version} (revision {r.provenance.runner_revision}) was stale")
        for r in sorted(stale.values(), key=lambda r: r.outcome.total_seconds)
        if r.dataset.fingerprint in paths
    ]


def dataset_sizes(data_dir: str | Path) -> dict[str, tuple[int, int]]:
    """Every .npz in `data_dir` with (training images, image side in pixels)."""
    import numpy as np

    out = {}
    for path in sorted(Path(data_dir).glob("*.npz")):
        with np.load(path) as z:
            shape = z["train_images"].shape
            out[str(path)] = (int(shape[0]), int(min(shape[1], shape[2])))
    return out


# ------------------------------------------------------------------------- execution
def _exit_with_parent() -> None:
    """Pool initializer: a worker whose sweep is gone (SIGTERM or kill -9 to the sweep alone) stops
    at once, instead of training the rest of its chunk for no one. Its finished runs are already in
    the knowledge base; a run it was training is redone by the next resume."""
    import multiprocessing
    import threading

    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True, name="exit-with-sweep").start()


def _run_group(args: tuple[list[SweepItem], str, int, str | None]) -> tuple[int, int]:
    """Worker: run one group's items in order, appending each record as soon as it exists."""
    items, kb_root, threads, modality = args
    import torch

    from tools.datasets import load_dataset, profile_dataset
    from tools.train import make_record, train

    torch.set_num_threads(threads)
    kb = KnowledgeBase(kb_root, index=False)
    ds = load_dataset(items[0].dataset, modality=modality)
    meta = profile_dataset(ds)
    done = ok = 0
    for item in items:
        result = train(ds, item.config, seed=item.seed, patience=item.patience)
        record = make_record(ds, result, seed=item.seed, source="sweep", meta=meta, notes=item.notes)
        kb.append(record)
        done += 1
        ok += result.outcome.status == "ok"
    return done, ok


def pending_items(items: list[SweepItem], kb: KnowledgeBase) -> list[tuple[SweepItem, str]]:
    """The items whose run key `kb` does not hold a current record of yet (none, or only a stale one:
    `KnowledgeBase.run_keys`), each with its run key, in plan order (a key planned twice is kept
    once): what a sweep, local or on Ray, still has to run."""
    from tools.datasets import load_dataset

    fingerprints = {path: load_dataset(path).fingerprint for path in {i.dataset for i in items}}
    seen = kb.run_keys()
    todo = []
    for item in items:
        key = ExperimentRecord.make_run_key(fingerprints[item.dataset], item.config, item.seed, "sweep")
        if key not in seen:
            seen.add(key)
            todo.append((item, key))
    return todo


def run_sweep(
    items: list[SweepItem],
    kb: KnowledgeBase,
    *,
    workers: int = 1,
    max_minutes: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the items not yet in `kb`; returns counts. Safe to interrupt and resume."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    try:
        from tqdm import tqdm
    except ImportError:  # a bare GPU machine: no progress bar
        tqdm = None

    todo = [item for item, _ in pending_items(items, kb)]
    # Chunks of consecutive items (plan order) on one dataset share the loaded data; small chunks
    # keep progress visible and let a time limit stop between them.
    chunks: list[list[SweepItem]] = []
    for item in todo:
        limit = 25 if item.config.mode == "frozen" else 3
        last = chunks[-1] if chunks else None
        if last and last[0].dataset == item.dataset and len(last) < limit and (last[0].config.mode == "frozen") == (item.config.mode == "frozen"):
            last.append(item)
        else:
            chunks.append([item])
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    deadline = time.monotonic() + max_minutes * 60 if max_minutes else None
    stats = {"planned": len(items), "skipped": len(items) - len(todo), "run": 0, "ok": 0, "lost": 0}
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress) if tqdm else None
    # Spawned, not forked: a fork copies the parent's locks as they are, and a parent with threads
    # (a Ray client, Chroma, torch's pools) can hand its worker a lock nobody will release; a
    # forked worker then hung in torch's first Conv2d (seen after a Ray test in the same process).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_exit_with_parent) as pool:
        pending: dict[Any, list[SweepItem]] = {}
        queue = list(chunks)
        while queue or pending:
            while queue and len(pending) < workers and (deadline is None or time.monotonic() < deadline):
                chunk = queue.pop(0)
                pending[pool.submit(_run_group, (chunk, str(kb.root), threads, None))] = chunk
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                chunk = pending.pop(fut)
                try:
                    n, ok = fut.result()
                except Exception as exc:  # a worker that died (out of memory, killed): its finished runs are
                    # already in the knowledge base; the rest of its chunk is picked up by the next resume.
                    log.warning("sweep worker failed on %s: %s", Path(chunk[0].dataset).stem, exc)
                    stats["lost"] += len(chunk)
                    if "BrokenProcessPool" in type(exc).__name__:
                        raise
                    continue
                stats["run"] += n
                stats["ok"] += ok
                if bar:
                    bar.update(n)
    if bar:
        bar.close()
    return stats


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.sweep`: the cpu/gpu plans with nothing but knowledge/ and tools/ on the path
    (torch, numpy, scikit-learn, pydantic and the Lite weight packages), for a bare GPU machine.
    `metallmix kb sweep` is the same with the project installed."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m tools.sweep", description=main.__doc__.split("\n")[0])
    ap.add_argument("--plan", choices=("cpu", "gpu", "stale"), required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--kb-dir", required=True, help="the knowledge base folder the records are appended to")
    ap.add_argument("--datasets", nargs="*", help="dataset file stems to include; default every .npz")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--to-targets", action="store_true", help=TO_TARGETS_HELP)
    args = ap.parse_args(argv)
    sizes = dataset_sizes(args.data_dir)
    if args.datasets:
        sizes = {p: v for p, v in sizes.items() if Path(p).stem in set(args.datasets)}
    if not sizes:
        ap.error(f"no .npz datasets to sweep in {args.data_dir}")
    if args.to_targets and args.plan == "stale":
        ap.error("--to-targets picks from the cpu or gpu plan; pass --plan cpu (or gpu on a GPU machine)")
    kb = KnowledgeBase(args.kb_dir, index=False)
    if args.plan == "stale":
        items = [i for i in plan_stale(kb.records(), args.data_dir) if i.dataset in sizes]
    else:
        items = plan_trainable(sizes, device=args.plan, seed=args.seed, known=datasets_with_heads(kb.records()))
        if args.to_targets:
            items = plan_to_targets(items, kb, sizes)
    print(json.dumps(run_sweep(items, kb, workers=args.workers, max_minutes=args.max_minutes, progress=False)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
