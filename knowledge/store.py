"""The knowledge base: an append-only JSONL file (the truth) and a Chroma index (derived).

Why this shape: a JSONL line is the unit of durability. A record is appended with one
`write` under an exclusive file lock and fsynced, so a crash leaves either the whole line
or a torn tail, and the reader drops (and the next writer trims) a torn tail. The Chroma
index is rebuilt or re-synced from the JSONL at any time, keyed by record id, so it can
never hold an orphan for long nor lose a record for good.
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from knowledge.schema import ExperimentRecord
from knowledge.space import RANGES

log = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"
INDEX_DIR = "chroma"
COLLECTION = "experiments"
SEED_DIR = Path(__file__).parent / "seed"


class KnowledgeBaseError(RuntimeError):
    """The knowledge base cannot be read or written; the message says how to recover."""


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    """An exclusive advisory lock on `path` (created if missing) for writers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _trim_torn_tail(fd: int) -> None:
    """Cut a partial last line (left by a crash mid-write) so the next append starts clean."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        return
    # Walk back to the last newline; everything after it is a torn record.
    chunk, end = 65536, size
    while end > 0:
        start = max(0, end - chunk)
        os.lseek(fd, start, os.SEEK_SET)
        data = os.read(fd, end - start)
        nl = data.rfind(b"\n")
        if nl >= 0:
            os.ftruncate(fd, start + nl + 1)
            log.warning("dropped a torn record at the end of the knowledge base (%d bytes)", size - start - nl - 1)
            return
        end = start
    os.ftruncate(fd, 0)


def read_records(path: Path) -> list[ExperimentRecord]:
    """Every valid record in a JSONL file; a torn last line is skipped, other bad lines raise."""
    if not path.exists():
        return []
    records: list[ExperimentRecord] = []
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            records.append(ExperimentRecord.model_validate_json(raw))
        except ValidationError as exc:
            if number == len(lines):  # torn tail of a crashed writer: not a record yet
                log.warning("ignoring a torn last line in %s", path)
                continue
            raise KnowledgeBaseError(
                f"{path}:{number} is not a valid experiment record ({exc.error_count()} errors, first: "
                f"{exc.errors()[0]['msg']}). Fix or remove that line; the JSONL is the source of truth."
            ) from exc
    return records


def _check_unlocked(db: Path, timeout: float) -> None:
    """Raise KnowledgeBaseError when another process holds the index database's lock.

    Chroma waits for such a lock without end (a second app or a stuck sweep on the same
    folder would hang every request); a write lock taken and released here says it in
    `timeout` seconds. A damaged file is left to Chroma, whose error names the rebuild.
    """
    if not db.is_file():
        return
    try:
        conn = sqlite3.connect(str(db), timeout=timeout, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise KnowledgeBaseError(
                f"the Chroma index {db} is locked by another process (another MetaLLMiX app, sweep or "
                f"`metallmix kb` command on {db.parent.parent}?). Stop it and retry, or use another folder "
                "(--kb-dir / METALLMIX_KB)."
            ) from exc
    except sqlite3.DatabaseError:
        pass


class KnowledgeBase:
    """Records in `root/records.jsonl`, indexed in a Chroma collection in `root/chroma`.

    Args:
        root: folder of this knowledge base (created if missing).
        embedder: a Chroma embedding function; None means knowledge.embedding's default.
        index: False to work with the JSONL alone (no Chroma), e.g. in a sweep worker.
        lock_timeout: seconds to wait for an index locked by another process before saying so.
    """

    def __init__(self, root: str | Path, embedder: Any | None = None, index: bool = True,
                 lock_timeout: float = 5.0) -> None:
        self.root = Path(root)
        self.path = self.root / RECORDS_FILE
        self._embedder = embedder
        self._use_index = index
        self.lock_timeout = lock_timeout
        self._collection: Any | None = None
        self._cache: tuple[tuple[int, int], list[ExperimentRecord]] | None = None
        self._ids: tuple[list[ExperimentRecord], dict[str, ExperimentRecord]] | None = None
        # The records file's (size, mtime) when the index was last seen to hold its records: a
        # search re-checks the index only when the file changed (Chroma's count() is a SQL count,
        # ~3-8 ms at 100k records, and the old search made three of them per query).
        self._indexed: tuple[int, int] | None = None

    # ----------------------------------------------------------------- records
    def _read(self) -> tuple[tuple[int, int] | None, list[ExperimentRecord]]:
        """The records file's (size, mtime in ns), None when it is missing, and its records."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None, []
        stamp = (st.st_size, st.st_mtime_ns)
        if self._cache is None or self._cache[0] != stamp:
            self._cache = (stamp, read_records(self.path))
            self._ids = None
        return stamp, self._cache[1]

    def records(self) -> list[ExperimentRecord]:
        """All records, cached until the file changes (one stat() per call when it has not)."""
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
        return {r.run_key for r in self.records()}

    def append(self, records: ExperimentRecord | Iterable[ExperimentRecord]) -> int:
        """Durably append records (skipping ids already present), then index them.

        Returns the number of records written.
        """
        batch = [records] if isinstance(records, ExperimentRecord) else list(records)
        if not batch:
            return 0
        with _locked(self.path) as fd:
            _trim_torn_tail(fd)
            known = {r.id for r in read_records(self.path)}
            fresh = [r for r in batch if r.id not in known]
            if fresh:
                payload = "".join(r.model_dump_json() + "\n" for r in fresh).encode()
                os.lseek(fd, 0, os.SEEK_END)
                os.write(fd, payload)
                os.fsync(fd)
        if fresh and self._use_index:
            try:
                self._index(fresh)
            except KnowledgeBaseError as exc:  # the JSONL holds them: the index catches up on the next search
                log.warning("appended %d records, but could not index them now: %s", len(fresh), exc)
        return len(fresh)

    # ------------------------------------------------------------------- index
    def _embedding_function(self) -> Any:
        if self._embedder is None:
            from knowledge.embedding import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def _client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        return chromadb.PersistentClient(path=str(self.root / INDEX_DIR), settings=Settings(anonymized_telemetry=False))

    def collection(self) -> Any:
        """The Chroma collection, opened once; a broken index folder gives a clear error."""
        if self._collection is None:
            self._indexed = None
            _check_unlocked(self.root / INDEX_DIR / "chroma.sqlite3", self.lock_timeout)
            try:
                self._collection = self._client().get_or_create_collection(
                    COLLECTION, embedding_function=self._embedding_function(), metadata={"hnsw:space": "cosine"}
                )
            except Exception as exc:  # chromadb raises many types for a damaged folder
                raise KnowledgeBaseError(
                    f"cannot open the Chroma index in {self.root / INDEX_DIR}: {exc}. The index is derived "
                    f"data: run `metallmix kb rebuild --kb-dir {self.root}` to rebuild it from {self.path}."
                ) from exc
        return self._collection

    def _index(self, records: list[ExperimentRecord], batch: int = 256) -> None:
        col = self.collection()
        for start in range(0, len(records), batch):
            part = records[start : start + batch]
            col.upsert(ids=[r.id for r in part], documents=[r.describe() for r in part], metadatas=[_meta(r) for r in part])

    def sync_index(self) -> dict[str, int]:
        """Make the index hold exactly the JSONL's records: add missing ids, drop orphans."""
        col = self.collection()
        wanted = {r.id: r for r in self.records()}
        have = set(col.get(include=[])["ids"])
        missing = [wanted[i] for i in wanted.keys() - have]
        orphans = sorted(have - wanted.keys())
        if missing:
            self._index(missing)
        if orphans:
            col.delete(ids=orphans)
        return {"added": len(missing), "removed": len(orphans), "total": len(wanted)}

    def rebuild_index(self) -> int:
        """Drop the index and rebuild it from the JSONL. Returns the records indexed.

        A readable index is emptied through Chroma; an unreadable one (corrupt, or from
        another Chroma version) is deleted from disk first.
        """
        import shutil

        from chromadb.api.client import SharedSystemClient

        self._collection = None
        self._indexed = None
        _check_unlocked(self.root / INDEX_DIR / "chroma.sqlite3", self.lock_timeout)
        try:
            self._client().delete_collection(COLLECTION)
        except Exception as exc:  # not found is fine; anything else means a damaged folder
            if "does not exist" not in str(exc):
                SharedSystemClient.clear_system_cache()  # Chroma caches one client per path
                shutil.rmtree(self.root / INDEX_DIR, ignore_errors=True)
        self._index(self.records())
        return len(self.records())

    def search(self, text: str, k: int = 10, where: dict[str, Any] | None = None) -> list[tuple[ExperimentRecord, float]]:
        """The k records whose description is nearest to `text`, with cosine distances.

        The index is checked against the JSONL (and synced when their counts differ) only when
        the file changed since the last check, e.g. another process appended without indexing.
        """
        col = self.collection()
        stamp, records = self._read()
        if stamp is None or stamp != self._indexed:
            if col.count() != len(records):
                self.sync_index()
            self._indexed = stamp
        if not records:
            return []
        res = col.query(query_texts=[text], n_results=min(k, len(records)), where=where or None, include=["distances"])
        by_id = self._by_id()
        return [(by_id[i], float(d)) for i, d in zip(res["ids"][0], res["distances"][0], strict=True) if i in by_id]

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
            recs = read_records(path)
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


def _meta(r: ExperimentRecord) -> dict[str, Any]:
    """Scalar metadata for Chroma's `where` filters (None is not allowed there)."""
    o = r.outcome
    return {
        "dataset": r.dataset.name,
        "modality": r.dataset.meta.modality,
        "backbone": r.config.backbone,
        "mode": r.config.mode,
        "status": o.status,
        "source": r.provenance.source,
        "val_accuracy": o.val_accuracy if o.val_accuracy is not None else -1.0,
        "test_accuracy": o.test_accuracy if o.test_accuracy is not None else -1.0,
        "seconds": o.total_seconds,
    }


def flatten(record: ExperimentRecord) -> dict[str, Any]:
    """One CSV row: nested fields joined with '.', lists and dicts as JSON text."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and prefix.count(".") < 2 and not prefix.endswith("split_sizes"):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, (list, dict)):
            out[prefix] = json.dumps(value)
        else:
            out[prefix] = "" if value is None else value

    walk("", record.model_dump(mode="json"))
    return out


def unflatten(row: dict[str, str]) -> dict[str, Any]:
    """Inverse of `flatten` for a CSV row (types are restored by validation)."""
    out: dict[str, Any] = {}
    for key, raw in row.items():
        value: Any = raw
        if raw == "":
            value = None
        elif raw[:1] in "[{":
            value = json.loads(raw)
        elif key.startswith("config.") and key.split(".")[-1] in RANGES:
            value = float(raw) if not RANGES[key.split(".")[-1]].integer else int(float(raw))
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def open_default(root: str | Path | None = None, **kwargs: Any) -> KnowledgeBase:
    """The user's knowledge base, seeded from the packaged records on first use.

    Location: `root`, else $METALLMIX_KB, else ~/.metallmix/kb.
    """
    root = Path(root or os.environ.get("METALLMIX_KB") or Path.home() / ".metallmix" / "kb")
    kb = KnowledgeBase(root, **kwargs)
    seed = SEED_DIR / RECORDS_FILE
    if not kb.path.exists() and seed.exists() and root.resolve() != SEED_DIR.resolve():
        root.mkdir(parents=True, exist_ok=True)
        tmp = kb.path.with_name(RECORDS_FILE + ".tmp")
        tmp.write_bytes(seed.read_bytes())
        tmp.replace(kb.path)
    return kb


__all__ = ["KnowledgeBase", "KnowledgeBaseError", "open_default", "read_records", "flatten", "unflatten"]
