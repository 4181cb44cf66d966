"""The meta-model's API types: what the user allows (`Constraints`), a device (`Device`,
`parse_device`), a prediction, a ranked candidate and a SHAP explanation. Re-exported by
`tools.metamodel`, whose docstring describes the model."""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.schema import TrainConfig
from knowledge.space import BACKBONES, MODES

DEVICES = ("cpu", "cuda")


@dataclass
class Constraints:
    """What the user allows: a time budget, a device, backbones and modes.

    Attributes:
        budget_seconds: max predicted wall time (training + feature extraction); None = no limit.
        device: the device the time is predicted for, written as records write it: "cpu",
            "cpu:8 cores", "cuda" or "cuda:NVIDIA H200" ("cuda:0" and the like are read as
            "cuda", "gpu" as "cuda"); kept in that canonical form (see `parse_device`). Where
            no run in the knowledge base came from that kind of device (or GPU model), times
            are extrapolated from other devices' runs, and each prediction's `device_note`
            says so.
        backbones: allowed backbones; None = all.
        modes: allowed modes; None = all.
        max_memory_bytes: the most memory a run may need on `device` (RAM on a CPU, GPU
            memory on CUDA), as `tools.memory.training_memory` estimates it; None = no limit.
    """

    budget_seconds: float | None = None
    device: str = "cpu"
    backbones: list[str] | None = None
    modes: list[str] | None = None
    max_memory_bytes: float | None = None

    def __post_init__(self) -> None:
        self.device = parse_device(self.device).label
        if self.budget_seconds is not None and not self.budget_seconds > 0:
            raise ValueError(f"budget_seconds must be > 0 or None, but got {self.budget_seconds!r}.")
        for name, allowed in (("backbones", tuple(BACKBONES)), ("modes", MODES)):
            bad = [v for v in getattr(self, name) or () if v not in allowed]
            if bad:
                raise ValueError(f"{name} must be drawn from {', '.join(allowed)}, but got {bad!r}.")


@dataclass
class Prediction:
    """Predicted test accuracy with a 90 % interval, and predicted wall time.

    Attributes:
        accuracy: predicted test accuracy, clipped to [0, 1].
        low: 5th percentile of the accuracy (empirical out-of-fold residual quantiles).
        high: 95th percentile of the accuracy.
        seconds: predicted wall time, train_seconds + feature_seconds, on `device`.
        device: the device the time is for (canonical form, see `parse_device`).
        device_support: finished runs in the knowledge base from that device (its kind, and
            its GPU model when one is named); None when unknown.
        device_note: None when runs from that device back the time; else a sentence for the
            user saying the time is extrapolated from other devices' runs.
        distance: how far the task is from the nearest dataset of the knowledge base
            (`tools.novelty.distance`: 0 for a dataset the model learnt from, about 1 for
            another modality); None for a model without its datasets.
        nearest: the nearest datasets, (name, distance), nearest first (up to
            `tools.novelty.NEAREST_SHOWN`).
        evidence_note: None while the task is within the threshold that leave-one-dataset-out
            calibrated; beyond it, a sentence for the user naming the nearest datasets and
            saying the interval is widened to the error measured on held-out datasets that far
            away (and, beyond the farthest one measured, that the error there is unmeasured). A task
            whose stated class count, size or smallest class lies past the harder edge of the
            knowledge base's datasets (`tools.novelty.beyond_range`) also gets a sentence saying the
            accuracy is an upper bound, and its `low` reaches down to guessing (1 / n_classes).
        assumed: the meta-features the interval spans because the user did not state them
            (`open_fields` of `MetaModel.predict`); () when all were given.
        model_accuracy: for a ranked candidate of a task with assumed fields, the prediction at
            the values filled in for them (`accuracy` is then the mean over their plausible values,
            `MetaModel.corrected`); None otherwise.
        evidence_level: what good runs of the same backbone and mode reached on the nearest
            datasets (`tools.neighbour_levels.prior`); None when not looked up or none ran them.
        evidence_runs: how many runs of that backbone and mode on the nearest datasets back
            `evidence_level` (0: none; the level is then all their runs').
    """

    accuracy: float
    low: float
    high: float
    seconds: float
    device: str = "cpu"
    device_support: int | None = None
    device_note: str | None = None
    distance: float | None = None
    nearest: tuple[tuple[str, float], ...] = ()
    evidence_note: str | None = None
    assumed: tuple[str, ...] = ()
    model_accuracy: float | None = None
    evidence_level: float | None = None
    evidence_runs: int | None = None


@dataclass(frozen=True)
class Device:
    """A device as the time model reads it.

    Attributes:
        kind: "cpu" or "cuda".
        cores: the CPU's core count; None when not stated (the time model then takes this
            machine's, `os.cpu_count()`: the assistant trains where it runs).
        gpu: the GPU's model name ("NVIDIA H200"); None when not stated.
    """

    kind: str
    cores: int | None = None
    gpu: str | None = None

    @property
    def label(self) -> str:
        """The canonical string, in the records' form: "cpu:8 cores", "cuda:NVIDIA H200", "cpu", "cuda"."""
        if self.kind == "cpu":
            return f"cpu:{self.cores} cores" if self.cores else "cpu"
        return f"cuda:{self.gpu}" if self.gpu else "cuda"

    @property
    def words(self) -> str:
        """The device for a sentence: "a GPU (NVIDIA H200)", "the CPU (8 cores)"."""
        if self.kind == "cuda":
            return f"a GPU ({self.gpu})" if self.gpu else "a GPU"
        return f"the CPU ({self.cores} cores)" if self.cores else "the CPU"


@dataclass
class Candidate:
    """One ranked recommendation.

    Attributes:
        id: "c1", "c2", ... in rank order, short enough for a small LLM to cite.
        config: the configuration (a valid TrainConfig).
        prediction: its predicted accuracy and time on the task.
        origin: "retrieved:<record id>" for a similar past run's config, else "generated".
        support: knowledge-base runs with the same backbone and mode (0 = no evidence).
        over_budget: True when no candidate fitted the time budget and this is among the fastest.
        spread: how far apart the accuracy models fitted on bootstrap samples of the datasets put it
            (one standard deviation, `MetaModel.spread`); the ranking subtracts it.
    """

    id: str
    config: TrainConfig
    prediction: Prediction
    origin: str
    support: int = 0
    over_budget: bool = False
    spread: float = 0.0


@dataclass
class Explanation:
    """SHAP values of the accuracy model for one (task, config).

    Attributes:
        base_value: the model's mean output (SHAP expected value).
        contributions: (feature name, its value, SHAP contribution), by |contribution| desc.
            The contribution of an assumed field (see `assumed`) is its mean over the grid of
            plausible values (`tools.novelty.OPEN_GRID`, other features as given): a default
            the user never stated is not credited as if it were known. Then, and only then,
            base_value plus the contributions differs from `prediction`.
        prediction: the model's raw (unclipped) output for the task as given; without assumed
            fields, base_value plus all contributions.
        assumed: the features whose values were assumed (the open fields, and the features
            computed from them, such as majority_share); () when all were stated.
    """

    base_value: float
    contributions: list[tuple[str, object, float]]
    prediction: float = float("nan")
    assumed: tuple[str, ...] = ()

    def text(self, top: int = 6) -> str:
        """Short plain text for an LLM prompt: the `top` strongest drivers, in words."""
        if self.assumed:  # the stated accuracy averages over the assumed values; this is the model at one of them
            lines = [f"Predicted test accuracy {self.prediction:.3f} at the assumed values (the expected accuracy "
                     f"averages over what they leave open; average over past runs {self.base_value:.3f})."]
        else:
            lines = [f"Predicted test accuracy {self.prediction:.3f} (average over past runs {self.base_value:.3f})."]
        for name, value, c in self.contributions[:top]:
            verb = "raises" if c >= 0 else "lowers"
            if name in self.assumed:
                lines.append(f"- {name} (assumed, not stated; averaged over plausible values) {verb} predicted "
                             f"accuracy by {c:+.3f}")
                continue
            lines.append(f"- {name}={_fmt(value)} {verb} predicted accuracy by {c:+.3f}")
        rest = self.contributions[top:]
        if rest:
            lines.append(f"- {len(rest)} other features together: {sum(c for _, _, c in rest):+.3f}")
        return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def parse_device(device: str | Device) -> Device:
    """Read a device string as records write it (`tools.train.device_name`) or a user gives it.

    "cpu", "cpu:8 cores" (or "cpu:8"), "cuda", "gpu", "cuda:0" (an index: no model) and
    "cuda:NVIDIA H200" are understood, case aside for the kind.

    Raises:
        ValueError: anything else (the message lists the accepted forms).
    """
    if isinstance(device, Device):
        return device
    text = device.strip() if isinstance(device, str) else ""
    kind, _, rest = text.partition(":")
    kind, rest = kind.strip().lower(), rest.strip()
    if kind == "gpu":
        kind = "cuda"
    if kind == "cpu":
        m = re.fullmatch(r"(\d+)(\s*cores?)?", rest, flags=re.IGNORECASE)
        if not rest or (m and int(m.group(1)) > 0):
            return Device("cpu", cores=int(m.group(1)) if m and rest else None)
    elif kind == "cuda":
        return Device("cuda", gpu=None if not rest or rest.isdigit() else rest)
    raise ValueError(
        f"device must be one of {', '.join(DEVICES)} (or 'cpu:N cores', 'cuda:<GPU model>' as records write it), "
        f"but got {device!r}."
    )
