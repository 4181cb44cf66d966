"""The transcript store: what a thread said that its graph state has no place for.

Follow-up questions and their answers, notes (help, refusals) and finished tuning sessions,
kept per thread in a table beside the checkpoints, each anchored to the checkpoint that was
current when it was said, so the rendered conversation puts it back in its place.

Where the threads live is one setting (`--db` / METALLMIX_DB): a SQLite file (the default),
or a `postgresql://` URL, where the LangGraph checkpoints go to Postgres
(langgraph-checkpoint-postgres, the `postgres` extra) and this table follows them, so a
thread and its follow-ups are never split between two stores.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_S = 5


class ThreadStoreError(RuntimeError):
    """The conversations' database cannot be opened; the message says why and the way out."""


def is_postgres_url(db: str | Path | None) -> bool:
    """Whether `db` names a Postgres database (`postgresql://...` or `postgres://...`) rather than a SQLite file."""
    return isinstance(db, str) and db.strip().lower().startswith(POSTGRES_SCHEMES)


def redact(url: str) -> str:
    """`url` with its password replaced by ***, for messages and logs."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def postgres_pool(url: str) -> Any:
    """An open psycopg connection pool on `url`, after one direct connection that proves the server answers.

    A pool (not one connection) so that a Postgres restart costs the app one failed request,
    not every later one: each connection is checked before it is handed out.

    Raises:
        ThreadStoreError: the psycopg driver is missing, or the server does not answer or refuses
            the URL (down, wrong port, wrong database, user or password).
    """
    try:
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool
    except ImportError as exc:
        raise ThreadStoreError(
            f"METALLMIX_DB is a Postgres URL ({redact(url)}), but the Postgres driver is not installed ({exc}). "
            "Install the extra (`pip install -e '.[postgres]'`), or unset METALLMIX_DB to keep the conversations in SQLite."
        ) from exc
    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ThreadStoreError(
            f"cannot open the conversations' Postgres database {redact(url)} (--db / METALLMIX_DB): {reason}. "
            "Start PostgreSQL or fix the URL (host, port, database, user, password), or unset METALLMIX_DB to keep "
            "the conversations in SQLite (~/.metallmix/threads.sqlite). Nothing was written."
        ) from exc
    pool = ConnectionPool(
        url, min_size=1, max_size=4, open=False, check=ConnectionPool.check_connection,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT_S},
    )
    pool.open(wait=True, timeout=2 * CONNECT_TIMEOUT_S)
    return pool


def open_checkpointer(db: str | Path) -> tuple[Any, Any]:
    """The LangGraph checkpointer of the conversations in `db`, set up, and the connection (or pool) it uses.

    Args:
        db: a SQLite file (its folder is created), or a `postgresql://` URL.

    Raises:
        ThreadStoreError: a Postgres URL whose server cannot be reached (nothing is created then).
    """
    if is_postgres_url(db):
        from langgraph.checkpoint.postgres import PostgresSaver

        pool = postgres_pool(str(db))
        saver = PostgresSaver(pool)
        saver.setup()  # idempotent migrations, each recorded once applied
        return saver, pool
    from langgraph.checkpoint.sqlite import SqliteSaver

    Path(db).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db), check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    return saver, conn


class Transcript:
    """Follow-up questions and answers per thread, beside the checkpoints.

    Args:
        path: the SQLite file (the checkpointer's file is fine: this uses its own table), or
            the checkpointer's `postgresql://` URL (its own table there); None keeps them in memory.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._pool: Any | None = None
        if is_postgres_url(path):
            self._pool = postgres_pool(str(path))
            self._execute(
                "CREATE TABLE IF NOT EXISTS ui_followups (seq BIGSERIAL PRIMARY KEY, thread_id TEXT NOT NULL, "
                "anchor TEXT, question TEXT NOT NULL, answer TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)"
            )
            self._execute("CREATE INDEX IF NOT EXISTS ui_followups_thread ON ui_followups (thread_id, seq)")
            return
        self._conn = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        with self._lock, self._conn:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS ui_followups (seq INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, "
                "anchor TEXT, question TEXT NOT NULL, answer TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._conn.execute("CREATE INDEX IF NOT EXISTS ui_followups_thread ON ui_followups (thread_id, seq)")

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (written with ? placeholders) and return its rows, on either database."""
        if self._pool is not None:
            from psycopg.rows import tuple_row

            with self._pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
                cur.execute(sql.replace("?", "%s"), params)
                return list(cur.fetchall()) if cur.description else []
        with self._lock, self._conn:
            return self._conn.execute(sql, params).fetchall()

    def add(self, thread_id: str, anchor: str | None, question: str, answer: dict[str, Any]) -> None:
        self._execute(
            "INSERT INTO ui_followups (thread_id, anchor, question, answer, created) VALUES (?, ?, ?, ?, ?)",
            (thread_id, anchor, question, json.dumps(answer, default=str), time.time()),
        )

    def entries(self, thread_id: str) -> list[dict[str, Any]]:
        rows = self._execute("SELECT anchor, question, answer, created FROM ui_followups WHERE thread_id = ? "
                             "ORDER BY seq", (thread_id,))
        return [{"anchor": a, "question": q, "answer": json.loads(ans), "created": float(c)} for a, q, ans, c in rows]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        else:
            self._conn.close()


__all__ = ["ThreadStoreError", "Transcript", "is_postgres_url", "open_checkpointer", "postgres_pool", "redact"]
