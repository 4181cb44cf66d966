"""What the knowledge base holds: per-dataset counts, best runs, and the spread of settings.

    python bench/kb_report.py [--kb-dir knowledge/seed]

Prints markdown tables (used for docs/KNOWLEDGE_BASE.md); every number is read from the
records, which were measured by this repository's sweep.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge.store import SEED_DIR, open_default  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb-dir", default=str(SEED_DIR), help="a knowledge base or a seed folder (gzip shards)")
    with tempfile.TemporaryDirectory() as tmp:  # either is read as a seed into a knowledge base of its own
        kb = open_default(tmp, seed_dir=ap.parse_args().kb_dir, index=False)
        recs = kb.records()
        stats = kb.stats()
    print(f"records: {stats['records']}, successful: {stats['successful']}, statuses: {stats['statuses']}, "
          f"devices: {stats['devices']}, stale (measured before a runner fix, knowledge/runner_revisions.py): "
          f"{stats['stale']}\n")
    print("| dataset | runs | ok | backbones | modes | best test acc (config) | median test acc | seconds (median) |")
    print("|---|---:|---:|---|---|---|---:|---:|")
    by = defaultdict(list)
    for r in recs:
        by[r.dataset.name].append(r)
    for name, rs in sorted(by.items()):
        ok = [r for r in rs if r.outcome.status == "ok"]
        best = max(ok, key=lambda r: r.outcome.test_accuracy or 0)
        c = best.config
        modes = Counter(r.config.mode for r in ok)
        print(f"| {name} | {len(rs)} | {len(ok)} | {len({r.config.backbone for r in ok})} | "
              f"{', '.join(f'{m} {n}' for m, n in sorted(modes.items()))} | "
              f"{best.outcome.test_accuracy:.3f} ({c.backbone} {c.mode} {c.input_size}px {c.optimizer} lr {c.learning_rate:g} "
              f"{c.epochs} ep) | {statistics.median(r.outcome.test_accuracy for r in ok):.3f} | "
              f"{statistics.median(r.outcome.total_seconds for r in ok):.1f} |")
    ok = [r for r in recs if r.outcome.status == "ok"]
    cov = stats["training"]
    print(f"\nFine-tunes of a pretrained backbone: {cov['finetunes']} of {len(ok)} successful runs "
          f"({cov['finetune_share']:.2%}; "
          + (f"{cov['finetunes_to_target']} more would make the target's 25 %). " if cov["finetunes_to_target"]
             else "the target's 25 % is met). ")
          +
          "Best test accuracy per kind of run (how much training the network "
          "adds over a head on frozen features):\n")
    print("| dataset | fine-tunes (partial) | scratch 15+ epochs (ran 15+) | best frozen head | best fine-tune | best scratch 15+ |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, d in cov["per_dataset"].items():
        rs = [r for r in ok if r.dataset.name == name]

        def best(pick: object, rs: list = rs) -> str:
            accs = [r.outcome.test_accuracy for r in rs if pick(r)]  # type: ignore[operator]
            return f"{max(accs):.3f}" if accs else "-"

        print(f"| {name} | {d['finetune']} ({d['partial']}) | {d['scratch_15']} ({d['scratch_15_run']}) | "
              f"{best(lambda r: r.config.mode == 'frozen')} | "
              f"{best(lambda r: r.config.mode == 'finetune' and r.pretrained)} | "
              f"{best(lambda r: r.config.mode == 'scratch' and r.config.epochs >= 15)} |")
    print("\n| setting | distinct values (successful runs) |\n|---|---|")
    for field in ("backbone", "mode", "input_size", "optimizer", "batch_size", "epochs", "weight_decay", "dropout",
                  "scheduler", "augmentation", "label_smoothing", "freeze"):
        counts = Counter(getattr(r.config, field) for r in ok)
        print(f"| {field} | " + ", ".join(f"{k} ({v})" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))) + " |")
    lrs = sorted(r.config.learning_rate for r in ok)
    print(f"| learning_rate | {len(set(lrs))} values from {lrs[0]:g} to {lrs[-1]:g} |")
    bad = [r for r in recs if r.outcome.status != "ok"]
    if bad:
        print("\nNot successful, by status and optimizer:",
              dict(Counter((r.outcome.status, r.config.optimizer) for r in bad)))


if __name__ == "__main__":
    main()
