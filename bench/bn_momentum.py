"""What the runner's BatchNorm momentum does to short fine-tunes, both settings in the same run.

    python -m bench.bn_momentum [--data-dir ../shared/data] [--docs docs/BENCHMARKS.md]

The EfficientNet-Lite port and torchvision's MobileNetV3 ship BatchNorm momentum 0.01
(TensorFlow's decay 0.99). The runner raises the momentum of the layers that train to
PyTorch's 0.1 (`tools.train.TRAIN_BN_MOMENTUM`); the shipped setting is re-enacted by setting
that bound to 0, which leaves every layer as shipped. Each config trains twice with seed 0 on
this machine; the table gives the test accuracy, the best validation accuracy and the train
seconds of each. The configs are short fine-tunes of the kinds the sweep records (a partial
one on cached prefix outputs, a full one on a small set, a longer one on a larger set) and a
MobileNetV3 from scratch.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.common import header, table, write_section
from knowledge.schema import TrainConfig
from tools import train as train_mod
from tools.datasets import load_dataset

CASES: tuple[tuple[str, dict[str, object]], ...] = (
    ("blood_cells_pbc", dict(backbone="efficientnet_lite1", mode="finetune", freeze=0.9, input_size=64, optimizer="adam",
                             learning_rate=0.00161, batch_size=128, epochs=6, dropout=0.2, scheduler="warmup_cosine")),
    ("head_ct_hemorrhage", dict(backbone="efficientnet_lite0", mode="finetune", freeze=0.0, input_size=64, optimizer="adamw",
                                learning_rate=1e-3, batch_size=64, epochs=15, weight_decay=0.05, scheduler="warmup_cosine",
                                augmentation="flip")),
    ("busi_ultrasound", dict(backbone="efficientnet_lite0", mode="finetune", freeze=0.5, input_size=64, optimizer="adamw",
                             learning_rate=1e-3, batch_size=64, epochs=10, weight_decay=0.05, scheduler="warmup_cosine",
                             augmentation="flip")),
    ("mini_mias_mammo", dict(backbone="mobilenet_v3_small", mode="scratch", input_size=64, optimizer="adamw",
                             learning_rate=1e-3, batch_size=32, epochs=15, scheduler="cosine", augmentation="flip")),
)


def run(data_dir: Path) -> list[list[object]]:
    rows = []
    bound = train_mod.TRAIN_BN_MOMENTUM
    for name, fields in CASES:
        ds = load_dataset(data_dir / f"{name}.npz")
        cfg = TrainConfig(**fields)
        out = {}
        for label, momentum in (("shipped 0.01", 0.0), ("runner 0.1", bound)):
            train_mod.TRAIN_BN_MOMENTUM = momentum
            try:
                res = train_mod.train(ds, cfg, seed=0)
            finally:
                train_mod.TRAIN_BN_MOMENTUM = bound
            o = res.outcome
            out[label] = o
            print(f"{name:20s} {label:13s} test {o.test_accuracy:.3f} val {o.val_accuracy:.3f} "
                  f"{o.train_seconds:.0f} s", flush=True)
        old, new = out["shipped 0.01"], out["runner 0.1"]
        rows.append([name, f"{cfg.backbone} {cfg.mode} freeze {cfg.freeze:g} {cfg.input_size}px {cfg.optimizer} "
                     f"lr={cfg.learning_rate:g} bs={cfg.batch_size} ep={cfg.epochs}",
                     f"{old.test_accuracy:.3f}", f"{new.test_accuracy:.3f}", f"{new.test_accuracy - old.test_accuracy:+.3f}",
                     f"{old.val_accuracy:.3f}", f"{new.val_accuracy:.3f}", f"{old.train_seconds:.0f}", f"{new.train_seconds:.0f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("METALLMIX_DATA", "../shared/data")))
    ap.add_argument("--docs", type=Path, default=None, help="also write the table into this markdown file")
    args = ap.parse_args()
    rows = run(args.data_dir)
    text = "\n\n".join([
        "## BatchNorm momentum in short fine-tunes (`python -m bench.bn_momentum`)",
        header("Seed 0, one run per setting; train seconds on this machine."),
        table(rows, ["dataset", "config", "test 0.01", "test 0.1", "change", "val 0.01", "val 0.1", "s 0.01", "s 0.1"],
              "llrrrrrrr"),
    ])
    print("\n" + text)
    if args.docs:
        write_section("bn-momentum", text, args.docs)


if __name__ == "__main__":
    main()
