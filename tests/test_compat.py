"""torchvision works on CPU-only torch through the compat module, and natively elsewhere."""

from __future__ import annotations

import subprocess
import sys

import torch

from knowledge import torchvision_compat


def test_torchvision_imports_and_builds_models() -> None:
    assert torchvision_compat.ensure() in (torchvision_compat.NATIVE, torchvision_compat.SHIM)
    import torchvision
    from torchvision import models

    assert torchvision.__version__.startswith("0.28.0")
    out = models.mobilenet_v3_small(weights=None, num_classes=4)(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 4)


def test_nms_matches_the_definition() -> None:
    torchvision_compat.ensure()
    import torchvision  # noqa: F401

    nms = torch.ops.torchvision.nms  # the op torchvision.ops.nms dispatches to (native or shim)
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=torch.float)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 wins; box 0 overlaps it (IoU 0.9) and goes; box 1 overlaps 3 by 0.62 and goes; box 2 stays.
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]


def test_without_the_compat_module_cpu_torch_cannot_import_torchvision() -> None:
    """Documents why the module exists: on the CPU build the plain import fails (on CUDA it works)."""
    code = "import torchvision"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if torchvision_compat.ensure() == torchvision_compat.SHIM:
        assert result.returncode != 0 and "torchvision::nms does not exist" in result.stderr
    else:
        assert result.returncode == 0
