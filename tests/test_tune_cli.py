"""`metallmix tune` and `metallmix export-optuna` with fake parts: approval, exit codes, the Optuna study."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

import agent.recommend as recommend_module
from agent.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from agent.optuna_export import PARAMS, search_space, suggest_config, trial_params
from knowledge.schema import TrainConfig
from tests.fakes import tiny_dataset
from tests.test_tune import DRAFT, TASK, Parts, pick
from tools import jobs as jobs_module


@pytest.fixture
def dataset(tmp_path: Path) -> str:
    return tiny_dataset(tmp_path)


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Parts:
    """The CLI's default recommender and job starter replaced by fakes."""
    p = Parts(tmp_path, [DRAFT, pick(0), pick(0)])
    monkeypatch.setattr(recommend_module, "default_recommender", lambda kb_dir=None: p.recommender)
    monkeypatch.setattr(jobs_module.Job, "start", staticmethod(p.jobs))
    return p


def test_tune_without_yes_prints_the_first_proposal_and_trains_nothing(parts: Parts, dataset: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["tune", TASK, "--dataset", dataset, "--trials", "3"])

    out, err = capsys.readouterr()
    assert code == EXIT_OK
    assert parts.jobs.calls == []
    assert "Trial 1 (zero-shot): efficientnet_lite0/frozen" in out and "Not approved" in out
    assert "nothing trains without explicit approval" in err and "--yes" in err


def test_tune_with_yes_runs_the_trials_and_prints_json(parts: Parts, dataset: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["tune", TASK, "--dataset", dataset, "--trials", "3", "--yes", "--json", "--modes", "frozen"])

    out, err = capsys.readouterr()
    assert code == EXIT_OK
    result = json.loads(out)
    assert [t["number"] for t in result["trials"]] == [1, 2, 3] and len(parts.jobs.calls) == 3
    assert result["stop_reason"].startswith("trials done")
    assert result["best"]["val_accuracy"] == max(t["val_accuracy"] for t in result["trials"])
    assert "Trial 2 (llm, option o1)" in err and "analysis:" in err  # progress streams on stderr


def test_tune_exits_1_when_every_trial_fails(parts: Parts, dataset: str, capsys: pytest.CaptureFixture[str]) -> None:
    parts.llm.script = [{**DRAFT, "learning_rate": 0.3, "expected_accuracy": 0.7}]  # diverges in the fake runner
    parts.metamodel.lr_penalty = 0.0  # ... and the judge lets the draft through

    code = main(["tune", TASK, "--dataset", dataset, "--trials", "1", "--yes"])

    assert code == EXIT_FAILED
    assert "[diverged]" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--trials", "0"], "--trials must"),
    (["--trials", "99"], "--trials must"),
    (["--budget-minutes", "-2"], "--budget-minutes must"),
    (["--min-gain", "3"], "--min-gain must"),
    (["--modes", "sideways"], "modes must be drawn from"),
])
def test_tune_bad_input_is_a_message_and_exit_2(parts: Parts, dataset: str, argv: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["tune", TASK, "--dataset", dataset, "--yes", *argv])

    err = capsys.readouterr().err
    assert code == EXIT_USAGE and message in err and "Traceback" not in err
    assert parts.jobs.calls == []


def test_tune_needs_an_existing_dataset(parts: Parts, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", TASK, "--dataset", str(tmp_path / "nope.npz"), "--yes"]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    assert main(["tune", TASK]) == EXIT_USAGE  # --dataset is required


# ------------------------------------------------------------------------- export-optuna
def test_export_optuna_enqueues_the_recommendation_then_the_candidates(parts: Parts, dataset: str, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "study.db"
    code = main(["export-optuna", TASK, "--dataset", dataset, "--out", str(db), "--study-name", "busi", "--top", "5",
                 "--json"])

    assert code == EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    enqueued = [e["params"] for e in printed["enqueued"]]
    assert printed["enqueued"][0]["origin"] == "recommendation"
    assert enqueued[0]["backbone"] == DRAFT["backbone"] and enqueued[0]["learning_rate"] == DRAFT["learning_rate"]
    # The recommendation holds fewer candidates than --top: the rest come from the meta-model.
    assert len(enqueued) == 6 and len({json.dumps(p, sort_keys=True) for p in enqueued}) == 6
    assert printed["enqueued"][-1]["origin"].startswith("meta-model rank")

    # A user loads the study: ask() hands out exactly the enqueued params first, in order.
    study = optuna.load_study(study_name="busi", storage=f"sqlite:///{db}")
    asked = [study.ask(search_space()) for _ in enqueued]
    assert [t.params for t in asked] == enqueued
    for t in asked:
        TrainConfig.model_validate(t.params)
    # ... and after them a sampler draws new points from the same space.
    fresh = study.ask(search_space())
    assert set(fresh.params) == set(PARAMS)
    assert study.user_attrs["metallmix"]["rationale"] == DRAFT["rationale"]


def test_export_optuna_prints_a_tpe_snippet_and_refuses_an_existing_study(parts: Parts, dataset: str, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "study.db"
    assert main(["export-optuna", TASK, "--dataset", dataset, "--out", str(db), "--study-name", "s1"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "TPESampler" in out and "load_study(study_name='s1'" in out and "suggest_config" in out
    parts.llm.script = [DRAFT]
    assert main(["export-optuna", TASK, "--dataset", dataset, "--out", str(db), "--study-name", "s1"]) == EXIT_USAGE
    assert "already exists" in capsys.readouterr().err


def test_export_optuna_states_a_text_tasks_extra_candidates_as_its_pick(parts: Parts, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A task given only in words: the extra candidates asked from the meta-model average over the
    fields the text left open, as the pick's own number does (MetaModel.stated), not at the defaults."""
    asked: list[tuple[str, ...]] = []
    real = parts.metamodel.candidates

    def candidates(*args, open_fields=(), **kwargs):  # type: ignore[no-untyped-def]
        asked.append(tuple(open_fields))
        return real(*args, open_fields=open_fields, **kwargs)

    monkeypatch.setattr(parts.metamodel, "candidates", candidates)
    db = tmp_path / "study.db"
    assert main(["export-optuna", TASK, "--out", str(db), "--study-name", "text", "--top", "5"]) == EXIT_OK
    assert len(asked) >= 2 and asked[-1]  # the graph's ranking, then the export's: both with the open fields
    assert asked[-1] == asked[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["--study-name", "x"], "exactly one of --out"),
    (["--study-name", "x", "--out", "a.db", "--storage", "sqlite:///b.db"], "exactly one of --out"),
    (["--study-name", "x", "--out", "study.txt"], "--out must name a SQLite file"),
    (["--study-name", "x", "--out", "a.db", "--top", "-1"], "--top must"),
])
def test_export_optuna_bad_input(parts: Parts, dataset: str, argv: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-optuna", TASK, "--dataset", dataset, *argv]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_suggest_config_prunes_invalid_combinations(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    good = trial_params(TrainConfig(backbone="efficientnet_lite0", mode="frozen"))
    study.enqueue_trial({**good, "augmentation": "strong"})  # augmentation in frozen mode breaks a rule
    study.enqueue_trial(good)

    bad_trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="augmentation"):
        suggest_config(bad_trial)
    config = suggest_config(study.ask())
    assert config == TrainConfig(backbone="efficientnet_lite0", mode="frozen")


def test_search_space_matches_knowledge_space() -> None:
    from knowledge.space import CHOICES, RANGES

    space = search_space(backbones=["efficientnet_lite0", "resnet18"], modes=["frozen"])
    assert space["backbone"].choices == ("efficientnet_lite0", "resnet18") and space["mode"].choices == ("frozen",)
    for name, r in RANGES.items():
        assert (space[name].low, space[name].high, space[name].log) == (r.low, r.high, r.log)
    assert space["optimizer"].choices == CHOICES["optimizer"]
    assert set(space) == set(PARAMS)


def test_suggest_config_suggests_freeze_only_in_finetune_mode(tmp_path: Path) -> None:
    from knowledge.space import RANGES

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    configs: list[TrainConfig] = []
    for _ in range(150):
        trial = study.ask()
        try:
            configs.append(suggest_config(trial))
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        study.tell(trial, 0.5)
    assert all(c.freeze == 0 for c in configs if c.mode != "finetune")
    finetune = [c.freeze for c in configs if c.mode == "finetune"]
    assert finetune and any(f > 0 for f in finetune)
    assert all(RANGES["freeze"].low <= f <= RANGES["freeze"].high for f in finetune)
    # an enqueued trial setting freeze with another mode breaks the rule: pruned, with the rule
    bad = trial_params(TrainConfig(backbone="efficientnet_lite0", mode="frozen"))
    study.enqueue_trial({**bad, "freeze": 0.5})
    with pytest.raises(optuna.TrialPruned, match="freeze applies to mode='finetune' only"):
        suggest_config(study.ask())
