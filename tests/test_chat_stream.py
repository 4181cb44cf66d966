"""Answers start at once (issue 17) and limits set in the chat (issue 16), at the adapter.

The real graph over the scripted parts of tests/fakes.py; the chat model streams its JSON in
pieces (ScriptChat's stream_chunk), as the embedded llama.cpp model streams tokens, so the
chat's LangGraph "messages" stream sees the rationale being written.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from agent.chat.runs import STOPPED, WRITING, partial_rationale
from agent.chat.views import ChatView
from tests.fakes import DRAFT, TASK, ScriptChat, last, make_adapter, texts

PICK = "**The meta-model's pick:**"
CARD = "### Recommendation"


def _drafts(view: ChatView) -> list[str]:
    """The streamed rationale messages of a view, their text without the head and the cursor."""
    return [t.removeprefix(WRITING).strip().removesuffix("▍").strip() for t in texts(view) if t.startswith(WRITING)]


def test_the_partial_rationale_is_read_out_of_unfinished_json() -> None:
    assert partial_rationale('{"candidate": "c1", "ratio') is None
    assert partial_rationale('{"candidate": "c1", "rationale": "c1 has the \\"best') == 'c1 has the "best'
    assert partial_rationale('{"candidate": "c1", "rationale": "done."}') == "done."
    assert partial_rationale("") is None and partial_rationale("not json") is None


def test_the_pick_shows_first_then_the_rationale_streams_in_growing_pieces(tmp_path: Path) -> None:
    adapter, _ = make_adapter(tmp_path, llm=ScriptChat(stream_chunk=12, token_delay=0.15))

    views = list(adapter.submit("t1", TASK))

    streamed = [(i, d) for i, v in enumerate(views) for d in _drafts(v)]
    pieces = list(dict.fromkeys(d for _, d in streamed))
    assert len(pieces) >= 4, f"the rationale came in {len(pieces)} piece(s): {pieces}"
    assert all(later.startswith(earlier) for earlier, later in zip(pieces, pieces[1:], strict=False))
    assert pieces[-1] == DRAFT["rationale"] and all(DRAFT["rationale"].startswith(p) for p in pieces)
    assert all(len(_drafts(v)) <= 1 for v in views)  # one draft at a time

    first = views[streamed[0][0]]
    body = texts(first)
    assert first.busy and first.stoppable and not any(t.startswith(CARD) for t in body)
    assert body.index(next(t for t in body if t.startswith(PICK))) < body.index(
        next(t for t in body if t.startswith(WRITING)))  # the pick, with its numbers, above the words

    final = views[-1]
    assert _drafts(final) == [] and not final.busy and not final.stoppable
    assert sum(t.startswith(CARD) for t in texts(final)) == 1 and final.offer is not None
    assert not any(t.startswith(PICK) for t in texts(final))  # the card took the pick's place


def test_a_retry_replaces_the_streamed_draft_instead_of_adding_one(tmp_path: Path) -> None:
    wrong = {"candidate": "c1", "rationale": "c1 fits the budget and beats r9 on a similar set."}  # r9: not shown
    llm = ScriptChat({"Recommendation": [wrong, DRAFT]}, stream_chunk=12, token_delay=0.1)
    adapter, _ = make_adapter(tmp_path, llm=llm, judge_retries=1)  # a retry: off by default

    views = list(adapter.submit("t1", TASK))

    shown = [d for v in views for d in _drafts(v)]
    assert any(wrong["rationale"].startswith(d) for d in shown) and DRAFT["rationale"] in shown
    retried = next(v for v in views if DRAFT["rationale"] in _drafts(v))
    assert not any(wrong["rationale"][:20] in t for t in texts(retried) if t.startswith(WRITING))
    assert all(len(_drafts(v)) <= 1 for v in views)
    final = views[-1]
    assert _drafts(final) == [] and sum(t.startswith(CARD) for t in texts(final)) == 1
    assert any(m.get("metadata", {}).get("title", "").startswith("Judge: draft 1 failed") for m in final.messages)


def test_stop_ends_the_recommendation_at_the_next_token_and_the_next_message_works(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "threads.sqlite", check_same_thread=False)  # as the app keeps threads
    llm = ScriptChat(stream_chunk=3, token_delay=0.2)  # ~45 pieces: ~9 s to write the whole answer
    adapter, jobs = make_adapter(tmp_path, checkpointer=SqliteSaver(conn), llm=llm)

    assert adapter.stop("t1") == "No recommendation is running in this conversation."
    stopped_at = None
    views: list[ChatView] = []
    for view in adapter.submit("t1", TASK):
        views.append(view)
        if stopped_at is None and _drafts(view):
            assert view.stoppable
            assert adapter.stop("t1") == "Stopping…"
            stopped_at = time.monotonic()
    assert stopped_at is not None, "the rationale never streamed"
    assert time.monotonic() - stopped_at < 2.0  # at the next token, not after the whole answer

    final = views[-1]
    body = texts(final)
    assert not final.busy and not final.stoppable and final.notice is None
    assert body[-1] == STOPPED and _drafts(final) == []
    assert not any(t.startswith(CARD) for t in body) and final.offer is None and jobs.calls == []
    pick = next(t for t in body if t.startswith(PICK))
    assert "predicted test accuracy **0.80**" in pick and "replaces" not in pick  # no promise left hanging
    assert not any("could not finish" in t for t in body)
    assert adapter.graph.get_state(adapter.config("t1")).next == ("reason",)  # the last finished step

    object.__setattr__(llm, "token_delay", 0.0)
    again = last(adapter.submit("t1", TASK))

    body = texts(again)
    assert sum(t.startswith(CARD) for t in body) == 1 and again.offer is not None
    assert body.count(STOPPED) == 1 and body.index(STOPPED) < body.index(next(t for t in body if t.startswith(CARD)))
    assert [m["content"] for m in again.messages if m["role"] == "user"] == [TASK, TASK]
    conn.close()


def test_training_is_not_stopped_by_stop(tmp_path: Path) -> None:
    adapter, _ = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK))

    assert adapter.stop("t1") == "No recommendation is running in this conversation."
    assert adapter.view("t1").stoppable is False  # an offer waits: nothing to stop


# ------------------------------------------------------------------ issue 16: limits from the chat
@pytest.mark.parametrize("limit", [{"max_params": 3e6}, {"max_model_mb": 12.0}])
def test_limits_from_the_options_keep_a_backbone_over_them_from_being_picked(tmp_path: Path,
                                                                             limit: dict[str, Any]) -> None:
    adapter, _ = make_adapter(tmp_path)

    final = last(adapter.submit("t1", TASK, constraints={**limit, "budget_minutes": None}))

    card = next(t for t in texts(final) if t.startswith(CARD))
    assert card.startswith("### Recommendation: small_cnn")  # efficientnet_lite0 has 3.4 M parameters, 13 MB
    assert final.offer is not None and final.offer["config"]["backbone"] == "small_cnn"
    candidates = adapter.values("t1")["candidates"]
    assert candidates and all(c["config"]["backbone"] == "small_cnn" for c in candidates)


def test_an_impossible_limit_says_what_to_do(tmp_path: Path) -> None:
    adapter, _ = make_adapter(tmp_path)

    final = last(adapter.submit("t1", TASK, constraints={"max_params": 1000.0}))

    said = "\n".join(texts(final))
    assert "no backbone keeps to parameters at most 1,000" in said and "raise the limit" in said
    assert final.offer is None


def test_the_options_fields_become_the_requests_constraints() -> None:
    from app import request_constraints

    assert request_constraints(0, "", [], [], 0, 0, 0) == {
        "budget_minutes": None, "device": None, "backbones": None, "modes": None, "max_params": None,
        "max_model_mb": None, "max_memory_gb": None}
    got = request_constraints(10, "cpu", ["small_cnn"], ["scratch"], 2.5, 20, 6)
    assert got == {"budget_minutes": 10.0, "device": "cpu", "backbones": ["small_cnn"], "modes": ["scratch"],
                   "max_params": 2.5e6, "max_model_mb": 20.0, "max_memory_gb": 6.0}


def test_a_memory_limit_from_the_options_reaches_the_profile_and_is_recorded(tmp_path: Path) -> None:
    adapter, _ = make_adapter(tmp_path)

    last(adapter.submit("t1", TASK, constraints={"max_memory_gb": 6.0}))

    profile = adapter.values("t1")["profile"]
    assert profile["max_memory_bytes"] == 6 * 2**30
    assert any(s.startswith("memory at most 6.0 GB ('max_memory_gb')") for s in profile["limits"])
