"""Turn the benchmarks' cached training runs into knowledge-base records, so the seed learns from them.

    python -m knowledge.bench_runs --out /tmp/bench_records.jsonl       # bench/results/lodo_runs.jsonl
    python -m knowledge.seed_merge --records /tmp/bench_records.jsonl   # then fold them into the seed

bench.lodo and bench.reference train every configuration they score with `tools.train.train` on the
datasets of ../shared/data, and cache one row per run in bench/results/lodo_runs.jsonl: the search
baselines' trials, the zero-shot picks, and the reference protocols (Lite0 fine-tunes, small_cnn
from scratch for 30 epochs). Those are real runs of this repo's code, many of them fine-tunes and
long scratch runs, the region the seed lacks. A row keeps what the benchmark needs (accuracies,
seconds, device, config as it ran), so a record made from it has no per-epoch history; its
dataset descriptor (meta-features) is the one the seed already holds for that fingerprint.

- Only finished runs become records ("ok", or "failed" with its error); a run cancelled at the
  benchmark's time cap says nothing about its config.
- Every epoch trained (the benchmark does not stop early) and the best validation epoch was tested,
  so `epochs_run` is the config's epochs.
- The notes say where the run came from, its torch threads and the load average when it ended.
- A record's id is derived from the row's cache key (and the runner revision after the first), so
  converting twice gives the same records and `seed_merge` adds each run once; a row the cache
  retrained after a runner fix (knowledge.runner_revisions) replaces the stale record in the seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from knowledge.record_files import KnowledgeBaseError
from knowledge.schema import DatasetInfo, ExperimentRecord, Outcome, Provenance, TrainConfig

REPO = Path(__file__).resolve().parents[1]
RUNS_FILE = REPO / "bench" / "results" / "lodo_runs.jsonl"
FINISHED = ("ok", "failed")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The cache's rows, in file order (a torn last line of a killed writer is skipped).

    Raises:
        KnowledgeBaseError: the file is missing, or a line other than the last is not JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise KnowledgeBaseError(f"no benchmark runs file {path}: bench.lodo and bench.reference write "
                                 "bench/results/lodo_runs.jsonl")
    lines = path.read_text().splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if n == len(lines):
                break
            raise KnowledgeBaseError(f"{path}:{n} is not a JSON row ({exc.msg}); fix or remove that line") from exc
    return rows


def to_record(row: Mapping[str, Any], dataset: DatasetInfo) -> ExperimentRecord:
    """The record of one finished benchmark run on `dataset` (its descriptor from the seed)."""
    config = TrainConfig.model_validate(row["ran_as"])
    ok = row["status"] == "ok"
    outcome = Outcome(
        status=row["status"],
        val_accuracy=row.get("val_accuracy"),
        test_accuracy=row.get("test_accuracy"),
        epochs_run=config.epochs if ok else 0,
        train_seconds=float(row["train_seconds"]),
        feature_seconds=float(row.get("feature_seconds") or 0.0),
        device=row["device"],
        error=(row.get("error") or None) and str(row["error"])[:2000],
    )
    threads = row.get("threads")
    load = row.get("load")
    notes = ("bench.lodo / bench.reference run (bench/results/lodo_runs.jsonl): every epoch trained, the best "
             f"validation epoch tested; torch threads {threads if threads is not None else 'not recorded'}; "
             f"load average {load if load is not None else 'not recorded'} when it ended")
    revision = int(row.get("runner_revision") or 1)
    provenance = Provenance(
        source="sweep",
        code_version=str(row["code_version"])[:64],
        seed=int(row["seed"]),
        date=row["date"],
        machine=f"{row['device']} (the benchmark cache does not record the machine)",
        notes=notes,
        runner_revision=revision,
    )
    return ExperimentRecord(
        # A run measured again by a later runner revision is a new record (it supersedes the old one).
        id=hashlib.sha256(f"bench|{row['key']}{f'|r{revision}' if revision > 1 else ''}".encode()).hexdigest()[:32],
        run_key=ExperimentRecord.make_run_key(dataset.fingerprint, config, int(row["seed"]), "sweep"),
        dataset=dataset,
        config=config,
        weights=row["weights"],
        outcome=outcome,
        provenance=provenance,
    )


def to_records(rows: Iterable[Mapping[str, Any]], datasets: Mapping[str, DatasetInfo]
               ) -> tuple[list[ExperimentRecord], Counter[str]]:
    """Records of the finished rows whose dataset fingerprint is in `datasets`, and why the others
    were left out (counts by reason)."""
    out: list[ExperimentRecord] = []
    skipped: Counter[str] = Counter()
    for row in rows:
        if row.get("status") not in FINISHED:
            skipped[f"status {row.get('status')}"] += 1
        elif row.get("fingerprint") not in datasets:
            skipped[f"dataset {row.get('dataset')} ({row.get('fingerprint')}) not in the seed"] += 1
        else:
            out.append(to_record(row, datasets[row["fingerprint"]]))
    return out, skipped


def seed_datasets(records: Iterable[ExperimentRecord]) -> dict[str, DatasetInfo]:
    """Each fingerprint's dataset descriptor, as the last record of it holds it."""
    return {r.dataset.fingerprint: r.dataset for r in records}


def main(argv: Sequence[str] | None = None) -> int:
    from knowledge.seed_shards import read_seed

    parser = argparse.ArgumentParser(prog="python -m knowledge.bench_runs", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=RUNS_FILE, help="the benchmark cache (default %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="records file to write (JSONL), for knowledge.seed_merge")
    parser.add_argument("--seed-dir", type=Path, default=None, help="where the dataset descriptors come from (default: knowledge/seed)")
    args = parser.parse_args(argv)
    try:
        records, skipped = to_records(read_rows(args.runs), seed_datasets(read_seed(args.seed_dir)))
    except KnowledgeBaseError as exc:
        print(f"bench_runs: {exc}", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"bench_runs: {args.out} exists; give a new file (nothing was written)", file=sys.stderr)
        return 2
    args.out.write_text("".join(r.model_dump_json() + "\n" for r in records))
    modes = Counter(r.config.mode for r in records)
    print(f"wrote {len(records)} records to {args.out} ({', '.join(f'{n} {m}' for m, n in sorted(modes.items()))})"
          + (f"; left out: {', '.join(f'{n} {why}' for why, n in skipped.items())}" if skipped else ""))
    return 0


__all__ = ["RUNS_FILE", "read_rows", "seed_datasets", "to_record", "to_records"]

if __name__ == "__main__":
    sys.exit(main())
