"""Issue 17's command-line promises: training progress goes to stderr only on a terminal, `--json`
leaves stdout clean (no model-loading bar anywhere), `--config` takes a file or a JSON string,
and a file that is not a dataset is named for what it is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.cli import EXIT_OK, EXIT_USAGE, main
from tests.fakes import make_record

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"backbone": "efficientnet_lite0", "mode": "frozen", "epochs": 7, "learning_rate": 0.002}


class _Terminal:
    """stderr as a terminal: what progress checks ask before drawing a bar."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The training job starter replaced by a spy (nothing trains here) that records `progress`."""
    calls: list[dict[str, Any]] = []

    def run_training_job(dataset: str, config: Any, **kwargs: Any) -> Any:
        calls.append({"dataset": dataset, "config": config, **kwargs})
        return make_record("busi_ultrasound", config.backbone, config.mode, 0.7)

    monkeypatch.setattr("agent.cli.run_training_job", run_training_job)
    return calls


def test_training_progress_is_drawn_on_a_terminal_only(spy: list[dict[str, Any]], shared_data: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--dataset", str(shared_data / "busi_ultrasound.npz"), "--config", json.dumps(CONFIG), "--yes",
            "--json"]
    assert main(argv) == EXIT_OK
    json.loads(capsys.readouterr().out)  # stdout is the JSON summary alone
    monkeypatch.setattr(sys, "stderr", _Terminal(sys.stderr))
    assert main(argv) == EXIT_OK
    assert main([*argv, "--quiet"]) == EXIT_OK
    assert [c["progress"] for c in spy] == [False, True, False]


def test_config_takes_a_file_or_the_same_json_as_text(spy: list[dict[str, Any]], shared_data: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG, indent=2))
    data = str(shared_data / "busi_ultrasound.npz")
    for value in (str(path), json.dumps(CONFIG)):
        assert main(["train", "--dataset", data, "--config", value, "--epochs", "9", "--yes", "--quiet"]) == EXIT_OK
    first, second = (c["config"] for c in spy)
    assert first == second and first.epochs == 9 and first.learning_rate == 0.002  # a flag overrides the file
    capsys.readouterr()


@pytest.mark.parametrize(("name", "content", "what"), [
    ("notes.txt", b"chest x-ray, 2 classes\n", "a text file"),
    ("scan.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "a single PNG image"),
])
def test_a_file_that_is_not_a_dataset_is_named_by_the_cli(tmp_path: Path, name: str, content: bytes, what: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / name).write_bytes(content)
    for argv in (["profile", str(tmp_path / name)],
                 ["train", "--dataset", str(tmp_path / name), "--config", json.dumps(CONFIG), "--yes"]):
        assert main(argv) == EXIT_USAGE
        err = capsys.readouterr().err
        assert f"is not a dataset: it is {what}" in err and "Traceback" not in err


def test_loading_the_embedder_prints_no_bar_for_json_callers(tmp_path: Path) -> None:
    """The text model's 'Loading weights' bar went to every caller's stderr, `--json` scripts' too."""
    code = ("from knowledge.embedding import MiniLMEmbedder; "
            "v = MiniLMEmbedder(onnx=False)(['a dermoscopy task', 'an x-ray task']); print(len(v))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    assert "Loading weights" not in done.stderr and "%|" not in done.stderr
