"""The training runner: one configuration, one dataset, real training, measured outcome.

Modes:
- frozen: the pretrained backbone extracts features once per (dataset, backbone, input
  size, weights); they are cached on disk, and only a dropout + linear head trains, so a
  head configuration costs seconds. The measured extraction time is reported with every
  run that uses the cache (`feature_seconds`), so time predictions stay honest.
- finetune: the pretrained network trains (random init when no weights exist); `freeze`
  keeps a share of its stages frozen from the input side, and their output is cached like
  frozen features (with the mirrored images too when augmentation is "flip"), so only the
  rest computes per step: fine-tune-like runs a 2-core CPU can afford.
- scratch: the whole network trains from random init.

Per epoch: train loss, val loss / accuracy / macro one-vs-rest AUC / macro F1. The best
epoch by val accuracy is kept and tested once at the end. A NaN/inf loss stops the run
with status "diverged". Optional early stopping on validation accuracy (`patience`).
Seeded and reproducible on CPU (fp32). On a GPU: bf16 autocast, channels_last, inputs
resident on the device (or pinned, non-blocking batches), large evaluation batches
(`Placement`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import platform
import resource
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from knowledge import cache_root
from knowledge.runner_revisions import RUNNER_REVISION
from knowledge.schema import DatasetInfo, EpochMetrics, ExperimentRecord, Outcome, Provenance, TrainConfig, now_utc
from tools.backbones import Backbone, build_backbone, frozen_stages, weights_available
from tools.backbones import images_to_tensor as _to_tensor
from tools.backbones import normalise as _normalise
from tools.datasets import SPLITS, ImageDataset, profile_dataset

EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class RunResult:
    """What `train` returns: the outcome, the weights actually used, and the effective config."""

    config: TrainConfig
    weights: str
    outcome: Outcome
    extra: dict[str, Any] = field(default_factory=dict)


class Cancelled(Exception):
    """Raised inside the loop when the caller asked to stop."""


# ----------------------------------------------------------------------------- helpers
def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{os.cpu_count()} cores"


def machine_name() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of this checkout, or the package version when not in git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("metallmix")
    except PackageNotFoundError:
        return "unknown"


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def _augment(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Batched augmentation of a float batch (B,3,S,S); one random draw per image."""
    if kind == "none":
        return x
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    if kind == "flip":
        return x
    strong = kind == "strong"
    angle = (torch.rand(b, generator=gen) * 2 - 1) * (math.radians(15) if strong else math.radians(5))
    scale = 1 + (torch.rand(b, generator=gen) * 2 - 1) * (0.1 if strong else 0.05)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (0.1 if strong else 0.06)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if strong:  # brightness / contrast jitter, in normalised space
        bright = ((torch.rand(b, generator=gen) * 2 - 1) * 0.2).view(-1, 1, 1, 1).to(x.device)
        contrast = (1 + (torch.rand(b, generator=gen) * 2 - 1) * 0.2).view(-1, 1, 1, 1).to(x.device)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean + bright
    return x


def _lr_lambda(kind: str, total_steps: int) -> Callable[[int], float]:
    total = max(1, total_steps)
    warm = max(1, total // 20)

    def f(step: int) -> float:
        t = min(step, total) / total
        if kind == "constant":
            return 1.0
        if kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        if kind == "step":  # x0.1 at one third and two thirds of training
            return 0.1 ** math.floor(3 * t - 1e-9) if t > 0 else 1.0
        if step < warm:  # warmup_cosine
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return f


def _optimizer(cfg: TrainConfig, params: Any) -> torch.optim.Optimizer:
    lr, wd = cfg.learning_rate, cfg.weight_decay
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd, nesterov=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd, momentum=0.9, alpha=0.9)


def metrics(logits: torch.Tensor, labels: torch.Tensor, n_classes: int) -> dict[str, float | None]:
    """Loss, accuracy, macro one-vs-rest AUC and macro F1 of a split's logits."""
    from sklearn.metrics import f1_score, roc_auc_score

    loss = float(F.cross_entropy(logits, labels))
    probs = torch.softmax(logits.double(), 1).numpy()
    y = labels.numpy()
    pred = probs.argmax(1)
    auc: float | None
    try:
        if n_classes == 2:
            auc = float(roc_auc_score(y, probs[:, 1]))
        else:
            auc = float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=list(range(n_classes))))
    except ValueError:  # a class absent from this split, or non-finite scores
        auc = None
    if auc is not None and not math.isfinite(auc):
        auc = None
    return {
        "loss": loss if math.isfinite(loss) else None,
        "accuracy": float((pred == y).mean()),
        "auc": auc,
        "f1": float(f1_score(y, pred, average="macro", labels=list(range(n_classes)), zero_division=0)),
    }


# --------------------------------------------------------------------------- placement
# A dataset's inputs stay on the accelerator for the whole run when they take at most this
# much memory (uint8 images, or cached features); larger ones stream as pinned batches.
RESIDENT_BYTES = 4 * 2**30
# A frozen prefix's outputs are cached (on disk and in memory) only up to this size; beyond
# it the prefix runs live, still without gradients.
PREFIX_CACHE_BYTES = 3 * 2**30


@dataclass(frozen=True)
class Placement:
    """Where and how a run computes: what moves to the device, in which precision and layout.

    CPU: fp32, the default layout, no pinning, evaluation in batches of at least 256, so CPU
    runs reproduce bit for bit. An accelerator: bf16 autocast where supported, channels_last,
    inputs resident on the device when they fit (else pinned, non-blocking batches), large
    evaluation batches.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    pin_memory: bool
    eval_batch: int

    def autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def stage(self, x: torch.Tensor) -> torch.Tensor:
        """A whole split's tensor, where its batches will be read from."""
        if self.device.type == "cpu":
            return x
        if x.numel() * x.element_size() <= RESIDENT_BYTES:
            return x.to(self.device, non_blocking=True)
        return x.pin_memory() if self.pin_memory else x

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """One batch read from a staged tensor, moved to the device when it is not there yet."""
        if x.device != self.device:
            x = (x.pin_memory() if self.pin_memory else x).to(self.device, non_blocking=True)
        return x


def placement(device: torch.device, *, bf16: bool | None = None) -> Placement:
    """The placement for `device`; `bf16` overrides the device's own answer (for tests)."""
    if device.type == "cpu":
        return Placement(device, None, False, False, 256)
    if bf16 is None:
        bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return Placement(device, torch.bfloat16 if bf16 else None, True, device.type == "cuda", 1024)


# ------------------------------------------------------------------------ feature cache
def _cache_path(ds: ImageDataset, backbone: Backbone, size: int, suffix: str = "") -> Path:
    tag = backbone.weights.replace(":", "_").replace("/", "_")
    return cache_root() / "features" / f"{ds.fingerprint}_{backbone.name}_{size}_{tag}{suffix}.pt"


def _precision_tag(place: Placement) -> str:
    """Features computed under autocast differ from fp32 ones: they are cached apart, so a CPU
    run never reads a GPU's bf16 cache (CPU runs stay reproducible)."""
    return f"_{str(place.amp_dtype).removeprefix('torch.')}" if place.amp_dtype else ""


def _load_cache(path: Path) -> tuple[dict[str, torch.Tensor], float] | None:
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            return blob["features"], float(blob["seconds"])
        except Exception:  # a damaged cache file is recomputed, never trusted
            path.unlink(missing_ok=True)
    return None


def _save_cache(path: Path, feats: dict[str, torch.Tensor], seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"features": feats, "seconds": seconds}, tmp)
    tmp.replace(path)


def _extract(
    net: nn.Module, images: np.ndarray, size: int, backbone: Backbone, place: Placement, *,
    flip: bool = False, dtype: torch.dtype = torch.float32, batch: int = 256,
) -> torch.Tensor:
    """`net`'s outputs for one split's images (normalised as the backbone expects), on the CPU."""
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1).to(place.device)
    std = torch.tensor(backbone.std).view(1, 3, 1, 1).to(place.device)
    x = _to_tensor(images, size)
    parts = []
    with torch.inference_mode(), place.autocast():
        for i in range(0, len(x), batch):
            xb = _normalise(place.batch(x[i : i + batch]), mean, std)
            if flip:
                xb = xb.flip(-1)
            if place.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            parts.append(net(xb).to("cpu", dtype))
    return torch.cat(parts)


def _features(
    ds: ImageDataset, backbone: Backbone, size: int, device: torch.device, batch: int = 256
) -> tuple[dict[str, torch.Tensor], float, bool]:
    """Backbone features of every split, cached on disk; returns them (on the CPU), the measured
    extraction seconds and whether they came from the cache."""
    place = placement(device)
    path = _cache_path(ds, backbone, size, _precision_tag(place))
    cached = _load_cache(path)
    if cached is not None:
        return cached[0], cached[1], True
    net = backbone.features.to(device).eval()
    if place.channels_last:
        net = net.to(memory_format=torch.channels_last)
    start = time.perf_counter()
    feats = {split: _extract(net, ds.splits[split].images, size, backbone, place, batch=batch).float() for split in SPLITS}
    seconds = time.perf_counter() - start
    _save_cache(path, feats, seconds)
    return feats, seconds, False


def _prefix_outputs(
    ds: ImageDataset, backbone: Backbone, k: int, size: int, place: Placement, flip: bool
) -> tuple[dict[str, torch.Tensor], float, bool] | None:
    """Outputs of the first `k` (frozen) stages for every split, plus "train_flip" (the same of the
    mirrored training images) when the run augments by flipping, so that augmentation stays exact.
    Cached on disk in float16; None when they would exceed PREFIX_CACHE_BYTES."""
    path = _cache_path(ds, backbone, size, f"_prefix{k}{'_flip' if flip else ''}{_precision_tag(place)}")
    cached = _load_cache(path)
    if cached is not None:
        return cached[0], cached[1], True
    prefix = backbone.features[:k].to(place.device).eval()
    if place.channels_last:
        prefix = prefix.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        probe = prefix(torch.zeros(1, 3, size, size, device=place.device))
    n_images = sum(len(ds.splits[s].labels) for s in SPLITS) + (len(ds.splits["train"].labels) if flip else 0)
    if probe.numel() * 2 * n_images > PREFIX_CACHE_BYTES:
        return None
    start = time.perf_counter()
    out = {s: _extract(prefix, ds.splits[s].images, size, backbone, place, dtype=torch.float16) for s in SPLITS}
    if flip:
        out["train_flip"] = _extract(prefix, ds.splits["train"].images, size, backbone, place, flip=True, dtype=torch.float16)
    seconds = time.perf_counter() - start
    _save_cache(path, out, seconds)
    return out, seconds, False


def split_backbone(backbone: Backbone, freeze: float) -> tuple[nn.Sequential, nn.Sequential]:
    """(frozen prefix, trainable rest) of `backbone.features` for a `freeze` share.

    The prefix's parameters get requires_grad=False and it stays in eval mode (its BatchNorm
    statistics are the pretrained ones); the rest trains."""
    k = frozen_stages(freeze, backbone.n_stages)
    prefix, rest = backbone.features[:k], backbone.features[k:]
    prefix.requires_grad_(False).eval()
    return prefix, rest


# BatchNorm layers that train update their running statistics at PyTorch's default pace. The
# EfficientNet-Lite port and torchvision's MobileNetV3 keep TensorFlow's 0.99 decay (momentum 0.01),
# made for ImageNet's hundreds of thousands of steps: a fine-tune of a few hundred steps left
# most of the pretrained (or initial) statistics in place while the weights had moved, and
# evaluation, which uses them, fell far below training. The momentum never changes a training
# step (train mode normalises with the batch's statistics), so the weights are the same either way;
# `python -m bench.bn_momentum` measures what it does to evaluation: on this CPU, seed 0, a
# blood_cells_pbc Lite1 partial fine-tune (freeze 0.9, 6 epochs) tested 0.584 at 0.01 and 0.729 at
# 0.1, a head_ct_hemorrhage Lite0 full fine-tune (15 epochs, 139 training images) 0.725 and 0.825.
TRAIN_BN_MOMENTUM = 0.1


def track_batch_statistics(model: nn.Module) -> int:
    """Raise the momentum of `model`'s BatchNorm layers to TRAIN_BN_MOMENTUM where it is lower;
    returns how many changed. For the trainable part only: a frozen prefix keeps its statistics."""
    changed = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None and m.momentum < TRAIN_BN_MOMENTUM:
            m.momentum = TRAIN_BN_MOMENTUM
            changed += 1
    return changed


# ------------------------------------------------------------------------------ runner
Fetch = Callable[[str, Any, bool], torch.Tensor]


def resolve(config: TrainConfig) -> tuple[TrainConfig, bool]:
    """The config that will really run, and whether pretrained weights will be loaded.

    A fine-tune of a backbone whose weights are not available runs from scratch, and is
    recorded as mode "scratch" (with nothing frozen); frozen mode without weights is refused
    (nothing to freeze).
    """
    if config.mode == "scratch":
        return config, False
    if weights_available(config.backbone):
        return config, True
    if config.mode == "frozen":
        raise ValueError(
            f"{config.backbone} has no pretrained weights here (torchvision weights are used only from the local "
            "torch hub cache), so frozen mode has nothing to freeze; use mode='scratch' or an efficientnet_lite backbone."
        )
    return config.model_copy(update={"mode": "scratch", "freeze": 0.0}), False


def train(
    ds: ImageDataset,
    config: TrainConfig,
    *,
    seed: int = 0,
    device: torch.device | None = None,
    on_epoch: EpochCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    patience: int | None = None,
) -> RunResult:
    """Train `config` on `ds` and measure it. Never raises for a bad run: the outcome says what happened.

    Args:
        ds: a loaded dataset with train/val/test splits.
        config: the configuration (already validated by TrainConfig).
        seed: seeds torch, numpy and the data order.
        device: defaults to CUDA when present, else CPU.
        on_epoch: called after every epoch with that epoch's metrics.
        should_stop: polled between batches; True cancels the run (status "cancelled").
        patience: early stopping: end the run when validation accuracy has not improved for
            this many epochs (the best epoch is still the one tested). None trains every epoch.
    """
    device = device or default_device()
    place = placement(device)
    cfg, pretrained = resolve(config)
    gen = _seed_everything(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    backbone = build_backbone(cfg.backbone, pretrained=pretrained, input_size=cfg.input_size)
    n_classes = ds.n_classes
    history: list[EpochMetrics] = []
    state: dict[str, Any] = {"status": "ok", "error": None, "best": None, "best_val": None, "images": 0, "loop_s": 0.0}
    extra: dict[str, Any] = {"frozen_stages": 0, "n_stages": backbone.n_stages, "cache": None}
    feature_seconds = 0.0
    start = time.perf_counter()
    labels = {s: torch.from_numpy(ds.splits[s].labels) for s in SPLITS}
    try:
        model, fetch, feature_seconds = _build(ds, cfg, backbone, place, gen, extra)
        if extra["cache"] is not None:
            start = time.perf_counter()  # train_seconds counts training; the cached part is reported apart
        model = model.to(device)
        if place.channels_last and cfg.mode != "frozen":
            model = model.to(memory_format=torch.channels_last)
        extra["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        _fit(model, fetch, labels, cfg, gen, place, n_classes, history, state, on_epoch, should_stop, patience)
    except Cancelled:
        state["status"] = "cancelled"
    except (torch.OutOfMemoryError, MemoryError) as exc:
        state.update(status="failed", error=f"out of memory: {exc}"[:2000])
    except RuntimeError as exc:  # a kernel or shape failure is a failed run, recorded as such
        state.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
    train_seconds = time.perf_counter() - start

    test: dict[str, float | None] = {}
    best_val = state["best_val"]
    if state["status"] == "ok" and state["best"] is not None:
        model.load_state_dict(state["best"])
        test = _evaluate(model, fetch, "test", labels["test"], cfg.batch_size, place, n_classes)
    elif state["status"] == "ok":
        state.update(status="failed", error="no epoch completed")
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    ok = state["status"] == "ok"
    extra["stopped_early"] = ok and len(history) < cfg.epochs
    outcome = Outcome(
        status=state["status"],
        val_accuracy=best_val["accuracy"] if ok else None,
        val_auc=best_val["auc"] if ok else None,
        val_f1=best_val["f1"] if ok else None,
        val_loss=best_val["loss"] if ok else None,
        test_accuracy=test.get("accuracy"),
        test_auc=test.get("auc"),
        test_f1=test.get("f1"),
        best_epoch=state.get("best_epoch"),
        epochs_run=len(history),
        train_seconds=round(train_seconds, 3),
        feature_seconds=round(feature_seconds, 3),
        images_per_second=round(state["images"] / state["loop_s"], 1) if state["loop_s"] > 0 else None,
        device=device_name(device),
        peak_memory_mb=round(peak, 1),
        history=history,
        error=state["error"],
    )
    return RunResult(cfg, backbone.weights, outcome, extra)


def _build(
    ds: ImageDataset, cfg: TrainConfig, backbone: Backbone, place: Placement, gen: torch.Generator, extra: dict[str, Any]
) -> tuple[nn.Module, Fetch, float]:
    """The trainable model, how to fetch a batch of its inputs, and the seconds spent on cached inputs.

    - frozen: a dropout + linear head on the cached features of the whole backbone;
    - finetune with `freeze` > 0: the frozen prefix's outputs are cached (plus those of the
      mirrored images when augmentation is "flip"), and the rest of the backbone + head train on
      them; with other augmentations the prefix runs live, without gradients;
    - finetune and scratch otherwise: the whole network trains on the images.
    """
    head = [nn.Dropout(cfg.dropout), nn.Linear(backbone.feature_dim, ds.n_classes)]
    device = place.device
    if cfg.mode == "frozen":
        feats, seconds, hit = _features(ds, backbone, cfg.input_size, device)
        extra.update(frozen_stages=backbone.n_stages, cache="hit" if hit else "miss")
        staged = {s: place.stage(feats[s]) for s in SPLITS}
        return nn.Sequential(*head), lambda split, idx, training: place.batch(_take(staged[split], idx)), seconds

    prefix, rest = split_backbone(backbone, cfg.freeze if cfg.mode == "finetune" else 0.0)
    extra["frozen_stages"] = len(prefix)
    model = nn.Sequential(rest, *head)
    extra["bn_momentum_raised"] = track_batch_statistics(model)
    flip = cfg.augmentation == "flip"
    if len(prefix) and cfg.augmentation in ("none", "flip"):
        cached = _prefix_outputs(ds, backbone, len(prefix), cfg.input_size, place, flip)
        if cached is not None:
            outs, seconds, hit = cached
            extra["cache"] = "hit" if hit else "miss"
            staged = {s: place.stage(t) for s, t in outs.items()}

            def fetch_cached(split: str, idx: Any, training: bool) -> torch.Tensor:
                x = place.batch(_take(staged[split], idx))
                if training and flip:  # the same draw _augment makes for a flip
                    mirrored = place.batch(_take(staged["train_flip"], idx))
                    pick = (torch.rand(len(x), generator=gen) < 0.5).view(-1, 1, 1, 1).to(device)
                    x = torch.where(pick, mirrored, x)
                x = x.float()
                return x.contiguous(memory_format=torch.channels_last) if place.channels_last else x

            return model, fetch_cached, seconds

    images = {s: place.stage(_to_tensor(ds.splits[s].images, cfg.input_size)) for s in SPLITS}
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1).to(device)
    std = torch.tensor(backbone.std).view(1, 3, 1, 1).to(device)
    if len(prefix):
        prefix = prefix.to(device)
        if place.channels_last:
            prefix = prefix.to(memory_format=torch.channels_last)

    def fetch(split: str, idx: Any, training: bool) -> torch.Tensor:
        x = _normalise(place.batch(_take(images[split], idx)), mean, std)
        x = _augment(x, cfg.augmentation, gen) if training else x
        if place.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if len(prefix):
            with torch.no_grad():
                x = prefix(x)
        return x

    return model, fetch, 0.0


def _evaluate(
    model: nn.Module, fetch: Fetch, split: str, y: torch.Tensor, batch: int, place: Placement, n_classes: int,
) -> dict[str, float | None]:
    model.eval()
    step = max(batch, place.eval_batch)
    n = len(y)
    with torch.inference_mode(), place.autocast():
        logits = torch.cat([model(fetch(split, slice(i, i + step), False)).float().cpu() for i in range(0, n, step)])
    return metrics(logits, y, n_classes)


def _fit(
    model: nn.Module,
    fetch: Fetch,
    labels: dict[str, torch.Tensor],
    cfg: TrainConfig,
    gen: torch.Generator,
    place: Placement,
    n_classes: int,
    history: list[EpochMetrics],
    state: dict[str, Any],
    on_epoch: EpochCallback | None,
    should_stop: Callable[[], bool] | None,
    patience: int | None = None,
) -> None:
    y_train = place.stage(labels["train"])
    n = len(y_train)
    bs = min(cfg.batch_size, n)
    steps = n // bs if n % bs == 1 else math.ceil(n / bs)  # never a lone sample (BatchNorm needs 2)
    opt = _optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.scheduler, steps * cfg.epochs))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen).to(y_train.device)  # once per epoch, not per batch in _take
        t0, total, count = time.perf_counter(), torch.zeros((), dtype=torch.float64, device=place.device), 0
        for i in range(steps):
            if should_stop is not None and should_stop():
                raise Cancelled
            idx = order[i * bs : (i + 1) * bs]
            with place.autocast():
                xb, yb = fetch("train", idx, True), place.batch(_take(y_train, idx))
                loss = loss_fn(model(xb), yb)
            # One host sync per step on CPU (as before); on an accelerator the finiteness check
            # waits for the epoch's end, so the device is never stalled by the host.
            if place.device.type == "cpu" and not torch.isfinite(loss):
                _diverged(history, state, on_epoch, epoch, f"loss became {float(loss.detach())} at epoch {epoch}, step {i + 1}")
                return
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach().double() * len(idx)
            count += len(idx)
        if not torch.isfinite(total):
            _diverged(history, state, on_epoch, epoch, f"loss became {float(total)} during epoch {epoch}")
            return
        state["loop_s"] += time.perf_counter() - t0
        state["images"] += count
        val = _evaluate(model, fetch, "val", labels["val"], cfg.batch_size, place, n_classes)
        train_loss = float(total) / max(count, 1)
        history.append(EpochMetrics(epoch=epoch, train_loss=round(train_loss, 5), val_loss=_r(val["loss"]), val_accuracy=_r(val["accuracy"])))
        best = state["best_val"]
        if val["loss"] is not None and (
            best is None or val["accuracy"] > best["accuracy"] or (val["accuracy"] == best["accuracy"] and val["loss"] < best["loss"])
        ):
            state.update(best_val=val, best=copy.deepcopy(model.state_dict()), best_epoch=epoch)
        if on_epoch:
            on_epoch({"epoch": epoch, "epochs": cfg.epochs, "train_loss": train_loss, "val": val, "seconds": time.perf_counter() - t0})
        if patience is not None and state.get("best_epoch") is not None and epoch - state["best_epoch"] >= patience:
            break


def _take(t: torch.Tensor, idx: Any) -> torch.Tensor:
    """Rows `idx` (a slice, or an index tensor on any device) of `t`, wherever `t` lives."""
    return t[idx.to(t.device) if isinstance(idx, torch.Tensor) else idx]


def _diverged(
    history: list[EpochMetrics], state: dict[str, Any], on_epoch: EpochCallback | None, epoch: int, error: str
) -> None:
    history.append(EpochMetrics(epoch=epoch, train_loss=None, val_loss=None, val_accuracy=None))
    state.update(status="diverged", error=error)
    if on_epoch:
        on_epoch({"epoch": epoch, "status": "diverged", "error": error})


def _r(v: float | None, nd: int = 5) -> float | None:
    return None if v is None else round(v, nd)


# ------------------------------------------------------------------------------ records
def make_record(
    ds: ImageDataset,
    result: RunResult,
    *,
    seed: int,
    source: str = "user",
    record_id: str | None = None,
    meta: Any | None = None,
    notes: str | None = None,
) -> ExperimentRecord:
    """The knowledge-base record of a finished (or failed) run."""
    meta = meta or profile_dataset(ds)
    info = DatasetInfo(name=ds.name, fingerprint=ds.fingerprint, meta=meta, class_names=ds.class_names[:64])
    extra = {"id": record_id} if record_id else {}
    return ExperimentRecord(
        run_key=ExperimentRecord.make_run_key(ds.fingerprint, result.config, seed, source),
        dataset=info,
        config=result.config,
        weights=result.weights,
        outcome=result.outcome,
        provenance=Provenance(
            source=source,  # type: ignore[arg-type]
            code_version=code_version(),
            seed=seed,
            date=now_utc(),
            machine=machine_name(),
            notes=notes[:2000] if notes else None,
            runner_revision=RUNNER_REVISION,
        ),
        **extra,
    )
