"""Partial fine-tuning, early stopping and device placement of the runner (real runs, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from knowledge.schema import TrainConfig
from tools import train as train_mod
from tools.backbones import build_backbone, frozen_stages
from tools.datasets import ImageDataset, load_dataset
from tools.train import placement, split_backbone, train


@pytest.fixture(scope="module")
def head_ct(shared_data: Path) -> ImageDataset:
    return load_dataset(shared_data / "head_ct_hemorrhage.npz")  # 199 images: seconds per run


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("METALLMIX_CACHE", str(tmp_path))
    return tmp_path / "features"


def test_staged_features_are_the_whole_network_in_order() -> None:
    """The stage decomposition computes what the library's own forward computes."""
    bb = build_backbone("efficientnet_lite0", pretrained=True, input_size=64)
    assert bb.n_stages == 18  # stem, 16 MBConv blocks, head conv + pooling
    net = bb.features.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        inner = net[0].__class__  # _LiteStage
        assert isinstance(net[-1], inner)
        whole = net(x)
        stepwise = x
        for stage in net:
            stepwise = stage(stepwise)
    assert whole.shape == (2, bb.feature_dim) and torch.equal(whole, stepwise)
    for name in ("small_cnn", "resnet18", "mobilenet_v3_small", "efficientnet_b0"):
        b = build_backbone(name, pretrained=False, input_size=64)
        with torch.no_grad():
            assert b.features.eval()(x).shape == (2, b.feature_dim), name


@pytest.mark.parametrize(("freeze", "n", "k"), [(0.0, 18, 0), (0.01, 18, 1), (0.5, 18, 9), (0.75, 18, 14), (0.95, 18, 17),
                                                 (0.95, 5, 4)])
def test_freeze_share_to_frozen_stages(freeze: float, n: int, k: int) -> None:
    assert frozen_stages(freeze, n) == k


def test_split_backbone_freezes_exactly_the_prefix() -> None:
    bb = build_backbone("efficientnet_lite0", pretrained=True, input_size=64)
    prefix, rest = split_backbone(bb, 0.5)
    assert len(prefix) == 9 and len(rest) == 9
    assert all(not p.requires_grad for p in prefix.parameters())
    assert all(p.requires_grad for p in rest.parameters())
    assert not prefix.training  # BatchNorm keeps the pretrained statistics


@pytest.mark.parametrize(("backbone", "mode", "freeze"), [("efficientnet_lite0", "finetune", 0.5),
                                                          ("efficientnet_lite0", "finetune", 0.0),
                                                          ("mobilenet_v3_small", "scratch", 0.0)])
def test_trainable_batchnorm_follows_its_batches_and_the_frozen_prefix_keeps_its_statistics(
        head_ct: ImageDataset, backbone: str, mode: str, freeze: float) -> None:
    """The Lite port and MobileNetV3 ship momentum 0.01 (TensorFlow's decay 0.99): the layers that
    train get PyTorch's 0.1, so a short fine-tune is evaluated with statistics of its own weights."""
    cfg = TrainConfig(backbone=backbone, mode=mode, freeze=freeze, epochs=1)
    cfg, pretrained = train_mod.resolve(cfg)
    bb = build_backbone(cfg.backbone, pretrained=pretrained, input_size=cfg.input_size)
    shipped = [m.momentum for m in bb.features.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert shipped and all(v == pytest.approx(0.01) for v in shipped)  # what the libraries ship: the reason for the change
    extra: dict = {"cache": None}
    model, _, _ = train_mod._build(head_ct, cfg, bb, placement(torch.device("cpu")), torch.Generator().manual_seed(0), extra)
    trained = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert trained and {m.momentum for m in trained} == {train_mod.TRAIN_BN_MOMENTUM}
    assert extra["bn_momentum_raised"] == len(trained)
    prefix = bb.features[: extra["frozen_stages"]]
    assert all(m.momentum == pytest.approx(0.01) for m in prefix.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    assert (extra["frozen_stages"] > 0) == (freeze > 0)


def test_batchnorm_at_default_momentum_is_left_alone() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.BatchNorm2d(4, momentum=None))
    assert train_mod.track_batch_statistics(net) == 0
    assert net[1].momentum == 0.1 and net[2].momentum is None  # a cumulative average stays one


def test_partial_finetune_trains_only_the_rest_on_cached_prefix_outputs(head_ct: ImageDataset, cache: Path) -> None:
    cfg = TrainConfig(backbone="efficientnet_lite0", mode="finetune", freeze=0.75, epochs=2, batch_size=32,
                      optimizer="adamw", learning_rate=1e-3)
    first = train(head_ct, cfg, seed=0)
    o = first.outcome
    assert o.status == "ok", o.error
    assert first.extra["frozen_stages"] == 14 and first.extra["cache"] == "miss"
    assert o.feature_seconds > 0 and list(cache.glob("*_prefix14.pt"))
    features = build_backbone("efficientnet_lite0", True, 64).features
    rest = sum(p.numel() for p in features[14:].parameters())
    head = features[-1][0].out_channels * head_ct.n_classes + head_ct.n_classes  # the linear layer
    assert first.extra["trainable_params"] == rest + head  # the last 4 stages and the head, nothing else
    assert rest < sum(p.numel() for p in features.parameters())
    again = train(head_ct, cfg, seed=0)
    assert again.extra["cache"] == "hit"
    assert again.outcome.history == o.history and again.outcome.test_accuracy == o.test_accuracy


def test_flip_on_cached_prefix_uses_mirrored_outputs(head_ct: ImageDataset, cache: Path) -> None:
    cfg = TrainConfig(backbone="efficientnet_lite0", mode="finetune", freeze=0.9, epochs=1, batch_size=32,
                      augmentation="flip")
    res = train(head_ct, cfg, seed=0)
    assert res.outcome.status == "ok", res.outcome.error
    assert res.extra["cache"] == "miss"
    blob = torch.load(next(cache.glob("*_prefix16_flip.pt")), weights_only=True)["features"]
    assert set(blob) == {"train", "val", "test", "train_flip"}
    assert blob["train_flip"].shape == blob["train"].shape and not torch.equal(blob["train_flip"], blob["train"])
    # The mirrored outputs are the prefix's outputs of the mirrored images.
    bb = build_backbone("efficientnet_lite0", pretrained=True, input_size=64)
    prefix, _ = split_backbone(bb, 0.9)
    x = train_mod._to_tensor(head_ct.splits["train"].images[:4], 64)
    x = train_mod._normalise(x, torch.tensor(bb.mean).view(1, 3, 1, 1), torch.tensor(bb.std).view(1, 3, 1, 1)).flip(-1)
    with torch.no_grad():
        expected = prefix(x).half()
    assert torch.allclose(blob["train_flip"][:4].float(), expected.float(), atol=1e-2)


def test_partial_finetune_with_strong_augmentation_runs_the_prefix_live(head_ct: ImageDataset, cache: Path) -> None:
    cfg = TrainConfig(backbone="efficientnet_lite0", mode="finetune", freeze=0.75, epochs=1, batch_size=64,
                      augmentation="light")
    res = train(head_ct, cfg, seed=0)
    assert res.outcome.status == "ok", res.outcome.error
    assert res.extra["frozen_stages"] == 14 and res.extra["cache"] is None and not list(cache.glob("*prefix*"))


def test_early_stopping_ends_after_patience_epochs_without_improvement(head_ct: ImageDataset,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    accs = iter([0.5, 0.7, 0.6, 0.6, 0.65, 0.9, 0.9])
    real = train_mod.metrics

    def scripted(logits: torch.Tensor, labels: torch.Tensor, n_classes: int) -> dict:
        out = real(logits, labels, n_classes)
        if len(labels) == len(head_ct.splits["val"].labels):
            out["accuracy"] = next(accs)
        return out

    monkeypatch.setattr(train_mod, "metrics", scripted)
    cfg = TrainConfig(backbone="efficientnet_lite0", mode="frozen", epochs=7, batch_size=64)
    res = train(head_ct, cfg, seed=0, patience=3)
    o = res.outcome
    assert o.status == "ok" and o.epochs_run == 5 and o.best_epoch == 2 and res.extra["stopped_early"]


def test_placement_cpu_is_fp32_and_unpinned() -> None:
    p = placement(torch.device("cpu"))
    assert (p.amp_dtype, p.channels_last, p.pin_memory) == (None, False, False)
    x = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)
    assert p.stage(x) is x and p.batch(x) is x


def test_placement_on_an_accelerator_is_bf16_channels_last_resident() -> None:
    p = placement(torch.device("cuda"), bf16=True)
    assert p.amp_dtype is torch.bfloat16 and p.channels_last and p.pin_memory and p.eval_batch >= 1024
    assert placement(torch.device("cuda"), bf16=False).amp_dtype is None  # no bf16 support: fp32
    # bf16 features are cached apart from fp32 ones, so a CPU run never reads a GPU's cache.
    assert train_mod._precision_tag(p) == "_bfloat16" and train_mod._precision_tag(placement(torch.device("cpu"))) == ""


def test_every_input_and_parameter_moves_to_the_run_device(head_ct: ImageDataset, cache: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """What moves where, without a GPU: the run targets the `meta` device (tensors without data),
    and the first training batch, its labels and every parameter must be there. This is the
    check that frozen mode failed on CUDA (cached features left on the CPU)."""
    seen: dict[str, set[str]] = {}

    def spy(model, fetch, labels, cfg, gen, place, *args, **kwargs):  # noqa: ANN001, ANN202
        idx = torch.arange(4)
        seen[cfg.mode + str(cfg.freeze)] = {
            fetch("train", idx, True).device.type, place.batch(place.stage(labels["train"])[:4]).device.type,
            *{p.device.type for p in model.parameters()},
        }
        raise train_mod.Cancelled

    monkeypatch.setattr(train_mod, "_fit", spy)
    monkeypatch.setattr(train_mod, "placement", lambda device, bf16=None: train_mod.Placement(device, None, False, False, 1024))
    # Cached inputs are computed on the CPU here (the meta device holds no data).
    real_prefix, real_features = train_mod._prefix_outputs, train_mod._features
    cpu = train_mod.Placement(torch.device("cpu"), None, False, False, 256)
    monkeypatch.setattr(train_mod, "_prefix_outputs", lambda ds, bb, k, size, place, flip: real_prefix(ds, bb, k, size, cpu, flip))
    monkeypatch.setattr(train_mod, "_features", lambda ds, bb, size, device: real_features(ds, bb, size, torch.device("cpu")))
    meta = torch.device("meta")
    for cfg in (TrainConfig(backbone="efficientnet_lite0", mode="frozen", epochs=1),
                TrainConfig(backbone="efficientnet_lite0", mode="finetune", freeze=0.75, epochs=1),
                TrainConfig(backbone="small_cnn", mode="scratch", epochs=1, augmentation="flip")):
        res = train(head_ct, cfg, seed=0, device=meta)
        assert res.outcome.status == "cancelled", res.outcome.error
    assert seen == {"frozen0.0": {"meta"}, "finetune0.75": {"meta"}, "scratch0.0": {"meta"}}


def test_cpu_runs_stay_reproducible_across_modes(head_ct: ImageDataset) -> None:
    for cfg in (TrainConfig(backbone="small_cnn", mode="scratch", input_size=32, epochs=2, augmentation="flip"),
                TrainConfig(backbone="efficientnet_lite0", mode="finetune", freeze=0.9, epochs=2, augmentation="flip")):
        a, b = train(head_ct, cfg, seed=3).outcome, train(head_ct, cfg, seed=3).outcome
        assert a.status == "ok" and a.history == b.history and a.test_accuracy == b.test_accuracy
        assert np.isfinite(a.history[-1].train_loss)
