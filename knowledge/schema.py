"""The experiment record: one training run, validated.

A record carries everything the meta-model and the LLM need and nothing they must not
trust blindly: the task's meta-features, the exact configuration that ran (with where its
weights came from), the measured outcome, and where the numbers come from.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from knowledge.space import CHOICES, RANGES, check_choice, check_combination

SCHEMA_VERSION = 1

Status = Literal["ok", "diverged", "failed", "cancelled"]
Source = Literal["sweep", "user", "literature"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, data: Any) -> Any:
        """NaN and infinity have no JSON: pydantic would write them as null, and a required
        field read back as null makes the whole JSONL unreadable. An optional field takes
        None (a diverged run's NaN loss); a required one refuses them, with the rule."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            value = out.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                if type(None) not in get_args(field.annotation):
                    raise ValueError(f"{name} must be a finite number, but got {value!r}.")
                out[name] = None
        return out


class MetaFeatures(_Strict):
    """MetaLLMiX's task meta-features, plus split sizes and task type.

    Class statistics are computed on all splits together, so they describe the dataset,
    not one arbitrary split.
    """

    n_instances: int = Field(ge=2, description="Images in all splits together.")
    n_classes: int = Field(ge=2)
    imbalance_ratio: float = Field(ge=1.0, description="Largest class size / smallest class size.")
    class_entropy: float = Field(
        ge=0.0, le=1.0, description="Shannon entropy of the class distribution / log(n_classes)."
    )
    resolution: int = Field(ge=1, description="Image side in pixels (the smaller side if not square).")
    channels: int = Field(ge=1, le=3, description="1 (grey) or 3 (RGB).")
    class_size_mean: float = Field(ge=0)
    class_size_std: float = Field(ge=0)
    class_size_min: int = Field(ge=0)
    class_size_max: int = Field(ge=0)
    modality: str = Field(min_length=1, max_length=64)
    body_part: str | None = Field(default=None, max_length=64)
    task_type: Literal["binary", "multiclass"]
    split_sizes: dict[str, int] = Field(default_factory=dict)
    probe_accuracy: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Validation accuracy of a linear probe on pretrained features (tools.probe): how hard the "
                    "classes are to tell apart. None for a task described only in words.")

    @field_validator("modality")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @model_validator(mode="after")
    def _consistent(self) -> MetaFeatures:
        expected = "binary" if self.n_classes == 2 else "multiclass"
        if self.task_type != expected:
            raise ValueError(f"task_type must be {expected!r} for {self.n_classes} classes, but got {self.task_type!r}.")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), but got {self.channels}.")
        if self.class_size_min > self.class_size_max:
            raise ValueError("class_size_min must be <= class_size_max.")
        return self


class DatasetInfo(_Strict):
    """Which data a run used: a name for people, a fingerprint for machines."""

    name: str = Field(min_length=1, max_length=128)
    fingerprint: str = Field(min_length=8, max_length=64, description="sha256 prefix of the arrays.")
    meta: MetaFeatures
    class_names: list[str] = Field(default_factory=list)


class TrainConfig(_Strict):
    """One point of the search space (see knowledge.space for the rules)."""

    backbone: str
    mode: Literal["frozen", "finetune", "scratch"]
    input_size: int = 64
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 10
    weight_decay: float = 0.0
    dropout: float = 0.0
    scheduler: Literal["constant", "cosine", "step", "warmup_cosine"] = "cosine"
    augmentation: Literal["none", "flip", "light", "strong"] = "none"
    label_smoothing: float = 0.0
    freeze: float = Field(
        default=0.0,
        description="finetune mode: share of the pretrained backbone's blocks kept frozen from the input side (0 = all train).",
    )

    @model_validator(mode="before")
    @classmethod
    def _check_space(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in CHOICES:
                if name in data:
                    check_choice(name, data[name])
            for name, rng in RANGES.items():
                if name in data:
                    rng.check(name, data[name])
        return data

    @model_validator(mode="after")
    def _check_combination(self) -> TrainConfig:
        check_combination(self.backbone, self.mode, self.augmentation, self.freeze)
        return self

    def key(self) -> str:
        """A stable short hash of the configuration (same config -> same key).

        `freeze` joined the space later: at its default it is left out, so every config that
        existed before keeps its key (and every recorded run key stays valid).
        """
        data = self.model_dump()
        if not data["freeze"]:
            data.pop("freeze")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class EpochMetrics(_Strict):
    epoch: int = Field(ge=1)
    train_loss: float | None
    val_loss: float | None
    val_accuracy: float | None = Field(default=None, ge=0, le=1)


class Outcome(_Strict):
    """What the run measured. Metrics are None when the run never produced them."""

    status: Status
    val_accuracy: float | None = Field(default=None, ge=0, le=1)
    val_auc: float | None = Field(default=None, ge=0, le=1)
    val_f1: float | None = Field(default=None, ge=0, le=1)
    val_loss: float | None = None
    test_accuracy: float | None = Field(default=None, ge=0, le=1)
    test_auc: float | None = Field(default=None, ge=0, le=1)
    test_f1: float | None = Field(default=None, ge=0, le=1)
    best_epoch: int | None = Field(default=None, ge=1)
    epochs_run: int = Field(default=0, ge=0)
    train_seconds: float = Field(ge=0, description="Wall time of the training loop incl. validation.")
    feature_seconds: float = Field(
        default=0.0, ge=0, description="Frozen mode: measured time to extract the cached features once."
    )
    images_per_second: float | None = Field(default=None, ge=0)
    device: str = Field(min_length=1, max_length=128)
    peak_memory_mb: float | None = Field(default=None, ge=0)
    history: list[EpochMetrics] = Field(default_factory=list)
    error: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _ok_has_metrics(self) -> Outcome:
        if self.status == "ok" and (self.val_accuracy is None or self.test_accuracy is None):
            raise ValueError("a run with status 'ok' must have val_accuracy and test_accuracy.")
        return self

    @property
    def total_seconds(self) -> float:
        return self.train_seconds + self.feature_seconds


class Provenance(_Strict):
    source: Source
    citation: str | None = Field(default=None, max_length=500)
    code_version: str = Field(min_length=1, max_length=64)
    seed: int = Field(ge=0)
    date: datetime
    machine: str = Field(min_length=1, max_length=200)
    notes: str | None = Field(
        default=None, max_length=2000,
        description="Why this run was made, when it was proposed by the agent (e.g. a tuning trial's rationale).",
    )
    runner_revision: int = Field(
        default=1, ge=1,
        description="The revision of the runner that measured it (knowledge.runner_revisions); 1 for records "
                    "from before revisions were kept.",
    )

    @model_validator(mode="after")
    def _literature_cites(self) -> Provenance:
        if self.source == "literature" and not self.citation:
            raise ValueError("a published figure (source='literature') needs its citation.")
        return self


class ExperimentRecord(_Strict):
    """One experiment: dataset + meta-features, config, outcome, provenance."""

    schema_version: int = SCHEMA_VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=8, max_length=64)
    run_key: str = Field(min_length=8, max_length=64, description="Dataset x config x seed x source.")
    dataset: DatasetInfo
    config: TrainConfig
    weights: str = Field(
        min_length=1, max_length=128, description="'none', or where the pretrained weights came from."
    )
    outcome: Outcome
    provenance: Provenance

    @staticmethod
    def make_run_key(fingerprint: str, config: TrainConfig, seed: int, source: str) -> str:
        return hashlib.sha256(f"{fingerprint}|{config.key()}|{seed}|{source}".encode()).hexdigest()[:20]

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"

    def describe(self) -> str:
        """The text embedded for retrieval: what a person would search for."""
        m, c, o = self.dataset.meta, self.config, self.outcome
        body = f" {m.body_part}" if m.body_part else ""
        acc = f"val acc {o.val_accuracy:.3f}, test acc {o.test_accuracy:.3f}" if o.status == "ok" else o.status
        return (
            f"{m.modality}{body} {m.task_type} classification, {m.n_classes} classes, {m.n_instances} images, "
            f"{m.resolution}px {'RGB' if m.channels == 3 else 'grey'}, imbalance {m.imbalance_ratio:.1f}. "
            f"{c.backbone} {c.mode}{f' (first {c.freeze:.0%} frozen)' if c.freeze else ''} "
            f"({'pretrained' if self.pretrained else 'random init'}), {c.optimizer} "
            f"lr {c.learning_rate:g}, batch {c.batch_size}, {c.epochs} epochs, {c.augmentation} augmentation. "
            f"Result: {acc}, {o.total_seconds:.0f} s on {o.device}. Dataset {self.dataset.name}."
        )


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
