"""The Gradio app served on 127.0.0.1 (a random free port), driven with gradio_client.

The app is the real one (app.create_app + app.launch) over the real graph with the scripted
parts of tests/fakes.py, so each round trip takes seconds. Every call is
bounded by a timeout; each server is closed when its test ends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file
from langgraph.checkpoint.sqlite import SqliteSaver

import app as app_module
from agent.chat import Transcript
from tests.fakes import TASK, FakeStore, free_port, make_adapter, tiny_dataset

TIMEOUT = 60


def text_of(message: dict[str, Any]) -> str:
    return "\n".join(
        c.get("text", "") if c.get("type") == "text" else f"<file {c.get('alt_text')}>" for c in message["content"]
    )


class Served:
    """One app process-part: adapter over a SQLite checkpointer, served by Gradio."""

    def __init__(self, tmp: Path, store: FakeStore) -> None:
        self.tmp = tmp
        self.conn = sqlite3.connect(tmp / "threads.sqlite", check_same_thread=False)
        self.adapter, self.jobs = make_adapter(
            tmp, checkpointer=SqliteSaver(self.conn), store=store, transcript=Transcript(tmp / "threads.sqlite")
        )
        self.settings = app_module.AppSettings(
            port=free_port(),
            db_path=tmp / "threads.sqlite",
            plot_dir=tmp / "plots",
            uploads_dir=tmp / "uploads",
            data_dirs=[str(tmp / "data")],
            secret="test-secret",
        )
        self.demo = app_module.create_app(app_module.AppParts(adapter=self.adapter, kb=store), self.settings)
        app_module.launch(self.demo, self.settings, block=False, quiet=True)
        self.client = Client(f"http://127.0.0.1:{self.settings.port}/", download_files=False, verbose=False)

    def call(self, api_name: str, *args: Any) -> tuple[Any, ...]:
        return tuple(self.client.submit(*args, api_name=api_name).result(timeout=TIMEOUT))

    def stream(self, api_name: str, *args: Any) -> list[tuple[Any, ...]]:
        """Every update the endpoint streamed, in order."""
        job = self.client.submit(*args, api_name=api_name)
        job.result(timeout=TIMEOUT)
        return [tuple(o) for o in job.outputs()]

    def close(self) -> None:
        self.client.close()
        self.demo.close()
        self.conn.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path, FakeStore(tmp_path / "kb"))
    yield s
    s.close()


def test_binds_to_localhost_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALLMIX_UI_SECRET", "x")  # no secret file written into the real home
    for name in ("METALLMIX_HOST", "METALLMIX_PORT", "METALLMIX_AUTH"):
        monkeypatch.delenv(name, raising=False)

    settings = app_module.AppSettings.from_args([])

    assert settings.host == "127.0.0.1" and settings.port == 7860 and settings.auth is None
    assert str(settings.uploads_dir) in settings.allowed_data_dirs
    assert app_module.AppSettings.from_args(["--port", "8080", "--auth", "a:b"]).auth == [("a", "b")]


def test_a_task_then_approval_round_trip(served: Served) -> None:
    dataset = tiny_dataset(served.tmp / "data")

    chat, notice, offer, progress, curve, _msg, _upload, thread = served.call(
        "/send", TASK, None, dataset, None, "", [], [], 0, 0, 0, "browser-1"
    )

    assert thread == "browser-1" and notice == ""
    texts = [text_of(m) for m in chat]
    assert texts[0].startswith(TASK)
    assert any(t.startswith("### Recommendation: efficientnet_lite0, frozen") for t in texts)
    assert any("SHAP" in t for t in texts if t.startswith("<file"))
    thoughts = [m["metadata"]["title"] for m in chat if m.get("metadata")]
    assert any(t.startswith("Judge: draft 1 passed") for t in thoughts)
    assert "Awaiting your approval" in offer and "tiny_ultrasound.npz" in offer

    updates = served.stream("/approve", "", None, "browser-1")
    chat, _, offer, progress, *_ = updates[-1]
    curves = [u[4] for u in updates if isinstance(u[4], dict) and u[4].get("type") == "matplotlib"]

    texts = [text_of(m) for m in chat]
    assert any("Training finished" in t for t in texts) and any("New knowledge-base record" in t for t in texts)
    assert "<b>ok</b>" in progress and "epoch 2/2" in progress
    assert curves, "the learning curve was never sent"
    assert offer == "" and len(served.jobs.calls) == 1


def test_a_message_sent_before_the_page_loaded_keeps_its_thread_on_screen(served: Served) -> None:
    """On a busy machine the page's load event can run after the first message was sent (the thread
    state still empty). The load then shows the thread that message started, not a new empty one
    (seen in Chromium on CI: the recommendation in progress vanished from the chat)."""
    *_, thread = served.call("/send", TASK, None, "", None, "", [], [], 0, 0, 0, None)
    assert thread

    chat, *_, loaded = served.call("/load", None)
    assert loaded == thread
    assert any(text_of(m).startswith(TASK) for m in chat)
    *_, again = served.call("/load", None)
    assert again != thread, "the load took the early thread: the server keeps no entry for the page"
    *_, other = served.call("/load", "browser-2")  # a page that knows its thread keeps it
    assert other == "browser-2"


def test_followup_and_knowledge_base_endpoints(served: Served) -> None:
    served.call("/send", TASK, None, "", None, "", [], [], 0, 0, 0, "browser-1")

    chat, *_ = served.call("/send", "what about resnet18?", None, "", None, "", [], [], 0, 0, 0, "browser-1")
    assert "resnet18" in text_of(chat[-1]) and "Predicted test accuracy" in text_of(chat[-1])

    counts, runs, best, *_ = served.call("/kb", "all", "all", "all", "failed")
    assert "**4 runs**" in counts and [row[10] for row in runs["data"]] == ["failed"]
    assert {row[0] for row in best["data"]} == {"skin_lesion_isic", "blood_cells_pbc"}


def test_sessions_are_isolated(served: Served) -> None:
    served.call("/send", TASK, None, "", None, "", [], [], 0, 0, 0, "alice")

    bob, *_ = served.call("/load", "bob")
    alice, _, offer, *_ = served.call("/load", "alice")

    assert bob == [] and len(alice) > 5 and "Awaiting your approval" in offer


def test_conversation_and_pending_approval_survive_a_restart(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "kb")
    first = Served(tmp_path, store)
    try:
        first.call("/send", TASK, None, "", None, "", [], [], 0, 0, 0, "browser-1")
        before, _, offer_before, *_ = first.call("/send", "why frozen?", None, "", None, "", [], [], 0, 0, 0, "browser-1")
    finally:
        first.close()

    second = Served(tmp_path, store)
    try:
        after, _, offer_after, *_ = second.call("/load", "browser-1")
        assert [text_of(m) for m in after] == [text_of(m) for m in before]
        assert offer_after == offer_before and "Awaiting your approval" in offer_after
        assert "Why mode = frozen" in text_of(after[-2]) or "Why mode = frozen" in text_of(after[-1])
    finally:
        second.close()


def test_auth_setting_is_parsed_and_validated() -> None:
    assert app_module.parse_auth("alice:pw, bob:x:y") == [("alice", "pw"), ("bob", "x:y")]
    assert app_module.parse_auth("") is None
    with pytest.raises(ValueError, match="user:password"):
        app_module.parse_auth("alice")


def test_an_uploaded_dataset_is_copied_into_the_uploads_folder(served: Served) -> None:
    upload = tiny_dataset(served.tmp / "elsewhere", "my_scans.npz")  # outside the allowed data folder

    chat, notice, offer, *_ = served.call(
        "/send", "breast ultrasound", handle_file(upload), "", None, "", [], [], 0, 0, 0, "browser-2"
    )

    assert notice == "" and "my_scans-" in text_of(chat[0]) and "Awaiting your approval" in offer
    assert any(p.name.startswith("my_scans-") for p in (served.tmp / "uploads").iterdir())


def test_limits_set_in_the_options_reach_the_recommendation(served: Served) -> None:
    chat, notice, offer, *_ = served.call("/send", TASK, None, "", None, "", [], [], 3, 0, 0, "browser-3")

    texts = [text_of(m) for m in chat]
    assert notice == "" and any(t.startswith("### Recommendation: small_cnn") for t in texts)
    assert not any(t.startswith("### Recommendation: efficientnet") for t in texts)  # 3.4 M parameters: over 3 M
    assert "small_cnn" in offer
