"""The knowledge base: durable appends, torn tails, Chroma rebuild/sync, import/export."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from knowledge.schema import ExperimentRecord
from knowledge.store import (
    SEED_STAMP,
    KnowledgeBase,
    KnowledgeBaseError,
    open_default,
    read_records,
    read_seed,
    seed_files,
    write_seed_shards,
)
from tests.reliability import HashEmbedder
from tests.test_schema import record


def make(n: int, status: str = "ok") -> list:
    out = []
    for i in range(n):
        r = record() if status == "ok" else record(status=status, val_accuracy=None, test_accuracy=None)
        out.append(r.model_copy(update={"id": f"rec{i:05d}{status}", "run_key": f"key{i:05d}{status}"}))
    return out


def test_append_is_idempotent_by_id(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path, index=False)
    assert kb.append(make(3)) == 3
    assert kb.append(make(4)) == 1  # three ids already there
    assert [r.id for r in kb.records()] == [f"rec{i:05d}ok" for i in range(4)]
    assert kb.stats()["statuses"] == {"ok": 4}


def test_torn_tail_is_ignored_then_trimmed(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path, index=False)
    kb.append(make(2))
    full = kb.path.read_bytes()
    line = make(3)[2].model_dump_json().encode()
    kb.path.write_bytes(full + line[: len(line) // 2])  # a writer killed mid-line
    assert len(read_records(kb.path)) == 2
    kb.append(make(3)[2:])
    lines = kb.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(x) for x in lines[:-1])
    assert len(kb.records()) == 3


def test_sync_cuts_a_torn_tail_so_the_file_ends_whole_before_any_new_append(tmp_path: Path) -> None:
    """A killed writer's torn line used to stay until the next append; the sync a search or the
    app's warm-up runs now cuts it (under the writer lock), keeping every whole record."""
    kb = KnowledgeBase(tmp_path, embedder=HashEmbedder())
    kb.append(make(2))
    line = make(3)[2].model_dump_json().encode()
    kb.path.write_bytes(kb.path.read_bytes() + line[:40])
    assert kb.sync_index()["total"] == 2
    data = kb.path.read_bytes()
    assert data.endswith(b"\n") and [json.loads(x)["id"] for x in data.splitlines()] == ["rec00000ok", "rec00001ok"]
    assert set(kb.collection().get(include=[])["ids"]) == {"rec00000ok", "rec00001ok"}
    assert kb.sync_index() == {"added": 0, "removed": 0, "total": 2}  # a whole file is left alone


def test_a_bad_line_in_the_middle_is_an_error_naming_the_line(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path, index=False)
    kb.append(make(1))
    with kb.path.open("a") as f:
        f.write('{"not": "a record"}\n')
    with open(kb.path, "a") as f:
        f.write(make(2)[1].model_dump_json() + "\n")
    with pytest.raises(KnowledgeBaseError, match=r"records.jsonl:2 is not a valid experiment record"):
        read_records(kb.path)


def test_two_writers_on_one_folder_append_alternately_without_duplicates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each KnowledgeBase keeps the ids it has read and, under the file lock, reads only the bytes
    appended since (the other writer's), not the whole file on every append."""
    import knowledge.record_files as record_files

    a, b = KnowledgeBase(tmp_path, index=False), KnowledgeBase(tmp_path, index=False)
    recs = make(40)
    parsed: list[int] = []
    parse = record_files.parse_lines
    monkeypatch.setattr(record_files, "parse_lines", lambda path, data, *args, **kw: parsed.append(len(data)) or parse(path, data, *args, **kw))
    assert a.append(recs[:30]) == 30
    for i in range(30, 40, 2):
        assert b.append(recs[i - 1 : i + 1]) == 1, "b sees a's last record"
        assert a.append(recs[i : i + 2]) == 1, "a sees b's last record"
    lines = a.path.read_bytes().splitlines(keepends=True)
    assert parsed[0] == sum(map(len, lines[:30])), "b's first append reads the file once"
    assert parsed[1:] == [len(line) for line in lines[30:-1]], "then each reads only the other's new line"
    ids = [r.id for r in read_records(a.path)]
    assert ids == [r.id for r in recs] and len(set(ids)) == len(ids)
    assert [r.id for r in b.records()] == ids and len(a) == 40


def test_an_appender_rereads_a_replaced_file_and_names_a_bad_line_it_did_not_write(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path, index=False)
    kb.append(make(3))
    other = tmp_path / "other.jsonl"
    other.write_text(make(5)[4].model_dump_json() + "\n")
    os.replace(other, kb.path)  # another file now (e.g. restored from an export)
    assert kb.append(make(5)) == 4 and [r.id for r in kb.records()][0] == "rec00004ok"
    with kb.path.open("a") as f:
        f.write('{"not": "a record"}\n')
    with pytest.raises(KnowledgeBaseError, match=r"records.jsonl:6 is not a valid experiment record"):
        kb.append(make(7)[6:])


def test_export_import_round_trip_jsonl_and_csv(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path / "a", index=False)
    kb.append(make(3) + make(2, status="diverged"))
    for suffix in ("jsonl", "csv"):
        out = tmp_path / f"export.{suffix}"
        assert kb.export(out) == 5
        other = KnowledgeBase(tmp_path / f"b-{suffix}", index=False)
        assert other.import_file(out) == 5
        assert [r.model_dump() for r in other.records()] == [r.model_dump() for r in kb.records()]


def test_import_validates_everything_before_writing(tmp_path: Path) -> None:
    good = make(2)
    bad = tmp_path / "in.jsonl"
    bad.write_text(good[0].model_dump_json() + "\n" + '{"id": "x"}\n' + good[1].model_dump_json() + "\n")
    kb = KnowledgeBase(tmp_path / "kb", index=False)
    with pytest.raises(KnowledgeBaseError, match="in.jsonl:2"):
        kb.import_file(bad)
    assert kb.records() == []
    (tmp_path / "in.txt").write_text("x")
    with pytest.raises(KnowledgeBaseError, match="must be .jsonl or .csv"):
        kb.import_file(tmp_path / "in.txt")
    with pytest.raises(KnowledgeBaseError, match="no such file"):
        kb.import_file(tmp_path / "missing.jsonl")


def test_open_default_seeds_from_packaged_records(tmp_path: Path) -> None:
    kb = open_default(tmp_path / "home", index=False)
    seed = read_seed()
    assert seed and [r.model_dump() for r in kb.records()] == [r.model_dump() for r in seed]
    assert seed_files() and all(p.name.endswith(".jsonl.gz") for p in seed_files())  # the seed ships as shards
    assert sorted(p.name for p in kb.root.iterdir()) == ["records.jsonl", SEED_STAMP]  # no temporary file left


@pytest.fixture(scope="module")
def seed50() -> list[ExperimentRecord]:
    """Fifty real seed records: a fast stand-in for the packaged seed."""
    recs = read_seed()[:50]
    assert len(recs) == 50
    return recs


def dumps(records: list[ExperimentRecord]) -> list[dict]:
    return [r.model_dump() for r in records]


def test_seed_shards_round_trip_in_order_and_byte_for_byte(tmp_path: Path, seed50: list[ExperimentRecord]) -> None:
    shards = write_seed_shards(seed50, tmp_path, max_records_per_shard=16)
    assert [p.name for p in shards] == [f"records-{i:05d}.jsonl.gz" for i in range(4)]  # 16+16+16+2
    assert seed_files(tmp_path) == shards
    assert dumps(read_seed(tmp_path)) == dumps(seed50)
    assert [len(read_records(p)) for p in shards] == [16, 16, 16, 2]
    first = [p.read_bytes() for p in shards]
    assert all(b[4:8] == b"\0\0\0\0" for b in first)  # gzip mtime 0: the bytes depend on the records alone
    # Rewriting the same records changes no byte; adding records leaves the full shards as they were.
    assert [p.read_bytes() for p in write_seed_shards(seed50, tmp_path, max_records_per_shard=16)] == first
    more = write_seed_shards(seed50 + make(20), tmp_path, max_records_per_shard=16)
    assert [p.read_bytes() for p in more[:3]] == first[:3] and len(more) == 5
    # Fewer records: the shards of the longer write are removed, not read twice.
    fewer = write_seed_shards(seed50[:10], tmp_path, max_records_per_shard=16)
    assert seed_files(tmp_path) == fewer and dumps(read_seed(tmp_path)) == dumps(seed50[:10])
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match=r"max_records_per_shard must be an int >= 1, but got 0"):
        write_seed_shards(seed50, tmp_path, max_records_per_shard=0)


def layout(folder: Path, form: str, recs: list[ExperimentRecord]) -> list[ExperimentRecord]:
    """Write `recs` into a seed folder in one form; returns the records open_default must give, in order."""
    folder.mkdir()
    if form == "plain":
        (folder / "records.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in recs))
    elif form == "shards":
        write_seed_shards(recs, folder, max_records_per_shard=12)
    else:  # both: the plain file's first 30, shards with 20..49 (ten overlap) and a rerun of a plain run key
        (folder / "records.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in recs[:30]))
        rerun = recs[0].model_copy(update={"id": "rerun-of-the-first-record"})
        write_seed_shards(recs[20:40] + [rerun] + recs[40:], folder, max_records_per_shard=7)
    return recs


@pytest.mark.parametrize("form", ["plain", "shards", "both"])
def test_a_seed_in_either_form_opens_once_and_rebuilds_the_index(
        tmp_path: Path, seed50: list[ExperimentRecord], form: str) -> None:
    expected = layout(tmp_path / "seed", form, seed50)
    kb = open_default(tmp_path / "kb", seed_dir=tmp_path / "seed", embedder=HashEmbedder())
    assert dumps(kb.records()) == dumps(expected)  # every record exactly once, plain first, then shards by name
    assert len({r.id for r in kb.records()}) == len({r.run_key for r in kb.records()}) == 50
    assert kb.rebuild_index() == 50
    assert kb.collection().count() == 50
    hits = kb.search(seed50[7].describe(), k=5)
    assert len(hits) == 5 and {r.id for r, _ in hits} <= {r.id for r in expected}
    # An existing knowledge base is never reseeded.
    kb.path.write_text(seed50[0].model_dump_json() + "\n")
    assert len(open_default(tmp_path / "kb", seed_dir=tmp_path / "seed", index=False)) == 1


def test_a_newer_seed_tops_up_an_existing_knowledge_base_once(tmp_path: Path, seed50: list[ExperimentRecord]) -> None:
    """A user who upgrades gets the runs the new version's seed adds, once, next to their own runs;
    a seed run they removed stays removed, and the index catches up on the next search."""
    seed = tmp_path / "seed"
    write_seed_shards(seed50[:30], seed, max_records_per_shard=12)
    kb = open_default(tmp_path / "kb", seed_dir=seed, embedder=HashEmbedder())
    assert kb.search(seed50[3].describe(), k=3) and kb.collection().count() == 30
    own = make(2)
    kb.append(own)
    kept = [r for r in kb.records() if r.id != seed50[5].id]  # the user removes one seed run
    kb.path.write_text("".join(r.model_dump_json() + "\n" for r in kept))
    assert len(open_default(tmp_path / "kb", seed_dir=seed, index=False)) == 31  # same seed: nothing added

    write_seed_shards(seed50, seed, max_records_per_shard=12)  # the new version's seed: 20 more runs
    kb = open_default(tmp_path / "kb", seed_dir=seed, embedder=HashEmbedder())
    ids = [r.id for r in kb.records()]
    assert len(ids) == len(set(ids)) == 51
    assert set(ids) == {r.id for r in seed50} - {seed50[5].id} | {r.id for r in own}
    assert ids[:31] == [r.id for r in kept]  # appended after what was there
    kb.search(seed50[40].describe(), k=3)
    assert kb.collection().count() == 51
    assert len(open_default(tmp_path / "kb", seed_dir=seed, index=False)) == 51  # once

    # A knowledge base from before stamps that holds the seed's first file whole takes every seed run
    # it lacks; one with fewer of the seed's runs was not seeded from it.
    (tmp_path / "kb" / SEED_STAMP).unlink()
    kb.path.write_text("".join(r.model_dump_json() + "\n" for r in own + seed50[:12]))
    assert len(open_default(tmp_path / "kb", seed_dir=seed, index=False)) == 52
    (tmp_path / "kb" / SEED_STAMP).unlink()
    kb.path.write_text("".join(r.model_dump_json() + "\n" for r in own + seed50[:11]))
    assert len(open_default(tmp_path / "kb", seed_dir=seed, index=False)) == 13


def test_a_damaged_records_file_still_opens_and_takes_the_new_seed_runs_once_repaired(
        tmp_path: Path, seed50: list[ExperimentRecord], caplog: pytest.LogCaptureFixture) -> None:
    """The top-up reads the user's records; a bad line there must not stop open_default, which the
    repair commands (kb rebuild-index, import) go through too."""
    seed = tmp_path / "seed"
    write_seed_shards(seed50[:20], seed, max_records_per_shard=12)
    kb = open_default(tmp_path / "kb", seed_dir=seed, index=False)
    good = kb.path.read_bytes()
    kb.path.write_bytes(good + b'{"id": "not a record"}\n')
    write_seed_shards(seed50[:30], seed, max_records_per_shard=12)
    with caplog.at_level("WARNING"):
        open_default(tmp_path / "kb", seed_dir=seed, index=False)
    assert "tried again next time" in caplog.text and kb.path.read_bytes().endswith(b'"not a record"}\n')
    kb.path.write_bytes(good)  # repaired
    assert len(open_default(tmp_path / "kb", seed_dir=seed, index=False)) == 30


def test_a_knowledge_base_that_was_never_seeded_stays_so(tmp_path: Path, seed50: list[ExperimentRecord]) -> None:
    """An empty records file, or one with only the user's runs, made before open_default saw it:
    not a seeded knowledge base to top up, now or after the seed grows."""
    seed = tmp_path / "seed"
    write_seed_shards(seed50[:20], seed, max_records_per_shard=12)
    for name, mine in (("empty", []), ("own", make(3))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "records.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in mine))
        assert len(open_default(tmp_path / name, seed_dir=seed, index=False)) == len(mine)
    write_seed_shards(seed50, seed, max_records_per_shard=12)
    assert [len(open_default(tmp_path / n, seed_dir=seed, index=False)) for n in ("empty", "own")] == [0, 3]


def test_a_damaged_newer_seed_leaves_the_knowledge_base_usable(tmp_path: Path, seed50: list[ExperimentRecord],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    seed = tmp_path / "seed"
    write_seed_shards(seed50[:20], seed, max_records_per_shard=12)
    open_default(tmp_path / "kb", seed_dir=seed, index=False)
    stamp = (tmp_path / "kb" / SEED_STAMP).read_bytes()
    write_seed_shards(seed50[:30], seed, max_records_per_shard=12)
    _garbage(seed_files(seed)[-1])
    with caplog.at_level("WARNING"):
        kb = open_default(tmp_path / "kb", seed_dir=seed, index=False)
    assert len(kb) == 20 and "could not be read" in caplog.text
    assert (tmp_path / "kb" / SEED_STAMP).read_bytes() == stamp  # tried again next time
    write_seed_shards(seed50[:30], seed, max_records_per_shard=12)  # repaired
    assert len(open_default(tmp_path / "kb", seed_dir=seed, index=False)) == 30


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _garbage(p: Path) -> None:
    p.write_bytes(b"not gzip at all\n" * 10)


def _bad_checksum(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:-8] + bytes(8))  # CRC32 and length of the trailer zeroed


def _bad_last_line(p: Path) -> None:
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()) + b'{"id": "half a rec'))


@pytest.mark.parametrize("damage", [_truncate, _garbage, _bad_checksum, _bad_last_line])
def test_a_damaged_shard_is_an_error_naming_it_not_a_partial_load(
        tmp_path: Path, seed50: list[ExperimentRecord], damage) -> None:
    shards = write_seed_shards(seed50, tmp_path / "seed", max_records_per_shard=20)
    damage(shards[1])
    with pytest.raises(KnowledgeBaseError, match="records-00001.jsonl.gz"):
        read_seed(tmp_path / "seed")
    with pytest.raises(KnowledgeBaseError, match="records-00001.jsonl.gz"):
        open_default(tmp_path / "kb", seed_dir=tmp_path / "seed", index=False)
    assert not (tmp_path / "kb" / "records.jsonl").exists()  # nothing half-seeded to be kept forever
    assert not list((tmp_path / "kb").glob("*.tmp"))


def test_chroma_index_rebuilds_from_jsonl_and_finds_similar_runs(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path)
    recs = make(3)
    other = recs[2].model_copy(update={"dataset": recs[2].dataset.model_copy(
        update={"name": "skin", "meta": recs[2].dataset.meta.model_copy(update={"modality": "dermoscopy", "body_part": "skin"})})})
    kb.append(recs[:2] + [other])
    assert kb.collection().count() == 3
    top, dist = kb.search("dermoscopy skin lesion images", k=1)[0]
    assert top.id == other.id and 0 <= dist < 1
    # Delete the index folder: the JSONL is the truth, the index comes back whole.
    kb2 = KnowledgeBase(tmp_path)
    assert kb2.rebuild_index() == 3
    assert kb2.collection().count() == 3
    # An orphan in the index (its record never reached the JSONL) is removed by sync.
    kb2.collection().upsert(ids=["orphan"], documents=["nothing"], metadatas=[{"dataset": "x"}])
    assert kb2.sync_index() == {"added": 0, "removed": 1, "total": 3}
    # Records appended without the index (a sweep worker) are added on the next search.
    KnowledgeBase(tmp_path, index=False).append(make(4)[3:])
    assert len(kb2.search("ultrasound", k=10)) == 4


def test_corrupt_index_folder_gives_a_way_out(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path)
    kb.append(make(1))
    kb._collection = None
    db = tmp_path / "chroma" / "chroma.sqlite3"
    assert db.exists()
    db.write_bytes(b"garbage" * 1000)
    fresh = KnowledgeBase(tmp_path)
    with pytest.raises(KnowledgeBaseError, match="metallmix kb rebuild"):
        fresh.collection()
    assert fresh.rebuild_index() == 1
    assert fresh.collection().count() == 1
    assert os.path.getsize(fresh.path) > 0


def test_search_checks_the_index_only_when_the_file_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search re-counts the index and re-reads the JSONL only after the file changed (bench/scale:
    three Chroma count() calls per query cost ~25 ms at 100k records), and still finds records
    another process appended without indexing them."""
    import knowledge.record_files as record_files
    from tests.reliability import HashEmbedder

    kb = KnowledgeBase(tmp_path, embedder=HashEmbedder())
    kb.append(make(3))
    col = kb.collection()
    counts: list[int] = []
    reads: list[Path] = []
    real_count, real_read = type(col).count, record_files.read_records
    monkeypatch.setattr(type(col), "count", lambda self: counts.append(1) or real_count(self))
    monkeypatch.setattr(record_files, "read_records", lambda path: reads.append(path) or real_read(path))
    assert len(kb.search("ultrasound", k=10)) == 3  # the file is new to this object: one read, one check
    assert (len(counts), len(reads)) == (1, 1)
    for _ in range(5):
        assert len(kb.search("ultrasound", k=10)) == 3
    assert (len(counts), len(reads)) == (1, 1)  # nothing changed: no count, no read
    KnowledgeBase(tmp_path, index=False).append(make(5)[3:])  # a sweep worker: JSONL only
    hits = kb.search("ultrasound", k=10)
    assert sorted(r.id for r, _ in hits) == [f"rec{i:05d}ok" for i in range(5)]
    assert kb.collection().count() == 5
    assert len(reads) == 2  # this search (the worker's append reads only the bytes it has not seen)
    kb.search("ultrasound", k=10)
    assert len(reads) == 2
    kb.path.unlink()  # the knowledge base removed on disk: no stale hits
    assert kb.search("ultrasound", k=10) == []
