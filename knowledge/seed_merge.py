"""Add runs to the packaged seed, which git stores as gzip JSONL shards (knowledge/seed/records-*.jsonl.gz).

    python -m knowledge.seed_merge --records ~/sweep_kb/records.jsonl    # into knowledge/seed
    python -m knowledge.seed_merge --records a.jsonl b.jsonl.gz --seed-dir DIR --dry-run

A sweep writes into a knowledge base of its own (`metallmix kb sweep --kb-dir ~/sweep_kb`): a plain
`records.jsonl` appended to as runs finish. This folds its new runs into the seed: each record whose
run key and id are not in the seed yet is appended, in file order (a torn last line of a killed
writer is skipped), and the shards are rewritten with `knowledge.seed_shards.write_seed_shards`, whose
full shards keep their bytes, so git sees only the last shard and new ones change.

A run the seed holds only a stale record of (measured before a runner fix that changes it,
knowledge.runner_revisions) and an input measured again with the current runner: the new record
takes the stale one's place in the seed (its shard changes), so the seed keeps one record per run.

A dataset has one probe (tools.probe, a meta-feature of the data, not of the run): a record of a
dataset the seed already holds takes the seed's probe accuracy. The probe is a logistic regression on
float features, so another machine (its CPU, its thread count) can score one of its 400 validation
images the other way; without this, the seed would hold two values for one dataset.

A plain `records.jsonl` inside the seed folder (an older seed, or a sweep run into it) is folded
into the shards and removed, so every seed record lives in one place. Do not run this while a
sweep still writes into the seed folder itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.record_files import RECORDS_FILE, KnowledgeBaseError, read_records
from knowledge.runner_revisions import is_stale
from knowledge.schema import ExperimentRecord
from knowledge.seed_shards import SEED_DIR, SEED_SHARD_GLOB, read_seed, write_shards


@dataclass
class MergeResult:
    """What a merge did (or, with dry_run, would do)."""

    added: list[ExperimentRecord] = field(default_factory=list)  # new runs, in the order appended
    known: int = 0  # records of the inputs already in the seed (by run key or id)
    # (stale seed record, the new measurement of its run that replaced it)
    replaced: list[tuple[ExperimentRecord, ExperimentRecord]] = field(default_factory=list)
    seed_before: int = 0  # seed records before the merge
    probes_aligned: int = 0  # added records whose probe accuracy was set to the seed's for their dataset
    changed: list[Path] = field(default_factory=list)  # files written or removed in the seed folder


def rewrite_seed(records: Iterable[ExperimentRecord], folder: str | Path | None = None) -> list[Path]:
    """Store `records` as the whole seed of `folder` (None: the packaged one): write the shards,
    then remove a plain records file there, whose records the caller read with `read_seed` and
    which `read_seed` would otherwise read first (with their old contents).

    Returns:
        The files that changed: shards whose bytes are new, shards and the plain file removed.
    """
    folder = Path(folder) if folder is not None else SEED_DIR
    before = set(folder.glob(SEED_SHARD_GLOB))
    written, changed = write_shards(records, folder)  # the writer knows which shards got new bytes
    changed += sorted(before - set(written))
    plain = folder / RECORDS_FILE
    if plain.is_file():
        plain.unlink()
        changed.append(plain)
    return changed


def merge_into_seed(paths: Sequence[str | Path], folder: str | Path | None = None,
                    dry_run: bool = False) -> MergeResult:
    """Append the records of `paths` (.jsonl, or .jsonl.gz shards) whose run key and id the seed
    lacks, and store the seed as shards (`rewrite_seed`).

    Raises:
        KnowledgeBaseError: an input is missing, or holds a line that is not a record.
    """
    for path in map(Path, paths):
        if not path.is_file():
            raise KnowledgeBaseError(f"no records file {path}: give a knowledge base's records.jsonl "
                                     "(e.g. the --kb-dir of a sweep, plus /records.jsonl)")
    seed = read_seed(folder)
    result = MergeResult(seed_before=len(seed))
    ids = {r.id for r in seed}
    merged = list(seed)
    where = {r.run_key: i for i, r in enumerate(merged)}  # run key -> its place in the merged seed
    probes = _seed_probes(seed)
    for path in map(Path, paths):
        for r in read_records(path):
            at = where.get(r.run_key)
            if r.id in ids or (at is not None and not (is_stale(merged[at]) and not is_stale(r))):
                result.known += 1
                continue
            probe = probes.get(r.dataset.fingerprint)
            if probe is not None and r.dataset.meta.probe_accuracy != probe:
                r = _with_probe(r, probe)
                result.probes_aligned += 1
            ids.add(r.id)
            if at is None:
                where[r.run_key] = len(merged)
                merged.append(r)
            else:  # a stale record, measured again: the new one takes its place
                if at < len(seed):
                    result.replaced.append((seed[at], r))
                merged[at] = r
    result.added = merged[len(seed):]
    folder_path = Path(folder) if folder is not None else SEED_DIR
    needs_fold = (folder_path / RECORDS_FILE).is_file()
    if not dry_run and (result.added or result.replaced or needs_fold):
        result.changed = rewrite_seed(merged, folder)
    return result


def _seed_probes(seed: Sequence[ExperimentRecord]) -> dict[str, float]:
    """Dataset fingerprint -> the probe accuracy of the seed's first record of it that has one."""
    probes: dict[str, float] = {}
    for r in seed:
        if r.dataset.meta.probe_accuracy is not None:
            probes.setdefault(r.dataset.fingerprint, r.dataset.meta.probe_accuracy)
    return probes


def _with_probe(record: ExperimentRecord, probe: float) -> ExperimentRecord:
    meta = record.dataset.meta.model_copy(update={"probe_accuracy": probe})
    return record.model_copy(update={"dataset": record.dataset.model_copy(update={"meta": meta})})


def replacement_table(pairs: Sequence[tuple[ExperimentRecord, ExperimentRecord]]) -> list[str]:
    """What measuring the stale runs again changed, as markdown lines: per mode and backbone, the runs whose
    two measurements both finished, and the mean and median change of test and validation accuracy."""
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for old, new in pairs:
        o, n = old.outcome, new.outcome
        if o.status == n.status == "ok":
            groups.setdefault((new.config.mode, new.config.backbone), []).append(
                (n.test_accuracy - o.test_accuracy, n.val_accuracy - o.val_accuracy))  # type: ignore[operator]
    if not groups:
        return []
    lines = ["| mode | backbone | runs | test change, mean | median | val change, mean |", "|---|---|---:|---:|---:|---:|"]
    for (mode, backbone), diffs in sorted(groups.items()):
        test = [d[0] for d in diffs]
        lines.append(f"| {mode} | {backbone} | {len(diffs)} | {statistics.mean(test):+.3f} | "
                     f"{statistics.median(test):+.3f} | {statistics.mean(d[1] for d in diffs):+.3f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m knowledge.seed_merge", description=__doc__.split("\n")[0])
    parser.add_argument("--records", nargs="+", required=True, type=Path,
                        help="records files to take new runs from (a sweep's knowledge base: DIR/records.jsonl)")
    parser.add_argument("--seed-dir", type=Path, default=None, help="the seed folder (default: knowledge/seed)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be added; write nothing")
    args = parser.parse_args(argv)
    try:
        res = merge_into_seed(args.records, args.seed_dir, dry_run=args.dry_run)
    except KnowledgeBaseError as exc:
        print(f"seed_merge: {exc}", file=sys.stderr)
        return 2
    verb = "would add" if args.dry_run else "added"
    print(f"{verb} {len(res.added)} new runs to the seed of {res.seed_before} records "
          f"({res.known} already there), {'would replace' if args.dry_run else 'replaced'} {len(res.replaced)} "
          f"stale ones; changed: {', '.join(p.name for p in res.changed) or 'nothing'}")
    if res.probes_aligned:
        print(f"{res.probes_aligned} of them measured their dataset's probe accuracy differently from the seed "
              "(another machine); they carry the seed's")
    for line in replacement_table(res.replaced):
        print(line)
    return 0


__all__ = ["MergeResult", "merge_into_seed", "rewrite_seed"]

if __name__ == "__main__":
    sys.exit(main())
