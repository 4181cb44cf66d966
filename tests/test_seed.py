"""The committed seed knowledge base holds what issue 2 asks of it, and only measured runs."""

from __future__ import annotations

import math
import tomllib
from collections import defaultdict
from fnmatch import fnmatch
from pathlib import Path

import pytest

from knowledge.store import SEED_DIR, SEED_SHARD_GLOB, read_records, read_seed, seed_files


@pytest.fixture(scope="module")
def records() -> list:
    recs = read_seed(SEED_DIR)
    if not recs:
        pytest.fail("knowledge/seed holds no records (records.jsonl or records-*.jsonl.gz): "
                    "run `metallmix kb sweep --kb-dir knowledge/seed`")
    return recs


def test_the_seed_is_read_whole_from_every_file_and_packaged(records: list) -> None:
    """Every record of every seed file (plain and gzip shards) is in the seed, each once, and
    the package data carries both forms."""
    files = seed_files(SEED_DIR)
    assert files and all(p.name == "records.jsonl" or p.match(SEED_SHARD_GLOB) for p in files)
    ids = {r.id for p in files for r in read_records(p)}
    assert {r.id for r in records} == ids and len(records) == len(ids)
    with (Path(__file__).resolve().parents[1] / "pyproject.toml").open("rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["knowledge"]
    for name in ("records.jsonl", "records-00000.jsonl.gz"):
        assert any(fnmatch(f"seed/{name}", pattern) for pattern in package_data), (name, package_data)


def test_enough_successful_runs_on_every_shared_dataset(records: list, shared_data: Path) -> None:
    ok = [r for r in records if r.outcome.status == "ok"]
    assert len(ok) >= 1500
    names = {p.stem for p in shared_data.glob("*.npz")}
    assert {r.dataset.name for r in ok} == names
    backbones = defaultdict(set)
    modes = defaultdict(set)
    for r in ok:
        backbones[r.dataset.name].add(r.config.backbone)
        modes[r.dataset.name].add(r.config.mode)
    for name in names:
        assert len(backbones[name]) >= 4, (name, backbones[name])
        assert "frozen" in modes[name] and modes[name] & {"finetune", "scratch"}, (name, modes[name])


def test_hyperparameters_are_spread(records: list) -> None:
    ok = [r for r in records if r.outcome.status == "ok"]
    lrs = [math.log10(r.config.learning_rate) for r in ok]
    assert max(lrs) - min(lrs) >= 3  # at least three decades of learning rate
    for field, at_least in (("optimizer", 4), ("batch_size", 4), ("epochs", 6), ("weight_decay", 4), ("dropout", 4),
                            ("scheduler", 4), ("label_smoothing", 3), ("augmentation", 3), ("input_size", 3)):
        assert len({getattr(r.config, field) for r in ok}) >= at_least, field
    accs = [r.outcome.test_accuracy for r in ok]
    assert min(accs) < 0.5 < max(accs)  # poor settings are in there, as in real histories


def test_every_record_is_measured_with_provenance(records: list) -> None:
    ids = set()
    for r in records:
        assert r.provenance.source == "sweep" and r.provenance.code_version not in ("", "unknown")
        assert r.outcome.device and r.outcome.train_seconds > 0
        assert r.id not in ids
        ids.add(r.id)
        if r.config.mode == "frozen":
            assert r.outcome.feature_seconds > 0 and r.weights.startswith("imagenet:")


def test_the_packaged_seed_is_stored_as_shards_and_a_new_knowledge_base_indexes_it(tmp_path: Path) -> None:
    """Issue 14: the seed outgrew a plain file in git; it is committed as gzip shards, loads whole,
    and a knowledge base seeded from it rebuilds its (real) Chroma index."""
    from knowledge.store import SEED_SHARD_RECORDS, open_default
    from tests.reliability import HashEmbedder

    files = seed_files()
    assert files and all(p.match(SEED_SHARD_GLOB) for p in files), files  # no plain records file any more
    counts = [len(read_records(p)) for p in files]
    assert all(n == SEED_SHARD_RECORDS for n in counts[:-1]) and 0 < counts[-1] <= SEED_SHARD_RECORDS
    seed = read_seed()
    assert len(seed) == sum(counts) == len({r.id for r in seed}) == len({r.run_key for r in seed})
    plain_bytes = sum(len(r.model_dump_json()) + 1 for r in seed)
    assert sum(p.stat().st_size for p in files) < plain_bytes / 4  # stored compressed

    kb = open_default(tmp_path / "kb", embedder=HashEmbedder())
    assert [r.id for r in kb.records()] == [r.id for r in seed]
    assert kb.path.stat().st_size == plain_bytes  # the user's knowledge base stays a plain records.jsonl
    assert kb.rebuild_index() == len(seed) and kb.collection().count() == len(seed)
    hits = kb.search(seed[-1].describe(), k=3)
    assert seed[-1].id in {r.id for r, _ in hits}
