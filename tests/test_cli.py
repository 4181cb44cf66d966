"""The command line: clear messages and exit codes, no traceback, nothing trained without --yes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import EXIT_OK, EXIT_USAGE, main
from knowledge.store import KnowledgeBase
from tests.test_store import make


@pytest.fixture
def kb_dir(tmp_path: Path) -> Path:
    KnowledgeBase(tmp_path / "kb", index=False).append(make(3) + make(1, status="diverged"))
    return tmp_path / "kb"


def test_kb_stats_json(kb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kb-dir", str(kb_dir), "kb", "stats", "--json"]) == EXIT_OK
    stats = json.loads(capsys.readouterr().out)
    assert stats["records"] == 4 and stats["successful"] == 3
    assert stats["statuses"] == {"diverged": 1, "ok": 3}
    assert set(stats) >= {"datasets", "backbones", "modes", "sources"}


def test_kb_stats_says_how_far_the_seed_is_from_its_targets(kb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kb-dir", str(kb_dir), "kb", "stats"]) == EXIT_OK
    out = capsys.readouterr().out
    # make(3): frozen heads of one dataset, no fine-tune: 1 more makes 1 of 4 (25 %)
    assert "fine-tunes of a pretrained backbone: 0 (0% of successful runs; target 25%: 1 more)" in out
    assert "short of the targets by 20 fine-tunes and 10 long scratch runs" in out
    assert "--to-targets` runs what is missing" in out


def test_kb_export_then_import(kb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs.csv"
    assert main(["--kb-dir", str(kb_dir), "kb", "export", str(out)]) == EXIT_OK
    assert main(["--kb-dir", str(tmp_path / "other"), "kb", "import", str(out)]) == EXIT_OK
    assert "imported 4 new records" in capsys.readouterr().out


def test_train_refuses_without_approval(kb_dir: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (kb_dir / "records.jsonl").read_bytes()
    code = main(["--kb-dir", str(kb_dir), "train", "--dataset", str(shared_data / "busi_ultrasound.npz"),
                 "--backbone", "efficientnet_lite0", "--mode", "frozen"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "nothing trains without explicit approval" in err and '"backbone": "efficientnet_lite0"' in err
    assert (kb_dir / "records.jsonl").read_bytes() == before


def test_train_takes_the_config_json_that_recommend_prints(kb_dir: Path, shared_data: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # `recommend --json | jq -c .config` gives one long line: read as JSON, never as a file name
    # (a path of 300 characters made the OS say "File name too long").
    config = {"backbone": "efficientnet_lite0", "mode": "finetune", "input_size": 96, "optimizer": "adamw",
              "learning_rate": 0.0003, "batch_size": 32, "epochs": 12, "weight_decay": 0.05, "dropout": 0.2,
              "scheduler": "warmup_cosine", "augmentation": "flip", "label_smoothing": 0.1, "freeze": 0.5}
    text = json.dumps(config, separators=(",", ":"))
    assert len(text) > 255
    code = main(["--kb-dir", str(kb_dir), "train", "--dataset", str(shared_data / "busi_ultrasound.npz"),
                 "--config", text])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "nothing trains without explicit approval" in err and '"freeze": 0.5' in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--dataset", "/nope.npz", "--backbone", "efficientnet_lite0", "--mode", "frozen", "--yes"], "does not exist"),
        (["train", "--dataset", "x.npz", "--config", '{"backbone": "efficientnet_lite0", "mode": "frozen", "learning_rate": "abc"}', "--yes"],
         "learning_rate must be a number"),
        (["train", "--dataset", "x.npz", "--config", "[1, 2]", "--yes"], "must be a JSON object"),
        (["train", "--dataset", "x.npz", "--config", "{oops", "--yes"], "must be a JSON object or a JSON file"),
        (["train", "--dataset", "x.npz", "--config", "no_such_config.json", "--yes"],
         "'no_such_config.json' is neither (No such file or directory)"),
        (["train", "--dataset", "x.npz", "--backbone", "small_cnn", "--mode", "frozen", "--yes"], "mode must be 'scratch'"),
        (["profile", "/does/not/exist"], "does not exist"),
        (["kb", "import", "/does/not/exist.jsonl"], "no such file"),
        (["kb", "sweep", "--plan", "frozen", "--to-targets"], "pass --plan cpu"),
        (["recommend"], "describe the task in TEXT, give --dataset PATH, or both"),
        (["export-optuna", "--study-name", "s"], "describe the task in TEXT, give --dataset PATH, or both"),
        # the text may be left out with --dataset (the data say enough): the dataset is what is checked
        (["recommend", "--dataset", "/does/not/exist.npz"], "does not exist"),
        (["recommend", "--device", "tpu", "chest x-ray"], "device must be one of cpu, cuda"),
        (["recommend", "--device", "cpu:0", "chest x-ray"], "but got 'cpu:0'"),
    ],
)
def test_bad_input_is_a_message_and_exit_2(argv: list[str], message: str, kb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kb-dir", str(kb_dir), *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_device_takes_the_cpu_cores_as_the_records_write_them() -> None:
    from agent.commands import _device

    assert [_device(v) for v in ("cpu", "cpu:8", "cpu:8 cores", "gpu", "CUDA", "cuda:NVIDIA H200")] == [
        "cpu", "cpu:8 cores", "cpu:8 cores", "cuda", "cuda", "cuda:NVIDIA H200"]


def test_profile_prints_meta_features(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", str(shared_data / "skin_lesion_isic.npz")]) == EXIT_OK
    meta = json.loads(capsys.readouterr().out)
    assert (meta["n_classes"], meta["modality"], meta["channels"]) == (8, "dermoscopy", 3)


def test_console_script_usage_error_has_no_traceback() -> None:
    exe = Path(sys.executable).with_name("metallmix")
    result = subprocess.run([str(exe), "train"], capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_USAGE and "--dataset" in result.stderr and "Traceback" not in result.stderr
