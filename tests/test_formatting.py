"""agent.formatting: the one way each shared text is written, and the interval labelled with what is computed."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from agent.formatting import (
    accuracy_text,
    config_text,
    duration_text,
    interval_label,
    interval_label_for,
    interval_text,
    markdown_table,
    prediction_values,
)
from knowledge.schema import TrainConfig
from tools.metamodel import INTERVAL


def test_interval_label_states_the_metamodel_quantiles() -> None:
    """The label is read from INTERVAL: if either moves without the other, this fails."""
    low, high = INTERVAL
    assert interval_label() == f"{round((high - low) * 100)} % interval"
    assert interval_label() == "90 % interval"  # INTERVAL = (0.05, 0.95) today
    assert interval_text(0.7, 0.84) == "90 % interval 0.70-0.84"


@pytest.mark.parametrize(("quantiles", "label"), [((0.05, 0.95), "90 % interval"), ((0.1, 0.9), "80 % interval"),
                                                  ((0.025, 0.975), "95 % interval")])
def test_interval_label_for(quantiles: tuple[float, float], label: str) -> None:
    assert interval_label_for(quantiles) == label


@pytest.mark.parametrize(("seconds", "text"), [(45, "45 s"), (89.4, "89 s"), (720, "12 min"), (5400, "1.5 h"),
                                               (None, "unknown time"), (math.nan, "unknown time")])
def test_duration_text(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text


def test_config_text_names_the_main_fields_and_only_changed_extras() -> None:
    base = TrainConfig(backbone="efficientnet_lite0", mode="frozen")
    assert config_text(base) == "efficientnet_lite0/frozen adam lr=0.001 bs=64 ep=10"
    assert config_text(base.model_dump(mode="json")) == config_text(base)  # a dict reads the same
    full = TrainConfig(backbone="resnet18", mode="finetune", input_size=128, optimizer="sgd", learning_rate=0.01,
                       batch_size=32, epochs=20, weight_decay=1e-4, dropout=0.2, augmentation="light", freeze=0.5)
    assert config_text(full) == ("resnet18/finetune sgd lr=0.01 bs=32 ep=20 128px wd=0.0001 drop=0.2 aug=light "
                                 "freeze=0.5")


def test_prediction_values_rounds_once() -> None:
    p = SimpleNamespace(accuracy=0.123456, low=0.0999999, high=0.87654321, seconds=12.3456)
    assert prediction_values(p) == {"accuracy": 0.1235, "low": 0.1, "high": 0.8765, "seconds": 12.35}


def test_accuracy_text() -> None:
    assert accuracy_text(0.7812, 0.705, 0.8449) == "0.78 (0.70-0.84)"


def test_markdown_table_escapes_cells() -> None:
    assert markdown_table(["a", "b"], [[0.123456, "x|y\nz"], [None, 3]]) == (
        "| a | b |\n|---|---|\n| 0.1235 | x\\|y z |\n|  | 3 |")
