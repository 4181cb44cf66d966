"""The knowledge base: an append-only JSONL file (the truth) and a Chroma index (derived).

Why this shape: a JSONL line is the unit of durability. A record is appended with one
`write` under an exclusive file lock and fsynced, so a crash leaves either the whole line
or a torn tail, and the reader drops (and the next writer trims) a torn tail. The Chroma
index is rebuilt or re-synced from the JSONL at any time, keyed by record id, so it can
never hold an orphan for long nor lose a record for good.

The index lives in `root/chroma` (an embedded Chroma), or on a Chroma server when
$METALLMIX_CHROMA (or `chroma_url`) is `http://host:port`: many people then query one index
while each knowledge base keeps its JSONL. On a server each knowledge base has its own
collection, `experiments-<12 hex of the sha256 of its resolved folder>` unless
$METALLMIX_CHROMA_COLLECTION names one, so two knowledge bases never share one by accident.
"""

from __future__ import annotations

import csv
import fcntl
import gzip
import hashlib
import io
import json
import logging
import os
import sqlite3
import sys
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from knowledge.schema import ExperimentRecord
from knowledge.space import RANGES

log = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"
INDEX_DIR = "chroma"
COLLECTION = "experiments"
SEED_DIR = Path(__file__).parent / "seed"
# The packaged seed is committed as gzip JSONL shards (a plain records file beside them, if any,
# is read first), in sorted name order: `write_seed_shards` names them so that order is theirs.
# knowledge.seed_merge adds a sweep's runs to them.
SEED_SHARD_GLOB = "records-*.jsonl.gz"
SEED_SHARD_RECORDS = 1000


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
    """Every valid record in a JSONL file, or in a gzip JSONL shard when `path` ends in .gz.

    In a plain file a torn last line (a crashed writer's) is skipped; other bad lines raise.
    A shard is written whole and never appended to, so every line of it must be a record,
    and a truncated or corrupt shard raises instead of loading part of it.
    """
    return [record for record, _ in _read_lines(path)]


def _read_lines(path: Path) -> list[tuple[ExperimentRecord, bytes]]:
    """`read_records`, each record with its line as stored (a copy keeps the file's bytes)."""
    if not path.exists():
        return []
    if path.suffix == ".gz":
        return _parse(path, _gunzip(path), torn_tail_ok=False)
    return _parse(path, path.read_bytes(), torn_tail_ok=True)


def _gunzip(path: Path) -> bytes:
    """The decompressed bytes of a gzip shard, or a KnowledgeBaseError naming it."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut stream is an EOFError
        raise KnowledgeBaseError(
            f"the seed shard {path} is truncated, corrupt or unreadable ({type(exc).__name__}: {exc}). Restore it "
            "from git (`git checkout -- <file>`) or rewrite the shards with knowledge.store.write_seed_shards."
        ) from exc


def _parse(path: Path, data: bytes, torn_tail_ok: bool, first_line: int = 1) -> list[tuple[ExperimentRecord, bytes]]:
    """The records of `data`, read from `path` where its first line is line `first_line`."""
    records: list[tuple[ExperimentRecord, bytes]] = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=first_line):
        if not raw.strip():
            continue
        try:
            records.append((ExperimentRecord.model_validate_json(raw), raw))
        except ValidationError as exc:
            if torn_tail_ok and number == first_line + len(lines) - 1:  # torn tail of a crashed writer: not a record yet
                log.warning("ignoring a torn last line in %s", path)
                continue
            raise KnowledgeBaseError(
                f"{path}:{number} is not a valid experiment record ({exc.error_count()} errors, first: "
                f"{exc.errors()[0]['msg']}). Fix or remove that line; the JSONL is the source of truth."
            ) from exc
    return records


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
    return [record for record, _ in _seed_lines(folder)]


def _seed_lines(folder: str | Path | None) -> list[tuple[ExperimentRecord, bytes]]:
    """`read_seed`, each record with its stored line."""
    out: list[tuple[ExperimentRecord, bytes]] = []
    ids: set[str] = set()
    keys: set[str] = set()
    for path in seed_files(folder):
        for r, raw in _read_lines(path):
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
    return _write_shards(records, folder, max_records_per_shard)[0]


def _write_shards(records: Iterable[ExperimentRecord], folder: str | Path,
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


def _write_temporary(path: Path, data: bytes) -> Path:
    """`data` in a new, fsynced file beside `path`, named for this writer alone, to be renamed or linked."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` whole: a reader sees the old file or the new one."""
    tmp = _write_temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def chroma_server(url: str) -> tuple[str, int, bool]:
    """(host, port, ssl) of a Chroma server URL such as `http://127.0.0.1:8000`.

    Raises:
        KnowledgeBaseError: the URL is not http(s)://host[:port].
    """
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.path not in ("", "/"):
        raise KnowledgeBaseError(
            f"METALLMIX_CHROMA must be a Chroma server's URL, http(s)://host:port, but got {url!r}. Fix it, or "
            "unset it to keep the index in the knowledge base's folder."
        )
    return parts.hostname, port or (443 if parts.scheme == "https" else 8000), parts.scheme == "https"


def server_collection(root: str | Path) -> str:
    """The collection of the knowledge base in `root` on a Chroma server: $METALLMIX_CHROMA_COLLECTION,
    else `experiments-` and 12 hex digits of the sha256 of the folder's resolved path."""
    named = os.environ.get("METALLMIX_CHROMA_COLLECTION")
    if named:
        return named
    return f"{COLLECTION}-{hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]}"


_T = TypeVar("_T")


class SearchVectors(NamedTuple):
    """A search's hits (record, cosine distance; nearest first) with the embeddings of the query and of each hit."""

    hits: list[tuple[ExperimentRecord, float]]
    query: list[float]
    embeddings: list[Any]  # one vector (a numpy array, as Chroma returns it) per hit


class KnowledgeBase:
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
            known.update(r.id for r, _ in _parse(self.path, data, torn_tail_ok=False, first_line=lines + 1))
            lines += data.count(b"\n")
        return st.st_size, lines, known

    # ------------------------------------------------------------------- index
    def _embedding_function(self) -> Any:
        if self._embedder is None:
            from knowledge.embedding import default_embedder

            self._embedder = default_embedder()
        return self._embedder

    def _client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        if self._server is not None:
            host, port, ssl = self._server
            with self._on_server("connect to"):
                return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=Settings(anonymized_telemetry=False))
        return chromadb.PersistentClient(path=str(self.root / INDEX_DIR), settings=Settings(anonymized_telemetry=False))

    @contextmanager
    def _on_server(self, doing: str) -> Iterator[None]:
        """Turn a Chroma server's failure (down, unreachable, erroring) into a KnowledgeBaseError
        with the way out; a no-op for the embedded index, whose errors are handled where they arise."""
        if self._server is None:
            yield
            return
        try:
            yield
        except KnowledgeBaseError:
            raise
        except Exception as exc:  # httpx, chromadb and ValueError types for a server that is down or failing
            self._collection = None  # reopened on the next call, once the server is back
            self._indexed = None
            raise KnowledgeBaseError(
                f"cannot {doing} the Chroma server at {self.chroma_url} (collection {self.collection_name!r}): "
                f"{type(exc).__name__}: {exc}. Start the server (e.g. `chroma run --host {self._server[0]} --port "
                f"{self._server[1]} --path <folder>`), or unset METALLMIX_CHROMA to use the local index in "
                f"{self.root / INDEX_DIR}. The records are safe in {self.path}; `metallmix kb rebuild` refills the index."
            ) from exc

    def collection(self) -> Any:
        """The Chroma collection, opened once; a broken index folder or a server that is down gives a clear error."""
        if self._collection is None:
            self._indexed = None
            if self._server is not None:
                with self._on_server("open the index on"):
                    self._collection = self._client().get_or_create_collection(
                        self.collection_name, embedding_function=self._embedding_function(),
                        metadata={"hnsw:space": "cosine"},
                    )
                return self._collection
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
        """Embed and add `records`; a first build (about a minute for the seed on 2 cores) shows a
        progress bar on a terminal's stderr, nothing where output is captured."""
        from tqdm import tqdm

        col = self.collection()
        quiet = len(records) <= batch or not sys.stderr.isatty()
        with self._on_server("write the index to"), tqdm(
                total=len(records), desc="indexing the knowledge base", unit="record", disable=quiet, leave=False) as bar:
            for start in range(0, len(records), batch):
                part = records[start : start + batch]
                col.upsert(ids=[r.id for r in part], documents=[r.describe() for r in part],
                           metadatas=[_meta(r) for r in part])
                bar.update(len(part))

    def sync_index(self) -> dict[str, int]:
        """Make the index hold exactly the JSONL's records: add missing ids, drop orphans."""
        col = self.collection()
        wanted = {r.id: r for r in self.records()}
        with self._on_server("read the index from"):
            have = set(col.get(include=[])["ids"])
        missing = [wanted[i] for i in wanted.keys() - have]
        orphans = sorted(have - wanted.keys())
        if missing:
            self._index(missing)
        if orphans:
            with self._on_server("write the index to"):
                col.delete(ids=orphans)
        return {"added": len(missing), "removed": len(orphans), "total": len(wanted)}

    def rebuild_index(self) -> int:
        """Drop the index and rebuild it from the JSONL. Returns the records indexed.

        A readable index is emptied through Chroma; an unreadable one (corrupt, or from
        another Chroma version) is deleted from disk first. On a server only this knowledge
        base's collection is dropped.
        """
        import shutil

        from chromadb.api.client import SharedSystemClient

        self._collection = None
        self._indexed = None
        if self._server is not None:
            client = self._client()
            try:
                client.delete_collection(self.collection_name)
            except Exception as exc:  # not found is fine; a server that is down is said as such
                if "does not exist" not in str(exc):
                    with self._on_server("drop the index on"):
                        raise
            self._index(self.records())
            return len(self.records())
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
        On a server, a collection another process rebuilt meanwhile (a new id) is reopened once.
        """
        return self._retrying(lambda: self._search(text, k, where)[0])

    def search_vectors(self, text: str, k: int = 10, ids: list[str] | None = None,
                       vector: list[float] | None = None) -> SearchVectors:
        """Like `search`, with the embeddings: of the query and of each hit (for diversity, e.g. MMR).

        Args:
            text: the query.
            k: how many of the nearest records.
            ids: only among these record ids (e.g. to learn one record's distance to the query).
            vector: the query's embedding when already known (a second search for the same text).
        """
        def run() -> SearchVectors:
            query = vector if vector is not None else [float(x) for x in self._embedding_function()([text])[0]]
            hits, res = self._search(text, k, None, ids=ids, query=query, include=["distances", "embeddings"])
            by_id = {i: e for i, e in zip(res["ids"][0], res["embeddings"][0], strict=True)} if hits else {}
            return SearchVectors(hits, query, [by_id[r.id] for r, _ in hits])

        return self._retrying(run)

    def _retrying(self, search: Callable[[], _T]) -> _T:
        try:
            return search()
        except KnowledgeBaseError as exc:
            from chromadb.errors import NotFoundError

            if not isinstance(exc.__cause__, NotFoundError):
                raise
            return search()  # _on_server dropped the stale collection: reopen it

    def _search(self, text: str, k: int, where: dict[str, Any] | None, *, ids: list[str] | None = None,
                query: list[float] | None = None, include: list[str] | None = None,
                ) -> tuple[list[tuple[ExperimentRecord, float]], Any]:
        col = self.collection()
        stamp, records = self._read()
        if stamp is None or stamp != self._indexed:
            with self._on_server("read the index from"):
                stale = col.count() != len(records)
            if stale:
                self.sync_index()
            self._indexed = stamp
        if not records or ids == []:
            return [], None
        asked: dict[str, Any] = {"query_embeddings": [query]} if query is not None else {"query_texts": [text]}
        with self._on_server("query the index on"):
            res = col.query(**asked, n_results=min(k, len(records)), where=where or None, ids=ids,
                            include=include or ["distances"])
        by_id = self._by_id()
        return [(by_id[i], float(d)) for i, d in zip(res["ids"][0], res["distances"][0], strict=True) if i in by_id], res

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


def training_coverage(ok: list[ExperimentRecord]) -> dict[str, Any]:
    """What the successful runs teach about training a network, not only a head: per dataset the
    fine-tunes of a pretrained backbone (full, and partial with `freeze` > 0) and the scratch
    runs of 15 epochs or more (as configured; `scratch_15_run` counts those that also ran 15
    epochs before early stopping), and the share of fine-tunes among all successful runs."""
    per: dict[str, dict[str, int]] = {}
    for r in ok:
        d = per.setdefault(r.dataset.name, {"finetune": 0, "partial": 0, "scratch_15": 0, "scratch_15_run": 0})
        if r.config.mode == "finetune" and r.pretrained:
            d["finetune"] += 1
            d["partial"] += r.config.freeze > 0
        elif r.config.mode == "scratch" and r.config.epochs >= 15:
            d["scratch_15"] += 1
            d["scratch_15_run"] += r.outcome.epochs_run >= 15
    finetunes = sum(d["finetune"] for d in per.values())
    return {
        "finetune_share": round(finetunes / len(ok), 4) if ok else 0.0,
        "finetunes": finetunes,
        "per_dataset": dict(sorted(per.items())),
    }


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


def open_default(root: str | Path | None = None, seed_dir: str | Path | None = None,
                 **kwargs: Any) -> KnowledgeBase:
    """The user's knowledge base, seeded from the packaged records on first use.

    Location: `root`, else $METALLMIX_KB, else ~/.metallmix/kb. A new knowledge base gets
    every seed record once (`read_seed`: the plain file and the gzip shards), written whole:
    a crash leaves no records file or the full one, and a knowledge base another process
    created meanwhile is kept.

    Args:
        root: the knowledge base's folder.
        seed_dir: the seed folder; None means the packaged one (knowledge/seed).
        **kwargs: passed to `KnowledgeBase`.
    """
    root = Path(root or os.environ.get("METALLMIX_KB") or Path.home() / ".metallmix" / "kb")
    seed = Path(seed_dir) if seed_dir is not None else SEED_DIR
    kb = KnowledgeBase(root, **kwargs)
    if not kb.path.exists() and root.resolve() != seed.resolve() and seed_files(seed):
        lines = [raw for _, raw in _seed_lines(seed)]  # as stored: a plain seed alone is copied byte for byte
        root.mkdir(parents=True, exist_ok=True)
        tmp = _write_temporary(kb.path, b"".join(raw + b"\n" for raw in lines))
        try:
            os.link(tmp, kb.path)  # unlike a rename, never replaces a file another process made meanwhile
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links: a rename, unless one appeared meanwhile
            if not kb.path.exists():
                os.replace(tmp, kb.path)
        finally:
            tmp.unlink(missing_ok=True)
    return kb


__all__ = ["KnowledgeBase", "KnowledgeBaseError", "SearchVectors", "atomic_write", "chroma_server", "server_collection", "open_default", "read_records", "read_seed", "seed_files",
           "write_seed_shards", "flatten", "unflatten"]
