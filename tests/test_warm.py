"""The setup step (agent.warm) and the seed's prebuilt Chroma index (knowledge.seed_index), on a small
seed of real records in temporary folders, stored as the packaged seed is (gzip shards): built
once, fast when built, rebuilt when the seed's shards change (new runs, or new contents of the same
runs), and never copied into a knowledge base whose records are not the seed's."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from agent.warm import is_warm, warm
from knowledge.seed_index import build_seed_index, install_seed_index, prebuilt, seed_key
from knowledge.seed_merge import merge_into_seed
from knowledge.store import KnowledgeBase, open_default, read_seed, write_seed_shards

SMALL = 60


@pytest.fixture
def seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A seed folder of 60 real records in gzip shards, and a cache folder of this test's own."""
    monkeypatch.setenv("METALLMIX_CACHE", str(tmp_path / "cache"))
    ok = [r for r in read_seed() if r.outcome.status == "ok"]
    folder = tmp_path / "seed"
    write_seed_shards(random.Random(0).sample(ok, SMALL), folder, max_records_per_shard=25)
    return folder


def _grow(seed: Path) -> None:
    """One more real record in the seed, added as a sweep's runs are (knowledge.seed_merge)."""
    known = {r.id for r in read_seed(seed)}
    extra = next(r for r in read_seed() if r.id not in known)
    runs = seed.parent / "sweep-records.jsonl"
    runs.write_text(extra.model_dump_json() + "\n")
    assert len(merge_into_seed([runs], seed).added) == 1


def test_the_seed_index_is_built_once_and_copied_into_a_new_knowledge_base(seed: Path, tmp_path: Path) -> None:
    folder, built = build_seed_index(seed)
    assert built and prebuilt(seed) == folder
    assert build_seed_index(seed) == (folder, False)  # idempotent

    kb = open_default(tmp_path / "kb", seed_dir=seed)
    assert install_seed_index(kb, seed) and (kb.root / "chroma").is_dir()
    assert not install_seed_index(kb, seed)  # an index that is there is kept
    hits = kb.search("dermoscopy skin lesions, 7 classes", k=5)
    reference = KnowledgeBase(folder).search("dermoscopy skin lesions, 7 classes", k=5)
    assert [(r.id, round(d, 5)) for r, d in hits] == [(r.id, round(d, 5)) for r, d in reference]
    assert kb.collection().count() == SMALL


def test_a_changed_seed_gets_a_new_index_and_never_the_old_one(seed: Path, tmp_path: Path) -> None:
    old, _ = build_seed_index(seed)
    old_key = seed_key(seed)
    _grow(seed)
    assert seed_key(seed) != old_key and prebuilt(seed) is None

    kb = open_default(tmp_path / "kb", seed_dir=seed)  # filled from the new seed: the old index does not fit it
    assert not install_seed_index(kb, seed) and not (kb.root / "chroma").exists()
    new, built = build_seed_index(seed)
    assert built and new != old and not old.exists()  # the old seed's index is pruned
    assert install_seed_index(kb, seed) and kb.collection().count() == SMALL + 1


def test_new_contents_of_the_same_runs_give_a_new_key(seed: Path) -> None:
    """A backfill rewrites every shard with the same ids and run keys: the prebuilt index must not hold."""
    build_seed_index(seed)
    old_key = seed_key(seed)
    records = read_seed(seed)
    note = records[-1].provenance.model_copy(update={"notes": "backfilled"})
    before = [p.read_bytes() for p in sorted(seed.glob("*.gz"))]
    after = write_seed_shards(records[:-1] + [records[-1].model_copy(update={"provenance": note})], seed,
                              max_records_per_shard=25)
    assert [p.read_bytes() == old for p, old in zip(after, before, strict=True)] == [True, True, False]
    assert [r.id for r in read_seed(seed)] == [r.id for r in records]
    assert seed_key(seed) != old_key and prebuilt(seed) is None


def test_a_knowledge_base_that_differs_from_the_seed_keeps_indexing_its_own(seed: Path, tmp_path: Path) -> None:
    build_seed_index(seed)
    kb = open_default(tmp_path / "kb", seed_dir=seed, index=False)
    extra = next(r for r in read_seed() if kb.get(r.id) is None)
    kb.append(extra)
    assert not install_seed_index(kb, seed)


def test_warm_is_idempotent_fast_when_built_and_redone_when_the_seed_changes(seed: Path, tmp_path: Path) -> None:
    # (the LLM's weights are left out: 1.1 GB assembled into this test's own cache folder is no test of warm)
    kb_dir = str(tmp_path / "kb")
    first = warm(kb_dir, seed_dir=seed, llm_weights=False)
    assert not first["already"] and first["seed_index"]["built"] and first["kb"]["index_copied"]
    assert first["kb"]["records"] == SMALL and first["kb"]["synced"] == {"added": 0, "removed": 0, "total": SMALL}
    assert is_warm(kb_dir, seed_dir=seed, llm_weights=False)

    start = time.perf_counter()
    assert warm(kb_dir, seed_dir=seed, llm_weights=False) == {"already": True}
    assert time.perf_counter() - start < 2.0  # no Chroma, torch or XGBoost import on this path

    _grow(seed)
    assert not is_warm(kb_dir, seed_dir=seed, llm_weights=False)
    again = warm(kb_dir, seed_dir=seed, llm_weights=False)
    # A new seed index; the existing knowledge base keeps its records, takes the seed's new run
    # (knowledge.store's top-up) and syncs its own index.
    assert again["seed_index"]["built"] and not again["kb"]["index_copied"] and again["kb"]["records"] == SMALL + 1
    assert again["kb"]["synced"] == {"added": 1, "removed": 0, "total": SMALL + 1}
    assert is_warm(kb_dir, seed_dir=seed, llm_weights=False)


def test_the_keyed_code_is_every_module_the_meta_model_imports() -> None:
    """A module split off the meta-model (or one it starts importing) is keyed without a list to edit:
    every tools/ and knowledge/ module a fresh `import tools.metamodel` loads is in `keyed_code`."""
    import subprocess
    import sys

    from agent.warm import REPO, keyed_code

    probe = ("import sys, tools.metamodel; print('\\n'.join(sorted(getattr(m, '__file__', None) or '' "
             "for n, m in sys.modules.items() if n.split('.')[0] in ('tools', 'knowledge'))))")
    files = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True).stdout
    loaded = {str(Path(f).resolve().relative_to(REPO)) for f in files.split() if f}
    keyed = keyed_code()
    assert {"tools/metamodel.py", "tools/neighbour_levels.py", "tools/novelty.py"} <= set(keyed)
    assert loaded <= set(keyed), f"loaded by the meta-model but not keyed: {sorted(loaded - set(keyed))}"
    assert len(keyed) == len(set(keyed))


def test_the_keyed_code_follows_imports_not_deferred_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.warm as W

    files = {
        "tools/__init__.py": "",
        "tools/metamodel.py": "from tools.fit import x\nfrom . import intervals\n\ndef f():\n    from tools.train import y\n",
        "tools/fit.py": "import numpy\nfrom knowledge.space import B\n",
        "tools/intervals.py": "",
        "tools/train.py": "",
        "knowledge/__init__.py": "",
        "knowledge/space.py": "",
        **{rel: "" for rel in W.KEYED_CODE},
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(W, "REPO", tmp_path)

    assert W.keyed_code() == [*W.KEYED_CODE, "knowledge/__init__.py", "knowledge/space.py", "tools/__init__.py",
                              "tools/fit.py", "tools/intervals.py", "tools/metamodel.py"]
