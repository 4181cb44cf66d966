"""How experiment records lie in files: JSONL lines (the truth), gzip shards, CSV rows.

A JSONL line is the unit of durability. A writer appends with one `write` under an exclusive
file lock (`locked`) and fsyncs, so a crash leaves either the whole line or a torn tail; the
reader drops a torn tail and the next writer trims it (`trim_torn_tail`). A file that replaces
another is written beside it and renamed (`atomic_write`), so a reader sees the old file or the
new one. `KnowledgeBaseError` lives here, the lowest layer, so every other part of the knowledge
base raises the same error: the seed shards (knowledge.seed_shards), the Chroma index
(knowledge.chroma_index) and the knowledge base itself (knowledge.store).
"""

from __future__ import annotations

import fcntl
import gzip
import json
import logging
import os
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from knowledge.schema import ExperimentRecord
from knowledge.space import RANGES

log = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"


class KnowledgeBaseError(RuntimeError):
    """The knowledge base cannot be read or written; the message says how to recover."""


@contextmanager
def locked(path: Path) -> Iterator[int]:
    """An exclusive advisory lock on `path` (created if missing) for writers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def trim_torn_tail(fd: int) -> None:
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
    return [record for record, _ in read_lines(path)]


def read_lines(path: Path) -> list[tuple[ExperimentRecord, bytes]]:
    """`read_records`, each record with its line as stored (a copy keeps the file's bytes)."""
    if not path.exists():
        return []
    if path.suffix == ".gz":
        return parse_lines(path, _gunzip(path), torn_tail_ok=False)
    return parse_lines(path, path.read_bytes(), torn_tail_ok=True)


def _gunzip(path: Path) -> bytes:
    """The decompressed bytes of a gzip shard, or a KnowledgeBaseError naming it."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut stream is an EOFError
        raise KnowledgeBaseError(
            f"the seed shard {path} is truncated, corrupt or unreadable ({type(exc).__name__}: {exc}). Restore it "
            "from git (`git checkout -- <file>`) or rewrite the shards with knowledge.seed_shards.write_seed_shards."
        ) from exc


def parse_lines(path: Path, data: bytes, torn_tail_ok: bool, first_line: int = 1) -> list[tuple[ExperimentRecord, bytes]]:
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


def write_temporary(path: Path, data: bytes) -> Path:
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
    tmp = write_temporary(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


__all__ = ["RECORDS_FILE", "KnowledgeBaseError", "atomic_write", "flatten", "locked", "parse_lines", "read_lines",
           "read_records", "trim_torn_tail", "unflatten", "write_temporary"]
