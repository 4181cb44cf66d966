"""Stale records: runs measured before a runner fix that changes them are found, measured again,
and superseded everywhere a reader looks (knowledge.runner_revisions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.reference import Runs, is_stale_row
from knowledge.bench_runs import to_record
from knowledge.runner_revisions import FIXES, RUNNER_REVISION, TF_BATCHNORM, current, is_stale
from knowledge.schema import ExperimentRecord, TrainConfig
from knowledge.seed_merge import merge_into_seed, replacement_table
from knowledge.space import BACKBONES
from knowledge.store import RECORDS_FILE, KnowledgeBase, read_seed, write_seed_shards
from tests.fakes import make_record
from tools.sweep import PATIENCE, pending_items, plan_stale

REPO = Path(__file__).resolve().parents[1]


def _record(backbone: str, mode: str, revision: int = 1, *, key: str = "k1", rid: str | None = None,
            acc: float = 0.7, seconds: float = 60.0, notes: str | None = None) -> ExperimentRecord:
    r = make_record("skin_lesion_isic", backbone, mode, acc, seconds)
    prov = r.provenance.model_copy(update={"runner_revision": revision, "notes": notes})
    return r.model_copy(update={"run_key": f"run-key-{key}", "id": rid or f"run-{key}-r{revision}", "provenance": prov})


@pytest.mark.parametrize(("backbone", "mode", "revision", "stale"), [
    ("efficientnet_lite0", "finetune", 1, True),  # trains the port's BatchNorm: changed by the fix
    ("efficientnet_lite2", "finetune", 1, True),
    ("mobilenet_v3_small", "scratch", 1, True),
    ("efficientnet_lite0", "finetune", 2, False),  # measured with the fix
    ("efficientnet_lite0", "frozen", 1, False),  # no BatchNorm trains in a frozen run
    ("small_cnn", "scratch", 1, False),  # ships PyTorch's momentum already
    ("resnet18", "scratch", 1, False),
    ("efficientnet_b0", "finetune", 1, False),
])
def test_a_record_is_stale_only_where_a_later_fix_changes_its_run(backbone: str, mode: str, revision: int,
                                                                  stale: bool) -> None:
    assert is_stale(_record(backbone, mode, revision)) is stale


def test_the_tf_batchnorm_list_is_what_the_backbones_ship() -> None:
    """The fix's list of backbones is checked against the networks themselves: exactly those whose
    BatchNorm layers ship a momentum below PyTorch's 0.1."""
    from torch import nn

    from tools.backbones import build_backbone

    low = set()
    for name in BACKBONES:
        net = build_backbone(name, pretrained=False, input_size=64).features
        momenta = {m.momentum for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        if momenta and min(momenta) < 0.1:
            low.add(name)
    assert low == set(TF_BATCHNORM)
    assert RUNNER_REVISION == max(f.revision for f in FIXES) >= 2


def test_current_drops_a_stale_record_only_once_its_run_was_measured_again() -> None:
    old = _record("efficientnet_lite0", "finetune", 1, key="a")
    lone = _record("efficientnet_lite1", "finetune", 1, key="b")  # stale, but the only measurement of run b
    frozen = _record("efficientnet_lite0", "frozen", 1, key="c")
    new = _record("efficientnet_lite0", "finetune", 2, key="a")
    assert current([old, lone, frozen]) == [old, lone, frozen]
    assert current([old, lone, frozen, new]) == [lone, frozen, new]


def test_the_knowledge_base_reads_the_new_measurement_and_a_sweep_knows_what_is_left(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path, index=False)
    old = _record("efficientnet_lite0", "finetune", 1, key="a", acc=0.60)
    kb.append([old, _record("small_cnn", "scratch", 1, key="b")])
    assert kb.run_keys() == {"run-key-b"} and kb.stats()["stale"] == 1  # run a is still to be measured again
    new = _record("efficientnet_lite0", "finetune", RUNNER_REVISION, key="a", acc=0.75)
    kb.append(new)
    assert [r.id for r in kb.records()] == ["run-b-r1", new.id]
    assert kb.run_keys() == {"run-key-a", "run-key-b"} and kb.stats()["stale"] == 0 and kb.stats()["records"] == 2
    assert len((tmp_path / RECORDS_FILE).read_text().splitlines()) == 3  # nothing is deleted from the file


def test_a_seed_merge_puts_the_new_measurement_in_the_stale_ones_place(tmp_path: Path) -> None:
    packaged = read_seed()[:40]
    stale_at = next(i for i, r in enumerate(packaged) if not is_stale(r)) + 1
    stale = _record("efficientnet_lite0", "finetune", 1, key="stale-run")
    fresh_seed = _record("efficientnet_lite1", "finetune", RUNNER_REVISION, key="fresh-run")
    seed = [*packaged[:stale_at], stale, *packaged[stale_at:], fresh_seed]
    folder = tmp_path / "seed"
    write_seed_shards(seed, folder)
    new = _record("efficientnet_lite0", "finetune", RUNNER_REVISION, key="stale-run", acc=0.8)
    older = _record("efficientnet_lite1", "finetune", 1, key="fresh-run", rid="an-old-measurement")  # never wins
    other = _record("small_cnn", "scratch", 1, key="brand-new")
    sweep = tmp_path / RECORDS_FILE
    sweep.write_text("".join(r.model_dump_json() + "\n" for r in (new, older, other)))

    res = merge_into_seed([sweep], folder)
    assert [(a.id, b.id) for a, b in res.replaced] == [(stale.id, new.id)]
    assert [r.id for r in res.added] == [other.id] and res.known == 1
    assert replacement_table(res.replaced)[2:] == ["| finetune | efficientnet_lite0 | 1 | +0.100 | +0.100 | +0.100 |"]
    after = read_seed(folder)
    assert [r.id for r in after] == [r.id for r in seed[:stale_at]] + [new.id] + [r.id for r in seed[stale_at + 1:]] \
        + [other.id]
    assert len({r.run_key for r in after}) == len(after)  # one record per run
    again = merge_into_seed([sweep], folder)
    assert again.replaced == [] and again.added == [] and again.changed == []


def test_the_stale_plan_measures_each_stale_run_again_as_it_ran(shared_data: Path) -> None:
    from tools.datasets import load_dataset

    ds = load_dataset(shared_data / "head_ct_hemorrhage.npz")

    def on_head_ct(r: ExperimentRecord) -> ExperimentRecord:
        return r.model_copy(update={"dataset": r.dataset.model_copy(update={"fingerprint": ds.fingerprint})})

    slow = on_head_ct(_record("efficientnet_lite0", "finetune", key="slow", seconds=300,
                              notes="sweep plan cpu; early stopping on val accuracy, patience 5"))
    quick = on_head_ct(_record("mobilenet_v3_small", "scratch", key="quick", seconds=20, notes="bench.lodo run"))
    elsewhere = _record("efficientnet_lite0", "finetune", key="elsewhere")  # its dataset is not in the folder
    fine = on_head_ct(_record("small_cnn", "scratch", key="fine"))
    user = on_head_ct(_record("efficientnet_lite0", "finetune", key="user"))
    user = user.model_copy(update={"provenance": user.provenance.model_copy(update={"source": "user"})})
    on_gpu = quick.model_copy(update={"run_key": "run-key-gpu", "outcome": quick.outcome.model_copy(
        update={"device": "cuda:NVIDIA H200"})})  # measured again on a GPU only
    assert [i.config for i in plan_stale([on_gpu], shared_data, device="cuda")] == [quick.config]
    items = plan_stale([slow, elsewhere, quick, fine, user, on_gpu], shared_data, device="cpu")
    assert [(i.config, i.seed) for i in items] == [(quick.config, 0), (slow.config, 0)]  # cheapest first
    assert items[0].patience is None and items[1].patience == PATIENCE  # early stopping only where it stopped early
    assert all(i.dataset == str(shared_data / "head_ct_hemorrhage.npz") for i in items)
    assert f"runner revision {RUNNER_REVISION}" in items[0].notes and items[0].notes.startswith("sweep plan stale")


@pytest.mark.slow
def test_a_stale_sweep_run_is_measured_again_once(shared_data: Path, tmp_path: Path) -> None:
    """A real seed run (the shortest MobileNetV3 run from scratch on head_ct_hemorrhage), its record marked as
    measured by runner revision 1 (so stale), measured again by `python -m tools.sweep --plan stale`: the new
    record has the run's key and the current revision, the knowledge base reads only it, and a second sweep
    has nothing left to do."""
    run = min((r for r in read_seed() if r.provenance.source == "sweep" and r.dataset.name == "head_ct_hemorrhage"
               and r.config.backbone == "mobilenet_v3_small" and r.config.mode == "scratch"),
              key=lambda r: r.outcome.total_seconds)
    stale = run.model_copy(update={"id": f"{run.id}-old", "provenance": run.provenance.model_copy(update={"runner_revision": 1})})
    assert is_stale(stale)
    kb_dir = tmp_path / "kb"
    KnowledgeBase(kb_dir, index=False).append(stale)
    data = tmp_path / "data"
    data.mkdir()
    (data / "head_ct_hemorrhage.npz").symlink_to(shared_data / "head_ct_hemorrhage.npz")
    env = {**os.environ, "METALLMIX_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "tools.sweep", "--plan", "stale", "--data-dir", str(data), "--kb-dir", str(kb_dir),
           "--workers", "1"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1])["run"] == 1
    kb = KnowledgeBase(kb_dir, index=False)
    (new,) = kb.records()
    assert new.run_key == stale.run_key and new.id != stale.id and new.config == stale.config
    assert new.provenance.runner_revision == RUNNER_REVISION and not is_stale(new) and new.outcome.status == "ok"
    assert "measured again by runner revision" in (new.provenance.notes or "")
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout.splitlines()[-1])["planned"] == 0
    assert len((kb_dir / RECORDS_FILE).read_text().splitlines()) == 2


def test_pending_items_queue_a_run_whose_only_record_is_stale(shared_data: Path, tmp_path: Path) -> None:
    from tools.datasets import load_dataset
    from tools.sweep import SweepItem

    path = str(shared_data / "head_ct_hemorrhage.npz")
    fp = load_dataset(path).fingerprint
    configs = [TrainConfig(backbone="efficientnet_lite0", mode="finetune", epochs=2),
               TrainConfig(backbone="small_cnn", mode="scratch", epochs=2)]
    items = [SweepItem(path, c, 0, plan="cpu") for c in configs]
    kb = KnowledgeBase(tmp_path, index=False)
    for c in configs:
        r = _record(c.backbone, c.mode, 1, key=c.backbone)
        kb.append(r.model_copy(update={"config": c, "run_key": ExperimentRecord.make_run_key(fp, c, 0, "sweep")}))
    assert [i.config for i, _ in pending_items(items, kb)] == [configs[0]]


def test_to_targets_counts_no_stale_run_measured_again_as_a_new_one(shared_data: Path, tmp_path: Path) -> None:
    from tools.datasets import load_dataset
    from tools.sweep import SweepItem, dataset_sizes, plan_to_targets

    path = str(shared_data / "head_ct_hemorrhage.npz")
    fp = load_dataset(path).fingerprint
    configs = [TrainConfig(backbone="efficientnet_lite1", mode="finetune", epochs=20, freeze=f) for f in (0.25, 0.5)]
    items = [SweepItem(path, c, 0, plan="cpu") for c in configs]
    kb = KnowledgeBase(tmp_path, index=False)
    stale = _record("efficientnet_lite1", "finetune", 1, key="lite1")  # stale: a later runner fix changes this run
    kb.append(stale.model_copy(update={"config": configs[0],
                                       "run_key": ExperimentRecord.make_run_key(fp, configs[0], 0, "sweep")}))
    assert len(pending_items(items, kb)) == 2  # both are to be measured ...
    sizes = {path: dataset_sizes(shared_data)[path]}
    # ... but only the new one adds a fine-tune toward the targets; the other would replace the stale record
    assert [i.config for i in plan_to_targets(items, kb, sizes)] == [configs[1]]


def _row(config: TrainConfig, revision: int | None, acc: float) -> dict:
    row = {"key": "fp|cfg|0", "dataset": "d", "fingerprint": "fp", "seed": 0, "config": config.model_dump(mode="json"),
           "ran_as": config.model_dump(mode="json"), "weights": "imagenet:x", "status": "ok", "val_accuracy": acc,
           "test_accuracy": acc, "train_seconds": 10.0, "feature_seconds": 0.0, "wall_seconds": 10.0,
           "device": "cpu:2 cores", "code_version": "abc", "date": "2026-12-01T00:00:00Z", "threads": 1, "load": 1.0,
           "error": None}
    if revision is not None:
        row["runner_revision"] = revision
    return row


def test_the_benchmark_cache_treats_a_stale_run_as_not_cached(tmp_path: Path) -> None:
    ft = TrainConfig(backbone="efficientnet_lite0", mode="finetune", epochs=15)
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(_row(ft, None, 0.5)) + "\n")
    runs = Runs(path)
    assert is_stale_row(runs.rows["fp|cfg|0"]) and runs.current_row("fp|cfg|0") is None
    assert runs.add(_row(ft, 1, 0.4))["test_accuracy"] == 0.5  # a stale row never replaces one
    fresh = runs.add(_row(ft, RUNNER_REVISION, 0.8))
    assert runs.current_row("fp|cfg|0") is fresh and runs.add(_row(ft, RUNNER_REVISION, 0.1)) is fresh
    assert Runs(path).current_row("fp|cfg|0")["test_accuracy"] == 0.8  # read back: the last row of a key wins
    assert len(path.read_text().splitlines()) == 2


def test_a_retrained_benchmark_run_becomes_a_new_record_that_supersedes_the_old() -> None:
    ft = TrainConfig(backbone="efficientnet_lite0", mode="finetune", epochs=15)
    dataset = read_seed()[0].dataset
    old, new = to_record(_row(ft, None, 0.5), dataset), to_record(_row(ft, RUNNER_REVISION, 0.8), dataset)
    assert old.run_key == new.run_key and old.id != new.id
    assert is_stale(old) and not is_stale(new) and current([old, new]) == [new]


def _git_knows(commit: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO, capture_output=True).returncode == 0


def test_the_backfill_gives_records_from_after_a_fix_its_revision(tmp_path: Path) -> None:
    fix = FIXES[0].commit
    before = subprocess.run(["git", "rev-parse", "--short=12", f"{fix}^"], cwd=REPO, capture_output=True, text=True)
    if before.returncode != 0 or not _git_knows(fix):
        pytest.skip("this checkout has not the git history of the runner fixes (a shallow clone)")
    from tools.backfill import backfill_revisions

    rows = [_row(TrainConfig(backbone="efficientnet_lite0", mode="finetune"), None, 0.5) for _ in range(3)]
    for row, version in zip(rows, (fix, before.stdout.strip(), "0.4.0"), strict=True):
        row["code_version"] = version
    records = [_record("efficientnet_lite0", "finetune", key=f"k{i}") for i in range(2)]
    records = [r.model_copy(update={"provenance": r.provenance.model_copy(update={"code_version": v})})
               for r, v in zip(records, (fix, before.stdout.strip()), strict=True)]
    bench, kb = tmp_path / "runs.jsonl", tmp_path / "records.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kb.write_text("".join(r.model_dump_json() + "\n" for r in records))
    assert backfill_revisions(bench) == 1 and backfill_revisions(kb) == 1
    assert [r.get("runner_revision", 1) for r in map(json.loads, bench.read_text().splitlines())] == [2, 1, 1]
    assert [r.provenance.runner_revision for r in KnowledgeBase(tmp_path, index=False).records()] == [2, 1]
    assert backfill_revisions(bench) == 0  # a second pass changes nothing


def test_the_benchmark_cache_takes_a_stale_runs_new_measurement_from_the_seed(tmp_path: Path) -> None:
    """The sweep's stale plan measured the benchmark's run again: the cache takes that measurement instead of
    training it a second time, but only the same run, on the same kind of device, with every epoch trained."""
    ft = TrainConfig(backbone="efficientnet_lite0", mode="finetune", epochs=15)
    path = tmp_path / "runs.jsonl"
    rows = [{**_row(ft, None, 0.5), "key": f"fp|cfg|{seed}", "seed": seed} for seed in (0, 1, 2, 3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = Runs(path)

    def measured(seed: int, *, device: str = "cpu:2 cores", epochs_run: int = 15) -> ExperimentRecord:
        r = _record("efficientnet_lite0", "finetune", RUNNER_REVISION, key=f"seed{seed}", acc=0.8)
        return r.model_copy(update={
            "config": ft, "run_key": ExperimentRecord.make_run_key("fp", ft, seed, "sweep"),
            "outcome": r.outcome.model_copy(update={"device": device, "epochs_run": epochs_run}),
            "provenance": r.provenance.model_copy(update={"seed": seed})})

    records = [measured(0), measured(1, device="cuda:NVIDIA H200"), measured(2, epochs_run=9),
               _record("efficientnet_lite0", "finetune", 1, key="stale-too")]  # seed 3: never measured again
    assert runs.adopt(records) == 1
    taken = runs.current_row("fp|cfg|0")
    assert taken["test_accuracy"] == 0.8 and taken["runner_revision"] == RUNNER_REVISION
    assert taken["record"] == records[0].id and not is_stale_row(taken)
    assert all(runs.current_row(f"fp|cfg|{s}") is None for s in (1, 2, 3))  # still to train
    assert Runs(path).current_row("fp|cfg|0")["test_accuracy"] == 0.8 and runs.adopt(records) == 0
