"""The iterative mode (agent.tune) with fake parts: routing, stop rules, never-repeat, fallback, approval.

The chat model answers from a script (or reads the option enum of the schema it is given);
the meta-model is a deterministic table; the job starter returns fake jobs whose per-epoch
logs are built from the config, so the analysis and the stop rules have something real to read.
"""

from __future__ import annotations

import json
import math
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import Field

from agent.context import Context
from agent.parts import Parts as AgentParts
from agent.prompts import prompt
from agent.recommend import Recommender
from agent.tune import (
    Analysis,
    TuneError,
    Tuner,
    analyze,
    expected_improvement,
    render_proposal,
    render_result,
    render_trial,
    tune,
    validation_se,
    variants,
)
from agent.tune import pick as pick_trial
from knowledge.schema import (
    DatasetInfo,
    EpochMetrics,
    ExperimentRecord,
    MetaFeatures,
    Outcome,
    Provenance,
    TrainConfig,
    now_utc,
)
from tests.fakes import make_trial, tiny_dataset
from tools.metamodel import Candidate, Explanation, Prediction

TASK = "breast ultrasound, 3 classes"


# ------------------------------------------------------------------------------- fakes
class FakeChat(GenericFakeChatModel):
    """Scripted answers; an answer may be a function of the JSON schema asked for."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)
    schemas: list[Any] = Field(default_factory=list)
    script: list[Any] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        self.prompts.append(list(messages))
        answer = self.script.pop(0) if self.script else "no more answers"
        if callable(answer):
            answer = answer(self.schemas[-1])
        text = answer if isinstance(answer, str) else json.dumps(answer)
        self.messages = iter([AIMessage(content=text)])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, **kwargs: Any) -> Runnable[Any, Any]:
        self.schemas.append(schema)

        def parse(m: AIMessage) -> Any:
            try:
                parsed, error = json.loads(m.content), None
            except ValueError as exc:
                parsed, error = None, exc
            return {"raw": m, "parsed": parsed, "parsing_error": error} if include_raw else parsed

        return self | RunnableLambda(parse)


def pick(index: int, rationale: str = "o-choice follows the analysis of the last trial and the expected gain.") -> Callable:
    """An answer that picks the index-th option of the schema's enum."""
    return lambda schema: {"option": schema["properties"]["option"]["enum"][index], "rationale": rationale}


META = MetaFeatures(
    n_instances=90, n_classes=3, imbalance_ratio=1.0, class_entropy=1.0, resolution=16, channels=1,
    class_size_mean=30, class_size_std=0, class_size_min=30, class_size_max=30, modality="ultrasound",
    body_part="breast", task_type="multiclass",
)


def make_record(config: TrainConfig, *, status: str = "ok", val: float | None = 0.8, history: list[EpochMetrics] | None = None,
                record_id: str | None = None, notes: str | None = None) -> ExperimentRecord:
    ok = status == "ok"
    return ExperimentRecord(
        **({"id": record_id} if record_id else {}),
        run_key=f"key-{config.key()}",
        dataset=DatasetInfo(name="tiny_ultrasound", fingerprint="abcdef0123456789", meta=META),
        config=config, weights="none" if config.mode == "scratch" else "imagenet:test",
        outcome=Outcome(status=status, val_accuracy=val if ok else None, test_accuracy=(val - 0.03) if ok and val else None,
                        best_epoch=len(history or []) or None if ok else None, epochs_run=len(history or []),
                        history=history or [], train_seconds=1.0, device="cpu:2 cores"),
        provenance=Provenance(source="user", code_version="test", seed=0, date=now_utc(), machine="test", notes=notes),
    )


class FakeStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.appended: list[ExperimentRecord] = []
        self.synced = 0

    def records(self) -> list[ExperimentRecord]:
        return list(self.appended)

    def search(self, text: str, k: int = 10, where: Any = None) -> list[tuple[ExperimentRecord, float]]:
        return []

    def sync_index(self) -> dict[str, int]:
        self.synced += 1
        return {"added": 0, "removed": 0, "total": len(self.appended)}


LRS = (1e-3, 3e-3, 3e-4, 1e-2, 1e-4)


class FakeMetaModel:
    """Frozen heads on two backbones; accuracy peaks at lr 1e-3 on lite0. Interval +- `width`."""

    def __init__(self, width: float = 0.08, seconds: float = 20.0, lite1: float = 0.78,
                 lr_penalty: float = 0.04) -> None:
        self.width = width
        self.lite1 = lite1
        self.lr_penalty = lr_penalty
        self.seconds = seconds
        self.n_records = 0
        self.metrics: dict[str, Any] = {}

    def predict(self, meta: MetaFeatures, configs: list[TrainConfig], device: str = "cpu",
                open_fields: Any = ()) -> list[Prediction]:
        out = []
        for c in configs:
            acc = (0.80 if c.backbone == "efficientnet_lite0" else self.lite1) - self.lr_penalty * abs(math.log10(c.learning_rate) + 3)
            acc -= 0.01 * c.dropout
            out.append(Prediction(acc, acc - self.width, acc + self.width, self.seconds * c.epochs / 10))
        return out

    def stated(self, meta: MetaFeatures, configs: list[TrainConfig], device: str = "cpu",
               open_fields: Any = ()) -> list[Prediction]:
        return self.predict(meta, configs, device, open_fields)

    def candidates(self, meta: MetaFeatures, constraints: Any, retrieved: Any = (), n: int = 6,
                   open_fields: Any = ()) -> list[Candidate]:
        configs = [TrainConfig(backbone=b, mode="frozen", learning_rate=lr, epochs=10)
                   for b in ("efficientnet_lite0", "efficientnet_lite1") for lr in LRS]
        preds = self.predict(meta, configs)
        ranked = sorted(zip(configs, preds, strict=True), key=lambda cp: -cp[1].accuracy)
        if constraints.budget_seconds:
            ranked = [cp for cp in ranked if cp[1].seconds <= constraints.budget_seconds] or ranked
        return [Candidate(id=f"c{i}", config=c, prediction=p, origin="generated", support=5)
                for i, (c, p) in enumerate(ranked[:n], start=1)]

    def explain(self, meta: MetaFeatures, config: TrainConfig, open_fields: Any = ()) -> Explanation:
        p = self.predict(meta, [config])[0]
        return Explanation(0.7, [("learning_rate", config.learning_rate, 0.05), ("mode", config.mode, 0.03)],
                           prediction=p.accuracy)

    def shap_plot(self, *a: Any, **k: Any) -> None:  # pragma: no cover - plots are off (no plot_dir)
        return None


def curve(config: TrainConfig) -> tuple[str, list[EpochMetrics], float | None]:
    """A per-epoch log from the config: lr >= 0.1 diverges, lr 1e-4 underfits, else converges at an lr-dependent level."""
    n = min(config.epochs, 6)
    if config.learning_rate >= 0.1:
        return "diverged", [EpochMetrics(epoch=1, train_loss=None, val_loss=None, val_accuracy=None)], None
    level = 0.85 - 0.05 * abs(math.log10(config.learning_rate) + 3) - (0.02 if config.backbone != "efficientnet_lite0" else 0)
    hist = [EpochMetrics(epoch=e, train_loss=round(1.0 / e, 4), val_loss=round(0.9 / e + 0.1, 4),
                         val_accuracy=round(level - 0.1 / e, 4)) for e in range(1, n + 1)]
    return "ok", hist, max(h.val_accuracy for h in hist if h.val_accuracy is not None)


class FakeJob:
    def __init__(self, run_dir: Path, config: TrainConfig, store: FakeStore, notes: str | None, delay: float) -> None:
        self.id = run_dir.name
        self.run_dir = run_dir
        self.proc = None
        self.config = config
        self.store = store
        self.notes = notes
        self.delay = delay
        self.cancelled = False

    def events(self) -> Iterator[dict[str, Any]]:
        yield {"event": "start"}
        time.sleep(self.delay)
        yield {"event": "epoch", "epoch": 1, "epochs": self.config.epochs, "train_loss": 1.0}
        yield {"event": "end", "status": "ok", "record_id": self.id}

    def cancel(self) -> None:
        self.cancelled = True

    def finalize(self) -> ExperimentRecord:
        status, hist, val = curve(self.config)
        r = make_record(self.config, status=status, val=val, history=hist, record_id=self.id, notes=self.notes)
        if r.id not in {x.id for x in self.store.appended}:
            self.store.appended.append(r)
        return r


class FakeJobs:
    def __init__(self, root: Path, store: FakeStore, delay: float = 0.0) -> None:
        self.root = root
        self.store = store
        self.delay = delay
        self.calls: list[dict[str, Any]] = []

    def __call__(self, dataset: str, config: TrainConfig, **kw: Any) -> FakeJob:
        self.calls.append({"dataset": dataset, "config": config, **kw})
        return FakeJob(self.root / kw["job_id"], config, self.store, kw.get("notes"), self.delay)


DRAFT = {
    "candidate": "c1", "backbone": "efficientnet_lite0", "mode": "frozen", "learning_rate": 0.001, "batch_size": 64,
    "epochs": 10, "expected_accuracy": 0.8,
    "rationale": "c1 has the best predicted accuracy of the candidates.", "cite": ["c1"],
}


@pytest.fixture
def dataset(tmp_path: Path) -> str:
    return tiny_dataset(tmp_path)


class Parts:
    def __init__(self, tmp_path: Path, script: list[Any], *, width: float = 0.08, delay: float = 0.0,
                 seconds: float = 20.0, lr_penalty: float = 0.04) -> None:
        self.store = FakeStore(tmp_path / "kb")
        self.llm = FakeChat(messages=iter([]), script=list(script))
        self.metamodel = FakeMetaModel(width=width, seconds=seconds, lr_penalty=lr_penalty)
        self.jobs = FakeJobs(tmp_path / "runs", self.store, delay=delay)
        self.recommender = Recommender(
            parts=AgentParts(llm=self.llm, judge_llm=self.llm, kb=self.store, metamodel=self.metamodel,
                             weights_available=lambda b: b.startswith("efficientnet_lite")),
            context=Context(llm_judge=False),
        )

    def tune(self, dataset: str, **kw: Any) -> Any:
        kw.setdefault("approve", "once")
        return tune(TASK, dataset=dataset, recommender=self.recommender, start_job=self.jobs, **kw)


# ----------------------------------------------------------------------------- the loop
def test_trial_one_is_the_zero_shot_recommendation_then_the_llm_picks_untried_options(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT, pick(1), pick(0)])
    events: list[dict[str, Any]] = []

    result = parts.tune(dataset, trials=3, on_event=events.append)

    assert [t.number for t in result.trials] == [1, 2, 3]
    first = result.trials[0]
    assert first.source == "zero-shot" and first.config == TrainConfig.model_validate(result.recommendation["config"])
    assert first.rationale == DRAFT["rationale"]
    assert [t.source for t in result.trials[1:]] == ["llm", "llm"]
    keys = [t.config.key() for t in result.trials]
    assert len(set(keys)) == 3, "a tried configuration was repeated"
    # The LLM's enum held only untried options, and its choice is the option it named.
    for trial, schema in zip(result.trials[1:], parts.llm.schemas[1:], strict=True):
        ids = schema["properties"]["option"]["enum"]
        assert trial.option in ids
    assert result.trials[1].option == "o2" and result.trials[2].option == "o1"
    assert result.stop_reason.startswith("trials done")
    # Best by validation accuracy, every trial's record in the knowledge base with its rationale.
    best_val = max(t.val_accuracy for t in result.trials if t.val_accuracy is not None)
    assert result.best is not None and result.best.val_accuracy == best_val
    assert {r.id for r in parts.store.appended} == {t.record_id for t in result.trials}
    for call, trial in zip(parts.jobs.calls, result.trials, strict=True):
        assert call["config"] == trial.config and trial.rationale in call["notes"]
        assert call["kb_root"] == parts.store.root
    assert parts.store.synced == 3
    # Events stream every proposal, every trial and the stop, in order.
    kinds = [e["type"] for e in events if e["type"] in ("proposal", "trial", "stop")]
    assert kinds == ["proposal", "trial"] * 3 + ["stop"]
    # The session log lies beside the knowledge base.
    log = json.loads(Path(result.log_path).read_text())
    assert [t["number"] for t in log["trials"]] == [1, 2, 3] and log["stop_reason"] == result.stop_reason
    assert "Trial 3" in render_result(result)


def test_the_prompt_carries_the_history_the_analysis_shap_and_the_options(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT, pick(0)])

    parts.tune(dataset, trials=2)

    text = "\n".join(str(m.content) for m in parts.llm.prompts[-1])
    assert "*t1 efficientnet_lite0/frozen adam lr=0.001" in text
    assert "Analysis of trial 1:" in text and ("converged" in text or "still improving" in text)
    assert "learning_rate=" in text  # SHAP drivers of the best config
    assert "o1 " in text and "expected val" in text and "variant of trial 1" in text


@pytest.mark.parametrize("answer", [
    {"option": "o99", "rationale": "o99 is the best option by far, trust me on this one."},
    "this is not JSON at all",
    {"option": "o1"},
])
def test_an_unusable_llm_answer_falls_back_to_the_best_untried_option_labelled(tmp_path: Path, dataset: str,
                                                                             answer: Any) -> None:
    parts = Parts(tmp_path, [DRAFT, answer])

    result = parts.tune(dataset, trials=2)

    second = result.trials[1]
    assert second.source == "fallback" and second.option == "o1"
    assert second.fallback_reason and second.rationale.startswith("Fallback")
    assert second.config.key() != result.trials[0].config.key()
    assert "fallback" in parts.jobs.calls[1]["notes"]


@pytest.mark.parametrize(("rationale", "problem"), [
    ("o1 reaches 0.99 validation accuracy, far above t1.", "quotes 0.99"),
    ("o1 builds on t7, the best trial so far, with a lower learning rate.", "names t7"),
])
def test_a_tuning_rationale_that_states_what_the_evidence_does_not_falls_back(
        tmp_path: Path, dataset: str, rationale: str, problem: str) -> None:
    parts = Parts(tmp_path, [DRAFT, pick(0, rationale)])

    second = parts.tune(dataset, trials=2).trials[1]

    assert second.source == "fallback" and problem in (second.fallback_reason or "")


def test_a_tuning_rationale_wrong_only_in_its_last_clause_is_kept_without_it(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT, pick(0, "o1 varies t1, the best trial so far, which beats t9 by far.")])

    second = parts.tune(dataset, trials=2).trials[1]

    assert second.source == "llm" and second.option == "o1" and second.rationale == "o1 varies t1, the best trial so far."


def test_trial_one_can_be_a_recommendation_already_made(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT, pick(0)])
    rec = parts.recommender.recommend(TASK, dataset=dataset)
    asked = len(parts.llm.prompts)

    tuner = Tuner(TASK, dataset=dataset, trials=2, recommendation=rec, llm=parts.llm, kb=parts.store,
                  metamodel=lambda: parts.metamodel, start_job=parts.jobs)
    first = tuner.propose()
    assert first is not None and first.config == rec.config and first.source == "zero-shot"
    assert len(parts.llm.prompts) == asked  # the graph did not run again
    tuner.run(first)
    second = tuner.propose()
    assert second is not None and second.source == "llm" and second.config != rec.config
    assert tuner.recommender is None


def test_a_session_continues_from_earlier_trials_without_re_running_them(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT, pick(0), pick(0)])
    rec = parts.recommender.recommend(TASK, dataset=dataset)
    common = dict(recommendation=rec, llm=parts.llm, kb=parts.store, metamodel=lambda: parts.metamodel,
                  start_job=parts.jobs)
    earlier = Tuner(TASK, dataset=dataset, trials=1, **common)
    earlier.run(earlier.propose())
    assert earlier.propose() is None and len(parts.jobs.calls) == 1

    tuner = Tuner(TASK, dataset=dataset, trials=2, budget_minutes=10, previous=earlier.trials, **common)
    assert tuner.spent == 0 and tuner.remaining == 600  # the budget is this session's own
    nxt = tuner.propose()
    assert nxt is not None and nxt.number == 2 and nxt.source == "llm" and nxt.config != rec.config
    tuner.run(nxt)
    assert tuner.propose() is not None  # 2 trials of its own: one more
    assert [t.number for t in tuner.result().trials] == [1, 2]
    assert len({c["config"].key() for c in parts.jobs.calls}) == len(parts.jobs.calls) == 2


def test_continuing_earlier_trials_needs_their_recommendation(tmp_path: Path, dataset: str) -> None:
    trial = make_trial(1, 0.8, 0.8)
    with pytest.raises(TuneError, match="needs the recommendation they started from"):
        Tuner(TASK, dataset=dataset, previous=[trial], kb=FakeStore(tmp_path / "kb"), metamodel=FakeMetaModel())


def test_a_cancel_while_the_llm_thinks_proposes_nothing(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT])
    tuner = Tuner(TASK, dataset=dataset, trials=3, recommender=parts.recommender, start_job=parts.jobs)
    parts.llm.script.append(lambda schema: (tuner.cancel(), pick(0)(schema))[1])
    first = tuner.propose()
    assert first is not None
    tuner.run(first)

    assert tuner.propose() is None and tuner.stop_reason == "cancelled by the user"
    assert len(parts.jobs.calls) == 1


def test_a_repeat_is_refused_even_when_the_llm_names_it(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT, pick(0)])
    tuner = Tuner(TASK, dataset=dataset, trials=3, recommender=parts.recommender, start_job=parts.jobs)
    first = tuner.propose()
    assert first is not None
    tuner.run(first)
    options = tuner.options()

    assert options and all(o.config.key() != first.config.key() for o in options)
    with pytest.raises(TuneError, match="repeat"):
        tuner.run(first)


def test_clearly_worse_configs_are_not_offered(tmp_path: Path, dataset: str) -> None:
    # A steep learning-rate penalty: lr 1e-2 and 1e-4 are predicted 0.15 below lr 1e-3, so
    # they never reach the enum, and whatever the LLM picks stays competitive.
    parts = Parts(tmp_path, [DRAFT, pick(-1)], lr_penalty=0.15)

    result = parts.tune(dataset, trials=2)

    enum = parts.llm.schemas[-1]["properties"]["option"]["enum"]
    assert result.trials[1].source == "llm" and result.trials[1].option == enum[-1]
    text = str(parts.llm.prompts[-1][-1].content)
    expected = [float(line.split("expected val ")[1].split(",")[0]) for line in text.splitlines()
                if line.startswith("o") and "expected val" in line]
    assert len(expected) == len(enum) and max(expected) - min(expected) <= 0.05
    assert "lr=0.01 " not in text and "lr=0.0001 " not in text


def test_stops_when_no_option_is_expected_to_gain(tmp_path: Path, dataset: str) -> None:
    # A narrow interval: the untried options are predicted clearly below trial 1, so their
    # expected improvement over its observed accuracy is ~0.
    parts = Parts(tmp_path, [DRAFT, pick(0)], width=0.005)

    result = parts.tune(dataset, trials=5)

    assert len(result.trials) == 1
    assert result.stop_reason.startswith("no expected gain")
    assert len(parts.llm.prompts) == 1  # the stop rule runs before the LLM is asked


def test_stops_when_the_budget_is_spent(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT, pick(0)], delay=0.3, seconds=0.01)

    result = parts.tune(dataset, trials=5, budget_minutes=0.2 / 60)

    assert len(result.trials) == 1 and result.stop_reason.startswith("budget spent")
    assert parts.jobs.calls and result.train_seconds >= 0.2


def test_a_trial_that_overruns_the_budget_is_cancelled(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT], delay=1.5, seconds=0.01)
    jobs: list[Any] = []
    orig = parts.jobs.__call__

    def start(*a: Any, **kw: Any) -> Any:
        job = orig(*a, **kw)
        jobs.append(job)
        return job

    tune(TASK, dataset=dataset, recommender=parts.recommender, start_job=start, trials=1, budget_minutes=1 / 60,
         approve="once")

    assert jobs and jobs[0].cancelled


def test_options_must_fit_the_remaining_budget(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT], seconds=30.0)
    tuner = Tuner(TASK, dataset=dataset, trials=3, budget_minutes=1.0, recommender=parts.recommender,
                  start_job=parts.jobs)
    first = tuner.propose()
    assert first is not None
    tuner.run(first)
    tuner.trials[0] = tuner.trials[0].model_copy(update={"seconds": 45.0})  # 15 s left

    assert tuner.remaining == pytest.approx(15.0)
    assert tuner.propose() is None and "fits" in (tuner.stop_reason or "")


@pytest.mark.parametrize("approve", ["none", lambda p: False])
def test_nothing_trains_without_approval(tmp_path: Path, dataset: str, approve: Any) -> None:
    parts = Parts(tmp_path, [DRAFT])

    result = parts.tune(dataset, trials=3, approve=approve)

    assert parts.jobs.calls == [] and result.trials == []
    assert result.pending is not None and result.pending.number == 1
    assert "not approved" in result.stop_reason


def test_approve_each_needs_a_terminal(tmp_path: Path, dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    parts = Parts(tmp_path, [DRAFT])
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(TuneError, match="not a terminal"):
        parts.tune(dataset, approve="each")
    assert parts.jobs.calls == []


def test_per_trial_approval_can_stop_after_some_trials(tmp_path: Path, dataset: str) -> None:
    parts = Parts(tmp_path, [DRAFT, pick(0)])
    asked: list[int] = []

    def approve(p: Any) -> bool:
        asked.append(p.number)
        return p.number < 2

    result = parts.tune(dataset, trials=3, approve=approve)

    assert asked == [1, 2] and len(result.trials) == 1 and len(parts.jobs.calls) == 1
    assert result.pending is not None and result.pending.number == 2 and result.pending.source == "llm"


@pytest.mark.parametrize("kw, match", [
    ({"trials": 0}, "trials must"),
    ({"trials": 2.5}, "trials must"),
    ({"budget_minutes": -1}, "budget_minutes must"),
    ({"approve": "maybe"}, "approve must"),
    ({"min_gain": 2}, "min_gain must"),
])
def test_bad_input_is_a_clear_error(tmp_path: Path, dataset: str, kw: dict[str, Any], match: str) -> None:
    parts = Parts(tmp_path, [])
    with pytest.raises(TuneError, match=match):
        parts.tune(dataset, **kw)
    assert parts.jobs.calls == []


def test_a_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    parts = Parts(tmp_path, [])
    with pytest.raises(TuneError, match="does not exist"):
        parts.tune(str(tmp_path / "nope.npz"))


# ------------------------------------------------------------------------------ analysis
def H(rows: list[tuple[float | None, float | None, float | None]]) -> list[EpochMetrics]:
    return [EpochMetrics(epoch=i, train_loss=t, val_loss=v, val_accuracy=a) for i, (t, v, a) in enumerate(rows, start=1)]


def test_analysis_overfitting() -> None:
    a = analyze(H([(1.0, 0.9, 0.6), (0.6, 0.7, 0.7), (0.3, 0.8, 0.72), (0.1, 1.1, 0.71)]), status="ok", seconds=5, chance=0.4)
    assert "overfitting" in a.labels and "0.700" in a.text and "epoch 2" in a.text


def test_analysis_underfitting_at_chance_and_barely_falling_loss() -> None:
    a = analyze(H([(1.1, 1.1, 0.40), (1.09, 1.1, 0.41)]), status="ok", seconds=5, chance=0.40)
    assert a.labels[0] == "underfitting" and "chance" in a.text
    b = analyze(H([(1.1, 1.0, 0.6), (1.05, 0.98, 0.6)]), status="ok", seconds=5, chance=0.3)
    assert b.labels == ["underfitting"] and "barely fell" in b.text


def test_analysis_still_improving_and_converged() -> None:
    a = analyze(H([(1.0, 0.9, 0.6), (0.7, 0.7, 0.7), (0.5, 0.6, 0.75)]), status="ok", seconds=5, chance=0.3)
    assert a.labels == ["still_improving"]
    b = analyze(H([(1.0, 0.9, 0.6), (0.7, 0.7, 0.75), (0.6, 0.69, 0.75)]), status="ok", seconds=5, chance=0.3)
    assert b.labels == ["converged"]


def test_analysis_plateaued_early_suggests_fewer_epochs() -> None:
    rows = [(1.0, 0.9, 0.6), (0.7, 0.7, 0.75), (0.6, 0.69, 0.74), (0.55, 0.69, 0.745), (0.5, 0.69, 0.74), (0.5, 0.69, 0.74)]
    a = analyze(H(rows), status="ok", seconds=5, chance=0.3)
    assert a.labels == ["plateaued_early"] and "epoch 2 of 6" in a.text
    base = TrainConfig(backbone="efficientnet_lite0", mode="frozen", learning_rate=1e-3, epochs=6)
    assert variants(base, a, best_epoch=2)[0][0].epochs == 3


def test_analysis_divergence_failure_and_time() -> None:
    a = analyze(H([(1.0, 0.9, 0.5), (float("nan"), None, None)]), status="diverged", seconds=5)
    assert a.labels == ["diverged"] and "epoch 2" in a.text
    b = analyze([], status="failed", seconds=5, error="out of memory")
    assert b.labels == ["failed"] and "out of memory" in b.text
    c = analyze(H([(1.0, 0.9, 0.6), (0.7, 0.7, 0.75), (0.6, 0.69, 0.75)]), status="ok", seconds=100, share_seconds=30,
                predicted_seconds=20)
    assert "over_time" in c.labels and "predicted 20 s" in c.text


def test_variants_answer_the_analysis_and_stay_in_the_space() -> None:
    base = TrainConfig(backbone="efficientnet_lite0", mode="frozen", learning_rate=1e-3, epochs=20)
    div = variants(base, Analysis(labels=["diverged"], text=""), None)
    assert div[0][0].learning_rate == pytest.approx(1e-4)
    over = variants(base, Analysis(labels=["overfitting"], text=""), best_epoch=4)
    assert over[0][0].weight_decay > 0 and over[0][0].dropout == pytest.approx(0.2)
    assert over[1][0].epochs == 5
    under = variants(base, Analysis(labels=["still_improving"], text=""), None)
    assert {c.epochs for c, _ in under} >= {40} and any(c.learning_rate == pytest.approx(3e-3) for c, _ in under)
    top = TrainConfig(backbone="efficientnet_lite0", mode="frozen", learning_rate=1.0, epochs=300)
    for cfg, _ in variants(top, Analysis(labels=["still_improving"], text=""), None):
        TrainConfig.model_validate(cfg.model_dump())
        assert cfg.key() != top.key()


def test_expected_improvement() -> None:
    assert expected_improvement(0.8, 0.05, 0.8) == pytest.approx(0.05 * 0.39894, rel=1e-3)
    assert expected_improvement(0.9, 1e-9, 0.8) == pytest.approx(0.1, rel=1e-3)
    assert expected_improvement(0.7, 0.01, 0.8) < 1e-6
    assert expected_improvement(0.78, 0.05, 0.8) < expected_improvement(0.80, 0.05, 0.8)



def test_validation_se() -> None:
    assert validation_se(0.8, 100) == pytest.approx(0.04)
    assert validation_se(0.8, None) == 0.0 and validation_se(0.8, 0) == 0.0
    assert validation_se(1.0, 100) == 0.0


def test_pick_keeps_the_predicted_best_among_near_ties_on_validation() -> None:
    trials = [make_trial(1, 0.70, predicted=0.80), make_trial(2, 0.72, predicted=0.75, lr=0.01),
              make_trial(3, 0.60, predicted=0.85, lr=0.1)]
    # 100 validation images: SE of 0.72 is 0.045, so 0.70 is a near-tie and trial 1 is predicted higher;
    # trial 3 is predicted best but clearly worse on validation.
    kept, why = pick_trial(trials, 100)
    assert kept is trials[0]
    assert why is not None and "trial 2" in why and "0.720" in why and "100 validation images" in why
    # 10,000 validation images: SE 0.0045, 0.02 apart is a real difference.
    assert pick_trial(trials, 10_000) == (trials[1], None)
    # Unknown validation size: the best validation accuracy, as before.
    assert pick_trial(trials, None) == (trials[1], None)


def test_pick_ignores_failed_trials_and_breaks_ties_by_the_earlier() -> None:
    trials = [make_trial(1, 0.70, predicted=0.80), make_trial(2, 0.90, predicted=0.99, status="diverged", lr=0.01),
              make_trial(3, 0.70, predicted=0.80, lr=0.1)]
    assert pick_trial(trials, 100) == (trials[0], None)
    assert pick_trial([make_trial(1, None, predicted=0.8, status="failed")], 100) == (None, None)
    assert pick_trial([], 100) == (None, None)



def test_the_result_says_why_the_kept_trial_is_not_the_best_on_validation() -> None:
    from agent.chat.tuning import summary_md
    from agent.tune import TuneResult

    trials = [make_trial(1, 0.70, predicted=0.80), make_trial(2, 0.72, predicted=0.75, lr=0.01)]
    kept, why = pick_trial(trials, 100)
    result = TuneResult(session_id="s", task="t", dataset="d", trials=trials, best=kept, best_reason=why,
                        stop_reason="trials done", max_trials=2, budget_seconds=None, seconds=1.0,
                        train_seconds=1.0, llm_seconds=0.0)
    for text in (render_result(result), summary_md(result)):
        assert "trial 1" in text.lower() and "within one standard error" in text


@pytest.mark.parametrize(("cached", "said"), [
    (True, "in 15 s (the backbone features came from the cache; extracting them took 36 s in an earlier run)"),
    (False, "in 51 s, of which 36 s extracting the backbone features"),
])
def test_the_terminal_says_a_trials_own_time_as_the_chat_does(cached: bool, said: str) -> None:
    """`metallmix tune` words each trial's time as the chat's trial card and a single run's message do:
    its own training time, and whether the features it used were extracted now or came from the cache."""
    from agent.chat.tuning import trial_md

    trial = make_trial(1, 0.7, predicted=0.8).model_copy(update={
        "seconds": 58.0, "train_seconds": 15.0, "feature_seconds": 36.0, "features_cached": cached})
    line = render_trial(trial).splitlines()[0]
    assert said in line and "58 s" not in line  # not the wall time from job start to record
    assert said in trial_md(trial)


# -------------------------------------------------------------------------------- models
def test_a_trial_is_its_proposals_plan_with_an_outcome_and_serializes_as_before() -> None:
    from agent.tune import Plan, PredictedOutcome, Proposal, Trial

    proposal = Proposal(number=2, config=TrainConfig(backbone="efficientnet_lite0", mode="frozen"), source="llm",
                        rationale="o1 follows the analysis.", option="o1", expected_gain=0.01, llm_seconds=1.5,
                        predicted=PredictedOutcome(accuracy=0.8, low=0.7, high=0.9, seconds=20))
    trial = Trial(**proposal.plan_fields(), status="ok", val_accuracy=0.82, seconds=12.0,
                  analysis=Analysis(labels=["converged"], text="converged."))

    assert isinstance(proposal, Plan) and isinstance(trial, Plan)
    assert trial.plan_fields() == proposal.plan_fields()
    # the fields in the order the session log and the events have always written them
    plan = ["number", "config", "source", "rationale", "fallback_reason", "option", "predicted", "expected_gain"]
    assert list(proposal.model_dump()) == [*plan, "options", "llm_seconds"]
    assert list(trial.model_dump()) == [*plan, "status", "val_accuracy", "test_accuracy", "val_auc", "test_auc",
                                        "best_epoch", "epochs_run", "seconds", "record_id", "run_dir", "error",
                                        "analysis", "llm_seconds", "train_seconds", "feature_seconds",
                                        "features_cached"]
    assert render_proposal(trial) == render_proposal(proposal)  # a trial renders as the proposal it was


# ------------------------------------------------------------------------------- prompts
@pytest.mark.parametrize("name, keys", [
    ("tune_system", set()),
    ("tune_user", {"task", "data", "budget", "history", "last", "analysis", "shap", "options"}),
])
def test_tune_prompts_are_package_data_with_their_keys(name: str, keys: set[str]) -> None:
    template = prompt(name)
    assert {f for _, f, _, _ in string.Formatter().parse(template) if f} == keys
    assert len(template) < 1000
