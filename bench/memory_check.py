"""The training-memory estimate (tools.memory) against the peak resident memory of real runs.

    python -m bench.memory_check [--dataset PATH] [--batches 4]

Each run trains in a fresh process (so its peak is its own: ru_maxrss) for a few batches of a
real dataset, which is where the peak is reached (the first backward pass with the optimizer's
state allocated), then is cancelled. A process that only imports the runner and builds a
backbone gives the runtime share that tools.memory.RUNTIME_BYTES stands for. The table prints
the estimate, the measured peak and their ratio; a memory limit is only a safe filter when
measured / estimated stays at or below 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = [  # (backbone, mode, freeze, input size, batch size): each mode, small and large inputs
    ("efficientnet_lite0", "frozen", 0.0, 128, 64),
    ("efficientnet_lite0", "finetune", 0.0, 64, 32),
    ("efficientnet_lite0", "finetune", 0.0, 128, 64),
    ("efficientnet_lite0", "finetune", 0.5, 128, 64),
    ("efficientnet_lite2", "finetune", 0.75, 96, 32),
    ("small_cnn", "scratch", 0.0, 128, 64),
    ("resnet18", "scratch", 0.0, 128, 32),
]


def _child(spec: dict) -> dict:
    from knowledge.schema import TrainConfig
    from tools.backbones import build_backbone

    if spec.get("runtime"):
        build_backbone("efficientnet_lite0", pretrained=True, input_size=64)
        import tools.train  # noqa: F401

        return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    import torch

    from tools.datasets import load_dataset
    from tools.train import train

    torch.set_num_threads(1)
    ds = load_dataset(spec["dataset"])
    cfg = TrainConfig(backbone=spec["backbone"], mode=spec["mode"], freeze=spec["freeze"], input_size=spec["size"],
                      batch_size=spec["batch"], learning_rate=1e-3, epochs=1, optimizer="adamw")
    polls = {"n": 0}

    def stop() -> bool:
        polls["n"] += 1
        return polls["n"] > spec["batches"]

    train(ds, cfg, device=torch.device("cpu"), should_stop=stop)
    n_images = sum(len(ds.splits[s].labels) for s in ("train", "val", "test"))
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "n_images": n_images,
            "n_classes": ds.n_classes}


def _run(spec: dict, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.memory_check", "--child", json.dumps(spec)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default=os.path.join(os.environ.get("METALLMIX_DATA", "../shared/data"),
                                                      "busi_ultrasound.npz"))
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0

    from knowledge.schema import TrainConfig
    from tools.memory import RUNTIME_BYTES, training_memory

    with tempfile.TemporaryDirectory() as cache:  # a prefix cache of an earlier run would hide the extraction
        env = {**os.environ, "METALLMIX_CACHE": cache, "OMP_NUM_THREADS": "1"}
        runtime = _run({"runtime": True}, env)["peak_mb"]
        print(f"runtime only (import the runner, build a backbone): {runtime:,.0f} MB measured; "
              f"RUNTIME_BYTES = {RUNTIME_BYTES / 2**20:,.0f} MB\n")
        print(f"{'config':44s} {'estimated':>10s} {'measured':>10s} {'measured/est':>12s}")
        worst = 0.0
        for backbone, mode, freeze, size, batch in CONFIGS:
            spec = {"dataset": args.dataset, "backbone": backbone, "mode": mode, "freeze": freeze, "size": size,
                    "batch": batch, "batches": args.batches}
            got = _run(spec, env)
            cfg = TrainConfig(backbone=backbone, mode=mode, freeze=freeze, input_size=size, batch_size=batch,
                              learning_rate=1e-3, epochs=1, optimizer="adamw")
            est = training_memory(cfg, got["n_images"], "cpu", got["n_classes"]).total / 2**20
            ratio = got["peak_mb"] / est
            worst = max(worst, ratio)
            name = f"{backbone} {mode}{f' freeze {freeze}' if freeze else ''} {size}px bs{batch}"
            print(f"{name:44s} {est:>8,.0f}MB {got['peak_mb']:>8,.0f}MB {ratio:>12.2f}")
        print(f"\nworst measured/estimated: {worst:.2f} (a safe filter needs <= 1.00)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
