"""Make `import torchvision` work on CPU-only torch; do nothing where it already works.

The registry's torchvision 0.28.0 wheel is CUDA-linked. On the CPU build of torch 2.13.0
its compiled ops fail to load and `import torchvision` dies with
"operator torchvision::nms does not exist". Import this module before torchvision is
first imported: it tries the native library first (a CUDA machine: nothing changes), and
only when that fails declares the two op schemas torchvision's import needs (`nms`,
`qnms`) with a plain-torch CPU `nms`, so models and transforms work. `decode_jpeg` and
the other compiled image ops stay unavailable (use Pillow).

It lives in the bottom layer because the knowledge base's text embedder (transformers)
imports torchvision too; everything above imports it from here.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

NATIVE = "native"
SHIM = "shim"
_mode: str | None = None


def _nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in plain torch (indices kept, by decreasing score)."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    while order.numel() > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def ensure() -> str:
    """Prepare torchvision's ops; returns "native" or "shim". Idempotent."""
    global _mode
    if _mode is not None:
        return _mode
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise ImportError("torchvision is not installed: install torchvision==0.28.0 (the pair of torch 2.13.0).")
    lib = next(Path(spec.origin).parent.glob("_C*.so"), None)
    try:
        if lib is None:
            raise OSError("no _C library")
        torch.ops.load_library(str(lib))
        _mode = NATIVE
    except (OSError, RuntimeError) as exc:
        log.debug("torchvision native ops unavailable (%s); using the CPU shim", exc)
        _define_shim()
        _mode = SHIM
    return _mode


def _define_shim() -> None:
    # Schemas as torchvision declares them; only `nms` gets a kernel (its import needs both to exist).
    lib = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 - intended, process-lifetime library
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms, "CPU")
    globals()["_library"] = lib  # keep it alive: the ops vanish when the Library is collected


ensure()
