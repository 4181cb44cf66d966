"""Bring a records file up to date with a meta-feature added later (today: tools.probe's).

    python -m tools.backfill --records knowledge/seed/records.jsonl --data-dir ../shared/data

A record's meta-features are those of its dataset, so a feature measured later is measured on
each dataset found in --data-dir (matched by fingerprint, not by name) and written into its
records; records of datasets not found keep None. The file is rewritten atomically.
"""

from __future__ import annotations

from pathlib import Path

from tools.probe import probe_accuracy


def backfill(records_file: Path, data_dir: Path) -> dict[str, float | None]:
    """Set `probe_accuracy` in every record of `records_file` whose dataset is in `data_dir`
    (matched by fingerprint), measured by `probe_accuracy`; the file is rewritten atomically.
    Returns the probe by dataset name."""
    from knowledge.schema import ExperimentRecord
    from tools.datasets import load_dataset

    by_print: dict[str, float | None] = {}
    names: dict[str, float | None] = {}
    for path in sorted(data_dir.glob("*.npz")):
        ds = load_dataset(path)
        by_print[ds.fingerprint] = names[ds.name] = probe_accuracy(ds)
    lines = []
    for line in records_file.read_text().splitlines():
        rec = ExperimentRecord.model_validate_json(line)
        acc = by_print.get(rec.dataset.fingerprint)
        if acc is not None and rec.dataset.meta.probe_accuracy != acc:
            meta = rec.dataset.meta.model_copy(update={"probe_accuracy": acc})
            rec = rec.model_copy(update={"dataset": rec.dataset.model_copy(update={"meta": meta})})
            line = rec.model_dump_json()
        lines.append(line)
    tmp = records_file.with_name(records_file.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(records_file)
    return names


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="measure the probe of every dataset in --data-dir and set it in the "
                                             "records of those datasets")
    ap.add_argument("--records", required=True, type=Path, help="a records .jsonl (e.g. knowledge/seed/records.jsonl)")
    ap.add_argument("--data-dir", required=True, type=Path)
    a = ap.parse_args()
    for name, acc in backfill(a.records, a.data_dir).items():
        print(f"{name:28s} {acc}")
