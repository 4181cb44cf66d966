"""app.py's record of a message sent before its page loaded (agent.chat.conversations.EarlyThreads): bounded."""

from __future__ import annotations

import pytest

from agent.chat.conversations import EarlyThreads


def test_the_load_takes_its_entry_once_and_an_unload_drops_it() -> None:
    early = EarlyThreads()
    early.put("page-a", "thread-1")
    early.put("page-b", "thread-2")
    assert early.take("page-a") == "thread-1"
    assert early.take("page-a") is None and len(early) == 1, "a consumed entry is not kept"
    early.forget("page-b")
    early.forget("page-never-seen")
    assert len(early) == 0


def test_at_most_kept_entries_stay_the_oldest_dropped_first() -> None:
    early = EarlyThreads(kept=3)
    for i in range(10):
        early.put(f"page-{i}", f"thread-{i}")
    assert len(early) == 3
    assert [early.take(f"page-{i}") for i in (6, 7, 8, 9)] == [None, "thread-7", "thread-8", "thread-9"]
    early.put("x", "1")
    early.put("y", "2")
    early.put("x", "3")  # a page's newer message counts as recent
    early.put("z", "4")
    early.put("w", "5")
    assert early.take("y") is None and early.take("x") == "3"


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="kept must be >= 1"):
        EarlyThreads(kept=0)
