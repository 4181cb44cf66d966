"""Property and fuzz tests (hypothesis) where a rule must hold for every input:

- the record schema and the search space refuse anything invalid with a ValidationError
  (never a TypeError, never a crash), and whatever they accept round-trips through JSON;
- the knowledge base's JSONL survives any torn tail: the valid records are read, the next
  append trims the tail and the file is whole lines again;
- the task-text reader and the resume/edit readers answer any text with a profile or a
  ValueError that says why;
- the dataset loader answers any arrays (and any bytes) with a dataset that keeps its
  invariants or a DatasetError.

tests/test_schema.py already checks every point inside and outside the search space's
ranges; these add malformed types, nested junk and the other layers.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent import judge as J
from agent.intents import parse_changes
from agent.nodes import _read_answer
from knowledge.schema import ExperimentRecord, MetaFeatures, TrainConfig
from knowledge.space import BACKBONES, CHOICES, RANGES
from knowledge.store import KnowledgeBase, KnowledgeBaseError, read_records
from tests.reliability import count, seed_sample
from tools.datasets import DatasetError, load_dataset, profile_dataset
from tools.scope import classify_scope
from tools.task_text import parse_task

# No example database: nothing is written into the repository; every run draws afresh (seeded by hypothesis).
FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
CONFIG_KEYS = ["backbone", "mode", *RANGES, "optimizer", "scheduler", "augmentation"]


# ------------------------------------------------------------------------------- schema
@FAST
@given(data=st.dictionaries(st.sampled_from(CONFIG_KEYS), JSON | st.sampled_from(sorted(BACKBONES)), max_size=8))
def test_train_config_accepts_or_refuses_any_json_cleanly(data: dict[str, Any]) -> None:
    count("property examples (schema and space)")
    try:
        config = TrainConfig.model_validate({"backbone": "efficientnet_lite0", "mode": "finetune", **data})
    except ValidationError as exc:
        assert exc.errors() and all(e["msg"] for e in exc.errors())
        return
    for name, rng in RANGES.items():
        value = getattr(config, name)
        assert rng.low <= value <= rng.high and math.isfinite(value)
    assert TrainConfig.model_validate_json(config.model_dump_json()) == config


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


@FAST
@given(which=st.integers(0, 10**6), leaf=st.integers(0, 10**6), value=JSON)
def test_a_record_with_any_field_replaced_validates_or_says_why(which: int, leaf: int, value: Any) -> None:
    count("property examples (schema and space)")
    records = seed_sample(40)
    data = json.loads(records[which % len(records)].model_dump_json())
    paths = _leaves(data)
    path = paths[leaf % len(paths)]
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        rec = ExperimentRecord.model_validate(data)
    except ValidationError:
        return
    assert ExperimentRecord.model_validate_json(rec.model_dump_json()) == rec
    rec.describe()  # the text the index embeds never fails either


@FAST
@given(data=st.dictionaries(st.sampled_from(list(MetaFeatures.model_fields)), JSON, max_size=14))
def test_meta_features_accept_or_refuse_any_json_cleanly(data: dict[str, Any]) -> None:
    count("property examples (schema and space)")
    try:
        meta = MetaFeatures.model_validate(data)
    except ValidationError:
        return
    assert meta.n_classes >= 2 and meta.channels in (1, 3) and meta.class_size_min <= meta.class_size_max


@FAST
@given(data=st.dictionaries(st.sampled_from([*CONFIG_KEYS, "x"]), JSON, max_size=8))
def test_an_edit_or_a_draft_from_anyone_is_checked_never_crashes(data: dict[str, Any]) -> None:
    count("property examples (schema and space)")
    config, problems = J.validate_config(data, backbones=None, modes=None, weights_available=lambda b: True)
    assert config is not None or problems
    draft, error = J.parse_draft(data)
    assert (draft is None) == (error is not None)
    action, fields, problem = _read_answer(data)
    assert problem or action in ("approve", "edit", "reject")
    _read_answer({"action": "edit", "config": data})


# ------------------------------------------------------------------------ knowledge base
@settings(max_examples=60, deadline=None, database=None)
@given(tail=st.binary(max_size=300).filter(lambda b: b"\n" not in b))
def test_any_torn_tail_is_skipped_then_trimmed(tail: bytes) -> None:
    count("property examples (knowledge base)")
    records = seed_sample(40)
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(tmp, index=False)
        kb.append(list(records[:3]))
        with kb.path.open("ab") as f:
            f.write(tail)  # what a writer killed mid-line leaves
        assume(tail.strip())
        try:
            assert [r.id for r in read_records(kb.path)] == [r.id for r in records[:3]]
        except KnowledgeBaseError:  # only a tail that is itself a whole valid record could do this
            pytest.fail("a torn tail made the knowledge base unreadable")
        assert kb.append(records[3]) == 1
        data = kb.path.read_bytes()
        assert data.endswith(b"\n") and [json.loads(x)["id"] for x in data.splitlines()] == [
            r.id for r in records[:4]]


# ----------------------------------------------------------------------------- text input
def _profile_or_a_clear_error(text: str) -> Any:
    """The reader's profile of `text`, or None when it refused it with a message (a ValueError that says why)."""
    count("property examples (text input)")
    try:
        return parse_task(text)
    except ValueError as exc:
        assert str(exc)
        return None


@settings(max_examples=300, deadline=None, database=None)
@given(text=st.text(max_size=200) | st.from_regex(
    r"(chest x-ray|mri|dermoscopy|ct)?,? ?-?[0-9]{1,400}([.,][0-9]{1,5})?(e[0-9]{1,4})? ?(k|m)? ?"
    r"(classes|images|px|minutes|hours|s|seconds|parsecs|:[0-9]{1,30} ratio)", fullmatch=True))
def test_any_task_text_gives_a_profile_or_a_value_error(text: str) -> None:
    if (profile := _profile_or_a_clear_error(text)) is None:
        return
    meta = profile.to_meta()  # every profile the reader gives becomes valid meta-features
    assert 2 <= meta.n_classes <= meta.n_instances
    assert profile.budget_seconds is None or (math.isfinite(profile.budget_seconds) and profile.budget_seconds > 0)


# Pieces of task texts in Chinese, Japanese and Korean (tools.task_gloss), joined without spaces as those
# scripts write them, with digits, numerals in characters and full-width punctuation between.
CJK_PIECES = st.sampled_from([
    "胸部", "X光片", "肺炎", "分类", "两类", "类", "张", "共", "约", "1.2万", "万", "三千五百", "十二", "一", "クラス", "枚",
    "分類", "画像", "개", "클래스", "장", "천", "분", "以内", "不超过", "分钟", "小时", "显卡", "只有CPU", "参数量", "5M",
    "最大", "精度を最大化", "担心过拟合", "不要用", "用", "ResNet18", "和", "哪个更好", "皮肤镜", "病理", "、", "，", "。",
    "：", "（", "）", "～", "0", "7", "30", "5000", "-",
])


@settings(max_examples=300, deadline=None, database=None)
@given(text=st.lists(CJK_PIECES | st.integers(0, 99999).map(str), min_size=1, max_size=12).map("".join))
def test_any_cjk_task_text_is_read_with_its_fields_in_the_users_own_words(text: str) -> None:
    if (profile := _profile_or_a_clear_error(text)) is None:
        return
    assert profile.text == text
    for field, words in profile.said.items():  # the gloss's spans map back onto the text as written
        assert text[slice(*profile.spans[field])] == words, (field, words, profile.spans[field])
    meta = profile.to_meta()
    assert 2 <= meta.n_classes <= meta.n_instances
    scope = classify_scope(text, profile)
    assert scope.task_text == text and all(w in text for w in scope.words)


# Pieces of real replies, so the property also sees texts that set fields (random text rarely does).
REPLY_PIECES = st.sampled_from([
    "lr=0.01", "learning rate 1e-3", "learning rate to 100", "batch size 32", "bs 4096", "20 epochs", "-5 epochs",
    "use sgd", "adamw", "resnet18", "efficientnet_lite2", "fine-tune", "frozen", "from scratch", "freeze 50%",
    "no augmentation", "strong augmentation", "cosine schedule", "dropout 0.3", "weight decay 0.5", "yes", "no",
    "why?", "instead of", "and", ",",
])


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.text(max_size=200) | st.lists(REPLY_PIECES | st.text(max_size=8), max_size=6).map(" ".join))
def test_any_chat_reply_is_read_without_crashing(text: str) -> None:
    count("property examples (text input)")
    changes = parse_changes(text)
    # Only configuration fields, each with a value of its kind: a name from the search space or a number.
    assert set(changes) <= set(TrainConfig.model_fields), changes
    for name, value in changes.items():
        if name in CHOICES:
            assert value in CHOICES[name], (name, value)
        else:
            assert name in RANGES and isinstance(value, int | float) and not isinstance(value, bool), (name, value)
    data = {"backbone": "efficientnet_lite0", "mode": "finetune", **changes}
    config, problems = J.validate_config(data, backbones=None, modes=None, weights_available=lambda b: True)
    assert all(isinstance(p, str) and p for p in problems)
    if not problems:  # a valid reply is taken as read
        assert config is not None and all(getattr(config, k) == v for k, v in data.items()), (data, config)
    # A text answer to an approval is approve, reject, or unreadable with a way out; never an edit.
    action, fields, problem = _read_answer(text)
    assert action in ("approve", "reject", "") and fields == {}
    assert (problem is None) == bool(action) and (problem is None or "approve" in problem)


# --------------------------------------------------------------------------- the loader
DTYPES = st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.float64, np.bool_, np.complex64])


@st.composite
def npz_arrays(draw: st.DrawFn) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for split in draw(st.sets(st.sampled_from(["train", "val", "test"]), max_size=3)) | {"train"}:
        n = draw(st.integers(0, 40))
        shape = draw(st.sampled_from([(n, 8, 8), (n, 8, 8, 3), (n, 8, 8, 1), (n, 8), (n, 6, 8, 4), (n, 8, 8, 2)]))
        dtype = draw(DTYPES)
        scale = draw(st.sampled_from([1.0, 255.0, 1000.0, -1.0]))
        images = (np.random.default_rng(n).random(shape) * scale).astype(dtype)
        if draw(st.booleans()) and images.size and np.issubdtype(images.dtype, np.floating):
            images.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        k = draw(st.integers(1, 5))
        labels = np.arange(draw(st.sampled_from([n, max(0, n - 1), n + 1]))) % k + draw(st.integers(-1, 1))
        labels = labels.astype(draw(st.sampled_from([np.int64, np.float32, np.uint8])))
        if draw(st.booleans()):
            labels = labels.reshape(-1, 1)
        if draw(st.integers(0, 9)) > 0:  # now and then a split without its labels
            arrays[f"{split}_labels"] = labels
        arrays[f"{split}_images"] = images
    if draw(st.booleans()):
        arrays["modality"] = np.array(draw(st.sampled_from(["ct", "", "x" * 100])))
    return arrays


def _check_dataset(path: Path) -> None:
    try:
        ds = load_dataset(path)
    except DatasetError as exc:
        assert str(exc)
        return
    labels = np.concatenate([ds.splits[s].labels for s in ("train", "val", "test")])
    assert set(np.unique(labels).tolist()) == set(range(ds.n_classes)) and ds.n_classes >= 2
    for s in ("train", "val", "test"):
        split = ds.splits[s]
        assert len(split) > 0 and split.images.dtype == np.uint8 and len(split.images) == len(split.labels)
    meta = profile_dataset(ds)
    assert meta.n_instances == len(labels) and meta.class_size_min >= 1


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays=npz_arrays())
def test_any_arrays_load_as_a_valid_dataset_or_a_dataset_error(arrays: dict[str, np.ndarray]) -> None:
    count("property examples (dataset loader)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.npz"
        np.savez(path, **arrays)
        _check_dataset(path)


def _intact_npz() -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez_compressed(buf, train_images=rng.integers(0, 255, (20, 8, 8), dtype=np.uint8),
                        train_labels=np.arange(20) % 2)
    return buf.getvalue()


INTACT_NPZ = _intact_npz()


def test_the_intact_npz_of_the_damage_property_loads(tmp_path: Path) -> None:
    # Were it unreadable, "every damaged copy is a DatasetError" would hold trivially.
    path = tmp_path / "intact.npz"
    path.write_bytes(INTACT_NPZ)
    _check_dataset(path)
    assert load_dataset(path).n_classes == 2


@settings(max_examples=80, deadline=None, database=None)
@given(cut=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64), where=st.integers(0, 10**6))
def test_any_damaged_npz_is_a_dataset_error_or_its_data_unchanged(cut: float, junk: bytes, where: int) -> None:
    count("property examples (dataset loader)")
    data = bytearray(INTACT_NPZ)
    data = data[: max(1, int(len(data) * cut))] if cut < 1 else data
    at = where % len(data)
    data[at : at + len(junk)] = junk
    assume(bytes(data) != INTACT_NPZ)  # damaged for real
    with tempfile.TemporaryDirectory() as tmp:
        intact, damaged = Path(tmp) / "intact.npz", Path(tmp) / "damaged.npz"
        intact.write_bytes(INTACT_NPZ)
        damaged.write_bytes(bytes(data))
        try:
            ds = load_dataset(damaged)
        except DatasetError as exc:
            assert str(exc)
            return
        # Damage the zip format never reads (a timestamp, say) may leave the data whole; anything
        # else must be refused, never loaded as other images or labels.
        reference = load_dataset(intact)
        assert ds.n_classes == reference.n_classes
        for split in ("train", "val", "test"):
            assert np.array_equal(ds.splits[split].images, reference.splits[split].images)
            assert np.array_equal(ds.splits[split].labels, reference.splits[split].labels)
