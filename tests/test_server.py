"""The warm server behind `metallmix recommend` (agent.server): its lifecycle as a real process on
127.0.0.1, the routing, and the in-process fallback when it dies during a request.

The round trip with the real embedded LLM is in tests/integration/test_server_real.py.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agent import server
from agent.cli import main
from agent.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder and knowledge base of this test's own, shared with the processes it starts."""
    monkeypatch.setenv("METALLMIX_SERVER_DIR", str(tmp_path / "server"))
    monkeypatch.setenv("METALLMIX_KB", str(tmp_path / "kb"))
    return tmp_path


def _start_serve(*extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "serve", "--lazy", "--quiet", *extra], cwd=REPO,
                            env=env or dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    path = server.state_dir() / f"server-{server.server_key(None)}.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = server.read_state(path)
        if state is not None:
            return proc, state
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server wrote no state file within 60 s")


def _get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


# ------------------------------------------------------------------------- settings
def test_mode_reads_the_flag_then_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METALLMIX_SERVER", raising=False)
    assert server.mode(None) == "auto"  # the default
    monkeypatch.setenv("METALLMIX_SERVER", "reuse")
    assert server.mode(None) == "reuse" and server.mode("off") == "off"
    monkeypatch.setenv("METALLMIX_SERVER", "always")
    with pytest.raises(UsageError, match="must be one of auto, reuse, off, but got 'always'"):
        server.mode(None)


def test_a_bad_setting_is_a_usage_error_from_the_cli(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("METALLMIX_SERVER", "yes")
    assert main(["recommend", "chest x-ray, 2 classes"]) == 2
    assert "METALLMIX_SERVER / --server must be one of auto, reuse, off, but got 'yes'" in capsys.readouterr().err


def test_the_forwarded_arguments_start_at_the_subcommand() -> None:
    argv = ["--kb-dir", "recommend", "recommend", "x-ray", "--json"]  # a knowledge base named like the command
    assert server._subcommand_argv(argv, "recommend") == ["recommend", "x-ray", "--json"]
    assert server._subcommand_argv(["--kb-dir=/k", "recommend", "t"], "recommend") == ["recommend", "t"]


def test_training_and_off_never_go_to_a_server(server_env: Path) -> None:
    from agent.cli import build_parser

    parser = build_parser()
    for argv in (["recommend", "t", "--dataset", "d.npz", "--train", "--yes", "--server", "auto"],
                 ["recommend", "t", "--server", "off"]):
        assert server.route(parser.parse_args(argv), argv) is None
    assert not (server_env / "server").exists()  # nothing was started or even looked for


def test_the_key_follows_the_knowledge_base_and_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    a = server.server_key(str(tmp_path / "a"))
    assert a == server.server_key(str(tmp_path / "a")) and a != server.server_key(str(tmp_path / "b"))
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:1")
    assert server.server_key(str(tmp_path / "a")) != a


# ------------------------------------------------------------------- the real process
def test_serve_listens_on_localhost_with_a_private_token_and_stops(server_env: Path) -> None:
    proc, state = _start_serve()
    path = server.state_dir() / f"server-{state['key']}.json"
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert _get(state["port"], "/health") == {"ok": True, "pid": proc.pid}
        request = urllib.request.Request(f"http://127.0.0.1:{state['port']}/run", data=b"{}", method="POST",
                                         headers={"X-Metallmix-Token": "not-the-token"})
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(request, timeout=10)
        # A second server for the same knowledge base and settings says so and leaves the first alone.
        second = subprocess.run([sys.executable, "-m", "agent.cli", "serve", "--lazy"], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert f"already runs (pid {proc.pid}" in second.stderr
    finally:
        stop = subprocess.run([sys.executable, "-m", "agent.cli", "serve", "--stop"], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
    assert stop.returncode == 0 and f"pid {proc.pid}" in stop.stdout
    assert proc.wait(timeout=15) == 0 and not path.exists()
    again = subprocess.run([sys.executable, "-m", "agent.cli", "serve", "--stop"], cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    assert again.stdout.strip() == "no warm server runs"


def test_serve_exits_by_itself_when_idle(server_env: Path) -> None:
    proc, state = _start_serve("--idle-minutes", "0.02")  # 1.2 s
    assert proc.wait(timeout=30) == 0
    assert not (server.state_dir() / f"server-{state['key']}.json").exists()


def test_a_state_file_left_by_a_dead_server_is_ignored_and_removed(server_env: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = server.state_dir() / "server-0123456789abcdef.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": int(dead.stdout), "port": 1, "token": "t", "key": "0123456789abcdef"}))
    assert server.read_state(path) is None and not path.exists()


def test_a_server_that_dies_mid_request_falls_back_to_in_process(server_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The server is killed while it works on the request: the same command then runs here, with a note."""
    from agent.recommend import Recommender
    from tests.fakes import FakeMetaModel, FakeStore, kb_records
    from tests.test_graph import chat, draft, scores

    monkeypatch.setenv("METALLMIX_SERVER", "reuse")
    proc, state = _start_serve()
    local = Recommender(llm=chat(draft()), judge_llm=chat(scores()), kb=FakeStore(server_env / "kb-here", kb_records(failed=False)),
                        metamodel=FakeMetaModel(png=False))
    monkeypatch.setattr("agent.recommend.default_recommender", lambda kb_dir=None: local)

    def kill_when_busy() -> None:  # the server loads its real parts for the request: kill it meanwhile
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    code = main(["recommend", "chest x-ray pneumonia, 2 classes, 5,000 images", "--json"])
    killer.join()
    proc.wait(timeout=15)
    out, err = capsys.readouterr()
    assert code == 0
    assert f"the warm server (pid {proc.pid}) stopped during the request" in err and "running in-process" in err
    assert json.loads(out)["config"]["backbone"]  # the in-process answer, whole and alone on stdout
    assert not (server.state_dir() / f"server-{state['key']}.json").exists()


def test_the_server_reloads_its_meta_model_after_runs_were_added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-lived server must answer as a new process would: new runs in the knowledge base mean
    the meta-model an in-process run would load (or fit), not the one loaded at start."""
    from types import SimpleNamespace

    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "records.jsonl").write_text('{"a": 1}\n')
    warm = SimpleNamespace(parts=SimpleNamespace(metamodel="fitted at start"))
    import importlib

    monkeypatch.setattr(importlib.import_module("agent.recommend"), "default_recommender", lambda kb_dir=None: warm)
    srv = server._Server("token", run=lambda argv: 0)
    srv.kb = str(kb)
    try:
        assert server._run(srv, ["recommend", "x"], str(tmp_path))["code"] == 0
        assert server._run(srv, ["recommend", "x"], str(tmp_path))["code"] == 0
        assert warm.parts.metamodel == "fitted at start"  # nothing changed: kept
        with open(kb / "records.jsonl", "a") as f:
            f.write('{"b": 2}\n')
        server._run(srv, ["recommend", "x"], str(tmp_path))
        assert warm.parts.metamodel is None  # loaded again on this request
    finally:
        srv.server_close()
