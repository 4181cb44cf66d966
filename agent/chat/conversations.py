"""The conversations of one browser: which threads it started, their titles and times.

A browser keeps the ids of the threads it started (gr.BrowserState, encrypted in its
localStorage), so a page lists only its own conversations: no other browser's thread ids are
ever sent to it. The titles and times come from where the threads live: a thread's first
request in the checkpointer (or its first follow-up in the transcript, for a thread that never
ran the graph), and the time of its latest change.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.chat.transcript import Transcript
from agent.chat.views import thread_config

KEPT = 50  # threads a browser lists, most recent first
EARLY_KEPT = 256  # pages whose first message came before their load event, awaiting that load
TITLE_CHARS = 60
NEW_TITLE = "New conversation"


@dataclass(frozen=True)
class Conversation:
    """One row of the list.

    Attributes:
        thread_id: the browser's thread id.
        title: the thread's first message, shortened ("New conversation" while it has none).
        updated: when the thread last changed (seconds since the epoch), None while it holds nothing.
    """

    thread_id: str
    title: str
    updated: float | None

    @property
    def label(self) -> str:
        if self.updated is None:
            return self.title
        return f"{self.title} · {time.strftime('%d %b %H:%M', time.localtime(self.updated))}"


def remember(known: Sequence[str] | None, thread_id: str | None) -> list[str]:
    """The browser's thread ids with `thread_id` first (most recently used first), at most KEPT."""
    ids = [t for t in (known or []) if isinstance(t, str) and t]
    if thread_id:
        ids = [thread_id, *(t for t in ids if t != thread_id)]
    return ids[:KEPT]


class EarlyThreads:
    """Browser session -> the thread its first message started before the page's load event ran.

    The load takes its session's entry (`take`), a closed page's goes (`forget`), and at most
    `kept` are held, the oldest dropped first: a page whose load never came (closed mid-race,
    its unload lost) does not stay for the life of the server.
    """

    def __init__(self, kept: int = EARLY_KEPT) -> None:
        if kept < 1:
            raise ValueError(f"kept must be >= 1, but got {kept!r}.")
        self.kept = kept
        self._threads: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, session: str, thread_id: str) -> None:
        with self._lock:
            self._threads.pop(session, None)
            self._threads[session] = thread_id
            while len(self._threads) > self.kept:
                self._threads.popitem(last=False)

    def take(self, session: str) -> str | None:
        """The session's thread, removed: the load that shows it needs it once."""
        with self._lock:
            return self._threads.pop(session, None)

    def forget(self, session: str) -> None:
        with self._lock:
            self._threads.pop(session, None)

    def __len__(self) -> int:
        return len(self._threads)


def short_title(text: str) -> str:
    """The first line of a message, cut at a word within TITLE_CHARS characters."""
    line = " ".join(text.split())
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[:TITLE_CHARS + 1].rsplit(" ", 1)[0]  # a word ending at the limit stays
    return cut.rstrip(",;:.") + "…"


def _seconds(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp() if iso else None
    except ValueError:
        return None


class Conversations:
    """Titles and times of threads, read from the checkpointer and the transcript.

    A thread's title is read once per change of its latest checkpoint or follow-up count, so
    listing a browser's threads costs one state read per thread when nothing changed.

    Args:
        graph: the compiled graph (its checkpointer holds the threads).
        transcript: the follow-ups and notes of the threads.
    """

    def __init__(self, graph: Any, transcript: Transcript) -> None:
        self.graph = graph
        self.transcript = transcript
        self._cache: dict[str, tuple[Any, tuple[str | None, float | None]]] = {}
        self._lock = threading.Lock()

    def describe(self, key: str) -> tuple[str | None, float | None]:
        """(the thread's first message, when it last changed); (None, None) for a thread that holds nothing."""
        config = thread_config(key)
        state = self.graph.get_state(config)
        entries = self.transcript.entries(key)
        stamp = ((state.config or {}).get("configurable", {}).get("checkpoint_id"), len(entries))
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        first: str | None = None
        updated = _seconds(state.created_at)
        if stamp[0] is not None:
            for snap in reversed(list(self.graph.get_state_history(config))):  # oldest first
                if (snap.values or {}).get("task"):
                    first = str(snap.values["task"])
                    break
        if entries:
            created = [e.get("created") for e in entries if e.get("created")]
            if created:
                updated = max(updated or 0.0, *created)
            if first is None:
                first = entries[0]["question"]
        result = (short_title(first) if first else None, updated)
        with self._lock:
            self._cache[key] = (stamp, result)
        return result

    def listing(self, thread_ids: Sequence[str], current: str | None,
                key: Callable[[str], str] = str) -> list[Conversation]:
        """The conversations of `thread_ids` that hold something, and `current` even when new.

        Args:
            thread_ids: the browser's thread ids, most recent first.
            current: the thread on screen.
            key: the checkpointer's thread id of a browser's thread id (the app namespaces it by user).
        """
        out = []
        for tid in thread_ids:
            title, updated = self.describe(key(tid))
            if title is None and updated is None and tid != current:
                continue  # a thread opened and left empty
            out.append(Conversation(tid, title or NEW_TITLE, updated))
        return out


__all__ = ["EARLY_KEPT", "KEPT", "NEW_TITLE", "Conversation", "Conversations", "EarlyThreads", "remember",
           "short_title"]
