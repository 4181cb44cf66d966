"""Test settings shared by every tier: no network, no writes outside temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `metallmix recommend` runs in-process (tests replace its parts); the server tests say otherwise.
os.environ["METALLMIX_SERVER"] = "off"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("METALLMIX_DATA", REPO.parent / "shared" / "data"))
DATASETS = sorted(p.name for p in SHARED_DATA.glob("*.npz"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The user's knowledge base and run folders live in a temporary home during tests.

    Caches ($METALLMIX_CACHE: extracted features, assembled model weights, fitted
    meta-models) are content-addressed, so tests share them with the user.
    """
    home = tmp_path_factory.mktemp("metallmix-home")
    os.environ["METALLMIX_KB"] = str(home / "kb")
    os.environ["METALLMIX_RUNS"] = str(home / "runs")
    os.environ["METALLMIX_SERVER_DIR"] = str(home / "server")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATASETS:
        pytest.skip(f"the shared datasets are not at {SHARED_DATA}; set METALLMIX_DATA")
    return SHARED_DATA


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The reliability tests' counts (cases tried, faults injected, records lost), for docs/RELIABILITY.md."""
    import sys

    module = sys.modules.get("tests.reliability")
    counts = getattr(module, "COUNTS", None)
    if counts:
        terminalreporter.section("reliability counts")
        for name, value in sorted(counts.items()):
            terminalreporter.write_line(f"{name}: {value}")
