"""The search space: every configuration MetaLLMiX may recommend, train or record.

Declared once, as data, so that the schema, the runner, the sweep, the meta-model's
candidate generator and the judge all check values against the same rules
(the scikit-learn habit of declaring parameter constraints in one place).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Backbones the runner can build. `pretrained_source` says where real ImageNet weights
# come from: "package" (installed from the registry with the project), "torchvision-cache"
# (used only when the user already has them in torch's hub cache), or None (no weights).
# `features` and `feature_dim`: the feature extractor tools.backbones builds (ImageNet head
# removed), its exact parameter count and output width; the model trained here adds a linear
# head of feature_dim x classes (`model_params`). `params_m` is the size input of the time
# model as it was first fitted (rounded; the ImageNet head included for the torchvision four), kept
# as it was so the fitted models stay valid; limits on a model's size use `model_params`.
BACKBONES: dict[str, dict[str, Any]] = {
    "efficientnet_lite0": {"pretrained_source": "package", "params_m": 3.4, "family": "efficientnet",
                           "features": 3_371_008, "feature_dim": 1280},
    "efficientnet_lite1": {"pretrained_source": "package", "params_m": 4.2, "family": "efficientnet",
                           "features": 4_135_680, "feature_dim": 1280},
    "efficientnet_lite2": {"pretrained_source": "package", "params_m": 4.9, "family": "efficientnet",
                           "features": 4_811_072, "feature_dim": 1280},
    "resnet18": {"pretrained_source": "torchvision-cache", "params_m": 11.7, "family": "resnet",
                 "features": 11_176_512, "feature_dim": 512},
    "mobilenet_v3_small": {"pretrained_source": "torchvision-cache", "params_m": 2.5, "family": "mobilenet",
                           "features": 927_008, "feature_dim": 576},
    "efficientnet_b0": {"pretrained_source": "torchvision-cache", "params_m": 5.3, "family": "efficientnet",
                        "features": 4_007_548, "feature_dim": 1280},
    "densenet121": {"pretrained_source": "torchvision-cache", "params_m": 8.0, "family": "densenet",
                    "features": 6_953_856, "feature_dim": 1024},
    "small_cnn": {"pretrained_source": None, "params_m": 0.1, "family": "cnn", "features": 97_680,
                  "feature_dim": 128},
}


def model_params(backbone: str, n_classes: int) -> int:
    """Parameters of the model trained here: `backbone`'s feature extractor and a linear head for `n_classes`."""
    spec = BACKBONES[backbone]
    return spec["features"] + (spec["feature_dim"] + 1) * n_classes


MODES = ("frozen", "finetune", "scratch")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("constant", "cosine", "step", "warmup_cosine")
AUGMENTATIONS = ("none", "flip", "light", "strong")


@dataclass(frozen=True)
class Range:
    """A closed numeric interval; `log` marks parameters searched on a log scale."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, but got {value!r} ({type(value).__name__}).")
        if value != value or not (self.low <= value <= self.high):  # NaN and infinities fail too
            raise ValueError(
                f"{name} must satisfy {self.low:g} <= {name} <= {self.high:g}, but got {name}={value!r}."
            )
        if self.integer and int(value) != value:
            raise ValueError(f"{name} must be a whole number, but got {value!r}.")


# Numeric hyperparameters and their hard limits. Wide on purpose: the knowledge base
# records poor settings too (a learning rate of 1.0 is valid to run, and teaches the
# meta-model what divergence looks like); what is *sensible* is for the meta-model to say.
RANGES: dict[str, Range] = {
    "learning_rate": Range(1e-6, 1.0, log=True),
    "batch_size": Range(4, 1024, log=True, integer=True),
    "epochs": Range(1, 300, integer=True),
    "weight_decay": Range(0.0, 0.5),
    "dropout": Range(0.0, 0.9),
    "label_smoothing": Range(0.0, 0.5),
    "input_size": Range(32, 384, integer=True),
    # Partial fine-tuning (Quick-Tune's pct_to_freeze): the fraction of the pretrained
    # backbone's blocks, counted from the input, that stays frozen in finetune mode. 0 trains
    # the whole network; frozen mode (everything frozen, a head on cached features) is its own
    # mode, so the top of the range stops short of 1.
    "freeze": Range(0.0, 0.95),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "backbone": tuple(BACKBONES),
    "mode": MODES,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "augmentation": AUGMENTATIONS,
}


def check_choice(name: str, value: Any) -> None:
    """Raise a ValueError naming the allowed values when `value` is not one of them."""
    allowed = CHOICES[name]
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, but got {value!r}.")


def frozen_stages(freeze: float, n_stages: int) -> int:
    """How many leading stages a `freeze` share keeps frozen: round(freeze x stages), at least one
    when freeze > 0 (the stem), and never the last stage (then it would be frozen mode)."""
    if freeze <= 0:
        return 0
    return min(max(1, round(freeze * n_stages)), n_stages - 1)


def check_combination(backbone: str, mode: str, augmentation: str, freeze: float = 0.0) -> None:
    """Rules that involve more than one field.

    Frozen mode trains a head on features extracted once and cached, so augmentation
    cannot apply there, and a backbone without pretrained weights has nothing to freeze.
    Partial freezing (`freeze` > 0) keeps part of a *pretrained* backbone fixed, so it
    belongs to finetune mode only.
    """
    if BACKBONES[backbone]["pretrained_source"] is None and mode != "scratch":
        raise ValueError(
            f"{backbone} has no pretrained weights, so mode must be 'scratch', but got mode={mode!r}."
        )
    if mode == "frozen" and augmentation != "none":
        raise ValueError(
            "augmentation must be 'none' in frozen mode (features are extracted once and cached), "
            f"but got augmentation={augmentation!r}; use mode='finetune' to train with augmentation."
        )
    if freeze and mode != "finetune":
        way_out = "set freeze=0" + (", or use mode='finetune' to keep part of the backbone frozen" if mode == "scratch" else
                                    " (frozen mode already freezes the whole backbone)")
        raise ValueError(
            f"freeze applies to mode='finetune' only (the share of the pretrained backbone kept frozen), "
            f"but got mode={mode!r} with freeze={freeze!r}; {way_out}."
        )
