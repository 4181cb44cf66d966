"""Sweep throughput on Ray against the local runner, Ray's overhead per run, and the one writer's limit.

    python -m bench.ray_scale [--runs 12] [--epochs 20] [--rounds 3] [--dataset head_ct_hemorrhage] [--docs FILE]

One run of this script measures, on the same cheap runs (frozen EfficientNet-Lite0 heads at
64 px on a small dataset, features cached beforehand so every runner trains the same heads):
- in-process: `tools.ray_runner.execute` on each run one after another in this process (one
  thread): the runs' own cost, no processes, no Ray;
- the local runner (`tools.sweep.run_sweep`) as `metallmix kb sweep` runs it (a fresh process
  pool per sweep), at its default of 2 worker processes, and once with 1 (2 torch threads);
- Ray (`tools.ray_runner.run_sweep_ray`) on a local head of 2 CPUs with 1 and 2 runs in flight
  (1 and 2 workers), after 2 warm-up runs (a long-lived cluster's workers have torch loaded);
- Ray's overhead per run: an empty task's round trip, and (Ray with 1 worker - in-process) / runs;
- `KnowledgeBase.append` into knowledge bases of 2,000 and 10,000 records, one record per call
  and 20 per call: the driver's one writer, and where it becomes the limit.
Each runner runs `--rounds` times, interleaved, each time into a fresh temporary knowledge base;
medians are reported, and ratios are against the local runner measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DATA, header, table, write_section
from knowledge.schema import ExperimentRecord
from knowledge.store import KnowledgeBase
from tools.ray_head import local_head
from tools.ray_runner import execute, run_sweep_ray
from tools.sweep import SweepItem, pending_items, run_sweep, sample_head_config

LOCAL = "local runner, --workers 2 (the default; 12 heads of one dataset are one chunk: 1 process x 1 thread busy)"
SEED_MEDIANS = {"frozen head": 43.9, "scratch (small_cnn)": 20.3, "fine-tune (Lite, partial or full)": 91.2}


def _items(dataset: Path, n: int, seed: int, epochs: int) -> list[SweepItem]:
    rng = random.Random(seed)
    return [SweepItem(str(dataset), sample_head_config(rng, "efficientnet_lite0", 64).model_copy(update={"epochs": epochs}),
                      seed) for _ in range(n)]


def _spec(item: SweepItem, key: str) -> dict[str, Any]:
    return {"dataset": item.dataset, "config": item.config.model_dump(), "seed": item.seed, "source": "sweep", "id": key,
            "notes": item.notes, "patience": item.patience, "threads": 1, "device": "cpu"}


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _noop() -> int:
    return 0


def sweeps(dataset: Path, n: int, epochs: int, rounds: int, tmp: Path) -> tuple[list[list[Any]], dict[str, float], float]:
    """Each runner `rounds` times, interleaved (the machine's load drifts); medians in seconds per sweep,
    and the round trip of an empty Ray task."""
    items = _items(dataset, n, 0, epochs)
    warm = _items(dataset, 2, 1, epochs)
    for item, key in pending_items(warm[:1], KnowledgeBase(tmp / "warm", index=False)):
        execute(_spec(item, key))  # features extracted and cached once: every runner below trains heads only
    fresh = iter(range(1000))

    def kb() -> KnowledgeBase:
        return KnowledgeBase(tmp / f"kb{next(fresh)}", index=False)

    runs: dict[str, list[float]] = {}

    def measure(name: str, fn: Any) -> None:
        seconds, _ = _timed(fn)
        runs.setdefault(name, []).append(seconds)
        print(f"{name}: {seconds:.2f} s", flush=True)

    with local_head(num_cpus=2) as address:
        import ray

        run_sweep_ray(warm, kb(), address=address, progress=False, in_flight=2)  # workers up, torch loaded
        noop = ray.remote(_noop)
        ray.get(noop.remote())
        trip, _ = _timed(lambda: [ray.get(noop.remote()) for _ in range(200)])
        for r in range(rounds):
            target = kb()
            measure("in-process (no processes, 1 thread)",
                    lambda t=target: [execute(_spec(i, k)) for i, k in pending_items(items, t)])
            measure(LOCAL, lambda: run_sweep(items, kb(), workers=2, progress=False))
            if r == 0:  # once: it is the slow one on a loaded machine (2 torch threads on 2 busy cores)
                measure("local runner, --workers 1 (1 process x 2 threads)",
                        lambda: run_sweep(items, kb(), workers=1, progress=False))
            for w in (1, 2):
                target = kb()
                measure(f"Ray, {w} worker{'s' * (w > 1)} x 1 thread",
                        lambda w=w, t=target: run_sweep_ray(items, t, address=address, progress=False, in_flight=w))
                assert len(target.records()) == n
    t = {name: statistics.median(v) for name, v in runs.items()}
    base = t[LOCAL]
    rows = [[name, " / ".join(f"{x:.1f}" for x in runs[name]), f"{s:.1f}", f"{n / s:.2f}", f"{base / s:.2f}x"]
            for name, s in t.items()]
    return rows, t, trip / 200


def appends(sizes: tuple[int, ...], tmp: Path, one: ExperimentRecord, k: int = 20) -> tuple[list[list[Any]], tuple[float, float]]:
    """The table, and records/s at the largest size appended one per call and k per call."""
    rows, rates = [], (0.0, 0.0)
    for size in sizes:
        kb = KnowledgeBase(tmp / f"append{size}", index=False)
        kb.append([one.model_copy(update={"id": f"fill{i:08d}", "run_key": f"fill{i:08d}"}) for i in range(size)])
        seconds = []
        for i in range(k):
            rec = one.model_copy(update={"id": f"new{i:08d}", "run_key": f"new{i:08d}"})
            s, _ = _timed(lambda rec=rec, kb=kb: kb.append(rec))
            seconds.append(s)
        med = statistics.median(seconds)
        batch = [one.model_copy(update={"id": f"batch{i:08d}", "run_key": f"batch{i:08d}"}) for i in range(k)]
        s, _ = _timed(lambda batch=batch, kb=kb: kb.append(batch))
        rates = (1 / med, k / s)
        rows.append([f"{size:,}", f"{med * 1000:.0f}", f"{1 / med:.2f}", f"{k / s:.1f}"])
        print(rows[-1], flush=True)
    return rows, rates


def plan(per_run: dict[str, float], one_at_a_time: float, batched: float) -> list[list[Any]]:
    """Hours of training for 10,000 runs with N workers (perfect scaling; Ray adds its round trip),
    and the workers at which the writer's append rate (at 10k records) is reached."""
    rows = []
    for kind, c in per_run.items():
        rows.append([kind, f"{c:.1f}", *(f"{10_000 * c / n / 3600:.2f}" for n in (1, 8, 64)),
                     f"{c * one_at_a_time:.1f}", f"{c * batched:.0f}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--dataset", default="head_ct_hemorrhage")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of every head (default 20)")
    ap.add_argument("--rounds", type=int, default=3, help="repeats of each runner, interleaved (median reported)")
    ap.add_argument("--docs", type=Path, default=None, help="write the section into this markdown file")
    args = ap.parse_args(argv)
    dataset = DATA / f"{args.dataset}.npz"
    with tempfile.TemporaryDirectory(prefix="ray-scale-") as d:
        tmp = Path(d)
        rows, t, trip = sweeps(dataset, args.runs, args.epochs, args.rounds, tmp)
        one = KnowledgeBase(tmp / "kb0", index=False).records()[0]  # the warm-up sweep's
        append_rows, rates = appends((2_000, 10_000), tmp, one)
    inproc = t["in-process (no processes, 1 thread)"]
    overhead = (t["Ray, 1 worker x 1 thread"] - inproc) / args.runs
    per_run = {f"frozen head here ({args.dataset}, 64 px, in-process)": inproc / args.runs,
               **{f"{k} (median of the seed's CPU records)": v for k, v in SEED_MEDIANS.items()}}
    text = "\n\n".join([
        "## Ray: sweep throughput, overhead per run, the one writer (`python -m bench.ray_scale`)",
        header("Ray scale", f"{args.runs} frozen Lite0 heads of {args.epochs} epochs at 64 px on {args.dataset} (features cached first), "
               f"each runner {args.rounds} times interleaved, each time into a fresh knowledge base; Ray on a local head "
               "of 2 CPUs (1 CPU and 1 torch thread per run), its workers warm; the local runner starts its process "
               "pool per sweep, as `metallmix kb sweep` does."),
        table(rows, ["runner", "seconds, each round", "median s", "runs/s", "vs local runner, default"]),
        f"Ray's overhead per run: an empty task's round trip is **{trip * 1000:.1f} ms**; Ray with 1 worker minus "
        f"in-process is **{overhead:+.2f} s** per run on runs of {inproc / args.runs:.2f} s (within the load's noise).",
        table(append_rows, ["records already in the knowledge base", "ms per append of 1 (median of 20)",
                            "appends/s, 1 at a time", "records/s, 20 per append"]),
        table(plan(per_run, *rates), ["per-run cost", "s per run", "hours for 10,000 runs, 1 worker", "8 workers",
                                        "64 workers", "workers that saturate 1-at-a-time appends (10k records)",
                                        "workers that saturate 20-record appends"]),
    ])
    print(text)
    if args.docs:
        write_section("ray-scale", text, args.docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
