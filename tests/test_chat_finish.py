"""The chat finished (issue 17), at the adapter: the meta-model's pick at once, the config to take
away, no message the user did not type, and a status that belongs to the run on screen.

The real graph over the scripted parts of tests/fakes.py, as in tests/test_app_adapter.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from agent.chat.views import ChatView
from tests.fakes import TASK, last, make_adapter, texts


def _gate_the_llm(adapter: Any, gate: threading.Event) -> None:
    """Hold the reasoner's call until `gate` is set (the judge and the rest pass at once)."""
    llm = adapter.parts.llm
    answer = llm.answer

    def held(schema: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
        if schema.get("title") == "Recommendation":
            assert gate.wait(20), "the test never released the LLM"
        return answer(schema, messages)

    object.__setattr__(llm, "answer", held)  # ScriptChat is a pydantic model: set past its validation


def test_the_pick_shows_before_the_llm_answers_and_the_card_replaces_it(tmp_path: Path) -> None:
    adapter, _ = make_adapter(tmp_path)
    gate = threading.Event()
    _gate_the_llm(adapter, gate)

    views: list[ChatView] = []
    for view in adapter.submit("t1", TASK):
        views.append(view)
        if any(t.startswith("**The meta-model's pick:**") for t in texts(view)):
            gate.set()  # the pick is on screen while the LLM has not answered yet

    early = next(v for v in views if any(t.startswith("**The meta-model's pick:**") for t in texts(v)))
    body = texts(early)
    pick = next(t for t in body if t.startswith("**The meta-model's pick:**"))
    assert early.busy and not any(t.startswith("### Recommendation") for t in body)
    assert "efficientnet_lite0/frozen" in pick and "predicted test accuracy **0.80**" in pick
    assert "% interval" in pick and " on cpu" in pick
    assert early.messages[-1]["metadata"]["status"] == "pending"  # the LLM step runs below it

    final = texts(views[-1])
    assert sum(t.startswith("### Recommendation") for t in final) == 1
    assert not any("The meta-model's pick" in t for t in final)  # the card took its place


def test_the_pick_stays_when_the_request_ends_without_a_card(tmp_path: Path) -> None:
    adapter, _ = make_adapter(tmp_path)
    llm = adapter.parts.llm

    def broken(schema: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
        raise RuntimeError("the model server went away")

    object.__setattr__(llm, "answer", broken)
    final = texts(last(adapter.submit("t1", TASK)))

    assert any(t.startswith("**The meta-model's pick:**") for t in final) or any(
        t.startswith("### Recommendation") for t in final)  # a fallback card, or the pick with the error
    assert sum(t.startswith("**The meta-model's pick:**") or t.startswith("### Recommendation") for t in final) == 1
