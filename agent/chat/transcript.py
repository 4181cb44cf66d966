"""The transcript store: what a thread said that its graph state has no place for.

Follow-up questions and their answers, notes (help, refusals) and finished tuning sessions,
kept per thread in a SQLite table beside the checkpoints, each anchored to the checkpoint
that was current when it was said, so the rendered conversation puts it back in its place.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


class Transcript:
    """Follow-up questions and answers per thread, in SQLite beside the checkpoints.

    Args:
        path: the SQLite file (the checkpointer's file is fine: this uses its own table);
            None keeps them in memory.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._conn = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS ui_followups (seq INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, "
                "anchor TEXT, question TEXT NOT NULL, answer TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._conn.execute("CREATE INDEX IF NOT EXISTS ui_followups_thread ON ui_followups (thread_id, seq)")

    def add(self, thread_id: str, anchor: str | None, question: str, answer: dict[str, Any]) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO ui_followups (thread_id, anchor, question, answer, created) VALUES (?, ?, ?, ?, ?)",
                (thread_id, anchor, question, json.dumps(answer, default=str), time.time()),
            )

    def entries(self, thread_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT anchor, question, answer FROM ui_followups WHERE thread_id = ? ORDER BY seq", (thread_id,)
            ).fetchall()
        return [{"anchor": a, "question": q, "answer": json.loads(ans)} for a, q, ans in rows]

    def close(self) -> None:
        self._conn.close()


__all__ = ["Transcript"]
