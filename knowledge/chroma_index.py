"""The Chroma index of a knowledge base: derived from its JSONL, rebuilt or re-synced from it at any time.

The index is keyed by record id, so it can never hold an orphan for long nor lose a record for
good (`ChromaIndex.sync_index`, `rebuild_index`). It lives in `root/chroma` (an embedded Chroma),
or on a Chroma server when $METALLMIX_CHROMA (or `chroma_url`) is `http://host:port`: many people
then query one index while each knowledge base keeps its JSONL. On a server each knowledge base
has its own collection, `experiments-<12 hex of the sha256 of its resolved folder>` unless
$METALLMIX_CHROMA_COLLECTION names one, so two knowledge bases never share one by accident.

`ChromaIndex` is the index half of knowledge.store.KnowledgeBase (a mixin: the records half,
which owns the state and the JSONL, is there); chromadb is imported only when an index is used.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from knowledge.record_files import KnowledgeBaseError, locked, trim_torn_tail
from knowledge.schema import ExperimentRecord

INDEX_DIR = "chroma"
COLLECTION = "experiments"


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


class ChromaIndex:
    """The index half of a knowledge base: opening, filling, syncing, rebuilding and querying Chroma.

    A mixin for knowledge.store.KnowledgeBase, whose `__init__` sets the attributes below and
    whose `records`, `_read` and `_by_id` give the JSONL's records (the truth this indexes).
    """

    root: Path
    path: Path  # the records file
    lock_timeout: float
    chroma_url: str | None
    collection_name: str
    _embedder: Any | None
    _server: tuple[str, int, bool] | None  # (host, port, ssl) of a Chroma server; None: embedded
    _collection: Any | None
    _indexed: tuple[int, int] | None  # the records file's (size, mtime) when the index last held its records

    if TYPE_CHECKING:  # defined by KnowledgeBase
        def records(self) -> list[ExperimentRecord]: ...
        def _read(self) -> tuple[tuple[int, int] | None, list[ExperimentRecord]]: ...
        def _by_id(self) -> dict[str, ExperimentRecord]: ...

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
        """Make the index hold exactly the JSONL's records: add missing ids, drop orphans.

        A torn last line that a killed writer left is cut first, under the writer lock (so
        never a live append's): readers already skip it, and the file ends whole again.
        """
        self._trim_crashed_tail()
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

    def _trim_crashed_tail(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                whole = f.read(1) == b"\n"
        except OSError:  # missing or empty: nothing torn
            return
        if whole:
            return
        try:
            with locked(self.path) as fd:
                trim_torn_tail(fd)
        except PermissionError:  # a read-only knowledge base: readers skip the torn line anyway
            pass

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


__all__ = ["COLLECTION", "INDEX_DIR", "ChromaIndex", "SearchVectors", "chroma_server",
           "server_collection"]
