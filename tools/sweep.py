"""The sweep that fills the knowledge base with real, measured runs.

The plan is random search over the search space, shaped by what a CPU can afford:
- frozen pretrained backbones (features extracted once, heads train in seconds) carry
  most of the runs, over every hyperparameter a head has, including poor settings
  (learning rates up to 1.0, one epoch, heavy dropout), as real histories do;
- trainable runs (scratch CNNs, fine-tuned EfficientNet-Lite) are fewer, shorter and at
  smaller input sizes, sized by the dataset so each costs seconds to a few minutes.

It is resumable: every finished run is appended to the JSONL at once, and items whose
run key is already there are skipped. Several worker processes share the cores.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowledge.schema import ExperimentRecord, TrainConfig
from knowledge.store import KnowledgeBase

log = logging.getLogger(__name__)

HEAD_EPOCHS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 40)
BATCHES = (16, 32, 64, 128, 256)
WEIGHT_DECAYS = (0.0, 0.0, 1e-5, 1e-4, 1e-3, 1e-2, 5e-2)
DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)
SMOOTHING = (0.0, 0.0, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class SweepItem:
    dataset: str  # path of the dataset file or folder
    config: TrainConfig
    seed: int

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


# ------------------------------------------------------------------------- execution
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
        result = train(ds, item.config, seed=item.seed)
        record = make_record(ds, result, seed=item.seed, source="sweep", meta=meta)
        kb.append(record)
        done += 1
        ok += result.outcome.status == "ok"
    return done, ok


def run_sweep(
    items: list[SweepItem],
    kb: KnowledgeBase,
    *,
    workers: int = 1,
    max_minutes: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the items not yet in `kb`; returns counts. Safe to interrupt and resume."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm import tqdm

    from tools.datasets import load_dataset

    fingerprints = {path: load_dataset(path).fingerprint for path in {i.dataset for i in items}}
    done_keys = kb.run_keys()
    todo = [
        i for i in items
        if ExperimentRecord.make_run_key(fingerprints[i.dataset], i.config, i.seed, "sweep") not in done_keys
    ]
    groups: dict[tuple[str, str, str, int], list[SweepItem]] = defaultdict(list)
    for item in todo:
        groups[item.group].append(item)
    # Chunks keep progress visible and let a time limit stop between chunks.
    chunks = [g[i : i + 25] for g in groups.values() for i in range(0, len(g), 25)]
    chunks.sort(key=lambda c: (c[0].config.mode != "frozen", c[0].dataset))
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    deadline = time.monotonic() + max_minutes * 60 if max_minutes else None
    stats = {"planned": len(items), "skipped": len(items) - len(todo), "run": 0, "ok": 0}
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = set()
        queue = list(chunks)
        while queue or pending:
            while queue and len(pending) < workers and (deadline is None or time.monotonic() < deadline):
                pending.add(pool.submit(_run_group, (queue.pop(0), str(kb.root), threads, None)))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                n, ok = fut.result()
                stats["run"] += n
                stats["ok"] += ok
                bar.update(n)
    bar.close()
    return stats


def shared_datasets(data_dir: str | Path) -> dict[str, int]:
    """Every .npz in `data_dir` with its number of training images."""
    import numpy as np

    out = {}
    for path in sorted(Path(data_dir).glob("*.npz")):
        with np.load(path) as z:
            out[str(path)] = int(len(z["train_labels"]))
    return out
