"""The benchmark helpers (bench/lodo.py, bench/reference.py, bench/scale.py, bench/common.py): fast checks, no training, no LLM."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from bench.common import write_section
from bench.lodo import (
    Family,
    Row,
    families,
    parse_args,
    popular_config,
    project,
    sample_config,
    save_agent_session,
    split_out,
    stated_vs_real,
)
from bench.scale import SYNTHETIC_MACHINE, scaled_meta, synthesize
from knowledge.schema import ExperimentRecord, TrainConfig
from knowledge.store import KnowledgeBase, read_seed, seed_files
from tests.fakes import make_trial


@pytest.fixture(scope="module")
def seed() -> list[ExperimentRecord]:
    return read_seed()


def _sha_of_seed() -> str:
    """One hash over the packaged seed's files (names and bytes)."""
    h = hashlib.sha256()
    for path in seed_files():
        h.update(path.name.encode() + b"\n" + path.read_bytes())
    return h.hexdigest()


def test_split_hides_every_record_of_the_dataset(seed: list[ExperimentRecord]) -> None:
    name = "busi_ultrasound"
    fingerprint = next(r.dataset.fingerprint for r in seed if r.dataset.name == name)
    hidden, own = split_out(seed, name, fingerprint)
    assert own and hidden and len(own) + len(hidden) == len(seed)
    assert all(r.dataset.name != name and r.dataset.fingerprint != fingerprint for r in hidden)
    assert {r.dataset.name for r in own} == {name}
    # a record of D under another name is still D's (matched by fingerprint)
    renamed = own[0].model_copy(update={"dataset": own[0].dataset.model_copy(update={"name": "renamed"})})
    hidden2, own2 = split_out([*hidden, renamed], name, fingerprint)
    assert renamed in own2 and renamed not in hidden2


def test_space_sampling_and_projection_stay_in_the_benchmark_space() -> None:
    small, large = families(545), families(4800)
    frozen = {f.key for f in small if f.mode == "frozen"}
    assert frozen > {f.key for f in large if f.mode == "frozen"}  # 96/128 px feature sets only for small datasets
    rng = random.Random(0)
    for fams in (small, large):
        keys = {(f.backbone, f.mode, f.input_size) for f in fams}
        caps = {(f.backbone, f.mode): f.max_epochs for f in fams}
        for _ in range(200):
            c = sample_config(rng, fams)
            assert (c.backbone, c.mode, c.input_size) in keys
            assert c.epochs <= caps[(c.backbone, c.mode)]
            assert project(c, fams) == (c, [])
    wild = TrainConfig(backbone="efficientnet_lite0", mode="finetune", input_size=224, epochs=50, augmentation="strong")
    fixed, changes = project(wild, large)
    assert (fixed.input_size, fixed.epochs, fixed.mode) == (32, 1, "finetune") and changes
    no_weights = TrainConfig(backbone="resnet18", mode="frozen", input_size=64)
    fixed, changes = project(no_weights, large)
    assert fixed.mode == "scratch" and fixed.input_size == 32
    assert Family("small_cnn", "scratch", 32, 3).key == "small_cnn/scratch/32"


def test_popular_config_is_valid_and_most_common(seed: list[ExperimentRecord]) -> None:
    c = popular_config(seed)
    assert (c.backbone, c.mode, c.input_size) == ("efficientnet_lite0", "frozen", 64)
    assert c.augmentation == "none"


class _Truth:
    """A stand-in for the fitted meta-model: a fixed accuracy and time per config."""

    def predict(self, meta, configs):  # type: ignore[no-untyped-def]
        from tools.metamodel import Prediction

        return [Prediction(0.7, 0.6, 0.8, 30.0 if c.mode == "frozen" else 120.0) for c in configs]


def test_synthetic_records_are_valid_labelled_and_never_touch_the_seed(seed: list[ExperimentRecord],
                                                                       tmp_path: Path) -> None:
    before = _sha_of_seed()
    recs = synthesize(seed, 300, 6, _Truth(), seed=1)
    assert len(recs) == 300
    assert len({r.dataset.name for r in recs}) == 6
    assert len({r.id for r in recs}) == 300
    for r in recs:
        again = ExperimentRecord.model_validate_json(r.model_dump_json())  # round-trips through the schema
        assert again == r
        assert r.dataset.name.startswith("synthetic-")
        assert r.provenance.machine == SYNTHETIC_MACHINE and r.provenance.code_version == "synthetic"
        assert 0 <= r.outcome.test_accuracy <= 1
    kb = KnowledgeBase(tmp_path / "kb", index=False)  # where the scale bench writes: a temporary folder
    kb.append(recs)
    assert len(kb.records()) == 300
    assert _sha_of_seed() == before
    assert not any(r.provenance.machine == SYNTHETIC_MACHINE for r in read_seed())


def test_scaled_meta_keeps_the_balance(seed: list[ExperimentRecord]) -> None:
    meta = seed[0].dataset.meta
    big = scaled_meta(meta, 3.0)
    assert big.n_instances >= 2.5 * meta.n_instances
    assert big.n_classes == meta.n_classes and big.modality == meta.modality
    assert abs(big.imbalance_ratio - meta.imbalance_ratio) / meta.imbalance_ratio < 0.1


def test_write_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    doc = tmp_path / "B.md"
    write_section("a", "first", doc)
    write_section("b", "other", doc)
    write_section("a", "second", doc)
    text = doc.read_text()
    assert "second" in text and "first" not in text and "other" in text
    assert text.count("<!-- a:start -->") == 1


def test_sweep_best_val_picks_the_best_validation_run_not_the_best_test_run(seed: list[ExperimentRecord]) -> None:
    from types import SimpleNamespace

    from bench.lodo import sweep_best_val

    _, own = split_out(seed, "busi_ultrasound")
    ok = [r for r in own if r.outcome.status == "ok"]
    choice = sweep_best_val(SimpleNamespace(own=own))  # it only reads the task's own records
    by_val = max(ok, key=lambda r: r.outcome.val_accuracy or 0.0)
    assert choice.config == by_val.config
    assert choice.trials == len(own)
    assert choice.recommend_seconds == pytest.approx(sum(r.outcome.total_seconds or 0.0 for r in own))


def test_goals_report_both_references_and_the_sweep_reference() -> None:
    from bench.lodo import Row, goals

    def row(d: str, method: str, regret: float, same: float, train: float) -> Row:
        return Row(d, method, None, 0.8, [0.8], regret, 1, 100, 1.0, train, 0.0, "", same)

    rows, bests = [], {}
    for i, d in enumerate("abcdefgh"):
        bests[d] = {"n": 100, "seconds": 90.0, "rerun_seconds": 90.0}
        # zero-shot: 2 pt below the recorded best on every dataset, but within 1 pt of the same-seeds re-run on 6
        rows.append(row(d, "metallmix", 0.02, 0.005 if i < 6 else 0.03, 20.0 if i < 5 else 60.0))
        rows.append(row(d, "sweep-best-val", 0.03 if i else 0.0, 0.0, 30.0))
        rows.append(row(d, "random-10", 0.04, 0.03, 30.0))
        rows.append(row(d, "tpe-20", 0.025, 0.015, 30.0))
    bests["a"].update(within=3, within_fast=1)
    bests["b"].update(within=1, within_fast=0)
    text = goals(rows, bests)
    assert "0/8 (need 7/8): NOT MET" in text
    assert "Of D's recorded runs (100-100 per dataset), 1-3 are within 1 point of the best (median 2)" in text
    assert "took <= 1/3 of its time exists on 1/8 datasets (a); elsewhere" in text
    assert "same seeds: 6/8 within 1 point" in text
    assert "sweep is within 1 point of the recorded best on 1/8" in text
    assert "2. mean regret: zero-shot 0.020 vs random-10 0.040 (beats)" in text and ": MET." in text
    # goal 3 against the recorded best: none within 1 point; against the re-run: 5 are 4.5x faster and within 1 point
    assert "time than the best-accuracy config (its re-run time): 0/8: NOT MET" in text
    assert "5/8 within 1 point of the re-run on the same seeds and >= 3x faster" in text


def test_reachable_counts_the_recorded_runs_that_clear_each_goal(seed: list[ExperimentRecord]) -> None:
    from bench.lodo import reachable

    _, own = split_out(seed, "busi_ultrasound")
    ok = [r for r in own if r.outcome.status == "ok"]
    best = max(ok, key=lambda r: r.outcome.test_accuracy or 0.0)
    top, secs = best.outcome.test_accuracy, best.outcome.total_seconds
    base = reachable(ok)
    assert base["within"] >= 1  # the best run itself
    # a run 0.5 points below the best in a quarter of its time clears both bars; one 2 points below clears neither
    near_fast = best.model_copy(update={"outcome": best.outcome.model_copy(update={
        "test_accuracy": top - 0.005, "train_seconds": secs / 4, "feature_seconds": 0.0})})
    far_fast = best.model_copy(update={"outcome": best.outcome.model_copy(update={
        "test_accuracy": top - 0.02, "train_seconds": secs / 4, "feature_seconds": 0.0})})
    near_slow = best.model_copy(update={"outcome": best.outcome.model_copy(update={"test_accuracy": top - 0.005})})
    got = reachable([*ok, near_fast, far_fast, near_slow])
    assert {k: got[k] for k in ("within", "within_fast")} == {"within": base["within"] + 2,
                                                             "within_fast": base["within_fast"] + 1}
    # The best run within the benchmark's budget: a quick run above it raises it, a slow one does not.
    from bench.lodo import BUDGET_MINUTES

    budget = BUDGET_MINUTES * 60
    assert base["best_in_budget"] == max(r.outcome.test_accuracy or 0.0 for r in ok if r.outcome.total_seconds <= budget)
    def run(acc: float, secs: float) -> ExperimentRecord:
        return best.model_copy(update={"outcome": best.outcome.model_copy(update={
            "test_accuracy": acc, "train_seconds": secs, "feature_seconds": 0.0})})
    assert reachable([*ok, run(1.0, budget + 1)])["best_in_budget"] == base["best_in_budget"]
    assert reachable([*ok, run(1.0, budget)])["best_in_budget"] == 1.0
    assert "best_in_budget" not in reachable([run(0.5, budget + 1)])


def test_within_budget_splits_the_regret_into_the_budgets_part_and_the_choices() -> None:
    from bench.lodo import Row, within_budget

    def row(d: str, method: str, test: float, ref: float) -> Row:
        return Row(d, method, None, test, [test], None, 1, 100, 1.0, 10.0, 0.0, "", regret_ref=ref)

    bests = {"a": {"best_in_budget": 0.80}, "b": {"best_in_budget": 0.70}, "c": {}}
    rows = [row("a", "metallmix", 0.75, 0.10), row("b", "metallmix", 0.72, 0.08), row("c", "metallmix", 0.5, 0.3)]
    text = within_budget(rows, bests)
    # a: 5 points below its best within the budget; b: above it (regret 0); c: no run within the budget, left out
    assert ("- metallmix: 2 datasets; mean regret to the best run within the budget 0.025 (to the reference 0.090); "
            "within 2 points of it on 1/2; above it on 1/2.") in text
    assert "- metamodel-top1: NOT MEASURED" in text


def test_agent_session_is_saved_with_what_a_pick_rule_needs(tmp_path: Path) -> None:
    import json

    from agent.tune import TuneResult, pick

    trials = [make_trial(1, 0.70, predicted=0.80), make_trial(2, 0.72, predicted=0.75, lr=0.01),
              make_trial(3, None, predicted=0.9, status="diverged", lr=0.5)]
    kept, why = pick(trials, 100)
    result = TuneResult(session_id="s", task="", dataset="d.npz", trials=trials, best=kept, best_reason=why,
                        stop_reason="trials done", max_trials=3, budget_seconds=None, seconds=1.0, train_seconds=1.0,
                        llm_seconds=0.0)
    path = save_agent_session(result, 100, tmp_path / "agent" / "d-agent3.json")
    data = json.loads(path.read_text())
    assert data["n_val"] == 100 and data["kept"] == 1 and "within one standard error" in data["kept_reason"]
    assert [t["val_accuracy"] for t in data["trials"]] == [0.70, 0.72, None]
    assert [t["predicted"]["accuracy"] for t in data["trials"]] == [0.80, 0.75, 0.9]
    assert data["trials"][1]["config"]["learning_rate"] == 0.01 and data["trials"][2]["status"] == "diverged"
    assert not list(path.parent.glob("*.tmp"))



def test_pick_rules_are_scored_on_the_trials_a_saved_session_ran(tmp_path: Path) -> None:
    import json

    from agent.tune import TuneResult
    from bench.pick_rules import compare

    made = [make_trial(1, 0.70, predicted=0.80), make_trial(2, 0.72, predicted=0.75, lr=0.01),
            make_trial(3, 0.60, predicted=0.85, lr=0.1), make_trial(4, None, predicted=0.9, status="diverged", lr=0.5)]
    trials = [t.model_copy(update={"test_accuracy": a}) for t, a in zip(made, (0.69, 0.74, 0.62, None), strict=True)]
    result = TuneResult(session_id="s", task="", dataset="/data/d.npz", trials=trials, best=trials[0], best_reason=None,
                        stop_reason="trials done", max_trials=4, budget_seconds=None, seconds=1.0, train_seconds=1.0,
                        llm_seconds=0.0)
    session = json.loads(save_agent_session(result, 100, tmp_path / "d-agent4.json").read_text())

    picks = compare({"d-agent4": session})["d-agent4"]

    # 0.70 is within one standard error (0.045 on 100 images) of 0.72, and predicted higher
    assert {rule: n for rule, (n, _) in picks.items()} == {
        "zero-shot": 1, "best-val": 2, "one-SE": 1, "best-predicted": 3, "oracle": 2}
    assert picks["oracle"][1] == 0.74  # the diverged trial is never kept


def test_within_dataset_targets_drop_how_hard_each_dataset_is() -> None:
    import numpy as np

    from bench.metamodel import _target

    y = np.array([0.9, 0.8, 0.7, 0.5, 0.4, 0.3])
    groups = np.array(["easy", "easy", "easy", "hard", "hard", "hard"])
    chance = np.array([0.5, 0.5, 0.5, 0.25, 0.25, 0.25])

    centred = _target("centred", y, groups, chance)
    assert centred == pytest.approx([0.1, 0.0, -0.1, 0.1, 0.0, -0.1])  # the same config effects on both
    scaled = _target("scaled", y, groups, chance)
    assert scaled[[0, 3]] == pytest.approx([1.0, 1.0])  # each dataset's best run is 1
    assert scaled[2] == pytest.approx(0.5)  # halfway between chance (0.5) and the best (0.9)
    assert _target("absolute", y, groups, chance) is y


def test_margin_ablation_scores_each_share_and_chooses_the_nested_one_without_the_held_out_dataset(
        seed: list[ExperimentRecord], monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.metamodel --margin: one row per share and a nested row whose share was chosen on the
    other datasets only; a share-0 booster is the mean-start model (its margin is a constant)."""
    import numpy as np

    import bench.metamodel as bm
    import tools.metamodel_features as mf

    monkeypatch.setattr(mf, "_ROUNDS", 40)  # a fast booster: the bench's wiring is what is tested
    monkeypatch.setattr(bm, "MARGIN_SHARES", (0.0, 1.0))
    names = sorted({r.dataset.name for r in seed})[:3]
    rng = random.Random(0)
    small = [r for n in names for r in rng.sample([r for r in seed if r.dataset.name == n], 25)]
    rows, chosen = bm.margin_ablation(small)
    assert [r["share"] for r in rows] == ["0", "1", "nested choice"]
    assert set(chosen) == set(names) and set(chosen.values()) <= {"0", "1"}
    by_share = {r["share"]: r for r in rows}
    if len(set(chosen.values())) == 1:  # one share chosen for every dataset: the nested row is that share's row
        assert by_share["nested choice"]["mae_runs"] == pytest.approx(by_share[next(iter(chosen.values()))]["mae_runs"])
    x, y, _ = bm._lodo_rows(small, mf.ACC_FEATURES)
    line = mf.AccMargin.fit(x, y, mf.ACC_FEATURES, share=0.0)
    assert np.allclose(line(x, mf.ACC_FEATURES), y.mean())


def test_booster_ablation_trains_each_setting_it_names(seed: list[ExperimentRecord],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.metamodel --booster: a row per setting and seed, and each setting reaches XGBoost (the
    product's booster keeps its own objective; an override replaces it)."""
    import json

    import bench.metamodel as bm
    import tools.metamodel_features as mf

    monkeypatch.setattr(mf, "_ROUNDS", 40)
    monkeypatch.setattr(bm, "BOOSTERS", {"product": {}, "mean": {"objective": "reg:squarederror"}})
    names = sorted({r.dataset.name for r in seed})[:3]
    rng = random.Random(0)
    small = [r for n in names for r in rng.sample([r for r in seed if r.dataset.name == n], 25)]
    rows = bm.booster_ablation(small, seeds=(0, 1))
    assert [(r["booster"], r["seed"], r["n"]) for r in rows] == [
        ("product", 0, 3), ("product", 1, 3), ("mean", 0, 3), ("mean", 1, 3)]
    assert rows[0]["mae_runs"] != rows[2]["mae_runs"]  # a different booster, different predictions
    x, y, _ = bm._lodo_rows(small, mf.ACC_FEATURES)

    def objective(overrides: dict[str, object] | None) -> str:
        booster = mf._boost(x, y, mf.ACC_FEATURES, 0, overrides=overrides)
        return json.loads(booster.save_config())["learner"]["objective"]["name"]

    assert objective(None) == mf._XGB_PARAMS["objective"] == "reg:absoluteerror"
    assert objective({"objective": "reg:squarederror"}) == "reg:squarederror"


@pytest.mark.parametrize("baseline", ["rationale", "judge", "grammar"])
def test_latency_baselines_re_enact_the_old_call_and_restore_the_current_one(baseline: str) -> None:
    import agent.judge as J
    from agent.llama_greedy import llama_with_greedy_grammar
    from bench.latency import _llm_call

    cands = [{"id": "c1"}, {"id": "c2"}]
    current = J.draft_schema(cands, []), J.judge_schema()
    with _llm_call("baseline", baseline):
        schema, verdict = J.draft_schema(cands, []), J.judge_schema()
        if baseline == "grammar":  # the library's sampler, and "critique": "ok" after "none"
            assert not llama_with_greedy_grammar().greedy_grammar
            assert verdict["anyOf"][0]["properties"]["critique"] == {"type": "string", "const": "ok"}
        elif baseline == "rationale":
            assert schema["properties"]["rationale"] == {"type": "string", "minLength": 20, "maxLength": 150}
            assert J.tidy_text("c1 " * 60, 150).endswith("...")
        else:
            assert "anyOf" not in verdict and J.with_rationale('{"rationale": "a"}', "a", "b") is None
    with _llm_call("current", baseline):
        assert (J.draft_schema(cands, []), J.judge_schema()) == current
    assert (J.draft_schema(cands, []), J.judge_schema()) == current
    assert llama_with_greedy_grammar().greedy_grammar


# ------------------------------------------------------------------ issue 14: the reference protocol
def test_reference_is_the_max_of_the_recorded_best_and_the_protocol_means() -> None:
    from bench.reference import reference_accuracy

    assert reference_accuracy(0.774, {"lite0_finetune": 0.832, "small_cnn_scratch": 0.742}) == (0.832, "lite0_finetune")
    assert reference_accuracy(0.895, {"lite0_finetune": 0.85, "small_cnn_scratch": 0.87}) == (0.895, "recorded")
    assert reference_accuracy(0.60, {"lite0_finetune": 0.55, "small_cnn_scratch": 0.65}) == (0.65, "small_cnn_scratch")
    assert reference_accuracy(0.70, {"lite0_finetune": 0.70}) == (0.70, "recorded")  # a tie keeps the recorded run
    # a dataset the knowledge base has no run of: the protocol alone; a protocol that never finished ok: left out
    assert reference_accuracy(None, {"lite0_finetune": None, "small_cnn_scratch": 0.61}) == (0.61, "small_cnn_scratch")
    assert reference_accuracy(0.5, {"lite0_finetune": None}) == (0.5, "recorded")
    assert reference_accuracy(None, {}) == (None, "")


class _FakeRuns:
    """Cached rows by (config key, seed); `measured` as bench.reference.Runs reports it."""

    def __init__(self, acc: dict[tuple[str, int], float], device: str = "cpu:2 cores") -> None:
        self.acc, self.device_name = acc, device

    def get(self, ds, config, seed, cap_s=0.0):  # type: ignore[no-untyped-def]
        return {"status": "ok", "test_accuracy": self.acc[(config.key(), seed)], "val_accuracy": 0.5,
                "train_seconds": 30.0, "feature_seconds": 2.0, "device": self.device_name}

    def measured(self, fingerprint, config):  # type: ignore[no-untyped-def]
        return {"cpu": {"seconds": 32.0, "device": self.device_name, "runs": 2}}


def test_regret_is_measured_against_the_reference_and_kept_to_the_recorded_best(seed: list[ExperimentRecord]) -> None:
    from types import SimpleNamespace

    from bench.lodo import Choice, evaluate
    from bench.reference import fmt_cost, regret

    assert regret(0.83, 0.80) == pytest.approx(0.03) and regret(None, 0.8) is None and regret(0.8, None) is None
    cfg = TrainConfig(backbone="small_cnn", mode="scratch", input_size=32)
    runs = _FakeRuns({(cfg.key(), 0): 0.78, (cfg.key(), 1): 0.80})
    _, own = split_out(seed, "busi_ultrasound")
    task = SimpleNamespace(name="busi_ultrasound", own=own, ds=SimpleNamespace(fingerprint="f"), chance=0.5)
    row = evaluate(task, Choice("metallmix", cfg, 1.0), runs, [0, 1], 0.774, 0.761, 0.832)  # type: ignore[arg-type]
    assert row.test == pytest.approx(0.79)
    assert row.regret_ref == pytest.approx(0.042) and row.regret == pytest.approx(-0.016)
    assert row.regret_same_seeds == pytest.approx(-0.029) and row.rank is not None
    assert fmt_cost(row.costs["cpu"]) == "32 s (cpu:2 cores)" and "cuda" not in row.costs
    # no recorded run of D: no recorded-best regret and no rank, but a regret to the (protocol-only) reference
    bare = SimpleNamespace(name="new", own=[], ds=SimpleNamespace(fingerprint="g"), chance=0.5)
    row = evaluate(bare, Choice("metallmix", cfg, 1.0), runs, [0, 1], None, None, 0.85)  # type: ignore[arg-type]
    assert row.regret is None and row.rank is None and row.n_runs == 0
    assert row.regret_ref == pytest.approx(0.06)


def test_the_cpu_stand_in_is_labelled_as_such() -> None:
    from bench.reference import ProtocolResult, device_kind, label, protocol

    cpu, gpu = protocol("cpu"), protocol("cuda")
    assert (cpu["lite0_finetune"].input_size, gpu["lite0_finetune"].input_size) == (64, 128)
    assert cpu["lite0_finetune"].mode == "finetune" and cpu["lite0_finetune"].freeze == 0
    assert cpu["small_cnn_scratch"] == gpu["small_cnn_scratch"] and cpu["small_cnn_scratch"].epochs == 30
    assert label("lite0_finetune", cpu["lite0_finetune"], ["cpu:2 cores"]) == "Lite0 FT 64 px (CPU stand-in)"
    assert label("lite0_finetune", gpu["lite0_finetune"], ["cuda:NVIDIA H200"]) == "Lite0 FT 128 px"
    # the 128 px protocol is the protocol itself, whatever device ran it; small_cnn is the same config everywhere
    assert label("lite0_finetune", gpu["lite0_finetune"], ["cpu:2 cores"]) == "Lite0 FT 128 px"
    assert label("small_cnn_scratch", cpu["small_cnn_scratch"], ["cpu:2 cores"]) == "small_cnn scratch 30 ep 64 px"
    assert (device_kind("cuda:NVIDIA H200"), device_kind("cpu:2 cores"), device_kind(None)) == ("cuda", "cpu", "cpu")
    rows = [{"status": "ok", "test_accuracy": a, "train_seconds": 600.0, "feature_seconds": 0.0,
             "device": "cpu:2 cores"} for a in (0.80, 0.82)]
    res = ProtocolResult("lite0_finetune", cpu["lite0_finetune"], [*rows, {**rows[0], "status": "cancelled",
                                                                           "test_accuracy": None}])
    assert res.title == "Lite0 FT 64 px (CPU stand-in)" and res.device == "cpu:2 cores"
    assert res.accuracy == pytest.approx(0.81) and res.train_seconds == 600.0  # a run not ok is no reference


def test_goal_verdicts_flip_at_the_thresholds() -> None:
    from bench.reference import goal_verdicts

    names = [f"d{i}" for i in range(13)]
    zero = {d: (0.02 if i < 10 else 0.0) for i, d in enumerate(names)}  # 10 exactly at 2 points, mean 0.0154
    worse = {d: 0.03 for d in names}
    v = goal_verdicts(zero, worse, worse)
    assert [x.word for x in v] == ["MET", "MET", "MET"]
    assert v[0].detail == "13/13 (need 10/13)"
    # goal 1: 10 of 13 within 2 points is enough, 9 is not
    ten = {d: (0.0 if i < 10 else 0.05) for i, d in enumerate(names)}
    nine = {**ten, "d0": 0.0201}
    assert goal_verdicts(ten, worse, worse)[0].met is True
    assert goal_verdicts(nine, worse, worse)[0].met is False
    # goal 2: a mean regret of exactly 0.02 is met, a hair above is not
    flat = {d: 0.02 for d in names}
    assert goal_verdicts(flat, worse, worse)[1].met is True
    assert goal_verdicts({**flat, "d0": 0.0213}, worse, worse)[1].met is False
    # goal 3: strictly better than both; a tie with either is not; a baseline missing a dataset is not measured
    assert goal_verdicts(flat, flat, worse)[2].met is False
    assert goal_verdicts(flat, worse, flat)[2].met is False
    assert goal_verdicts(flat, {d: 0.0201 for d in names}, worse)[2].met is True
    missing = goal_verdicts(flat, worse, {d: 0.03 for d in names[:-1]})[2]
    assert missing.met is None and missing.word == "NOT MEASURED" and "tpe-20" in missing.detail
    # fewer datasets: the same share of them, rounded up, and the detail says so
    part = goal_verdicts({"a": 0.0, "b": 0.05}, {"a": 0.1, "b": 0.1}, {"a": 0.1, "b": 0.1})
    assert part[0].detail.startswith("1/2 (need 2/2; only 2 of 13") and part[0].met is False
    assert goal_verdicts({}, {}, {})[0].word == "NOT MEASURED"
    assert v[1].line().endswith(": MET.")


def test_random_and_tpe_sample_the_widened_space_with_partial_fine_tuning() -> None:
    import optuna

    from bench.lodo import FREEZES, tpe_config

    for fams in (families(545), families(4800)):
        rng = random.Random(1)
        drawn = [sample_config(rng, fams) for _ in range(400)]
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        for _ in range(300):
            drawn.append(tpe_config(study.ask(), fams))
        assert {c.mode for c in drawn} == {"frozen", "finetune", "scratch"}
        fine = [c for c in drawn if c.mode == "finetune"]
        assert any(c.freeze > 0 for c in fine) and any(c.freeze == 0 for c in fine)
        assert all(c.freeze in FREEZES for c in fine)
        assert all(c.freeze == 0 for c in drawn if c.mode != "finetune")
        for c in drawn:
            assert TrainConfig.model_validate(c.model_dump()) == c
            assert project(c, fams) == (c, [])
    # a pick outside the grid snaps to it; a mode change drops freeze (it belongs to finetune only)
    fams = families(4800)
    odd = TrainConfig(backbone="efficientnet_lite0", mode="finetune", input_size=32, epochs=1, freeze=0.6)
    assert project(odd, fams)[0].freeze == 0.5
    gone = [f for f in fams if f.mode != "finetune"]
    assert project(odd, gone)[0].freeze == 0.0


def test_cached_runs_are_keyed_by_device_and_cpu_keys_stay_as_they_were(tmp_path: Path) -> None:
    import json
    from types import SimpleNamespace

    from bench.reference import Runs, protocol, protocol_runs

    cfg = protocol("cpu")["small_cnn_scratch"]
    assert Runs.key("fp", cfg, 0) == f"fp|{cfg.key()}|0"  # the key every run cached before had
    assert Runs.key("fp", cfg, 0, "cuda") == f"fp|{cfg.key()}|0|cuda"
    lite_gpu = protocol("cuda")["lite0_finetune"]
    rows = [{"key": Runs.key("fp", cfg, s, dev), "status": "ok", "test_accuracy": acc, "train_seconds": t,
             "feature_seconds": 0.0, "device": name}
            for s, dev, acc, t, name in [(0, "cpu", 0.7, 100.0, "cpu:2 cores"), (1, "cpu", 0.72, 120.0, "cpu:2 cores"),
                                         (0, "cuda", 0.74, 4.0, "cuda:NVIDIA H200")]]
    rows += [{"key": Runs.key("fp", lite_gpu, s, "cuda"), "status": "ok", "test_accuracy": 0.83, "train_seconds": 20.0,
              "feature_seconds": 0.0, "device": "cuda:NVIDIA H200"} for s in (0, 1)]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = Runs(path)
    runs._device = "cpu"  # this machine, whatever it is
    got = runs.measured("fp", cfg)
    assert got["cpu"] == {"seconds": 110.0, "device": "cpu:2 cores", "runs": 2}
    assert got["cuda"]["device"] == "cuda:NVIDIA H200" and got["cuda"]["runs"] == 1
    ds = SimpleNamespace(fingerprint="fp", name="d")
    assert runs.cached(ds, cfg, 0)["test_accuracy"] == 0.7 and runs.cached(ds, cfg, 0, "cuda")["test_accuracy"] == 0.74
    # where a GPU ran the whole protocol it is used (also on a CPU machine); elsewhere the CPU stand-in; nothing
    # trains with train=False, and a protocol config not cached for every seed is left out
    res = protocol_runs(ds, runs, [0, 1], train=False)
    assert res["lite0_finetune"].title == "Lite0 FT 128 px" and res["lite0_finetune"].accuracy == 0.83
    assert res["small_cnn_scratch"].device == "cpu:2 cores" and res["small_cnn_scratch"].accuracy == pytest.approx(0.71)
    assert "lite0_finetune" not in protocol_runs(ds, runs, [0, 1, 2], train=False)
    assert runs.trained == 0


def test_a_run_cut_short_by_a_cap_is_trained_again_under_a_longer_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    from types import SimpleNamespace

    import bench.reference as ref

    cfg = ref.protocol("cpu")["small_cnn_scratch"]
    cut = {"key": ref.Runs.key("fp", cfg, 0), "status": "cancelled", "test_accuracy": None, "train_seconds": 901.0,
           "feature_seconds": 0.0, "wall_seconds": 902.0, "device": "cpu:2 cores"}
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(cut) + "\n")
    trained: list[float] = []

    def train_row(ds: Any, config: Any, seed: int, key: str, *, threads: int = 1, cap_s: float = 0.0) -> dict[str, Any]:
        trained.append(cap_s)
        return {**cut, "status": "ok", "test_accuracy": 0.9, "train_seconds": 1200.0, "wall_seconds": 1210.0}

    monkeypatch.setattr(ref, "train_row", train_row)
    runs = ref.Runs(path)
    runs._device = "cpu"
    ds = SimpleNamespace(fingerprint="fp", name="d")
    assert runs.get(ds, cfg, 0)["status"] == "cancelled" and trained == []  # the same cap: as cached
    assert runs.get(ds, cfg, 0, cap_s=ref.REFERENCE_CAP_S)["test_accuracy"] == 0.9 and trained == [ref.REFERENCE_CAP_S]
    assert ref.Runs(path).cached(ds, cfg, 0)["status"] == "ok"  # the finished run replaced the cut one in the file
    assert runs.get(ds, cfg, 0, cap_s=ref.REFERENCE_CAP_S)["status"] == "ok" and len(trained) == 1


def test_lodo_trials_of_zero_leave_the_search_baselines_out() -> None:
    assert parse_args(["--trials", "0", "--agent-trials", "0"]).trials == []
    assert parse_args(["--trials", "10,20"]).trials == [10, 20]
    zero = parse_args(["--zero-shot-only"])
    assert (zero.trials, zero.agent_trials, zero.zero_shot_only) == ([], [], True)
    quick = parse_args(["--quick"])
    assert (quick.trials, quick.seeds, quick.reference, quick.agent_trials) == ([5], [0], "cached", [])


def test_stated_against_real_scores_the_zero_shot_picks_point_and_interval() -> None:
    def row(method: str, stated: tuple[float, float, float] | None, test: float) -> Row:
        return Row("d", method, None, test, [test], None, None, 0, 1.0, 1.0, 0.0, "", stated=stated)

    text = stated_vs_real([row("metallmix", (0.80, 0.70, 0.90), 0.85), row("metallmix", (0.90, 0.85, 0.95), 0.70),
                           row("random-10", None, 0.5)])
    assert "metallmix: 2 picks; MAE 0.125, mean error (real - stated) -0.075, largest miss -0.200" in text
    assert "interval held 1/2 (mean width 0.15)" in text
    assert "metamodel-top1: NOT MEASURED" in text


def test_calibration_scores_only_cached_runs_the_records_lack_and_reads_both_lodo_reports(tmp_path: Path) -> None:
    import json

    from bench.calibration import cached_runs, zero_shot_picks

    held = next(r for r in read_seed() if r.provenance.source == "sweep")
    fresh = held.config.model_copy(update={"epochs": held.config.epochs + 1})
    cache = tmp_path / "runs.jsonl"
    rows = [{"fingerprint": held.dataset.fingerprint, "seed": held.provenance.seed, "config": c.model_dump(mode="json"),
             "ran_as": c.model_dump(mode="json"), "status": "ok", "test_accuracy": 0.5} for c in (held.config, fresh)]
    cache.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r["ran_as"]["epochs"] for r in cached_runs(cache, [held])[held.dataset.fingerprint]] == [fresh.epochs]
    assert len(cached_runs(cache)[held.dataset.fingerprint]) == 2
    # A run measured before a runner fix that changes it (a Lite fine-tune of revision 1) is no evidence of today's runner.
    stale = TrainConfig(backbone="efficientnet_lite0", mode="finetune", epochs=3).model_dump(mode="json")
    cache.write_text("".join(json.dumps({**rows[1], "config": stale, "ran_as": stale, **extra}) + "\n"
                             for extra in ({}, {"runner_revision": 2})))
    assert [r.get("runner_revision") for r in cached_runs(cache)[held.dataset.fingerprint]] == [2]

    report = tmp_path / "lodo.md"
    line = "| metallmix | small_cnn/scratch 64px adamw lr=0.001 bs=64 ep=30 | 0.9 |"
    report.write_text(f"**knee** (reference 0.602, from x)\n\n{line}\n\n**busi** (best known 0.8, 3 runs)\n\n"
                      + line.replace("metallmix", "metamodel-top1") + "\n")
    assert zero_shot_picks(report) == {"knee": {"small_cnn/scratch 64px adamw lr=0.001 bs=64 ep=30": {"metallmix"}},
                                       "busi": {"small_cnn/scratch 64px adamw lr=0.001 bs=64 ep=30": {"metamodel-top1"}}}


def test_own_runs_curve_scores_the_same_runs_for_every_k(seed: list[ExperimentRecord],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.metamodel --own-runs: rows per k, variant and seed; with no own runs the three variants are the
    booster without D; own runs in training change its predictions; a shift never reorders D's runs; and the
    oracle's shift (the scored runs' median residual) is the least absolute error any one shift can reach."""
    import bench.metamodel as bm
    import tools.metamodel_features as mf

    monkeypatch.setattr(mf, "_ROUNDS", 40)
    names = sorted({r.dataset.name for r in seed})[:3]
    rng = random.Random(0)
    small = [r for n in names for r in rng.sample([r for r in seed if r.dataset.name == n], 30)]
    rows = bm.own_runs_curve(small, seeds=(0,), ks=(0, 5))
    by = {r["own runs"]: r for r in rows}
    assert list(by) == ["oracle offset", "0 plain", "0 offset", "0 held-out offset",
                        "5 plain", "5 offset", "5 held-out offset"]
    assert all(r["n"] == 3 and r["seed"] == 0 for r in rows)
    assert by["0 plain"]["mae_runs"] == by["0 offset"]["mae_runs"] == by["0 held-out offset"]["mae_runs"]
    assert by["5 plain"]["mae_runs"] != by["0 plain"]["mae_runs"]  # D's five runs reached the booster
    assert by["5 held-out offset"]["rho"] == pytest.approx(by["0 plain"]["rho"])  # a shift keeps the order
    assert by["5 offset"]["rho"] == pytest.approx(by["5 plain"]["rho"])
    assert by["oracle offset"]["mae_datasets"] <= min(by[k]["mae_datasets"] for k in ("0 plain", "5 held-out offset"))


def test_judge_quality_objective_drafts_pick_the_quick_candidate_and_one_too_slow_for_quick() -> None:
    from agent.judge import merge_config, parse_draft, run_checks
    from bench.judge_quality import QUICK, objective_drafts

    def cand(i: str, acc: float, seconds: float) -> dict[str, Any]:
        return {"id": i, "accuracy": acc, "low": acc - 0.2, "high": min(acc + 0.2, 1.0), "seconds": seconds,
                "config": {"backbone": "efficientnet_lite0", "mode": "frozen", "epochs": int(seconds)}}

    candidates = [cand("c1", 0.90, 60), cand("c2", 0.88, 20), cand("c3", 0.80, 5), cand("c4", 0.89, 300)]
    drafts = objective_drafts(candidates, "with no time budget to meet")
    assert drafts["good_quick"]["candidate"] == "c2"  # c3 is faster but 10 points below the best
    assert drafts["off_objective"]["candidate"] == "c4"
    verdicts = {}
    for kind, raw in drafts.items():
        draft, error = parse_draft({**raw, "backbone": "efficientnet_lite0", "mode": "frozen", "learning_rate": 0.001,
                                    "batch_size": 32, "epochs": next(c for c in candidates if c["id"] == raw["candidate"])
                                    ["config"]["epochs"], "expected_accuracy": 0.9})
        c = next(c for c in candidates if c["id"] == raw["candidate"])
        checks = run_checks(draft=draft, draft_error=error, candidates=candidates, evidence_aliases=[],
                            config=merge_config(draft, candidates), config_error=None, prediction=c,
                            profile={"goals": QUICK}, weights_available=lambda b: True, accuracy_tolerance=0.05,
                            max_accuracy_gap=0.05)
        verdicts[kind] = next(x.ok for x in checks if x.name == "objective")
    assert verdicts == {"good_quick": True, "off_objective": False}
    assert objective_drafts(candidates[1:3], "").keys() == {"good_quick"}  # nothing slow enough: no bad draft


def test_judge_quality_says_the_images_size_of_the_images_only_where_the_pick_differs() -> None:
    from agent.judge import Facts, unsupported
    from bench.judge_quality import GOOD, drafts_for

    cands = [{"id": "c1", "accuracy": 0.81, "low": 0.7, "high": 0.9, "seconds": 120.0,
              "config": {"backbone": "efficientnet_lite0", "mode": "finetune", "input_size": 96, "learning_rate": 1e-3}},
             {"id": "c2", "accuracy": 0.78, "low": 0.6, "high": 0.9, "seconds": 60.0,
              "config": {"backbone": "efficientnet_lite0", "mode": "frozen", "input_size": 64, "learning_rate": 1e-3}}]
    draft = drafts_for(cands, "with no time budget to meet", image_size=64)["good_images"]
    assert "good_images" in GOOD and "images at 64 px" in draft["rationale"]
    facts = Facts(known=frozenset({"c1", "c2"}), shown=(0.81, 0.7, 0.9, 0.78, 0.6), runs={c["id"]: c for c in cands},
                  candidates=cands, about=("c1",), image_size=64)
    assert unsupported(draft["rationale"], facts) == []
    assert "good_images" not in drafts_for(cands, "", image_size=96)  # the pick's own size: nothing to tell apart
    assert "good_images" not in drafts_for(cands, "")
