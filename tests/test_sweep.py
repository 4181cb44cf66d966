"""The sweep plans (what they cover, in which order) and a real sweep that survives kill -9."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from knowledge.store import KnowledgeBase
from tools.sweep import (
    EARLY_STOP_FROM,
    OTHER_SCRATCH,
    PLAN_SIZES,
    TARGET_SHARE,
    TARGETS,
    PlanSize,
    dataset_sizes,
    estimated_seconds,
    plan_trainable,
    select_to_targets,
)

REPO = Path(__file__).resolve().parents[1]
DATASETS = {f"/data/{name}.npz": (n, side) for name, n, side in (
    ("big_xray", 4800, 64), ("small_ct", 140, 64), ("retina", 1080, 28), ("derm", 1425, 64))}


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_plan_gives_every_dataset_finetunes_and_long_scratch_runs(device: str) -> None:
    items = plan_trainable(DATASETS, device=device, known={"big_xray", "derm"})
    size = PLAN_SIZES[device]
    per: dict[str, Counter] = defaultdict(Counter)
    for i in items:
        c = i.config
        assert c.freeze == 0 or c.mode == "finetune"
        if c.mode == "finetune":
            assert c.backbone.startswith("efficientnet_lite")
        if c.mode == "scratch" and c.backbone != "small_cnn":
            assert c.backbone in OTHER_SCRATCH and c.epochs >= 8
            per[Path(i.dataset).stem]["other scratch"] += 1
            continue
        per[Path(i.dataset).stem][c.mode] += 1
        per[Path(i.dataset).stem]["long scratch"] += c.mode == "scratch" and c.epochs >= 15
        per[Path(i.dataset).stem]["partial"] += c.freeze > 0
    for name in ("big_xray", "small_ct", "retina", "derm"):
        assert per[name]["finetune"] == size.finetune + size.more_finetune and size.finetune >= 20
        assert per[name]["long scratch"] >= 10
        assert per[name]["partial"] >= size.finetune // 2
        assert per[name]["other scratch"] == size.other_scratch > 0
    # Frozen heads only where the knowledge base has nothing yet, on each Lite backbone.
    assert per["big_xray"]["frozen"] == per["derm"]["frozen"] == 0
    assert per["small_ct"]["frozen"] == per["retina"]["frozen"] == 3 * size.heads
    sizes = {i.config.input_size for i in items}
    assert {64, 96, 128} <= sizes and ((224 in sizes) == (device == "gpu"))
    assert plan_trainable(DATASETS, device=device, known={"big_xray", "derm"}) == items  # reproducible


def test_cpu_plan_runs_every_datasets_first_runs_before_anyones_later_ones() -> None:
    items = plan_trainable(DATASETS, device="cpu", known={Path(p).stem for p in DATASETS})
    first_late = min(j for j, i in enumerate(items) if _rank(items, j) >= 5)
    for name in DATASETS:
        early = [j for j, i in enumerate(items) if i.dataset == name and _rank(items, j) < 5]
        assert len(early) == 14 and max(early) < first_late  # 5 fine-tunes, 5 small_cnn, 4 other scratch: tier 0
    sizes = {p: n for p, (n, _) in DATASETS.items()}
    tier0 = [estimated_seconds(items[j].config, sizes[items[j].dataset]) for j in range(first_late)]
    assert tier0 == sorted(tier0)  # cheapest first within a tier
    # Early stopping: trainable runs of 15+ epochs stop on a validation plateau, and say so.
    long = [i for i in items if i.config.epochs >= EARLY_STOP_FROM]
    assert long and all(i.patience and "patience" in i.notes for i in long)


def _kind(item: Any) -> tuple[str, bool]:
    return item.config.mode, item.config.backbone == "small_cnn"


def _rank(items: list, j: int) -> int:
    """The rank of item j among the earlier items of its dataset and kind."""
    me = items[j]
    return sum(1 for i in items[:j] if i.dataset == me.dataset and _kind(i) == _kind(me))


def test_the_other_scratch_runs_leave_the_rest_of_the_plan_as_it_was() -> None:
    """A sweep resumed after the plan gained resnet18/mobilenet scratch runs still finds the runs it
    did: the fine-tunes and small_cnn runs are the same configs, in the same order, as without them."""
    known = {Path(p).stem for p in DATASETS}
    before = plan_trainable(DATASETS, device="cpu", known=known, size=PlanSize(finetune=24, scratch=12, heads=8))
    now = plan_trainable(DATASETS, device="cpu", known=known, size=PlanSize(finetune=24, scratch=12, heads=8, other_scratch=4))
    assert [i for i in now if i.config.backbone not in OTHER_SCRATCH] == before


def test_the_more_finetunes_come_after_the_rest_of_the_plan_and_leave_it_as_it_was() -> None:
    """The fine-tunes added for the seed's share are new configs, planned after every run planned
    before them, which keep their configs and order (a resumed sweep still finds what it did)."""
    known = {Path(p).stem for p in DATASETS}
    size = PLAN_SIZES["cpu"]
    before = plan_trainable(DATASETS, device="cpu", known=known, size=PlanSize(**{**size.__dict__, "more_finetune": 0}))
    now = plan_trainable(DATASETS, device="cpu", known=known)
    assert now[: len(before)] == before
    more = now[len(before):]
    assert len(more) == size.more_finetune * len(DATASETS) > 0
    assert all(i.config.mode == "finetune" for i in more)
    assert not {i.config.key() for i in more} & {i.config.key() for i in before}


def test_sgd_runs_get_the_weight_decays_sgd_is_used_with_and_nothing_else_moves() -> None:
    """SGD's coupled decay of 5e-2 (x10 by momentum) collapsed evaluation in a seed run; the plans
    now sample SGD's decays from its own set, and every other field of every run is as before."""
    known = {Path(p).stem for p in DATASETS}
    items = plan_trainable(DATASETS, device="cpu", known=known)
    sgd = [i.config for i in items if i.config.optimizer == "sgd" and i.config.mode != "frozen"]
    assert sgd and max(c.weight_decay for c in sgd) <= 5e-3
    assert {i.config.weight_decay for i in items if i.config.optimizer != "sgd"} >= {1e-2, 5e-2}
    import tools.sweep as sweep

    def old_decays(optimizer: str) -> tuple[float, ...]:
        return (0.0, 1e-4, 1e-2, 5e-2)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep, "_decays", old_decays)
        before = plan_trainable(DATASETS, device="cpu", known=known)
    assert [i.config.model_copy(update={"weight_decay": 0}) for i in before] \
        == [i.config.model_copy(update={"weight_decay": 0}) for i in items]


def test_plan_refuses_an_unknown_device() -> None:
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        plan_trainable(DATASETS, device="tpu")


def test_to_targets_takes_the_cheapest_runs_each_dataset_lacks_and_nothing_more() -> None:
    items = plan_trainable(DATASETS, device="cpu", known={Path(p).stem for p in DATASETS})
    have = {"big_xray": {"finetune": 20, "scratch_15": 3}, "small_ct": {"finetune": 8, "scratch_15": 10},
            "retina": {"finetune": 25, "scratch_15": 12}}  # derm: nothing yet
    chosen = select_to_targets(items, have, DATASETS)
    got = Counter((Path(i.dataset).stem, "finetune" if i.config.mode == "finetune" else "scratch") for i in chosen)
    assert got == {("big_xray", "scratch"): 7, ("small_ct", "finetune"): 12, ("derm", "finetune"): TARGETS["finetune"],
                   ("derm", "scratch"): TARGETS["scratch_15"]}
    assert all(i.config.mode == "finetune" or i.config.epochs >= EARLY_STOP_FROM for i in chosen)
    # Per dataset and kind the cheapest of the plan's runs; dataset by dataset, the cheapest to complete
    # first, each one's runs cheapest first.
    def cost(i: Any) -> float:
        return estimated_seconds(i.config, DATASETS[i.dataset][0])
    small_ct = sorted(cost(i) for i in items if i.dataset.endswith("small_ct.npz") and i.config.mode == "finetune")
    assert sorted(cost(i) for i in chosen if i.dataset.endswith("small_ct.npz")) == small_ct[:12]
    order = list(dict.fromkeys(i.dataset for i in chosen))
    blocks = [[i for i in chosen if i.dataset == d] for d in order]
    assert [i for block in blocks for i in block] == chosen  # each dataset's runs together
    totals = [sum(map(cost, block)) for block in blocks]
    assert totals == sorted(totals) and all([cost(i) for i in b] == sorted(map(cost, b)) for b in blocks)
    # A dataset that has reached the targets gets nothing; runs already done are the caller's to drop.
    assert select_to_targets(items, dict.fromkeys(map(lambda p: Path(p).stem, DATASETS), TARGETS), DATASETS) == []


@pytest.mark.parametrize(("held", "more"), [((100, 1000), 200), ((250, 1000), 0), ((10, 100), 20)])
def test_to_targets_then_adds_finetunes_to_the_share_every_datasets_cheapest_in_turn(held: tuple[int, int], more: int) -> None:
    """After the per-dataset targets, fine-tunes until they would be 25 % of the successful runs."""
    items = plan_trainable(DATASETS, device="cpu", known={Path(p).stem for p in DATASETS})
    done = dict.fromkeys(map(lambda p: Path(p).stem, DATASETS), TARGETS)
    chosen = select_to_targets(items, done, DATASETS, held=held)
    assert len(chosen) == more and all(i.config.mode == "finetune" for i in chosen)
    if more:
        assert (held[0] + len(chosen)) / (held[1] + len(chosen)) >= TARGET_SHARE
        assert (held[0] + len(chosen) - 1) / (held[1] + len(chosen) - 1) < TARGET_SHARE  # and not one more

    def cost(i: Any) -> float:
        return estimated_seconds(i.config, DATASETS[i.dataset][0])
    if more >= 4 * len(DATASETS):
        # Round by round: each dataset's k-th cheapest fine-tune before anyone's (k+1)-th.
        first = chosen[: len(DATASETS)]
        assert {i.dataset for i in first} == set(DATASETS) and [cost(i) for i in first] == sorted(map(cost, first))
        for d in DATASETS:
            mine = [cost(i) for i in chosen if i.dataset == d]
            assert mine == sorted(mine)
    # The per-dataset targets come first and count toward the share (derm lacks 20 fine-tunes, 10 scratch).
    short = {**done, "derm": {}}
    chosen = select_to_targets(items, short, DATASETS, held=(100, 1000))
    first = chosen[:30]
    assert all(i.dataset.endswith("derm.npz") for i in first)
    assert len(chosen) - 30 == math.ceil((0.25 * 1030 - 120) / 0.75)


@pytest.mark.slow
def test_sweep_resumes_after_kill_9_without_duplicates(shared_data: Path, tmp_path: Path) -> None:
    """A real `metallmix kb sweep` killed with SIGKILL mid-sweep, then rerun: every planned run is in
    the knowledge base exactly once, and every line of the JSONL is a whole record."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "head_ct_hemorrhage.npz").symlink_to(shared_data / "head_ct_hemorrhage.npz")
    (data / "SOURCES.md").symlink_to(shared_data / "SOURCES.md")
    assert dataset_sizes(data) == {str(data / "head_ct_hemorrhage.npz"): (139, 64)}
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    (kb_dir / "records.jsonl").touch()  # an empty knowledge base of its own, not a copy of the seed
    env = {**os.environ, "METALLMIX_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "agent.cli", "--kb-dir", str(kb_dir), "kb", "sweep", "--plan", "cpu",
           "--data-dir", str(data), "--workers", "1", "--limit", "14", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    records = kb_dir / "records.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if records.exists() and len(records.read_bytes().splitlines()) >= 4:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # still running: killed mid-sweep
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(KnowledgeBase(kb_dir, index=False).records())
    assert 4 <= before < 14
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["skipped"] == before and stats["run"] == 14 - before
    recs = KnowledgeBase(kb_dir, index=False).records()
    keys = [r.run_key for r in recs]
    assert len(recs) == 14 and len(set(keys)) == 14
    assert all(json.loads(line) for line in records.read_text().splitlines())
    assert {r.provenance.notes.split(";")[0] for r in recs} == {"sweep plan cpu"}


def _session(sid: int) -> list[int]:
    """The pids of the processes in session `sid` (read from /proc: field 6 of stat)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone while listing
            continue
        if int(fields[3]) == sid:
            pids.append(int(stat.parent.name))
    return pids


def test_a_sweep_killed_alone_takes_its_worker_with_it(shared_data: Path, tmp_path: Path) -> None:
    """kill -9 to the sweep process only (not its group, as `kill PID` or a process manager does):
    its spawned worker stops too, rather than training the rest of its chunk for no one."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "head_ct_hemorrhage.npz").symlink_to(shared_data / "head_ct_hemorrhage.npz")
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    (kb_dir / "records.jsonl").touch()
    env = {**os.environ, "METALLMIX_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "agent.cli", "--kb-dir", str(kb_dir), "kb", "sweep", "--plan", "cpu",
           "--data-dir", str(data), "--workers", "1", "--limit", "20", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    records = kb_dir / "records.jsonl"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(records.read_bytes().splitlines()) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert len(_session(proc.pid)) >= 2  # the sweep and its worker (and the spawn's resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        at_kill = len(records.read_bytes().splitlines())
        deadline = time.monotonic() + 30
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _session(proc.pid) == []  # nothing it started outlives it
        after = len(records.read_bytes().splitlines())
        assert after <= at_kill + 1 < 20  # at most the run being written when it went; not the rest of the chunk
        assert all(json.loads(line) for line in records.read_text().splitlines())  # every line a whole record
    finally:
        if _session(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)


def test_training_coverage_counts_finetunes_partial_and_long_scratch_runs() -> None:
    from knowledge.store import training_coverage
    from tests.fakes import make_record as record

    def with_config(r, **update):  # noqa: ANN001, ANN003, ANN202
        return r.model_copy(update={"config": r.config.model_copy(update=update)})

    ok = [
        record("a", "efficientnet_lite0", "frozen", 0.7),
        with_config(record("a", "efficientnet_lite0", "finetune", 0.8), freeze=0.5),
        record("a", "efficientnet_lite0", "finetune", 0.8),
        with_config(record("a", "small_cnn", "scratch", 0.6), epochs=20),
        record("a", "small_cnn", "scratch", 0.6),  # 10 epochs: not a long scratch run
        record("b", "resnet18", "finetune", 0.5).model_copy(update={"weights": "none"}),  # no weights: not a fine-tune
    ]
    cov = training_coverage(ok)
    assert cov["finetunes"] == 2 and cov["finetune_share"] == round(2 / 6, 4)
    assert cov["finetunes_to_target"] == 0  # 2 of 6 is above 25 %
    frozen = [record("a", "efficientnet_lite0", "frozen", 0.7)] * 10
    # 2 fine-tunes of 16 runs: 4 more make 6 of 20 (30 %); 3 more would be 5 of 19 (26 %), 2 more 4 of 18 (22 %)
    assert training_coverage(ok + frozen)["finetunes_to_target"] == 3
    assert cov["per_dataset"]["a"] == {"finetune": 2, "partial": 1, "scratch_15": 1, "scratch_15_run": 0}
    assert cov["per_dataset"]["b"]["finetune"] == 0


@pytest.mark.parametrize("argv", [["kb", "sweep", "--help"], None])
def test_to_targets_help_renders_the_targets_in_both_command_lines(argv: list[str] | None,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`metallmix kb sweep --help` and `python -m tools.sweep --help` print one text built from the targets
    (a bare % in argparse help used to crash the second)."""
    from agent.cli import build_parser
    from tools.sweep import main

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv) if argv else main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (f"{TARGETS['finetune']} fine-tunes and {TARGETS['scratch_15']} scratch runs of 15+ epochs" in text
            and f"until they are {TARGET_SHARE:.0%} of the successful runs" in text)
