"""The probe meta-feature (tools.probe): it measures how separable a real dataset's classes are,
is cached per dataset, reaches the records, and the meta-model uses it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from knowledge.store import read_records, read_seed, write_seed_shards
from tools.backfill import backfill
from tools.datasets import Split, load_dataset
from tools.probe import probe_accuracy


@pytest.fixture(scope="module")
def head_ct(shared_data: Path):  # type: ignore[no-untyped-def]
    return load_dataset(shared_data / "head_ct_hemorrhage.npz")


def test_the_probe_separates_real_classes_and_not_shuffled_ones(head_ct) -> None:  # type: ignore[no-untyped-def]
    real = probe_accuracy(head_ct)
    rng = np.random.default_rng(1)
    shuffled = replace(head_ct, splits={s: Split(sp.images, rng.permutation(sp.labels)) for s, sp in head_ct.splits.items()})
    assert shuffled.fingerprint != head_ct.fingerprint
    chance = probe_accuracy(shuffled)
    assert real is not None and chance is not None
    assert real >= chance + 0.1, (real, chance)
    assert chance <= 0.7  # two balanced classes: a label-free probe sits near 0.5


def test_the_probe_is_cached_per_dataset_and_repeats_exactly(head_ct, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    first = probe_accuracy(head_ct)
    monkeypatch.setattr("tools.probe._measure", lambda ds: pytest.fail("measured again instead of read from the cache"))
    assert probe_accuracy(head_ct) == first


def test_profile_dataset_records_the_probe_and_can_leave_it_out(head_ct) -> None:  # type: ignore[no-untyped-def]
    from tools.datasets import profile_dataset

    assert profile_dataset(head_ct).probe_accuracy == probe_accuracy(head_ct)
    assert profile_dataset(head_ct, probe=False).probe_accuracy is None


@pytest.mark.parametrize("form", ["records file", "sharded seed"])
def test_backfill_sets_the_probe_of_matching_records_only(tmp_path: Path, shared_data: Path, head_ct,  # type: ignore[no-untyped-def]
                                                          form: str) -> None:
    recs = read_seed()
    ours = next(r for r in recs if r.dataset.fingerprint == head_ct.fingerprint)
    other = next(r for r in recs if r.dataset.fingerprint != head_ct.fingerprint)
    bare = [r.model_copy(update={"dataset": r.dataset.model_copy(update={
        "meta": r.dataset.meta.model_copy(update={"probe_accuracy": None})})}) for r in (other, ours, other)]
    bare[2] = bare[2].model_copy(update={"id": "a-third-record", "run_key": "a-third-run"})
    data = tmp_path / "data"
    data.mkdir()
    (data / "head_ct_hemorrhage.npz").symlink_to(shared_data / "head_ct_hemorrhage.npz")
    if form == "records file":
        target = tmp_path / "records.jsonl"
        target.write_text("".join(r.model_dump_json() + "\n" for r in bare))
    else:  # a seed of two shards, as the packaged one is stored
        target = tmp_path / "seed"
        write_seed_shards(bare, target, max_records_per_shard=2)
    assert backfill(target, data) == {head_ct.name: probe_accuracy(head_ct)}
    after = read_records(target) if form == "records file" else read_seed(target)
    assert [r.id for r in after] == [r.id for r in bare]
    assert [r.dataset.meta.probe_accuracy for r in after] == [None, probe_accuracy(head_ct), None]
    if form == "sharded seed":
        assert [p.name for p in target.iterdir()] == ["records-00000.jsonl.gz"]  # shards only, nothing left over


def test_every_seed_record_has_its_probe() -> None:
    recs = read_seed()
    assert all(r.dataset.meta.probe_accuracy is not None for r in recs)
    by_dataset = {(r.dataset.name, r.dataset.meta.probe_accuracy) for r in recs}
    assert len(by_dataset) == len({r.dataset.name for r in recs})  # one probe per dataset


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    from tools.metamodel import MetaModel

    recs = [r for r in read_seed() if r.outcome.status == "ok"]
    return MetaModel.fit(random.Random(0).sample(recs, min(600, len(recs))), seed=0)


def test_the_meta_model_predicts_a_harder_dataset_lower(model) -> None:  # type: ignore[no-untyped-def]
    rec = next(r for r in read_seed() if r.config.mode == "frozen" and r.outcome.status == "ok")
    meta = rec.dataset.meta.model_copy(update={"modality": "never-seen", "n_instances": rec.dataset.meta.n_instances + 3})
    easy, hard = (model.predict(meta.model_copy(update={"probe_accuracy": p}), [rec.config])[0].accuracy
                  for p in (0.95, 0.4))
    assert easy > hard + 0.05


def test_a_task_without_a_probe_leaves_it_open_and_the_interval_spans_it(model) -> None:  # type: ignore[no-untyped-def]
    rec = next(r for r in read_seed() if r.config.mode == "frozen" and r.outcome.status == "ok")
    words_only = rec.dataset.meta.model_copy(update={"probe_accuracy": None, "modality": "never-seen"})
    p = model.predict(words_only, [rec.config])[0]
    assert "probe_accuracy" in p.assumed
    for probe in (0.35, 0.95):
        q = model.predict(words_only.model_copy(update={"probe_accuracy": probe}), [rec.config])[0]
        assert p.low <= q.accuracy <= p.high
    assert "probe_accuracy" in model.explain(words_only, rec.config).assumed


def test_a_split_too_small_to_probe_gives_none(head_ct) -> None:  # type: ignore[no-untyped-def]
    one_class = replace(head_ct, splits={**head_ct.splits, "train": Split(head_ct.splits["train"].images[:3],
                                                                          np.zeros(3, dtype=np.int64))})
    assert probe_accuracy(one_class) is None


def test_backfill_of_a_records_file_that_cannot_be_replaced_keeps_it_and_leaves_no_temporary(
        tmp_path: Path, shared_data: Path, head_ct, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import os

    ours = next(r for r in read_seed() if r.dataset.fingerprint == head_ct.fingerprint)
    bare = ours.model_copy(update={"dataset": ours.dataset.model_copy(update={
        "meta": ours.dataset.meta.model_copy(update={"probe_accuracy": None})})})
    data = tmp_path / "data"
    data.mkdir()
    (data / "head_ct_hemorrhage.npz").symlink_to(shared_data / "head_ct_hemorrhage.npz")
    target = tmp_path / "kb" / "records.jsonl"
    target.parent.mkdir()
    target.write_text(bare.model_dump_json() + "\n")
    before = target.read_bytes()

    def no_rename(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        backfill(target, data)
    assert target.read_bytes() == before and [p.name for p in target.parent.iterdir()] == ["records.jsonl"]
