"""Evidence diversity: the plain k nearest past runs against the MMR pick (tools.evidence), per task.

    python bench/evidence.py [--kb-dir ~/.metallmix/kb] [--k 12] [--repeat 5]

For each task text (one per dataset the knowledge base holds, described the way the retrieve
node queries: agent.prompting.task_query over the dataset's own meta-features), prints how
many datasets and distinct (backbone, mode, input size) and (.., lr to half a decade) kinds the
12 runs cover, whether the nearest dataset's best run is among them, and the time of each
(median of --repeat, after one warm-up), with their ratio: all measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.context import Context  # noqa: E402
from agent.prompting import task_query  # noqa: E402
from knowledge.store import KnowledgeBase  # noqa: E402
from tools.evidence import compared_fields, diverse_runs  # noqa: E402


def timed(fn, repeat: int) -> tuple[object, float]:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb-dir", default=str(Path.home() / ".metallmix" / "kb"))
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    kb = KnowledgeBase(args.kb_dir)
    first = {}
    for r in kb.records():
        first.setdefault(r.dataset.name, r)
    print(f"{len(kb.records())} records, {len(first)} datasets, k={args.k}\n")
    print("| task like | plain: datasets / kinds / kinds+lr / best run | MMR: datasets / kinds / kinds+lr / best run "
          "| plain ms | MMR ms | ratio |")
    print("|---|---|---|---:|---:|---:|")
    for name, rec in sorted(first.items()):
        profile = {"meta": rec.dataset.meta.model_dump(mode="json"), "dataset_name": None}
        query = task_query(profile, "", Context())
        plain, t_plain = timed(lambda q=query: kb.search(q, k=args.k), args.repeat)
        picked, t_mmr = timed(lambda q=query: diverse_runs(kb, q, args.k), args.repeat)

        best = picked.best_of_nearest_dataset  # type: ignore[attr-defined]

        def cover(runs: list, best: str | None = best) -> str:  # type: ignore[type-arg]
            return (f"{len({r.dataset.name for r, _ in runs})} / {len({compared_fields(r)[1:4] for r, _ in runs})} / "
                    f"{len({compared_fields(r)[1:] for r, _ in runs})} / {'yes' if any(r.id == best for r, _ in runs) else 'no'}")

        print(f"| {name} | {cover(plain)} | {cover(picked.runs)} | {t_plain:.1f} | {t_mmr:.1f} | "  # type: ignore[attr-defined]
              f"{t_mmr / max(t_plain, 1e-9):.1f}x |")


if __name__ == "__main__":
    main()
