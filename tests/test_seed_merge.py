"""Adding a sweep's runs to the sharded seed (knowledge.seed_merge), on a temporary copy of the packaged seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.schema import ExperimentRecord
from knowledge.seed_merge import main, merge_into_seed
from knowledge.store import RECORDS_FILE, read_seed, seed_files, write_seed_shards


@pytest.fixture(scope="module")
def packaged() -> list[ExperimentRecord]:
    return read_seed()


@pytest.fixture
def seed(tmp_path: Path, packaged: list[ExperimentRecord]) -> Path:
    """A copy of the packaged seed, written by the store: byte for byte the committed shards."""
    folder = tmp_path / "seed"
    shards = write_seed_shards(packaged, folder)
    assert [p.read_bytes() for p in shards] == [p.read_bytes() for p in seed_files()]
    return folder


def _runs(base: list[ExperimentRecord], tag: str) -> list[ExperimentRecord]:
    """Real records as if a later sweep had run them again under new run keys."""
    return [r.model_copy(update={"id": f"{tag}-record-{i:04d}", "run_key": f"{tag}-run-key-{i:04d}"}) for i, r in enumerate(base)]


def test_new_runs_are_appended_once_and_only_the_last_shard_changes(
        seed: Path, tmp_path: Path, packaged: list[ExperimentRecord]) -> None:
    new = _runs(packaged[:3], "new")
    rerun = packaged[5].model_copy(update={"id": "same-run-key-new-id"})  # a run the seed holds already
    sweep = tmp_path / "sweep" / RECORDS_FILE
    sweep.parent.mkdir()
    sweep.write_text("".join(r.model_dump_json() + "\n" for r in [new[0], rerun, packaged[7], *new[1:]])
                     + '{"id": "a torn last li')  # a killed writer's tail: not a record, skipped
    before = {p: p.read_bytes() for p in seed_files(seed)}

    res = merge_into_seed([sweep], seed)
    assert [r.id for r in res.added] == [r.id for r in new] and res.known == 2 and res.seed_before == len(packaged)
    assert [r.id for r in read_seed(seed)] == [r.id for r in packaged + new]
    full, last = sorted(before)[:-1], sorted(before)[-1]
    assert all(p.read_bytes() == before[p] for p in full)  # git sees only the last shard change
    assert res.changed == [last] and last.read_bytes() != before[last]

    again = merge_into_seed([sweep], seed)
    assert again.added == [] and again.changed == [] and again.known == 5


def test_a_plain_records_file_in_the_seed_folder_is_folded_into_the_shards(
        seed: Path, packaged: list[ExperimentRecord]) -> None:
    """A sweep once ran into knowledge/seed itself: its plain file's runs move into the shards and the file goes."""
    plain = _runs(packaged[:2], "plain")
    (seed / RECORDS_FILE).write_text("".join(r.model_dump_json() + "\n" for r in [packaged[0], *plain]))
    expected = [r.id for r in read_seed(seed)]  # what the seed gave before the fold: plain file first
    res = merge_into_seed([], seed)
    assert res.added == [] and seed / RECORDS_FILE in res.changed
    assert not (seed / RECORDS_FILE).exists() and all(p.name.endswith(".jsonl.gz") for p in seed.iterdir())
    assert [r.id for r in read_seed(seed)] == expected


def test_the_command_counts_says_what_changed_and_refuses_a_missing_file(
        seed: Path, tmp_path: Path, packaged: list[ExperimentRecord], capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs.jsonl"
    runs.write_text("".join(r.model_dump_json() + "\n" for r in _runs(packaged[:4], "cli")))
    assert main(["--records", str(runs), "--seed-dir", str(seed), "--dry-run"]) == 0
    assert f"would add 4 new runs to the seed of {len(packaged)} records" in capsys.readouterr().out
    assert len(read_seed(seed)) == len(packaged)  # a dry run writes nothing
    assert main(["--records", str(runs), "--seed-dir", str(seed)]) == 0
    assert "added 4 new runs" in capsys.readouterr().out and len(read_seed(seed)) == len(packaged) + 4
    assert main(["--records", str(tmp_path / "nowhere.jsonl"), "--seed-dir", str(seed)]) == 2
    assert "no records file" in capsys.readouterr().err


def test_a_merge_counts_from_two_inputs_and_reads_no_shard_back(
        seed: Path, tmp_path: Path, packaged: list[ExperimentRecord], monkeypatch: pytest.MonkeyPatch) -> None:
    """What changed is known from the write itself: each existing shard is read once (to keep an
    unchanged one's bytes), never again after it was written."""
    new = _runs(packaged[:5], "two")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(r.model_dump_json() + "\n" for r in [*new[:3], packaged[1]]))
    b.write_text("".join(r.model_dump_json() + "\n" for r in [new[2], *new[3:], packaged[2], packaged[3]]))
    reads: list[Path] = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: reads.append(p) or read_bytes(p))
    res = merge_into_seed([a, b], seed)
    assert [r.id for r in res.added] == [r.id for r in new] and res.known == 4
    assert res.changed == [sorted(seed_files(seed))[-1]]
    shard_reads = [p for p in reads if p.name.endswith(".jsonl.gz")]
    assert len(shard_reads) == len(set(shard_reads)), f"a shard read more than once: {shard_reads}"


def test_a_run_whose_machine_measured_another_probe_takes_the_seeds(
        seed: Path, tmp_path: Path, packaged: list[ExperimentRecord]) -> None:
    """The probe is the dataset's: a run of a known dataset whose probe came out one image apart on
    another machine is stored with the seed's value, so the seed keeps one probe per dataset."""
    known = packaged[0]
    meta = known.dataset.meta
    shifted = meta.model_copy(update={"probe_accuracy": round(meta.probe_accuracy - 0.0025, 4)})  # type: ignore[operator]
    drifted = _runs([known], "drift")[0]
    drifted = drifted.model_copy(update={"dataset": drifted.dataset.model_copy(update={"meta": shifted})})
    unseen = _runs([known], "unseen")[0]  # a dataset the seed has never held keeps its own probe
    unseen = unseen.model_copy(update={"dataset": unseen.dataset.model_copy(
        update={"fingerprint": "f" * 16, "name": "never_seen", "meta": shifted})})
    sweep = tmp_path / RECORDS_FILE
    sweep.write_text("".join(r.model_dump_json() + "\n" for r in (drifted, unseen)))

    res = merge_into_seed([sweep], seed)
    assert res.probes_aligned == 1
    stored = {r.id: r for r in read_seed(seed)}
    assert stored[drifted.id].dataset.meta.probe_accuracy == meta.probe_accuracy
    assert stored[drifted.id].dataset.meta.model_dump(exclude={"probe_accuracy"}) == shifted.model_dump(exclude={"probe_accuracy"})
    assert stored[unseen.id].dataset.meta.probe_accuracy == shifted.probe_accuracy
