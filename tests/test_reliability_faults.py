"""Failing parts: a bad or absent LLM, an Ollama server that is down or slow, a locked or
corrupt Chroma index. Each is caught where the design says, with the fallback labelled
and a message that says the way out.

The LLM faults are injected by a scripted chat model (routing tests: what the graph does
with each kind of bad answer); the Ollama faults use the real `ChatOllama` client against
a loopback HTTP server or a closed port (no network); the Chroma faults use a real index
locked by a second process or overwritten with garbage.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableLambda

from agent.context import Context
from agent.recommend import Recommendation, Recommender, render_text
from knowledge.store import KnowledgeBase, KnowledgeBaseError
from tests.fakes import ScriptChat
from tests.reliability import HashEmbedder, count, jsonl_ids, real_kb, real_metamodel
from tests.test_reliability_input import JobSpy

TASK = "chest x-ray, pneumonia vs normal, 5,000 images, 10 minutes on a CPU"


# ------------------------------------------------------------------------- scripted faults
def _draft_fault(kind: str, good: dict[str, Any]) -> Any:
    """What a faulty reasoner returns (or raises) instead of `good`."""
    if kind == "timeout":
        raise TimeoutError("the LLM call timed out after 120 s")
    if kind == "connection":
        raise ConnectionError("[Errno 111] Connection refused")
    if kind == "runtime":
        raise RuntimeError("llama_decode returned -1")
    if kind == "invalid-json":
        return {"raw": AIMessage('{"candidate": "c1", "backbone": '), "parsed": None,
                "parsing_error": ValueError("Expecting value: line 1 column 33 (char 32)")}
    if kind == "empty":
        return {"raw": AIMessage(""), "parsed": None, "parsing_error": ValueError("Expecting value")}
    if kind == "not-an-object":
        return {"raw": AIMessage('["c1"]'), "parsed": ["c1"], "parsing_error": None}
    if kind == "none":
        return {"raw": AIMessage("null"), "parsed": None, "parsing_error": None}
    changed = {
        "ghost-backbone": {"backbone": "resnet9000"},
        "ghost-mode": {"mode": "distilled"},
        "ghost-candidate": {"candidate": "c42"},
        "ghost-citation": {"cite": ["c1", "r99"]},
        "lr-out-of-space": {"learning_rate": 100.0},
        "negative-epochs": {"epochs": -5},
        "accuracy-above-1": {"expected_accuracy": 7.5},
        "wrong-types": {"learning_rate": "fast", "batch_size": "big"},
        "missing-fields": None,
    }[kind]
    parsed = {"candidate": good["candidate"], "rationale": "short"} if changed is None else {**good, **changed}
    return {"raw": AIMessage(str(parsed)), "parsed": parsed, "parsing_error": None}


REASONER_FAULTS = ["timeout", "connection", "runtime", "invalid-json", "empty", "not-an-object", "none",
                   "ghost-backbone", "ghost-mode", "ghost-candidate", "ghost-citation", "lr-out-of-space",
                   "negative-epochs", "accuracy-above-1", "wrong-types", "missing-fields"]
JUDGE_FAULTS = ["timeout", "connection", "invalid-json", "scores-out-of-range", "not-an-object"]


class FaultyChat(ScriptChat):
    """ScriptChat whose first `faulty` reasoner calls (and judge calls, for `judge_fault`) go wrong."""

    fault: str = ""
    faulty: int = 0
    judge_fault: str = ""
    injected: int = 0

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, **kwargs: Any) -> Runnable[Any, Any]:
        return RunnableLambda(lambda messages: self.respond(schema, messages, include_raw))

    def respond(self, schema: dict[str, Any], messages: list[BaseMessage], include_raw: bool) -> Any:
        if schema.get("title") == "Verdict" and self.judge_fault:
            self.injected += 1
            kind = self.judge_fault
            if kind in ("timeout", "connection"):
                _draft_fault(kind, {})
            return {"invalid-json": "{broken", "scores-out-of-range": {"format": 9, "accuracy": 0, "completeness": 5,
                                                                     "critique": "x"},
                    "not-an-object": [5, 5, 5]}[kind]
        good = self.answer(schema, messages)
        if schema.get("title") == "Recommendation" and self.faulty > 0:
            self.faulty -= 1
            self.injected += 1
            out = _draft_fault(self.fault, good)
            return out if include_raw else out["parsed"]
        return {"raw": AIMessage(str(good)), "parsed": good, "parsing_error": None} if include_raw else good


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("reliability-faults")
    return {"tmp": tmp, "kb": real_kb(tmp / "kb"), "mm": real_metamodel()}


def _recommender(world: dict[str, Any], llm: Any, spy: JobSpy, **ctx: Any) -> Recommender:
    return Recommender(llm=llm, judge_llm=llm, kb=world["kb"], metamodel=world["mm"], start_job=spy,
                       context=Context(runs_dir=str(world["tmp"] / "runs"), **ctx))


@pytest.mark.parametrize("fault", REASONER_FAULTS)
def test_a_reasoner_that_keeps_failing_gives_a_labelled_fallback(fault: str, world: dict[str, Any]) -> None:
    llm, spy = FaultyChat(fault=fault, faulty=99), JobSpy()
    before = jsonl_ids(world["kb"].root)

    rec, payload = _recommender(world, llm, spy, max_judge_retries=1).run(TASK)
    count("faults injected", llm.injected)

    assert llm.injected == 2  # 1 + 1 retry, never more
    assert rec.fallback and not rec.verdict.passed and rec.verdict.attempts == 2
    # The second draft is the first again for most faults: the loop ends on the repeat.
    assert rec.fallback_reason and ("rejected 2 draft" in rec.fallback_reason or "repeated draft 1" in rec.fallback_reason)
    assert rec.rationale.startswith("Fallback") and "FALLBACK" in render_text(rec)
    assert rec.config.model_dump(mode="json") == rec.candidates[0].config.model_dump(mode="json")
    failed = [c for c in rec.verdict.checks if not c.ok]
    assert failed and failed[0].message  # the verdict says what was wrong
    assert payload["config"] == rec.config.model_dump(mode="json")  # offered for approval, not trained
    assert spy.calls == [] and jsonl_ids(world["kb"].root) == before


@pytest.mark.parametrize("fault", REASONER_FAULTS)
def test_a_reasoner_that_fails_once_recovers_on_the_retry(fault: str, world: dict[str, Any]) -> None:
    llm, spy = FaultyChat(fault=fault, faulty=1), JobSpy()

    rec, _ = _recommender(world, llm, spy, max_judge_retries=1).run(TASK)
    count("faults injected", llm.injected)

    assert llm.injected == 1
    assert not rec.fallback and rec.verdict.passed and rec.verdict.attempts == 2
    assert spy.calls == []


@pytest.mark.parametrize("fault", JUDGE_FAULTS)
def test_a_failing_llm_judge_leaves_the_checks_in_charge(fault: str, world: dict[str, Any]) -> None:
    llm, spy = FaultyChat(judge_fault=fault), JobSpy()

    rec, _ = _recommender(world, llm, spy).run(TASK)
    count("faults injected", llm.injected)

    assert llm.injected == 1
    v = rec.verdict
    assert v.passed and v.judged_by == "checks" and v.judge_error and not rec.fallback
    assert all(c.ok for c in v.checks)
    assert "Judge: passed" in render_text(rec) and "(checks" in render_text(rec)


# ------------------------------------------------------------------------ Ollama, for real
class _Ollama(BaseHTTPRequestHandler):
    """An Ollama-shaped server whose /api/chat misbehaves as `mode` says."""

    mode = "slow"
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self._send(200, b'{"models": [{"name": "qwen2.5-coder:1.5b", "model": "qwen2.5-coder:1.5b"}]}')

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.hits.append(self.mode)
        if self.mode == "slow":
            time.sleep(5)  # longer than the client's timeout in the test
            self._send(200, b"")
        elif self.mode == "error":
            self._send(500, b'{"error": "model runner has unexpectedly stopped"}')
        elif self.mode == "garbage":
            self._send(200, b"\x00\xffnot ndjson at all\n{{{{\n")
        elif self.mode == "no-model":
            self._send(404, b'{"error": "model \\"qwen2.5-coder:1.5b\\" not found, try pulling it first"}')

    def _send(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): that is the point of the test

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ollama_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, type[_Ollama]]]:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("METALLMIX_OLLAMA_MODEL", raising=False)
    handler = type("Handler", (_Ollama,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> str:
    import socket

    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("mode", ["slow", "error", "garbage", "no-model", "down"])
def test_an_ollama_server_that_fails_mid_session_gives_a_labelled_fallback(
    mode: str, world: dict[str, Any], ollama_server: tuple[str, type[_Ollama]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.llm import get_chat_model

    host, handler = ollama_server
    handler.mode = mode
    if mode == "down":
        host = _closed_port()
    monkeypatch.setenv("METALLMIX_LLM_TIMEOUT", "1")
    llm = get_chat_model(ollama_host=host, max_tokens=64)
    spy = JobSpy()

    start = time.monotonic()
    rec, _ = _recommender(world, llm, spy, max_judge_retries=1).run(TASK)
    seconds = time.monotonic() - start
    count("faults injected", 2)

    assert rec.fallback and "FALLBACK" in render_text(rec) and rec.verdict.attempts == 2
    assert rec.fallback_reason and "the answer is not valid" in rec.fallback_reason
    if mode == "slow":
        assert "timed out" in rec.fallback_reason.lower() or "timeout" in rec.fallback_reason.lower()
    assert seconds < 15  # two 1 s timeouts, not a hang
    assert len(handler.hits) == (0 if mode == "down" else 2)
    assert spy.calls == []


def test_a_configured_but_unreachable_ollama_stops_at_start_with_the_way_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.cli import EXIT_ENV, main
    from agent.llm import LLMUnavailableError

    monkeypatch.setenv("OLLAMA_HOST", _closed_port())
    with pytest.raises(LLMUnavailableError, match="not reachable.*unset OLLAMA_HOST"):
        Recommender(kb_dir=str(tmp_path / "kb"))
    count("faults injected")

    assert main(["--kb-dir", str(tmp_path / "kb"), "recommend", TASK]) == EXIT_ENV
    err = capsys.readouterr().err
    assert "not reachable" in err and "unset OLLAMA_HOST" in err and "Traceback" not in err
    count("faults injected")

    import app

    code = app.main(["--port", "0", "--db", str(tmp_path / "t.sqlite"), "--kb-dir", str(tmp_path / "kb"),
                     "--uploads", str(tmp_path / "up"), "--plots", str(tmp_path / "plots")])
    err = capsys.readouterr().err
    assert code == 3 and "not reachable" in err and "unset OLLAMA_HOST" in err and "Traceback" not in err
    count("faults injected")


def test_an_ollama_server_without_the_model_says_which_to_pull(
    ollama_server: tuple[str, type[_Ollama]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.llm import LLMUnavailableError, require_ollama

    host, _ = ollama_server
    monkeypatch.setenv("OLLAMA_HOST", host)
    require_ollama()  # the default model is there
    monkeypatch.setenv("METALLMIX_OLLAMA_MODEL", "llama3.2:3b")
    with pytest.raises(LLMUnavailableError, match="ollama pull llama3.2:3b"):
        require_ollama()
    count("faults injected")


# ---------------------------------------------------------------------------------- Chroma
def test_a_locked_index_is_a_clear_error_not_a_hang(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import EXIT_ENV, main

    real_kb(tmp_path / "kb", n=20)
    db = tmp_path / "kb" / "chroma" / "chroma.sqlite3"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); c.execute('CREATE TABLE IF NOT EXISTS held (x)')\n"
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        kb = KnowledgeBase(tmp_path / "kb", embedder=HashEmbedder(), lock_timeout=0.5)
        start = time.monotonic()
        with pytest.raises(KnowledgeBaseError, match="locked by another process"):
            kb.search("chest x-ray")
        assert time.monotonic() - start < 10
        count("faults injected")

        import knowledge.store

        real_init = knowledge.store.KnowledgeBase.__init__

        def quick(self: Any, *args: Any, **kwargs: Any) -> None:
            real_init(self, *args, **{**kwargs, "lock_timeout": 0.5})

        knowledge.store.KnowledgeBase.__init__ = quick  # type: ignore[method-assign]
        try:
            code = main(["--kb-dir", str(tmp_path / "kb"), "kb", "rebuild"])
        finally:
            knowledge.store.KnowledgeBase.__init__ = real_init  # type: ignore[method-assign]
        err = capsys.readouterr().err
        assert code == EXIT_ENV and "locked by another process" in err and "Traceback" not in err
        count("faults injected")
    finally:
        holder.kill()
        holder.wait()
    # The lock is gone: the same knowledge base works again, nothing was lost.
    kb = KnowledgeBase(tmp_path / "kb", embedder=HashEmbedder())
    assert len(kb.search("chest x-ray", k=5)) == 5 and kb.collection().count() == len(jsonl_ids(tmp_path / "kb")) == 20


def test_a_corrupt_index_stops_a_request_with_the_rebuild_command_and_the_rebuild_works(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chromadb.api.client import SharedSystemClient

    from agent.cli import EXIT_ENV, EXIT_OK, main

    root = tmp_path / "kb"
    real_kb(root, n=40)
    ids = jsonl_ids(root)
    SharedSystemClient.clear_system_cache()
    (root / "chroma" / "chroma.sqlite3").write_bytes(b"this is not a database" * 500)
    kb = KnowledgeBase(root, embedder=HashEmbedder())
    r = Recommender(llm=ScriptChat(), judge_llm=ScriptChat(), kb=kb, metamodel=world["mm"], start_job=JobSpy())

    with pytest.raises(KnowledgeBaseError, match=f"metallmix kb rebuild --kb-dir {root}"):
        r.run(TASK)
    count("faults injected")

    monkeypatch.setattr("knowledge.embedding.default_embedder", HashEmbedder)  # the CLI's own store, cheaply
    assert main(["--kb-dir", str(root), "kb", "search", "x-ray"]) == EXIT_ENV
    err = capsys.readouterr().err
    assert "metallmix kb rebuild" in err and "Traceback" not in err
    assert main(["--kb-dir", str(root), "kb", "rebuild"]) == EXIT_OK
    assert f"{len(ids)} records" in capsys.readouterr().out

    fresh = KnowledgeBase(root, embedder=HashEmbedder())
    assert fresh.collection().count() == len(ids) and jsonl_ids(root) == ids  # nothing lost, no orphan
    rec = Recommender(llm=ScriptChat(), judge_llm=ScriptChat(), kb=fresh, metamodel=world["mm"],
                      start_job=JobSpy()).recommend(TASK)
    assert isinstance(rec, Recommendation) and rec.evidence
