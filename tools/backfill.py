"""Bring the seed (or a knowledge base's records file) up to date with a meta-feature added later
(today: tools.probe's).

    python -m tools.backfill --records knowledge/seed --data-dir ../shared/data          # the sharded seed
    python -m tools.backfill --records ~/.metallmix/kb/records.jsonl --data-dir ../shared/data

A record's meta-features are those of its dataset, so a feature measured later is measured on
each dataset found in --data-dir (matched by fingerprint, not by name) and written into its
records; records of datasets not found keep None. A seed folder is rewritten as gzip shards
(`knowledge.seed_merge.rewrite_seed`), a records file atomically, as plain JSONL.
"""

from __future__ import annotations

from pathlib import Path

from tools.probe import probe_accuracy


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
    ap.add_argument("--records", required=True, type=Path,
                    help="a seed folder of shards (e.g. knowledge/seed) or a knowledge base's records.jsonl")
    ap.add_argument("--data-dir", required=True, type=Path)
    a = ap.parse_args()
    for name, acc in backfill(a.records, a.data_dir).items():
        print(f"{name:28s} {acc}")
