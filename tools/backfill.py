"""Bring the seed (or a knowledge base's records file) up to date with a meta-feature added later
(today: tools.probe's), or with the runner revision that measured each record.

    python -m tools.backfill --records knowledge/seed --data-dir ../shared/data          # the sharded seed
    python -m tools.backfill --records ~/.metallmix/kb/records.jsonl --data-dir ../shared/data
    python -m tools.backfill --revisions --records knowledge/seed bench/results/lodo_runs.jsonl

`--revisions`: records (and benchmark cache rows) from before revisions were kept read as runner
revision 1 (knowledge.runner_revisions). Those whose code version is a commit of this git
history that already had a fix get that fix's revision, so only the runs the fix changed are
stale. A code version git does not know (a package version, another clone's commit) stays 1.

A record's meta-features are those of its dataset, so a feature measured later is measured on
each dataset found in --data-dir (matched by fingerprint, not by name) and written into its
records; records of datasets not found keep None. A seed folder is rewritten as gzip shards
(`knowledge.seed_merge.rewrite_seed`), a records file atomically, as plain JSONL.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

from tools.probe import probe_accuracy

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def revision_of(code_version: str) -> int:
    """The runner revision of a commit of this repository's history: the latest fix it has (by git
    ancestry), 1 when it has none or git does not know it."""
    from knowledge.runner_revisions import FIXES

    def has(fix_commit: str) -> bool:
        out = subprocess.run(["git", "merge-base", "--is-ancestor", fix_commit, code_version], cwd=REPO,
                             capture_output=True, timeout=30)
        return out.returncode == 0

    return max((f.revision for f in FIXES if has(f.commit)), default=1)


def _revised(data: dict[str, Any]) -> bool:
    """Set the runner revision of one record or benchmark row (a JSON object) from its code version;
    True when it changed."""
    holder = data["provenance"] if "provenance" in data else data
    if int(holder.get("runner_revision") or 1) > 1:
        return False
    revision = revision_of(str(holder["code_version"]))
    if revision > 1:
        holder["runner_revision"] = revision
    return revision > 1


def backfill_revisions(path: Path) -> int:
    """Set the runner revision from the code version in every record of a seed folder, a records
    .jsonl, or benchmark rows (bench/results/lodo_runs.jsonl); returns how many changed."""
    from knowledge.schema import ExperimentRecord
    from knowledge.seed_merge import rewrite_seed
    from knowledge.store import atomic_write, read_seed

    if path.is_dir():
        records, changed = [], 0
        for rec in read_seed(path):
            data = json.loads(rec.model_dump_json())
            if _revised(data):
                rec, changed = ExperimentRecord.model_validate(data), changed + 1
            records.append(rec)
        if changed:
            rewrite_seed(records, path)
        return changed
    lines, changed = [], 0
    for line in path.read_text().splitlines():
        if line.strip() and _revised(data := json.loads(line)):
            changed += 1
            is_record = "provenance" in data  # a record is validated again; a benchmark row is plain JSON
            line = ExperimentRecord.model_validate(data).model_dump_json() if is_record else json.dumps(data)
        lines.append(line)
    if changed:
        atomic_write(path, ("\n".join(lines) + "\n").encode())
    return changed


def backfill(records: Path, data_dir: Path) -> dict[str, float | None]:
    """Set `probe_accuracy` in every record of `records` whose dataset is in `data_dir` (matched by
    fingerprint), measured by `probe_accuracy`. `records` is a seed folder (its shards, and a plain
    records file there, are rewritten as shards) or a records .jsonl (rewritten atomically).
    Returns the probe by dataset name."""
    from knowledge.schema import ExperimentRecord
    from knowledge.seed_merge import rewrite_seed
    from knowledge.store import atomic_write, read_seed
    from tools.datasets import load_dataset

    by_print: dict[str, float | None] = {}
    names: dict[str, float | None] = {}
    for path in sorted(data_dir.glob("*.npz")):
        ds = load_dataset(path)
        by_print[ds.fingerprint] = names[ds.name] = probe_accuracy(ds)

    def update(rec: ExperimentRecord) -> ExperimentRecord:
        acc = by_print.get(rec.dataset.fingerprint)
        if acc is None or rec.dataset.meta.probe_accuracy == acc:
            return rec
        meta = rec.dataset.meta.model_copy(update={"probe_accuracy": acc})
        return rec.model_copy(update={"dataset": rec.dataset.model_copy(update={"meta": meta})})

    if records.is_dir():
        rewrite_seed([update(r) for r in read_seed(records)], records)
        return names
    lines = []
    for line in records.read_text().splitlines():
        rec = ExperimentRecord.model_validate_json(line)
        new = update(rec)
        lines.append(line if new is rec else new.model_dump_json())
    atomic_write(records, ("\n".join(lines) + "\n").encode())
    return names


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="measure the probe of every dataset in --data-dir and set it in the "
                                             "records of those datasets")
    ap.add_argument("--records", required=True, type=Path, nargs="+",
                    help="a seed folder of shards (e.g. knowledge/seed) or a knowledge base's records.jsonl "
                         "(with --revisions, also bench/results/lodo_runs.jsonl)")
    ap.add_argument("--data-dir", type=Path, help="the datasets to measure the probe on")
    ap.add_argument("--revisions", action="store_true",
                    help="set each record's runner revision from its code version (git) instead")
    a = ap.parse_args()
    if a.revisions:
        for path in a.records:
            print(f"{path}: {backfill_revisions(path)} records given the runner revision their code version had")
        raise SystemExit(0)
    if a.data_dir is None:
        ap.error("--data-dir is needed to measure the probe (or give --revisions)")
    for path in a.records:
        for name, acc in backfill(path, a.data_dir).items():
            print(f"{name:28s} {acc}")
