"""The Ollama path of agent.llm against an Ollama-shaped HTTP exchange served locally.

A tiny http.server on 127.0.0.1 (random port) answers POST /api/chat with the NDJSON
stream from tests/fixtures/ollama_chat.json and records what the client sent. No network.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from agent import llm

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "ollama_chat.json").read_text())
SCHEMA: dict[str, Any] = FIXTURE["chat_structured"]["request"]["format"]


class _FakeOllama(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path != "/api/tags":
            self.send_error(404)
            return
        self._send(json.dumps(FIXTURE["tags"]).encode(), "application/json")

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"path": self.path, **body})
        if self.path != "/api/chat":
            self.send_error(404)
            return
        exchange = FIXTURE["chat_structured" if body.get("format") else "chat_plain"]
        self._send("".join(line + "\n" for line in exchange["response_ndjson"]).encode(), "application/x-ndjson")

    def _send(self, payload: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ollama(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve the recorded exchange; yield (host, requests received)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("METALLMIX_OLLAMA_MODEL", raising=False)
    handler = type("Handler", (_FakeOllama,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


def test_plain_chat_returns_streamed_content(ollama: tuple[str, list[dict[str, Any]]]) -> None:
    host, requests = ollama

    msg = llm.get_chat_model(ollama_host=host, max_tokens=128).invoke("Which backbone for 2000 dermoscopy images?")

    assert msg.content == "Use a pretrained EfficientNet-Lite0 with a frozen backbone."
    assert msg.usage_metadata is not None
    assert (msg.usage_metadata["input_tokens"], msg.usage_metadata["output_tokens"]) == (38, 14)
    (req,) = requests
    assert req["path"] == "/api/chat" and req["model"] == "qwen2.5-coder:1.5b" and req["stream"] is True
    assert req["messages"][-1] == {"role": "user", "content": "Which backbone for 2000 dermoscopy images?"}
    assert req["options"]["temperature"] == 0.0
    assert req["options"]["num_predict"] == 128 and req["options"]["num_ctx"] == 4096
    assert not req.get("format")


def test_structured_output_sends_schema_and_parses(
    ollama: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, requests = ollama
    monkeypatch.setenv("OLLAMA_HOST", host)

    out = llm.get_chat_model().with_structured_output(SCHEMA).invoke("Recommend a config.")

    assert out == {
        "backbone": "efficientnet_lite0",
        "learning_rate": 0.001,
        "rationale": "Small dataset (2000 images): frozen pretrained features beat training from scratch (run r12).",
    }
    (req,) = requests
    assert req["model"] == FIXTURE["chat_structured"]["request"]["model"]
    assert req["format"] == SCHEMA


def test_structured_output_with_pydantic_model(ollama: tuple[str, list[dict[str, Any]]]) -> None:
    host, requests = ollama

    class Recommendation(BaseModel):
        backbone: str = Field(json_schema_extra={"enum": ["resnet18", "efficientnet_lite0", "vit_tiny"]})
        learning_rate: float
        rationale: str = Field(max_length=200)

    out = llm.get_chat_model(ollama_host=host, model="qwen2.5-coder:1.5b").with_structured_output(Recommendation)
    rec = out.invoke("Recommend a config.")

    assert isinstance(rec, Recommendation)
    assert (rec.backbone, rec.learning_rate) == ("efficientnet_lite0", 0.001)
    assert requests[0]["format"]["properties"]["rationale"]["maxLength"] == 200


def test_check_ollama_reachable_and_model_present(ollama: tuple[str, list[dict[str, Any]]]) -> None:
    host, _ = ollama

    assert llm.check_ollama(host) is None
    assert llm.check_ollama(host, model="qwen2.5-coder:1.5b") is None
    msg = llm.check_ollama(host, model="llama3.2:3b")
    assert msg is not None and "ollama pull llama3.2:3b" in msg and "unset OLLAMA_HOST" in msg


def test_check_ollama_closed_port_gives_a_way_out() -> None:
    with socket.socket() as s:  # grab a free port, then close it so nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    msg = llm.check_ollama(f"127.0.0.1:{port}", timeout=1.0)

    assert msg is not None
    assert f"Ollama server at http://127.0.0.1:{port} is not reachable" in msg
    assert "unset OLLAMA_HOST to use the embedded model" in msg
