"""`metallmix recommend` through a real warm server on 127.0.0.1, with the real parts (embedded LLM,
Chroma, XGBoost): the same JSON as in-process, then `serve --stop`.

Each command is a new process, as a script would run it. A new knowledge base from the seed
gets the index built at setup (`python -m agent.warm`), else it indexes first (minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TEXT = "dermoscopy skin lesions, 7 classes, about 2,000 images, 20 minutes on a laptop CPU"
# What differs between any two runs of the same request: wall times and the new thread's id.
VOLATILE = ("timings", "llm_seconds", "llm_timings", "thread_id")


def _cli(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)


def _stable(out: str) -> dict[str, Any]:
    rec = json.loads(out)
    for key in VOLATILE:
        rec.pop(key, None)
    return rec


def test_recommend_through_the_warm_server_prints_what_in_process_prints(tmp_path: Path) -> None:
    env = dict(os.environ, METALLMIX_SERVER_DIR=str(tmp_path / "server"))
    kb = str(tmp_path / "kb")
    here = _cli("--kb-dir", kb, "recommend", TEXT, "--json", "--server", "off", env=env)
    assert here.returncode == 0, here.stderr
    try:
        served = _cli("--kb-dir", kb, "recommend", TEXT, "--json", "--server", "auto", env=env)
        assert served.returncode == 0, served.stderr
        states = list((tmp_path / "server").glob("server-*.json"))
        assert len(states) == 1, "the server should still run, waiting for the next call"
        pid = json.loads(states[0].read_text())["pid"]
        assert _stable(served.stdout) == _stable(here.stdout)
        assert "Loading weights" not in served.stdout + served.stderr
    finally:
        stop = _cli("serve", "--stop", env=env)
    assert stop.returncode == 0 and f"pid {pid}" in stop.stdout
    assert not list((tmp_path / "server").glob("server-*.json"))
