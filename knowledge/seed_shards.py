"""The packaged seed: the records the knowledge base starts from, committed as gzip JSONL shards.

`read_seed` gives the seed's records (a plain records file in the folder, if any, first, then the
shards by name, each record once); `write_seed_shards` writes them as shards whose bytes depend on
the records alone, so git sees only the shards that really changed. knowledge.seed_merge adds a
sweep's runs to the seed with `write_shards`; knowledge.store.open_default copies the seed into a
new knowledge base with `seed_lines`. The files' format (and atomic replacement) is
knowledge.record_files'.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable
from pathlib import Path

from knowledge.record_files import RECORDS_FILE, atomic_write, read_lines
from knowledge.schema import ExperimentRecord

SEED_DIR = Path(__file__).parent / "seed"
# The packaged seed is committed as gzip JSONL shards (a plain records file beside them, if any,
# is read first), in sorted name order: `write_seed_shards` names them so that order is theirs.
# knowledge.seed_merge adds a sweep's runs to them.
SEED_SHARD_GLOB = "records-*.jsonl.gz"
SEED_SHARD_RECORDS = 1000


def seed_files(folder: str | Path | None = None) -> list[Path]:
    """The seed's files in reading order: the plain records file, if any, then the shards by name.

    `folder` None means the packaged seed, knowledge/seed.
    """
    folder = Path(folder) if folder is not None else SEED_DIR
    plain = folder / RECORDS_FILE
    return ([plain] if plain.is_file() else []) + sorted(folder.glob(SEED_SHARD_GLOB))


def read_seed(folder: str | Path | None = None) -> list[ExperimentRecord]:
    """The seed records: the plain file's, then each shard's, the first of any id or run key kept.

    Either form or both may be present (the packaged seed is committed as shards; a plain file
    is an older seed, or a sweep run into the folder, until `knowledge.seed_merge` folds it in),
    so a record found in both is loaded once. `folder` None means the
    packaged seed. Use this, not `read_records(SEED_DIR / "records.jsonl")`, which misses the shards.
    """
    return [record for record, _ in seed_lines(folder)]


def seed_lines(folder: str | Path | None) -> list[tuple[ExperimentRecord, bytes]]:
    """`read_seed`, each record with its stored line."""
    out: list[tuple[ExperimentRecord, bytes]] = []
    ids: set[str] = set()
    keys: set[str] = set()
    for path in seed_files(folder):
        for r, raw in read_lines(path):
            if r.id in ids or r.run_key in keys:
                continue
            ids.add(r.id)
            keys.add(r.run_key)
            out.append((r, raw))
    return out


def write_seed_shards(records: Iterable[ExperimentRecord], folder: str | Path,
                      max_records_per_shard: int = SEED_SHARD_RECORDS) -> list[Path]:
    """Write `records` as gzip JSONL shards `records-00000.jsonl.gz`, ... in `folder`.

    The bytes depend on the records alone (gzip mtime 0, no file name in the header), so
    rewriting the same records changes nothing in git, and appending records rewrites only the
    last shard and adds new ones (a shard whose bytes would not change is not rewritten at
    all). Each shard is replaced atomically; shards left from an
    earlier, longer write are removed. A plain records file in `folder` is left alone:
    `read_seed` loads a record found in both forms once.

    Args:
        records: the records, in the order `read_seed` will give them back.
        folder: the seed folder (created if missing).
        max_records_per_shard: records per shard; the last shard holds the rest.

    Returns:
        The shards written, in reading order.
    """
    return write_shards(records, folder, max_records_per_shard)[0]


def write_shards(records: Iterable[ExperimentRecord], folder: str | Path,
                  max_records_per_shard: int = SEED_SHARD_RECORDS) -> tuple[list[Path], list[Path]]:
    """`write_seed_shards`, returning (shards in reading order, those whose bytes were new)."""
    if not isinstance(max_records_per_shard, int) or isinstance(max_records_per_shard, bool) or max_records_per_shard < 1:
        raise ValueError(f"max_records_per_shard must be an int >= 1, but got {max_records_per_shard!r}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    recs = list(records)
    written: list[Path] = []
    rewritten: list[Path] = []
    for number, start in enumerate(range(0, len(recs), max_records_per_shard)):
        payload = "".join(r.model_dump_json() + "\n" for r in recs[start : start + max_records_per_shard]).encode()
        path = folder / f"records-{number:05d}.jsonl.gz"
        data = _gzip(payload)
        if not (path.is_file() and path.read_bytes() == data):  # an unchanged shard keeps its file and mtime
            atomic_write(path, data)
            rewritten.append(path)
        written.append(path)
    for stale in sorted(set(folder.glob(SEED_SHARD_GLOB)) - set(written)):
        stale.unlink()
    return written, rewritten


def _gzip(data: bytes) -> bytes:
    """Deterministic gzip: GzipFile writes no name with filename="", mtime 0, and a fixed OS byte."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


__all__ = ["SEED_DIR", "SEED_SHARD_GLOB", "SEED_SHARD_RECORDS", "read_seed", "seed_files", "seed_lines",
           "write_seed_shards", "write_shards"]
