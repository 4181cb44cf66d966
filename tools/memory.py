"""The memory a training run needs, estimated from the network itself: memory limits become hard filters.

    need = training_memory(config, n_images=5_000, device="cpu")
    need.total          # bytes: what the run is expected to hold at its peak
    need.parts          # {"runtime": ..., "weights": ..., "optimizer": ..., "activations": ..., "data": ...}

The knowledge base cannot answer this: a sweep's CPU runs share a worker process, so their
recorded `peak_memory_mb` is the process's peak so far, not the run's. So the estimate is
built from the backbone's own layers:

- weights: every parameter in float32;
- gradients and optimizer state for the parameters that train (Adam and AdamW keep two
  moments, SGD one momentum buffer): the head alone in frozen mode, the stages after the
  frozen prefix in a partial fine-tune;
- activations: the tensors autograd saves for the backward pass, per image, measured once per
  backbone at 64 px by a forward pass (`measure`), scaled by (input size / 64)^2 and the batch
  size, for the trainable stages only (a frozen prefix runs without gradients);
- data: the whole split held as uint8 images (or cached features) as the runner holds it;
- extraction: a frozen backbone (or prefix) first runs over every image in batches of 256
  without gradients; its peak is its largest stage's tensors times the batch, and the run
  needs the larger of that and training (when its features are cached already, less);
- runtime: Python, PyTorch and the runner themselves, on the CPU only.

The per-backbone table (`knowledge/memory_table.json`) is written by `python -m tools.memory
--write` and checked against a fresh measurement by the tests; bench/memory_check.py compares
the estimate with the peak resident memory of real runs, each in a fresh process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from knowledge.schema import TrainConfig
from knowledge.space import frozen_stages

TABLE = Path(__file__).resolve().parent.parent / "knowledge" / "memory_table.json"
REFERENCE_SIZE = 64  # px: the size the table's activations were measured at
# Peak resident memory of a fresh runner process that has imported torch and the runner and
# loaded its backbone, before any data: measured by bench/memory_check.py (rounded up).
RUNTIME_BYTES = 400 * 2**20
# Autograd also holds each layer's output gradient while it walks back, and the allocator keeps
# freed blocks: the saved tensors times this factor (bench/memory_check.py measures the ratio).
BACKWARD_FACTOR = 1.25
# The worst measured / estimated ratio in bench/memory_check.py was 1.05: the estimate is raised by
# this margin so that a limit it keeps to is kept in practice.
MARGIN = 1.15
EXTRACT_BATCH = 256  # tools.train extracts frozen features (and a frozen prefix's outputs) in batches of 256
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}


class NoMemoryFit(ValueError):
    """No allowed configuration fits the memory limit; the message names the one that needs least."""

    def __init__(self, limit: float, config: TrainConfig, need: float) -> None:
        self.config, self.need = config, need
        super().__init__(
            f"no configuration fits in {gib(limit)} of memory: the one that needs least, {config.backbone} "
            f"{config.mode} at {config.input_size} px with batch {config.batch_size}, needs about {gib(need)}; raise "
            "the limit, or allow frozen mode or a smaller backbone.")


@dataclass(frozen=True)
class MemoryNeed:
    """Estimated peak memory of one training run, in bytes, and what makes it up."""

    total: float
    parts: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        shown = ", ".join(f"{k} {gib(v)}" for k, v in self.parts.items() if v >= 2**20)
        return f"about {gib(self.total)} ({shown})"


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:,.0f} MB"


def measure(backbone: str) -> dict[str, Any]:
    """Per stage of `backbone`: the bytes autograd saves and the output's bytes per image at 64 px, and
    its parameters.

    One forward pass in training mode on a batch of two blank images, stage by stage, counting
    each saved tensor's storage once and leaving out the parameters themselves.
    """
    import torch

    from tools.backbones import build_backbone

    net = build_backbone(backbone, pretrained=False, input_size=REFERENCE_SIZE)
    net.features.train()
    params = {p.untyped_storage().data_ptr() for p in net.features.parameters()}
    batch = 2
    x = torch.zeros(batch, 3, REFERENCE_SIZE, REFERENCE_SIZE)
    saved, outputs, counts = [], [], []
    for stage in net.features:
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor, seen: dict[int, int] = seen) -> torch.Tensor:
            storage = t.untyped_storage()
            if storage.data_ptr() not in params:
                seen[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            x = stage(x.detach().requires_grad_(True))
        saved.append(round(sum(seen.values()) / batch))
        outputs.append(x[0].numel() * x.element_size())
        counts.append(sum(p.numel() for p in stage.parameters()))
    return {"saved_bytes_per_image": saved, "output_bytes_per_image": outputs, "params": counts,
            "feature_dim": net.feature_dim}


@lru_cache(maxsize=1)
def table() -> dict[str, dict[str, Any]]:
    """The measured table, by backbone (knowledge/memory_table.json)."""
    return json.loads(TABLE.read_text())["backbones"]


def training_memory(config: TrainConfig, n_images: int, device: str = "cpu", n_classes: int = 2) -> MemoryNeed:
    """The estimated peak memory of training `config` on `n_images` images (all splits).

    `device` "cpu..." adds the runtime and the data (all in RAM); "cuda..." counts what the
    GPU holds (the data only when the runner keeps it there, see tools.train.RESIDENT_BYTES).
    """
    row = table()[config.backbone]
    stage_params, stage_saved = row["params"], row["saved_bytes_per_image"]
    n_stages = len(stage_params)
    if config.mode == "frozen":
        k = n_stages
    else:
        k = frozen_stages(config.freeze if config.mode == "finetune" else 0.0, n_stages)
    head = row["feature_dim"] * n_classes + n_classes
    trainable = sum(stage_params[k:]) + head
    scale = (config.input_size / REFERENCE_SIZE) ** 2
    activations = config.batch_size * scale * sum(stage_saved[k:]) * BACKWARD_FACTOR
    if config.mode == "frozen":
        data = n_images * row["feature_dim"] * 4
    elif k:
        data = n_images * row["output_bytes_per_image"][k - 1] * scale / 2  # the cached prefix output, float16
    else:
        data = n_images * 3 * config.input_size**2
    on_gpu = device.startswith("cuda")
    if on_gpu:
        from tools.train import RESIDENT_BYTES

        data = data if data <= RESIDENT_BYTES else config.batch_size * data / max(n_images, 1)
    extraction = EXTRACT_BATCH * scale * max(stage_saved[:k], default=0)
    parts = {
        "runtime": 0.0 if on_gpu else float(RUNTIME_BYTES),
        "weights": 4.0 * (sum(stage_params) + head),
        "data": float(data),
        "optimizer": 4.0 * trainable * (1 + OPTIMIZER_STATES.get(config.optimizer, 2)),
        "activations": float(activations),
    }
    fixed = parts["runtime"] + parts["weights"] + parts["data"]
    training = parts["optimizer"] + parts["activations"]
    if extraction > training:  # the extraction's peak comes first and is the larger one
        parts = {**parts, "extraction": float(extraction)}
    return MemoryNeed(total=MARGIN * (fixed + max(training, extraction)), parts=parts)


def write_table(path: Path = TABLE) -> dict[str, Any]:
    """Measure every backbone and write the table (run after a backbone or torch change)."""
    import torch

    from knowledge.space import BACKBONES

    out = {"torch": torch.__version__, "reference_size": REFERENCE_SIZE,
           "backbones": {name: measure(name) for name in BACKBONES}}
    path.write_text(json.dumps(out, indent=1) + "\n")
    table.cache_clear()
    return out


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tools.memory --write   (measures every backbone, writes knowledge/memory_table.json)")
    for name, row in write_table()["backbones"].items():
        print(f"{name:20s} {len(row['params']):3d} stages  {sum(row['params']) / 1e6:6.2f} M params  "
              f"{sum(row['saved_bytes_per_image']) / 2**20:6.2f} MB saved per image at {REFERENCE_SIZE} px")
