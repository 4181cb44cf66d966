"""Runner throughput vs a plain PyTorch loop, same model, data, batch and optimizer, same run.

    python bench/runner_throughput.py [--dataset PATH] [--backbone small_cnn] [--size 64] [--epochs 2]

The runner's images/s counts its training loop only (validation excluded), as does the
plain loop here, so the ratio measures what the runner adds per batch: seeding, batching
from uint8, normalisation, the scheduler, divergence checks and cancellation polls.
Goal: ratio >= 0.95. Alternates the two, repeated, and reports the median of each.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge.schema import TrainConfig  # noqa: E402
from tools.backbones import build_backbone  # noqa: E402
from tools.datasets import load_dataset  # noqa: E402
from tools.train import _to_tensor, train  # noqa: E402


def plain_loop(ds, cfg: TrainConfig, seed: int) -> float:  # type: ignore[no-untyped-def]
    """The loop a practitioner would write by hand; returns training images/s."""
    torch.manual_seed(seed)
    bb = build_backbone(cfg.backbone, pretrained=False, input_size=cfg.input_size)
    model = nn.Sequential(bb.features, nn.Dropout(cfg.dropout), nn.Linear(bb.feature_dim, ds.n_classes))
    x = _to_tensor(ds.splits["train"].images, cfg.input_size)
    y = torch.from_numpy(ds.splits["train"].labels)
    mean = torch.tensor(bb.mean).view(1, 3, 1, 1)
    std = torch.tensor(bb.std).view(1, 3, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    n, bs = len(y), cfg.batch_size
    images, seconds = 0, 0.0
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(n)
        t0 = time.perf_counter()
        for i in range(math.ceil(n / bs)):
            idx = order[i * bs : (i + 1) * bs]
            if len(idx) < 2:
                continue
            xb = (x[idx].float() / 255 - mean) / std
            loss = loss_fn(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            images += len(idx)
        seconds += time.perf_counter() - t0
    return images / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    data = Path(os.environ.get("METALLMIX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--dataset", default=str(data / "busi_ultrasound.npz"))
    ap.add_argument("--backbone", default="small_cnn")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    mode = "scratch" if args.backbone == "small_cnn" else "finetune"
    cfg = TrainConfig(backbone=args.backbone, mode=mode, input_size=args.size, epochs=args.epochs, batch_size=64,
                      optimizer="adam", learning_rate=1e-3, scheduler="constant", augmentation="none")
    runner, plain = [], []
    for r in range(args.repeats):  # alternate, so machine noise hits both alike
        plain.append(plain_loop(ds, cfg, seed=r))
        out = train(ds, cfg, seed=r).outcome
        runner.append(out.images_per_second or 0.0)
    p, q = statistics.median(plain), statistics.median(runner)
    print(f"# runner throughput: {ds.name}, {args.backbone} {mode} @ {args.size}px, batch 64, {args.epochs} epochs, "
          f"{torch.get_num_threads()} threads, {args.repeats} repeats (median)")
    print("| loop | images/s | ratio |")
    print("|---|---:|---:|")
    print(f"| plain torch | {p:.1f} | 1.00 |")
    print(f"| metallmix runner | {q:.1f} | {q / p:.2f} |")
    print(f"goal ratio >= 0.95: {'met' if q / p >= 0.95 else 'NOT met'}")


if __name__ == "__main__":
    main()
