"""The runner on a GPU (or any device): every mode, images/s next to a plain PyTorch loop, same run.

    python bench/gpu_check.py [--dataset PATH] [--size 128] [--epochs 3] [--device cuda] [--json OUT.json]

For each mode (frozen head, partial fine-tune on a cached prefix, full fine-tune, scratch)
the runner (`tools.train.train`) trains a config, and a plain loop trains the same model on
the same inputs, with the same batch size, optimizer and precision (bf16 autocast,
channels_last and inputs resident on the device on CUDA; fp32 on CPU). Both count images/s
over their training loops only (validation and the one-time cached-input extraction
excluded), and the plain loop is timed with a device sync at the end of each epoch, as the
runner's epoch-end loss check does. Goal on a GPU: runner / plain >= 0.9 for every mode.
On a CPU the table is informative (the runner's fp32 path is the one the CPU tests pin).

Each mode also checks that it ran on the device asked for (`outcome.device`), so the
frozen-mode failure seen on CUDA (cached features left on the CPU) shows as a failed row.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge.schema import TrainConfig  # noqa: E402
from tools import train as runner  # noqa: E402
from tools.backbones import build_backbone  # noqa: E402
from tools.datasets import ImageDataset, load_dataset  # noqa: E402

GOAL = 0.9


def configs(size: int, epochs: int) -> dict[str, TrainConfig]:
    common = {"input_size": size, "epochs": epochs, "batch_size": 64, "optimizer": "adamw", "learning_rate": 1e-3,
              "scheduler": "constant", "augmentation": "none"}
    return {
        "frozen": TrainConfig(backbone="efficientnet_lite0", mode="frozen", **common),
        "partial (freeze 0.75)": TrainConfig(backbone="efficientnet_lite0", mode="finetune", freeze=0.75, **common),
        "finetune": TrainConfig(backbone="efficientnet_lite0", mode="finetune", **common),
        "scratch small_cnn": TrainConfig(backbone="small_cnn", mode="scratch", **common),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(ds: ImageDataset, cfg: TrainConfig, device: torch.device, seed: int) -> float:
    """The loop a practitioner would write by hand for this mode; returns training images/s.

    Inputs are prepared the way the runner prepares them (features / prefix outputs from its
    cache, uint8 images otherwise), moved to the device once; then a bare loop."""
    place = runner.placement(device)
    torch.manual_seed(seed)
    bb = build_backbone(cfg.backbone, pretrained=cfg.mode != "scratch", input_size=cfg.input_size)
    head = [nn.Dropout(cfg.dropout), nn.Linear(bb.feature_dim, ds.n_classes)]
    y = torch.from_numpy(ds.splits["train"].labels).to(device)
    prep = None
    if cfg.mode == "frozen":
        feats, _, _ = runner._features(ds, bb, cfg.input_size, device)
        x = feats["train"].to(device)
        model = nn.Sequential(*head)
    elif cfg.freeze:
        prefix, rest = runner.split_backbone(bb, cfg.freeze)
        outs = runner._prefix_outputs(ds, bb, len(prefix), cfg.input_size, place, flip=False)
        assert outs is not None, "prefix outputs too large to cache"
        x = outs[0]["train"].to(device)
        model = nn.Sequential(rest, *head)
        prep = lambda t: t.float()  # noqa: E731
    else:
        x = runner._to_tensor(ds.splits["train"].images, cfg.input_size).to(device)
        model = nn.Sequential(bb.features, *head)
        mean = torch.tensor(bb.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(bb.std, device=device).view(1, 3, 1, 1)
        prep = lambda t: (t.float() / 255 - mean) / std  # noqa: E731
    model = model.to(device)
    if place.channels_last and cfg.mode != "frozen":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    n, bs = len(y), cfg.batch_size
    images, seconds = 0, 0.0
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(n, device=device)
        t0 = time.perf_counter()
        for i in range(math.ceil(n / bs)):
            idx = order[i * bs : (i + 1) * bs]
            if len(idx) < 2:
                continue
            xb = x[idx] if prep is None else prep(x[idx])
            if place.channels_last and xb.ndim == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with place.autocast():
                loss = loss_fn(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            images += len(idx)
        _sync(device)
        seconds += time.perf_counter() - t0
    return images / seconds


def run(ds: ImageDataset, size: int, epochs: int, device: torch.device, repeats: int, modes: list[str] | None) -> list[dict[str, Any]]:
    rows = []
    for name, cfg in configs(size, epochs).items():
        if modes and not any(m in name for m in modes):
            continue
        plain, ours, status, on = [], [], "ok", ""
        for r in range(repeats):  # alternate, so machine noise hits both alike
            try:
                plain.append(plain_loop(ds, cfg, device, seed=r))
            except RuntimeError as exc:
                status = f"plain loop failed: {exc}"[:200]
                break
            out = runner.train(ds, cfg, seed=r, device=device).outcome
            on = out.device
            if out.status != "ok":
                status = f"runner {out.status}: {out.error}"[:200]
                break
            ours.append(out.images_per_second or 0.0)
        p = statistics.median(plain) if plain else None
        q = statistics.median(ours) if ours else None
        rows.append({"mode": name, "plain": p, "runner": q, "ratio": (q / p) if p and q else None, "status": status,
                     "device": on})
        print(_row(rows[-1], device), flush=True)
    return rows


def _row(r: dict[str, Any], device: torch.device) -> str:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
    goal = "" if device.type == "cpu" else (" MET" if (r["ratio"] or 0) >= GOAL else " NOT MET")
    return f"| {r['mode']} | {f(r['runner'])} | {f(r['plain'])} | {ratio}{goal} | {r['device'] or '-'} | {r['status']} |"


def main() -> None:
    data = Path(os.environ.get("METALLMIX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=str(data / "brain_tumor_mri.npz"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=None, help="input size (default 128 on a GPU, 64 on a CPU)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--modes", nargs="*", help="substrings of mode names to run (default all)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    device = torch.device(args.device)
    size = args.size or (128 if device.type == "cuda" else 64)
    ds = load_dataset(args.dataset)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    precision = "bf16 autocast, channels_last" if runner.placement(device).amp_dtype else "fp32"
    print(f"# gpu_check: {ds.name} ({len(ds.splits['train'].labels)} training images) at {size} px, batch 64, "
          f"{args.epochs} epochs, {args.repeats} repeats (median), {name}, {precision}, torch {torch.__version__}")
    print("| mode | runner images/s | plain loop images/s | runner / plain | ran on | status |")
    print("|---|---:|---:|---:|---|---|")
    rows = run(ds, size, args.epochs, device, args.repeats, args.modes)
    if device.type != "cpu":
        met = all((r["ratio"] or 0) >= GOAL for r in rows)
        print(f"goal runner >= {GOAL}x the plain loop in every mode: {'MET' if met else 'NOT MET'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "size": size, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
