"""The knowledge base: an append-only JSONL file (the truth) and a Chroma index (derived).

Why this shape: a JSONL line is the unit of durability. A record is appended with one
`write` under an exclusive file lock and fsynced, so a crash leaves either the whole line
or a torn tail, and the reader drops (and the next writer trims) a torn tail. The Chroma
index is rebuilt or re-synced from the JSONL at any time, keyed by record id, so it can
never hold an orphan for long nor lose a record for good.

What lives where: this module holds `KnowledgeBase` (the records half: reading, appending,
reporting, import and export) and `open_default`, which seeds a new knowledge base. The index
half, in `root/chroma` or on a Chroma server, is knowledge.chroma_index's `ChromaIndex` mixin;
the file formats (JSONL lines, locking, atomic writes, CSV rows) are knowledge.record_files';
the packaged seed's gzip shards are knowledge.seed_shards'. Their public names are re-exported
here, so `from knowledge.store import ...` keeps working for every caller.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

# The class reads files through `record_files.` (not a name imported here), so a test that patches
# knowledge.record_files.read_records or parse_lines sees the knowledge base's own calls.
from knowledge import record_files
from knowledge.chroma_index import (
    COLLECTION,
    INDEX_DIR,
    ChromaIndex,
    SearchVectors,
    chroma_server,
    server_collection,
)
from knowledge.record_files import (
    RECORDS_FILE,
    KnowledgeBaseError,
    atomic_write,
    flatten,
    locked,
    read_lines,
    read_records,
    trim_torn_tail,
    unflatten,
    write_temporary,
)
from knowledge.runner_revisions import current, is_stale
from knowledge.schema import ExperimentRecord, TrainConfig
from knowledge.seed_shards import (
    SEED_DIR,
    SEED_SHARD_GLOB,
    SEED_SHARD_RECORDS,
    read_seed,
    seed_files,
    seed_lines,
    write_seed_shards,
)
from knowledge.targets import TARGET_SHARE, TARGETS, finetunes_to_share

log = logging.getLogger(__name__)


class KnowledgeBase(ChromaIndex):
    """Records in `root/records.jsonl`, indexed in a Chroma collection in `root/chroma` or on a server.

    Args:
        root: folder of this knowledge base (created if missing).
        embedder: a Chroma embedding function; None means knowledge.embedding's default.
        index: False to work with the JSONL alone (no Chroma), e.g. in a sweep worker.
        lock_timeout: seconds to wait for an index locked by another process before saying so.
        chroma_url: a Chroma server (`http://host:port`) holding the index; None means
            $METALLMIX_CHROMA, and "" (or neither set) the embedded index in `root/chroma`.
    """

    def __init__(self, root: str | Path, embedder: Any | None = None, index: bool = True,
                 lock_timeout: float = 5.0, chroma_url: str | None = None) -> None:
        self.root = Path(root)
        self.path = self.root / RECORDS_FILE
        self._embedder = embedder
        self._use_index = index
        self.lock_timeout = lock_timeout
        url = os.environ.get("METALLMIX_CHROMA", "") if chroma_url is None else chroma_url
        self.chroma_url: str | None = url.strip() or None
        self._server = chroma_server(self.chroma_url) if self.chroma_url else None
        self.collection_name = server_collection(self.root) if self._server else COLLECTION
        self._collection: Any | None = None
        self._cache: tuple[tuple[int, int], list[ExperimentRecord]] | None = None
        self._ids: tuple[list[ExperimentRecord], dict[str, ExperimentRecord]] | None = None
        # The records file's (size, mtime) when the index was last seen to hold its records: a
        # search re-checks the index only when the file changed (Chroma's count() is a SQL count,
        # ~3-8 ms at 100k records, and the old search made three of them per query).
        self._indexed: tuple[int, int] | None = None
        # What `append` knows of the file: (inode, bytes read, lines in them, their record ids).
        # Under the lock a later append reads only the bytes after those (another process's
        # appends), not the whole file again.
        self._appended: tuple[int, int, int, set[str]] | None = None

    # ----------------------------------------------------------------- records
    # (The index: collection, sync_index, rebuild_index, search, search_vectors, from ChromaIndex.)
    def _read(self) -> tuple[tuple[int, int] | None, list[ExperimentRecord]]:
        """The records file's (size, mtime in ns), None when it is missing, and its records."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None, []
        stamp = (st.st_size, st.st_mtime_ns)
        if self._cache is None or self._cache[0] != stamp:
            self._cache = (stamp, current(record_files.read_records(self.path)))
            self._ids = None
        return stamp, self._cache[1]

    def records(self) -> list[ExperimentRecord]:
        """The records, cached until the file changes (one stat() per call when it has not); a stale
        record whose run was measured again is left out (knowledge.runner_revisions.current)."""
        return self._read()[1]

    def _by_id(self) -> dict[str, ExperimentRecord]:
        """Records by id, built once per version of the file (a search must not rebuild it:
        at 100k records that was most of a query's time, bench/scale.py)."""
        records = self.records()
        if self._ids is None or self._ids[0] is not records:
            self._ids = (records, {r.id: r for r in records})
        return self._ids[1]

    def __len__(self) -> int:
        return len(self.records())

    def get(self, record_id: str) -> ExperimentRecord | None:
        return self._by_id().get(record_id)

    def run_keys(self) -> set[str]:
        """The run keys this knowledge base holds a current measurement of: a run whose only record is
        stale (knowledge.runner_revisions) is left out, so a sweep measures it again."""
        return {r.run_key for r in self.records() if not is_stale(r)}

    def append(self, records: ExperimentRecord | Iterable[ExperimentRecord]) -> int:
        """Durably append records (skipping ids already present), then index them.

        Returns the number of records written.
        """
        batch = [records] if isinstance(records, ExperimentRecord) else list(records)
        if not batch:
            return 0
        with locked(self.path) as fd:
            trim_torn_tail(fd)
            end, lines, known = self._known_ids(fd)
            fresh = [r for r in batch if r.id not in known]
            if fresh:
                payload = "".join(r.model_dump_json() + "\n" for r in fresh).encode()
                os.lseek(fd, 0, os.SEEK_END)
                os.write(fd, payload)
                os.fsync(fd)
                known.update(r.id for r in fresh)  # only this object's set: ids now in the file
                end, lines = end + len(payload), lines + len(fresh)
            self._appended = (os.fstat(fd).st_ino, end, lines, known)
        if fresh and self._use_index:
            try:
                self._index(fresh)
            except KnowledgeBaseError as exc:  # the JSONL holds them: the index catches up on the next search
                log.warning("appended %d records, but could not index them now: %s", len(fresh), exc)
        return len(fresh)

    def _known_ids(self, fd: int) -> tuple[int, int, set[str]]:
        """(size, lines, record ids) of the locked records file `fd`, its torn tail trimmed: only
        the bytes appended since this object last looked are read, or the whole file when it is
        another file now (replaced, or shorter than what was read)."""
        st = os.fstat(fd)
        ino, start, lines, known = self._appended or (st.st_ino, 0, 0, set())
        if ino != st.st_ino or start > st.st_size:
            start, lines, known = 0, 0, set()
        if st.st_size > start:
            data = b""
            while len(data) < st.st_size - start:  # a read may return less than asked
                data += os.pread(fd, st.st_size - start - len(data), start + len(data))
            parsed = record_files.parse_lines(self.path, data, torn_tail_ok=False, first_line=lines + 1)
            known.update(r.id for r, _ in parsed)
            lines += data.count(b"\n")
        return st.st_size, lines, known

    # ------------------------------------------------------------- reporting
    def stats(self) -> dict[str, Any]:
        recs = self.records()
        ok = [r for r in recs if r.outcome.status == "ok"]
        per_dataset = Counter(r.dataset.name for r in recs)
        return {
            "records": len(recs),
            "successful": len(ok),
            "datasets": dict(sorted(per_dataset.items())),
            "backbones": dict(sorted(Counter(r.config.backbone for r in recs).items())),
            "modes": dict(sorted(Counter(r.config.mode for r in recs).items())),
            "statuses": dict(sorted(Counter(r.outcome.status for r in recs).items())),
            "sources": dict(sorted(Counter(r.provenance.source for r in recs).items())),
            "devices": dict(sorted(Counter(r.outcome.device for r in recs).items())),
            "backbones_per_dataset": {
                d: sorted({r.config.backbone for r in ok if r.dataset.name == d}) for d in sorted(per_dataset)
            },
            "training": training_coverage(ok),
            # Runs measured before a runner fix that changes them (knowledge.runner_revisions), not measured again yet.
            "stale": sum(map(is_stale, recs)),
        }

    # --------------------------------------------------------- import/export
    def export(self, path: str | Path) -> int:
        """Write all records to `path` (.jsonl or .csv, flattened columns)."""
        path = Path(path)
        recs = self.records()
        tmp = path.with_name(path.name + ".tmp")
        if path.suffix == ".csv":
            rows = [flatten(r) for r in recs]
            fields = sorted({k for row in rows for k in row}) if rows else ["id"]
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
        elif path.suffix == ".jsonl":
            tmp.write_text("".join(r.model_dump_json() + "\n" for r in recs))
        else:
            raise KnowledgeBaseError(f"export format must be .jsonl or .csv, but got {path.name!r}.")
        tmp.replace(path)  # never a half-written export
        return len(recs)

    def import_file(self, path: str | Path) -> int:
        """Validate every record in a .jsonl or .csv file first, then append them all (or none)."""
        path = Path(path)
        if not path.is_file():
            raise KnowledgeBaseError(f"no such file to import: {path}")
        if path.suffix == ".jsonl":
            recs = record_files.read_records(path)
        elif path.suffix == ".csv":
            recs = []
            with path.open(newline="") as f:
                for line, row in enumerate(csv.DictReader(f), start=2):
                    try:
                        recs.append(ExperimentRecord.model_validate(unflatten(row)))
                    except ValidationError as exc:
                        raise KnowledgeBaseError(f"{path}:{line}: not a valid record: {exc.errors()[0]['msg']}") from exc
        else:
            raise KnowledgeBaseError(f"import format must be .jsonl or .csv, but got {path.name!r}.")
        return self.append(recs)


LONG_SCRATCH_EPOCHS = 15  # a scratch run configured for this many epochs or more is a long one
def coverage_kind(config: TrainConfig, pretrained: bool) -> str | None:
    """What a run counts as in `training_coverage`: "finetune" (a fine-tune of a pretrained
    backbone), "scratch_15" (a scratch run of LONG_SCRATCH_EPOCHS or more) or None."""
    if config.mode == "finetune" and pretrained:
        return "finetune"
    return "scratch_15" if config.mode == "scratch" and config.epochs >= LONG_SCRATCH_EPOCHS else None


def training_coverage(ok: list[ExperimentRecord]) -> dict[str, Any]:
    """What the successful runs teach about training a network, not only a head: per dataset the
    fine-tunes of a pretrained backbone (full, and partial with `freeze` > 0) and the scratch
    runs of 15 epochs or more (as configured; `scratch_15_run` counts those that also ran 15
    epochs before early stopping), the share of fine-tunes among all successful runs, and how
    many more fine-tunes bring it to TARGET_SHARE."""
    per: dict[str, dict[str, int]] = {}
    for r in ok:
        d = per.setdefault(r.dataset.name, {"finetune": 0, "partial": 0, "scratch_15": 0, "scratch_15_run": 0})
        kind = coverage_kind(r.config, r.pretrained)
        if kind == "finetune":
            d["finetune"] += 1
            d["partial"] += r.config.freeze > 0
        elif kind == "scratch_15":
            d["scratch_15"] += 1
            d["scratch_15_run"] += r.outcome.epochs_run >= LONG_SCRATCH_EPOCHS
    finetunes = sum(d["finetune"] for d in per.values())
    return {
        "finetune_share": round(finetunes / len(ok), 4) if ok else 0.0,
        "finetunes": finetunes,
        "finetunes_to_target": finetunes_to_share(finetunes, len(ok)),
        "per_dataset": dict(sorted(per.items())),
    }


# In a knowledge base seeded by `open_default`: the seed it has taken records from (a digest of
# the seed files and their record ids), so a later version's new seed runs reach it once.
SEED_STAMP = "seed.json"


def _seed_digest(seed: Path) -> str:
    h = hashlib.sha256()
    for path in seed_files(seed):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _stamp(root: Path) -> dict[str, Any]:
    try:
        stamp = json.loads((root / SEED_STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _top_up(root: Path, seed: Path, digest: str, stamp: dict[str, Any], lock_timeout: float) -> None:
    """Append the seed records that are new since the seed `root` last took records from.

    A record the knowledge base took before and the user removed since stays removed. A knowledge
    base from before stamps (no SEED_STAMP) that holds every run of the seed's first file (which
    later seeds only append to: every seeded knowledge base has it whole) takes every seed record
    it lacks; any other (an empty file, the user's runs, a handful of seed runs imported) was never
    seeded and stays so.
    Appends go to the JSONL only; the index catches up on the next search. A damaged seed is a
    warning here, not an error: the user's own knowledge base still opens.
    """
    try:
        records = read_seed(seed)
    except KnowledgeBaseError as exc:
        log.warning("the packaged seed could not be read, so its new runs were not added: %s", exc)
        return
    kb = KnowledgeBase(root, index=False, chroma_url="", lock_timeout=lock_timeout)
    try:
        if stamp:
            seen = set(stamp.get("ids") or ())
            seeded = True
        else:
            held = {r.id for r in kb.records()}
            seeded = {r.id for r, _ in read_lines(seed_files(seed)[0])} <= held
            seen = set() if seeded else {r.id for r in records}
        added = kb.append([r for r in records if r.id not in seen])
    except KnowledgeBaseError as exc:  # a damaged records file: the commands that repair it must still open it
        log.warning("the seed's new runs were not added to %s (tried again next time): %s", root, exc)
        return
    if added:
        log.info("added %d runs that are new in the packaged seed to %s", added, root)
    _write_stamp(root, digest, [r.id for r in records], seeded)


def _write_stamp(root: Path, digest: str, ids: list[str], seeded: bool) -> None:
    atomic_write(root / SEED_STAMP, json.dumps({"digest": digest, "seeded": seeded, "ids": ids}).encode())


def open_default(root: str | Path | None = None, seed_dir: str | Path | None = None,
                 **kwargs: Any) -> KnowledgeBase:
    """The user's knowledge base, seeded from the packaged records on first use and topped up
    with the runs a newer seed adds.

    Location: `root`, else $METALLMIX_KB, else ~/.metallmix/kb. A new knowledge base gets
    every seed record once (`read_seed`: the plain file and the gzip shards), written whole:
    a crash leaves no records file or the full one, and a knowledge base another process
    created meanwhile is kept. An existing one takes the seed records that are new since it
    last took records from the seed (`SEED_STAMP`; see `_top_up`), appended like any run.

    Args:
        root: the knowledge base's folder.
        seed_dir: the seed folder; None means the packaged one (knowledge/seed).
        **kwargs: passed to `KnowledgeBase`.
    """
    root = Path(root or os.environ.get("METALLMIX_KB") or Path.home() / ".metallmix" / "kb")
    seed = Path(seed_dir) if seed_dir is not None else SEED_DIR
    kb = KnowledgeBase(root, **kwargs)
    if root.resolve() == seed.resolve() or not seed_files(seed):
        return kb
    digest = _seed_digest(seed)
    if kb.path.exists():
        if (stamp := _stamp(root)).get("digest") != digest and stamp.get("seeded") is not False:
            _top_up(root, seed, digest, stamp, kb.lock_timeout)
        return kb
    seeded = seed_lines(seed)
    lines = [raw for _, raw in seeded]  # as stored: a plain seed alone is copied byte for byte
    root.mkdir(parents=True, exist_ok=True)
    tmp = write_temporary(kb.path, b"".join(raw + b"\n" for raw in lines))
    try:
        os.link(tmp, kb.path)  # unlike a rename, never replaces a file another process made meanwhile
    except FileExistsError:
        pass
    except OSError:  # a filesystem without hard links: a rename, unless one appeared meanwhile
        if not kb.path.exists():
            os.replace(tmp, kb.path)
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(root, digest, [r.id for r, _ in seeded], True)
    return kb


__all__ = ["COLLECTION", "INDEX_DIR", "RECORDS_FILE", "SEED_DIR", "SEED_SHARD_GLOB", "SEED_SHARD_RECORDS", "SEED_STAMP",
           "KnowledgeBase", "KnowledgeBaseError", "SearchVectors", "atomic_write", "chroma_server", "flatten",
           "open_default", "read_records", "read_seed", "seed_files", "server_collection", "training_coverage",
           "TARGETS", "TARGET_SHARE", "coverage_kind", "finetunes_to_share",
           "unflatten", "write_seed_shards"]
