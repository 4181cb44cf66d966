"""The limits a user states are hard filters: which backbones they leave, said in words.

    kept, said = backbones_within({"max_params": (5_000_000, "under 5M parameters")}, allowed=None, n_classes=7)
    # kept: the backbones whose model (with the head for 7 classes) has at most 5 M parameters;
    # said: one line per limit for the recommendation

A model's size is what trains here: the backbone's feature extractor and the linear head for
the task's classes (knowledge.space.model_params), not the ImageNet model's published count. A
limit comes from the task text (tools.task_text reads "under 5M parameters", "a model under
20 MB") or from the request (the API's and CLI's max_params / max_model_mb). The pick and every
candidate keep to it; when no backbone does, the request is refused with the closest one named.
A memory limit (RAM on a CPU, GPU memory on CUDA) filters configurations, not backbones: what
a run needs depends on its mode, input size and batch too (tools.memory estimates it), so it
travels to the meta-model's candidates as `memory_limit` says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.errors import TaskError
from knowledge.space import BACKBONES, model_params

BYTES_PER_PARAM = 4  # a float32 checkpoint: what "a 20 MB model" means for a file on disk


def _count(n: float) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n:,.0f}"


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


def _exact(name: str, n: float) -> str:
    return f"{n:,.0f} parameters" if name == "max_params" else f"{n:,.0f} bytes"


def backbones_within(limits: dict[str, tuple[float, str]], allowed: Sequence[str] | None, *,
                     n_classes: int) -> tuple[list[str] | None, list[str]]:
    """The allowed backbones that keep to the parameter and model-size limits, and what each limit did.

    Args:
        limits: by name ("max_params", "max_model_bytes", "gpu_memory_bytes", "ram_bytes"), the
            value and the words it came from (the user's text, or "--max-params" and the like).
        allowed: the backbones the request allows; None allows all.
        n_classes: the task's classes (the head's size counts too).

    Returns:
        (backbones, said): None when no size limit applies (all stay allowed); `said` has one
        sentence per limit for the recommendation.

    Raises:
        TaskError: no allowed backbone keeps to the limits (the message names the smallest).
    """
    pool = list(allowed) if allowed else list(BACKBONES)
    said: list[str] = []
    kept = pool
    def params(backbone: str) -> float:
        return float(model_params(backbone, n_classes))

    for name, label, size in (("max_params", "parameters", params),
                              ("max_model_bytes", "model size", lambda b: params(b) * BYTES_PER_PARAM)):
        if name not in limits:
            continue
        value, words = limits[name]
        show = _count if name == "max_params" else _mb
        out = [b for b in kept if size(b) > value]
        kept = [b for b in kept if size(b) <= value]
        if not kept:
            smallest = min(pool, key=size)
            way_out = f"raise the limit to at least {show(size(smallest))}"
            if "small_cnn" not in pool:
                way_out += f", or allow small_cnn ({show(size('small_cnn'))})"
            raise TaskError(f"no backbone keeps to {label} at most {show(value)} ({words!r}): the smallest allowed, "
                            f"{smallest}, has {show(size(smallest))} with the head for {n_classes} classes; {way_out}.")
        # (exact where rounding would show the limit itself: "efficientnet_b0 (4.0 M)" left out by "at most 4.0 M")
        dropped = ", ".join(f"{b} ({show(size(b)) if show(size(b)) != show(value) else _exact(name, size(b))})"
                            for b in out)
        said.append(f"{label} at most {show(value)} ({words!r}, counted with the head for {n_classes} classes): "
                    + (f"left out {dropped}" if out else "every allowed backbone fits"))
    size_limited = any(n in limits for n in ("max_params", "max_model_bytes"))
    return (kept if size_limited else (list(allowed) if allowed else None)), said


def memory_limit(limits: dict[str, tuple[float, str]], device: str) -> tuple[float | None, list[str]]:
    """The memory a run on `device` may need (bytes, None for no limit), and what each memory limit does.

    On CUDA the GPU's memory limits the run; on a CPU its RAM. A limit for the other kind of
    memory is said to be not applied, and why. "max_memory_bytes" (the request's) is for the
    run's own device.
    """
    on_gpu = str(device).startswith("cuda")
    applies = "gpu_memory_bytes" if on_gpu else "ram_bytes"
    said: list[str] = []
    value: float | None = None
    for name, label in (("gpu_memory_bytes", "GPU memory"), ("ram_bytes", "memory"), ("max_memory_bytes", "memory")):
        if name not in limits:
            continue
        amount, words = limits[name]
        if name in (applies, "max_memory_bytes"):
            value = amount if value is None else min(value, amount)
            said.append(f"{label} at most {amount / 2**30:,.1f} GB ({words!r}): configurations estimated to need more "
                        "were left out")
        else:
            said.append(f"{label} {amount / 2**30:,.1f} GB ({words!r}): not applied, the run is on "
                        f"{'the GPU' if on_gpu else 'the CPU'}")
    return value, said


def stated_limits(told: Any, given: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """The size and memory limits of a request: the request's (`given`) over the text's (`told`)."""
    out: dict[str, tuple[float, str]] = {}
    for name, value in told.limits().items():
        if name in ("max_params", "max_model_bytes", "gpu_memory_bytes", "ram_bytes") and value is not None:
            out[name] = (float(value), str(told.said[name]))
    if given.get("max_params") is not None:
        out["max_params"] = (_positive("max_params", given["max_params"]), "max_params")
    if given.get("max_model_mb") is not None:
        out["max_model_bytes"] = (_positive("max_model_mb", given["max_model_mb"]) * 2**20, "max_model_mb")
    if given.get("max_memory_gb") is not None:
        out["max_memory_bytes"] = (_positive("max_memory_gb", given["max_memory_gb"]) * 2**30, "max_memory_gb")
    return out


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise TaskError(f"{name} must be a number > 0, but got {value!r}.")
    return float(value)


__all__ = ["BYTES_PER_PARAM", "backbones_within", "memory_limit", "stated_limits"]
