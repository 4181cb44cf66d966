"""The recommendation graph with fake parts: routing, judge retries, fallback, approval, training.

Fake chat models answer from scripts (GenericFakeChatModel with `with_structured_output`);
the rest are the fakes of tests/fakes.py: a knowledge base of three finished runs, a
deterministic meta-model, and a job starter that records what it was asked to start. A fresh
InMemorySaver per test.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import Field

import agent.judge as J
from agent.context import Context
from agent.graph import build_graph
from agent.nodes import TaskError, TrainingNotApproved, job_id_for
from agent.parts import Parts
from agent.prompting import stored_records
from agent.recommend import Recommendation, Recommender, render_text
from knowledge.schema import ExperimentRecord, TrainConfig
from tests.fakes import TASK, FakeJobs, FakeMetaModel, FakeStore, kb_records, make_record, tiny_dataset


# ------------------------------------------------------------------------------- fakes
class FakeChat(GenericFakeChatModel):
    """A scripted chat model; structured output parses the scripted JSON text."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)
    schemas: list[Any] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        self.prompts.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeChat:
        return self

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, **kwargs: Any) -> Runnable[Any, Any]:
        self.schemas.append(schema)
        if include_raw:  # like the real models: a parse error is reported, not raised
            def parse(m: AIMessage) -> dict[str, Any]:
                try:
                    return {"raw": m, "parsed": json.loads(m.content), "parsing_error": None}
                except ValueError as exc:
                    return {"raw": m, "parsed": None, "parsing_error": exc}

            return self | RunnableLambda(parse)
        return self | RunnableLambda(lambda m: json.loads(m.content))


def chat(*answers: dict[str, Any] | str) -> FakeChat:
    texts = [a if isinstance(a, str) else json.dumps(a) for a in answers]
    return FakeChat(messages=iter([AIMessage(content=t) for t in texts]))


def draft(**over: Any) -> dict[str, Any]:
    """A draft that passes every check against FakeMetaModel's c1."""
    base = {
        "candidate": "c1",
        "backbone": "efficientnet_lite0",
        "mode": "frozen",
        "learning_rate": 0.001,
        "batch_size": 64,
        "epochs": 10,
        "expected_accuracy": 0.8,
        "rationale": "c1 has the best predicted accuracy and fits the budget; r1 on a similar set agrees.",
        "cite": ["c1", "r1"],
    }
    return {**base, **over}


def scores(problem: str = "none", critique: str = "ok") -> dict[str, Any]:
    """The LLM judge's answer (`agent.judge.judge_schema`)."""
    return {"problem": problem, "critique": critique}


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def store(tmp_path: Path) -> FakeStore:
    """The finished runs only: the evidence is three results, 0.85, 0.78 and 0.61."""
    return FakeStore(tmp_path / "kb", kb_records(failed=False))


@pytest.fixture
def jobs(tmp_path: Path, store: FakeStore) -> FakeJobs:
    return FakeJobs(tmp_path / "runs", store)


@pytest.fixture
def dataset(tmp_path: Path) -> str:
    return tiny_dataset(tmp_path)


def make(
    store: FakeStore,
    llm: FakeChat,
    judge: FakeChat | None = None,
    jobs: FakeJobs | None = None,
    checkpointer: Any = None,
) -> Any:
    return build_graph(Parts(
        llm=llm, judge_llm=judge, kb=store, metamodel=FakeMetaModel(png=False), start_job=jobs,
        weights_available=lambda b: b.startswith("efficientnet_lite")
    ), checkpointer=checkpointer or InMemorySaver())


def cfg(thread: str = "t1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


# The judge's retry is off by default (agent.context.Context.max_judge_retries); the retry tests turn it on.
RETRY = Context(max_judge_retries=1)


def run(
    graph: Any, task: str = TASK, *, thread: str = "t1", context: Context | None = None, **inputs: Any
) -> dict[str, Any]:
    return graph.invoke({"task": task, **inputs}, cfg(thread), context=context or Context())


# ----------------------------------------------------------------------------- topology
def test_topology_snapshot(store: FakeStore) -> None:
    g = make(store, chat()).get_graph()

    nodes = set(g.nodes)
    edges = {(e.source, e.target, e.conditional) for e in g.edges}

    assert nodes == {
        "__start__",
        "profile",
        "retrieve",
        "explain",
        "reason",
        "judge",
        "respond",
        "approve",
        "train",
        "record",
        "__end__",
    }
    assert edges == {
        ("__start__", "profile", False),
        ("profile", "retrieve", False),
        ("retrieve", "explain", False),
        ("explain", "reason", False),
        ("reason", "judge", False),
        ("judge", "reason", True),
        ("judge", "respond", True),
        ("respond", "approve", False),
        ("approve", "approve", True),
        ("approve", "train", True),
        ("approve", "__end__", True),
        ("train", "record", False),
        ("record", "__end__", False),
    }


def test_langgraph_json_points_at_a_factory() -> None:
    spec = json.loads((Path(__file__).parents[1] / "langgraph.json").read_text())
    module, _, name = spec["graphs"]["metallmix"].partition(":")
    assert module == "./agent/graph.py" and name == "make_graph"
    from agent import graph as graph_module

    assert callable(getattr(graph_module, name))


# ------------------------------------------------------------------------------ routing
def test_passing_draft_goes_straight_to_respond_and_stops_at_approval(store: FakeStore) -> None:
    llm, judge = chat(draft()), chat(scores())
    out = run(make(store, llm, judge))

    rec = Recommendation.model_validate(out["recommendation"])
    assert not rec.fallback and rec.verdict.passed and rec.verdict.attempts == 1
    assert rec.verdict.judged_by == "checks+llm" and rec.verdict.scores == {
        "format": 5,
        "accuracy": 5,
        "completeness": 5,
    }
    assert rec.config.backbone == "efficientnet_lite0" and rec.pretrained
    r1 = next(e for e in out["evidence"] if e["alias"] == "r1")
    assert rec.cited == ["c1", r1["id"]]  # r1 resolved to its record id
    # The nearest dataset's runs first (skin: the fake store's nearest), best first; then the others'.
    assert [e["test_accuracy"] for e in out["evidence"]] == [0.78, 0.61, 0.85]
    assert rec.expected_accuracy == pytest.approx(0.8) and rec.accuracy_interval == pytest.approx((0.75, 0.85))
    assert rec.profile.source == "text" and rec.profile.budget_seconds == 900
    assert {"profile", "retrieve", "explain", "reason", "judge", "respond"} <= set(rec.timings)
    assert len(llm.prompts) == 1 and len(judge.prompts) == 1
    # The judge's prompt is the reasoner's plus its answer verbatim (llama.cpp reuses the cache).
    assert judge.prompts[0][:2] == llm.prompts[0] and judge.prompts[0][2].content == json.dumps(draft())
    (interrupt,) = out["__interrupt__"]
    assert interrupt.value["config"] == rec.config.model_dump(mode="json")
    assert interrupt.value["key"] == rec.config.key()
    assert "train" not in out and "training" not in out


def test_state_values_have_the_shapes_state_declares(store: FakeStore, dataset: str, tmp_path: Path) -> None:
    from agent.state import CandidateData, CheckData, OfferData, PastRunData, ProfileData, VerdictData

    def keys(shape: Any) -> tuple[frozenset[str], frozenset[str]]:
        return shape.__required_keys__, shape.__required_keys__ | shape.__optional_keys__

    def fits(value: dict[str, Any], shape: Any) -> bool:
        required, allowed = keys(shape)
        return required <= set(value) <= allowed

    graph = make(store, chat(draft()), chat(scores()), FakeJobs(tmp_path / "runs", store))
    out = run(graph, dataset=dataset)
    assert fits(out["profile"], ProfileData), set(out["profile"]) ^ keys(ProfileData)[1]
    assert out["evidence"] and all(fits(e, PastRunData) for e in out["evidence"])
    assert out["candidates"] and all(fits(c, CandidateData) for c in out["candidates"])
    assert fits(out["verdict"], VerdictData) and all(fits(c, CheckData) for c in out["verdict"]["checks"])
    assert fits(out["offer"], OfferData), set(out["offer"]) ^ keys(OfferData)[1]
    edited = graph.invoke(Command(resume={"action": "edit", "config": {"epochs": 5}}), cfg(), context=Context())
    assert fits(edited["offer"], OfferData) and "note" in edited["offer"]


def test_the_judge_reads_a_cut_off_rationale_tidied_in_the_models_own_words(store: FakeStore) -> None:
    # The grammar stops a rambling rationale at its limit; the judge must see it tidied (ending
    # before the trailing clause the cut fell in) but otherwise as the model wrote it: llama.cpp
    # still holds those tokens in its KV cache, and compact JSON of the completed draft
    # would be evaluated anew.
    first = "c1 has the best predicted accuracy of the candidates and fits the budget of this task with room to spare"
    cut = (first + ", which r1, a run on a similar set of images, also suggests as its frozen head did well in a "
           "short time")[: J.DRAFT_RATIONALE_MAX]
    assert len(cut) == J.DRAFT_RATIONALE_MAX
    text = '{ "candidate": "c1", "rationale": "' + cut + '" }'
    llm, judge = chat(text), chat(scores())

    out = run(make(store, llm, judge))

    rec = Recommendation.model_validate(out["recommendation"])
    assert rec.verdict.passed and rec.rationale == first + "."
    assert judge.prompts[0][2].content == '{ "candidate": "c1", "rationale": "' + first + '." }'


def test_reason_schema_enums_come_from_the_candidates(store: FakeStore) -> None:
    llm = chat(draft())
    run(make(store, llm, chat(scores())))

    schema = llm.schemas[0]
    assert schema["properties"]["candidate"]["enum"] == ["c1", "c2", "c3"]  # the fine-tune is over budget
    # The model picks a candidate; it never re-types numbers (a 1.5B wrote learning_rate=4.59).
    assert set(schema["required"]) == {"candidate", "rationale"} and not schema["additionalProperties"]
    # One sentence, ended by the grammar at its first full stop (a decimal point goes on), or cut at the limit.
    pattern = re.compile(schema["properties"]["rationale"]["pattern"])
    assert pattern.fullmatch("c1 is predicted 0.93 in 25 s, the best of the candidates here.")
    assert not pattern.fullmatch("c1 is predicted 0.93 in 25 s. It is the best of the candidates here.")
    assert pattern.fullmatch("x" * J.DRAFT_RATIONALE_MAX) and not pattern.fullmatch("x" * (J.DRAFT_RATIONALE_MAX + 1))


def test_a_short_draft_takes_its_numbers_from_the_candidate(store: FakeStore) -> None:
    # (c2 takes 60 s, c1 40 s: "and faster" here was false, and is refused now, agent.judge._speed)
    short = {"candidate": "c2", "rationale": "c2 is nearly as accurate as c1 and takes 1.5x its time; r1 agrees."}
    out = run(make(store, chat(short), chat(scores())))

    rec = Recommendation.model_validate(out["recommendation"])
    c2 = next(c for c in out["candidates"] if c["id"] == "c2")
    assert not rec.fallback and rec.config.model_dump(mode="json") == c2["config"]
    assert out["draft"]["expected_accuracy"] == c2["accuracy"]
    assert out["draft"]["cite"] == ["c2", "c1", "r1"]  # the ids its rationale names


def test_a_result_said_as_measured_for_a_candidate_is_written_as_the_prediction_it_is(store: FakeStore) -> None:
    """"c1 achieves ..." fell back in 3 of 8 of a session's tries; the tense is made right and the rest checked."""
    measured = {"candidate": "c1", "rationale": "c1 achieves a higher test accuracy than c2 in this task, and r1 agrees."}
    llm, judge = chat(measured), chat(scores())
    out = run(make(store, llm, judge))

    rec = Recommendation.model_validate(out["recommendation"])
    assert not rec.fallback and out["verdicts"][-1]["passed"]
    assert rec.rationale.startswith("c1 is predicted to reach a higher test accuracy than c2")
    assert "achieves" not in judge.prompts[0][-1].content  # the LLM judge reads what the card shows


@pytest.mark.parametrize(("rationale", "problem"), [
    ("c1 has the best predicted accuracy, 0.97, and fits the budget.", "quotes 0.97"),
    ("c1 fits the budget and beats r9 on a similar set.", "names r9"),
])
def test_a_rationale_that_states_what_the_evidence_does_not_is_sent_back(
        store: FakeStore, rationale: str, problem: str) -> None:
    llm = chat(draft(rationale=rationale), draft())
    out = run(make(store, llm, chat(scores())), context=RETRY)

    first = out["verdicts"][0]
    grounded = next(c for c in first["checks"] if c["name"] == "grounded")
    assert not first["passed"] and not grounded["ok"] and problem in grounded["message"]
    assert problem in llm.prompts[1][-1].content  # the critique reaches the retry
    assert out["verdicts"][-1]["passed"]


def test_a_rationale_wrong_only_in_its_last_clause_is_cut_there_and_judged_again(store: FakeStore) -> None:
    llm = chat(draft(rationale="c1 has the best predicted accuracy and fits the budget, which beats r9 on a similar set."))
    judge = chat(scores())
    out = run(make(store, llm, judge), context=RETRY)

    (verdict,) = out["verdicts"]  # no retry: the head before the false clause passed every check
    assert verdict["passed"] and all(c["ok"] for c in verdict["checks"])
    assert "cut before 'which beats r9 on a similar set.'" in verdict["trimmed"] and "names r9" in verdict["trimmed"]
    rec = Recommendation.model_validate(out["recommendation"])
    assert not rec.fallback and rec.rationale == "c1 has the best predicted accuracy and fits the budget."
    assert "r9" not in judge.prompts[0][-2].content  # the LLM judge reads the rationale as it is shown
    assert "cut before 'which beats r9" in render_text(rec)
    assert len(llm.prompts) == 1


def test_a_rationale_false_in_its_first_clause_is_not_cut(store: FakeStore) -> None:
    llm = chat(draft(rationale="c1 is predicted 0.97 in 25 s, which fits the budget."), draft())
    out = run(make(store, llm, chat(scores())), context=RETRY)

    first = out["verdicts"][0]
    assert not first["passed"] and not first["trimmed"] and len(llm.prompts) == 2


def test_failed_check_sends_the_critique_back_to_reason(store: FakeStore) -> None:
    llm = chat(draft(expected_accuracy=0.99), draft())
    judge = chat(scores())

    out = run(make(store, llm, judge), context=RETRY)

    first, second = out["verdicts"]
    assert not first["passed"] and any(c["name"] == "metric" and not c["ok"] for c in first["checks"])
    assert first["judged_by"] == "checks"  # the LLM judge is not asked about a draft that failed a check
    assert second["passed"] and second["attempt"] == 2
    retry_prompt = llm.prompts[1][-1].content
    assert "rejected" in retry_prompt and "expected_accuracy must lie within" in retry_prompt
    assert len(judge.prompts) == 1
    assert not out["recommendation"]["fallback"]


def test_a_problem_the_llm_judge_names_also_retries(store: FakeStore) -> None:
    llm = chat(draft(), draft(rationale="c1 is predicted best at 0.80 and fits the 15 min budget; r1 agrees."))
    judge = chat(scores("vague reason", critique="say why frozen suits 2,000 images"), scores())

    out = run(make(store, llm, judge), context=RETRY)

    assert [v["passed"] for v in out["verdicts"]] == [False, True]
    assert out["verdicts"][0]["scores"] == {"format": 5, "accuracy": 5, "completeness": 1}
    assert "vague reason: say why frozen suits" in llm.prompts[1][-1].content
    assert out["recommendation"]["verdict"]["attempts"] == 2


@pytest.mark.parametrize(("answer", "passed"), [
    ({"problem": "none", "critique": "ok"}, True),
    ({"problem": "wrong number or id", "critique": "c1 is 0.80"}, False),
    ({"problem": "unreadable", "critique": "not a sentence"}, False),
    ({"format": 5, "accuracy": 4, "completeness": 3, "critique": "fine"}, True),  # numeric scores, as given
    ({"format": 5, "accuracy": 2, "completeness": 5, "critique": "wrong"}, False),
])
def test_the_llm_judge_passes_only_when_every_criterion_does(answer: dict[str, Any], passed: bool) -> None:
    from agent.judge import JudgeScores, passes

    assert passes(JudgeScores.model_validate(answer), 3.0) is passed


def test_a_wrong_number_the_grounding_check_verified_is_overruled(store: FakeStore) -> None:
    judge = chat(scores("wrong number or id", critique="it quotes 0.8012, not 0.80"))
    out = run(make(store, chat(draft(rationale="c1 is predicted 0.8012, the best here; r1 agrees.")), judge))

    (verdict,) = out["verdicts"]
    assert verdict["passed"] and verdict["scores"]["accuracy"] == 1
    assert "but every number and id the rationale quotes matches the evidence" in verdict["overruled"]
    assert not out["recommendation"]["fallback"]


def test_an_overruled_label_without_a_critique_says_so_plainly(store: FakeStore) -> None:
    out = run(make(store, chat(draft()), chat(scores("wrong number or id"))))

    (verdict,) = out["verdicts"]
    assert verdict["passed"] and verdict["overruled"].startswith("the LLM judge found a wrong number or id, but ")


@pytest.mark.parametrize(("answer", "valid"), [
    ({"problem": "none"}, True),  # the label ends the answer; llm_scores fills in "ok"
    ({"problem": "wrong number or id"}, True),
    ({"problem": "none", "critique": "ok"}, False),
    ({"problem": "wrong number or id", "critique": "it quotes 0.8012"}, False),  # always overruled: no critique
    ({"problem": "none", "critique": "the rationale is fine"}, False),
    ({"problem": "vague reason"}, False),
    ({"problem": "vague reason", "critique": "say why frozen suits 2,000 images"}, True),
    ({"problem": "unreadable", "critique": "x" * 81}, False),
    ({"problem": "bad vibes", "critique": "ok"}, False),
])
def test_only_a_vague_or_unreadable_verdict_writes_a_critique(answer: dict[str, Any], valid: bool) -> None:
    import jsonschema  # chromadb's dependency
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from agent.judge import judge_schema

    assert jsonschema.Draft202012Validator(judge_schema()).is_valid(answer) is valid
    assert "root ::=" in json_schema_to_gbnf(json.dumps(judge_schema()))  # llama.cpp compiles it to a grammar


def test_a_false_superlative_is_caught_by_the_checks(store: FakeStore) -> None:
    llm = chat(draft(candidate="c2", rationale="c2 is the most accurate candidate for this task.", cite=["c2"]), draft())
    out = run(make(store, llm, chat(scores())))

    grounded = next(c for c in out["verdicts"][0]["checks"] if c["name"] == "grounded")
    assert not grounded["ok"] and "calls c2 the most accurate" in grounded["message"]


def test_an_unknown_problem_label_is_no_verdict(store: FakeStore) -> None:
    out = run(make(store, chat(draft()), chat(scores("bad vibes"))))

    verdict = out["verdicts"][0]
    assert verdict["passed"] and verdict["judged_by"] == "checks" and "problem must be one of" in verdict["judge_error"]


def test_a_rationale_without_evidence_is_not_specific(store: FakeStore) -> None:
    llm = chat(draft(rationale="This is a good configuration for the task.", cite=["c1"]), draft())
    out = run(make(store, llm, chat(scores())), context=RETRY)

    first = out["verdicts"][0]
    assert not first["passed"] and not next(c for c in first["checks"] if c["name"] == "specific")["ok"]
    assert out["verdicts"][-1]["passed"]


def test_passing_over_the_first_candidate_takes_evidence_not_only_a_name(store: FakeStore) -> None:
    # The 1.5B's retry on a LODO task: it switched to c2 and named nothing but c2.
    vague = draft(candidate="c2", rationale="The candidate c2 is well suited to this kind of medical image.", cite=["c2"])
    out = run(make(store, chat(vague, draft()), chat(scores())), context=RETRY)

    first = next(c for c in out["verdicts"][0]["checks"] if c["name"] == "specific")
    assert not first["ok"] and "not the meta-model's first candidate (c1)" in first["message"]
    c1, c2 = out["candidates"][0]["config"], out["candidates"][1]["config"]
    assert c1["backbone"] != c2["backbone"]
    assert out["verdicts"][-1]["passed"] and out["recommendation"]["config"]["backbone"] == c1["backbone"]
    # The same pick with a reason that compares: passes (test_a_short_draft_takes_its_numbers_from_the_candidate).


def test_rationale_cut_off_by_the_grammar_ends_at_a_sentence(store: FakeStore) -> None:
    first = (
        "c1 is predicted best at 0.80 and fits the 15 minute budget, with 57 runs of this backbone and mode behind it."
    )
    long = first + " It is also supported by r1 and many runs" * 8
    out = run(make(store, chat(draft(rationale=long[:200])), chat(scores())))

    assert out["recommendation"]["rationale"] == first


def test_retry_cap_then_labelled_fallback(store: FakeStore) -> None:
    bad = [draft(candidate="c3", backbone="small_cnn", mode="scratch", expected_accuracy=0.62,  # far below c1
                 rationale=f"c3 is the fastest, try {i}.") for i in range(4)]
    llm = chat(*bad)
    judge = chat()

    out = run(make(store, llm, judge), context=Context(max_judge_retries=2))

    assert len(llm.prompts) == 3  # 1 + 2 retries, never more
    assert [v["passed"] for v in out["verdicts"]] == [False, False, False]
    rec = Recommendation.model_validate(out["recommendation"])
    assert rec.fallback and "rejected 3 draft" in (rec.fallback_reason or "")
    assert rec.config == TrainConfig.model_validate(out["candidates"][0]["config"])
    assert rec.rationale.startswith("Fallback")
    assert "FALLBACK" in render_text(rec)
    assert out["__interrupt__"][0].value["config"] == rec.config.model_dump(mode="json")


def test_the_same_rejected_draft_again_ends_the_loop_without_another_judge_call(store: FakeStore) -> None:
    llm = chat(draft(), draft(), draft())
    judge = chat(scores("vague reason", critique="say why it suits the task"))

    out = run(make(store, llm, judge), context=Context(max_judge_retries=2))

    assert len(llm.prompts) == 2 and len(judge.prompts) == 1
    first, second = out["verdicts"]
    assert second["repeats"] == 1 and second["scores"] == first["scores"] and not second["passed"]
    rec = Recommendation.model_validate(out["recommendation"])
    assert rec.fallback and "repeated draft 1" in (rec.fallback_reason or "")


class SamplingChat(FakeChat):
    """A FakeChat with the sampling settings of the real chat models."""

    temperature: float = 0.0
    seed: int | None = None
    settings: list[tuple[float, int | None]] = Field(default_factory=list)

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:
        self.settings.append((self.temperature, self.seed))
        return super().with_structured_output(schema, **kwargs)


def test_a_retry_samples_instead_of_repeating_the_greedy_draft(store: FakeStore) -> None:
    texts = [json.dumps(d) for d in (draft(expected_accuracy=0.1), draft())]
    llm = SamplingChat(messages=iter([AIMessage(content=t) for t in texts]))

    out = run(make(store, llm, chat(scores())), context=RETRY)

    assert llm.settings == [(0.0, None), (0.6, 1)]  # greedy, then seeded sampling
    assert llm.temperature == 0.0  # the shared model itself is unchanged
    assert [v["passed"] for v in out["verdicts"]] == [False, True]


@pytest.mark.parametrize(("task", "dataset", "message"), [
    (42, None, "the task must be text, but got int"),
    (["chest x-ray"], None, "the task must be text, but got list"),
    ("chest x-ray", 3.5, "the dataset must be a path, but got float"),
])
def test_a_graph_invoked_with_wrong_types_says_what_is_wrong(
        store: FakeStore, task: Any, dataset: Any, message: str) -> None:
    graph = make(store, chat(draft()), chat(scores()))
    with pytest.raises(TaskError, match=message):
        graph.invoke({"task": task, "dataset": dataset, "constraints": {}}, {"configurable": {"thread_id": "t"}})


def test_zero_retries_falls_back_after_one_draft(store: FakeStore) -> None:
    llm = chat(draft(expected_accuracy=0.1))
    out = run(make(store, llm, chat()), context=Context(max_judge_retries=0))

    assert len(llm.prompts) == 1 and out["recommendation"]["fallback"]


def test_by_default_a_rejected_draft_falls_back_at_once_with_the_computed_contrasts(store: FakeStore) -> None:
    """No second draft unless asked (Context.max_judge_retries is 0): the fallback says why with the
    facts computed in code, the ones the reasoner was shown, and they hold up to the grounding check."""
    llm = chat(draft(rationale="c1 has the best predicted accuracy, 0.97, and fits the budget."))
    out = run(make(store, llm, chat()))

    r = out["recommendation"]
    assert len(llm.prompts) == 1 and r["fallback"]
    assert r["rationale"].startswith("Fallback (the LLM's draft did not pass the judge)")
    assert "c1 has the best predicted accuracy, 0.97, and fits the budget." in r["rejected_draft"]  # what was refused
    facts = [line for line in llm.prompts[0][-1].content.split("Facts to reason from:\n")[1].splitlines() if line]
    assert facts and facts != ["none"] and all(f in r["rationale"] for f in facts)
    cands = out["candidates"]
    shown = [v for c in cands for v in (c["accuracy"], c.get("low"), c.get("high")) if v is not None]
    evidence = [e for e in out["evidence"] if e.get("test_accuracy") is not None]
    shown += [e["test_accuracy"] for e in evidence]
    known = [c["id"] for c in cands] + [e["alias"] for e in evidence]
    assert J.ungrounded(r["rationale"].split(": ", 1)[1], known, shown, cands, evidence) == []


def test_a_draft_that_only_restates_the_ranking_gets_the_computed_contrasts_after_it(store: FakeStore) -> None:
    """ "c1 has the best predicted accuracy" says nothing a reader can weigh: the recommendation keeps the
    draft's words and adds the contrasts the reasoner was given ("In numbers"), which a draft that
    compares the pick with something does not get."""
    plain = "c1 has the best predicted accuracy, 0.80, and fits the budget."
    llm = chat(draft(rationale=plain, cite=["c1"]))
    out = run(make(store, llm, chat(scores())))
    rec = Recommendation.model_validate(out["recommendation"])
    facts = [line for line in llm.prompts[0][-1].content.split("Facts to reason from:\n")[1].splitlines() if line]
    assert not rec.fallback and rec.rationale == plain
    assert facts and facts != ["none"] and rec.reasons == facts
    assert f"Why: {plain}\nIn numbers: {'; '.join(facts)}." in render_text(rec)
    from agent.chat.cards import card_md

    assert f"**In numbers:** {'; '.join(facts)}." in card_md(out["recommendation"], None)

    why = "c1 is predicted more accurate than c2 and fits the budget."  # the pick against another, on accuracy
    compared = run(make(store, chat(draft(rationale=why, cite=["c1", "c2"])), chat(scores())), thread="t2")["recommendation"]
    assert not compared["fallback"] and compared["reasons"] == [] and compared["rejected_draft"] is None

    # Naming a past run without saying what it showed is no contrast: the computed ones follow.
    named = run(make(store, chat(draft()), chat(scores())), thread="t3")["recommendation"]  # "r1 ... agrees"
    assert not named["fallback"] and named["reasons"] == facts
    assert "In numbers" not in render_text(Recommendation.model_validate(compared))


def test_invalid_llm_output_counts_as_a_failed_attempt(store: FakeStore) -> None:
    llm = chat("not json at all", draft())
    out = run(make(store, llm, chat(scores())), context=RETRY)

    first = out["verdicts"][0]
    assert not first["passed"] and first["checks"][0]["name"] == "schema" and not first["checks"][0]["ok"]
    assert out["verdicts"][1]["passed"]


def test_invented_backbone_is_caught(store: FakeStore) -> None:
    out = run(make(store, chat(draft(backbone="vit_huge"), draft()), chat(scores())))

    (failed,) = [c for c in out["verdicts"][0]["checks"] if not c["ok"]]
    assert failed["name"] == "search_space" and "backbone must be one of" in failed["message"]


def test_invented_citation_is_caught(store: FakeStore) -> None:
    out = run(make(store, chat(draft(cite=["c1", "r99"]), draft()), chat(scores())))

    (failed,) = [c for c in out["verdicts"][0]["checks"] if not c["ok"]]
    assert failed["name"] == "citations" and "r99" in failed["message"]


def test_backbone_mode_pair_outside_the_candidates_is_caught(store: FakeStore) -> None:
    out = run(make(store, chat(draft(mode="scratch"), draft()), chat(scores())))

    failed = {c["name"]: c["message"] for c in out["verdicts"][0]["checks"] if not c["ok"]}
    assert "not among the candidates" in failed["constraints"]


def test_over_budget_draft_fails_the_budget_check(store: FakeStore) -> None:
    slow = draft(epochs=300, expected_accuracy=0.8)  # 40 s per 10 epochs -> 1200 s > 900 s
    out = run(make(store, chat(slow, draft()), chat(scores())))

    failed = [c for c in out["verdicts"][0]["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["budget"] and "900 s" in failed[0]["message"]


def test_failing_llm_judge_leaves_the_checks_in_charge(store: FakeStore) -> None:
    out = run(make(store, chat(draft()), chat("{broken")))

    v = out["recommendation"]["verdict"]
    assert v["passed"] and v["judged_by"] == "checks" and v["judge_error"]


def test_judge_calls_do_not_stream_to_the_user(store: FakeStore) -> None:
    graph = make(store, chat(draft()), chat(scores()))
    nodes = [
        meta["langgraph_node"]
        for _, meta in graph.stream({"task": TASK}, cfg(), context=Context(), stream_mode="messages")
    ]

    assert "reason" in nodes and "judge" not in nodes


# ----------------------------------------------------------------------------- input
def test_assumptions_are_listed_and_rendered(store: FakeStore) -> None:
    out = run(make(store, chat(draft()), chat(scores())), task="dermoscopy, 8 classes, 15 minutes on a laptop CPU")

    rec = Recommendation.model_validate(out["recommendation"])
    assert "n_instances=2000" in rec.profile.assumed
    assert "Assumed (not stated): " in render_text(rec) and "n_instances=2000" in render_text(rec)
    assert out["verdict"]["assumed"] == rec.profile.assumed


def test_dataset_meta_features_come_from_the_data(store: FakeStore, dataset: str) -> None:
    out = run(make(store, chat(draft()), chat(scores())), task="ultrasound, 8 classes, 10 minutes", dataset=dataset)

    profile = out["profile"]
    assert profile["source"] == "dataset" and profile["meta"]["n_instances"] == 90
    assert profile["meta"]["n_classes"] == 3 and profile["meta"]["modality"] == "ultrasound"
    assert profile["budget_seconds"] == 600
    assert any("8 classes" in n for n in profile["notes"])  # the text disagreed with the data
    assert "tiny_ultrasound" in store.queries[0]


def test_constraints_override_the_text(store: FakeStore) -> None:
    llm = chat(draft(candidate="c1", backbone="efficientnet_lite1", expected_accuracy=0.79))
    out = run(make(store, llm, chat(scores())), constraints={"budget_minutes": 30, "backbones": ["efficientnet_lite1"]})

    assert out["profile"]["budget_seconds"] == 1800 and out["profile"]["backbones"] == ["efficientnet_lite1"]
    assert {c["config"]["backbone"] for c in out["candidates"]} == {"efficientnet_lite1"}


class _NoGpuRuns(FakeMetaModel):
    """A meta-model whose knowledge base holds CPU runs only: GPU times carry the note."""

    NOTE = "no run in the knowledge base came from a GPU; the times are extrapolated from CPU runs"

    def predict(self, meta: Any, configs: list[TrainConfig], device: str = "cpu", open_fields: Any = ()) -> list[Any]:
        preds = super().predict(meta, configs, "cuda" if str(device).startswith("cuda") else device, open_fields)
        for p in preds:
            p.device, p.device_note = device, self.NOTE if str(device).startswith("cuda") else None
        return preds


def test_the_time_on_a_device_without_runs_says_it_is_extrapolated(store: FakeStore) -> None:
    graph = build_graph(Parts(
        llm=chat(draft(), draft()), judge_llm=chat(scores(), scores()), kb=store, metamodel=_NoGpuRuns(png=False),
        weights_available=lambda b: b.startswith("efficientnet_lite")
    ), checkpointer=InMemorySaver())
    out = run(graph, constraints={"device": "cuda:NVIDIA H200"})

    rec = Recommendation.model_validate(out["recommendation"])
    assert rec.profile.device == "cuda:NVIDIA H200"
    assert f"training time on cuda:NVIDIA H200: {_NoGpuRuns.NOTE}" in rec.warnings
    text = render_text(rec)
    assert "on cuda:NVIDIA H200" in text and f"Warning: training time on cuda:NVIDIA H200: {_NoGpuRuns.NOTE}" in text
    assert out["offer"]["prediction"]["device_note"] == _NoGpuRuns.NOTE
    # a device the runs came from: no such warning
    out = run(graph, thread="t2", constraints={"device": "cpu"})
    assert not any("extrapolated" in w for w in Recommendation.model_validate(out["recommendation"]).warnings)
    assert "device_note" not in out["offer"]["prediction"]


@pytest.mark.parametrize(
    ("task", "inputs", "message"),
    [
        ("", {}, "describe the task"),
        ("x-ray, I have -5 minutes", {}, "must be positive"),
        ("x-ray, budget of 15 parsecs", {}, "not a unit of time"),
        ("chest x-ray", {"constraints": {"backbones": ["vit_huge"]}}, "backbones must be drawn from"),
        ("chest x-ray", {"constraints": {"budget_minutes": 0}}, "budget_minutes must be a number > 0"),
        ("x-ray", {"dataset": "/no/such/file.npz"}, "does not exist"),
    ],
)
def test_bad_input_is_a_clear_task_error(store: FakeStore, task: str, inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        run(make(store, chat(), chat()), task=task, **inputs)


def test_dataset_outside_the_allowed_folders_is_refused(store: FakeStore, dataset: str, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(TaskError, match="outside the allowed folders"):
        run(make(store, chat(), chat()), dataset=dataset, context=Context(allowed_data_dirs=(str(other),)))


# ----------------------------------------------------------------------------- approval
def test_approve_trains_exactly_the_offered_config_once(store: FakeStore, jobs: FakeJobs, dataset: str) -> None:
    graph = make(store, chat(draft()), chat(scores()), jobs)
    out = run(graph, dataset=dataset)
    offered = out["__interrupt__"][0].value

    chunks = list(
        graph.stream(Command(resume={"action": "approve"}), cfg(), context=Context(), stream_mode=["custom", "updates"])
    )

    (call,) = jobs.calls
    assert call["config"].model_dump(mode="json") == offered["config"]
    assert call["job_id"] == job_id_for("t1", call["config"]) and call["dataset"] == dataset
    progress = [c for mode, c in chunks if mode == "custom"]
    assert [p.get("event") for p in progress if p["type"] == "train"] == ["start", "epoch", "epoch", "end"]
    state = graph.get_state(cfg()).values
    assert state["training"]["status"] == "ok" and state["recorded"]["record_id"] == state["training"]["record_id"]
    assert store.synced == 1
    assert graph.get_state(cfg()).next == ()


def test_the_same_config_approved_twice_in_a_thread_is_a_second_job(store: FakeStore, dataset: str,
                                                                     tmp_path: Path) -> None:
    jobs = FakeJobs(tmp_path / "runs", store)
    graph = make(store, chat(draft(), draft()), chat(scores(), scores()), jobs)
    ctx = Context(runs_dir=str(tmp_path / "runs"))
    first = run(graph, dataset=dataset, context=ctx)["__interrupt__"][0].value
    graph.invoke(Command(resume={"action": "approve"}), cfg(), context=ctx)
    second = run(graph, dataset=dataset, context=ctx)["__interrupt__"][0].value
    assert second["key"] == first["key"]  # the same recommendation again
    graph.invoke(Command(resume={"action": "approve"}), cfg(), context=ctx)

    a, b = jobs.calls
    assert a["job_id"] == job_id_for("t1", a["config"]) and b["job_id"] == f"{a['job_id']}-2"
    assert len(jobs.jobs) == 2 and all((tmp_path / "runs" / c["job_id"]).is_dir() for c in (a, b))
    state = graph.get_state(cfg()).values
    assert state["training"]["job_id"] == b["job_id"] and state["approval"]["job_id"] == b["job_id"]


def test_job_id_is_deterministic_per_thread_and_config() -> None:
    c = TrainConfig(backbone="efficientnet_lite0", mode="frozen")
    assert job_id_for("thread/1", c) == job_id_for("thread/1", c) == f"thread_1-{c.key()}"
    assert job_id_for("other", c) != job_id_for("thread/1", c)


def test_edit_is_revalidated_and_reoffered_before_training(store: FakeStore, jobs: FakeJobs, dataset: str) -> None:
    graph = make(store, chat(draft()), chat(scores()), jobs)
    run(graph, dataset=dataset)

    out = graph.invoke(Command(resume={"action": "edit", "config": {"epochs": 3}}), cfg(), context=Context())

    offer = out["__interrupt__"][0].value
    assert offer["config"]["epochs"] == 3 and offer["error"] is None and "edited" in offer["note"]
    assert offer["prediction"]["seconds"] == pytest.approx(12.0)  # re-predicted for the edit
    assert jobs.calls == []  # an edit is not an approval

    graph.invoke(Command(resume={"action": "approve"}), cfg(), context=Context())
    (call,) = jobs.calls
    assert call["config"].epochs == 3


def test_an_edit_relative_to_the_offer_is_taken_of_its_values(store: FakeStore, jobs: FakeJobs, dataset: str) -> None:
    graph = make(store, chat(draft()), chat(scores()), jobs)
    first = run(graph, dataset=dataset)["offer"]["config"]

    # "double the epochs, halve the batch size" as agent.intents.parse_changes reads it
    out = graph.invoke(Command(resume={"action": "edit", "config": {"epochs": "*2", "batch_size": "*0.5"}}), cfg(),
                       context=Context())

    offer = out["__interrupt__"][0].value
    assert offer["error"] is None and offer["config"]["epochs"] == 2 * first["epochs"]
    assert offer["config"]["batch_size"] == first["batch_size"] // 2 and jobs.calls == []


def test_approving_a_different_config_counts_as_an_edit(store: FakeStore, jobs: FakeJobs, dataset: str) -> None:
    graph = make(store, chat(draft()), chat(scores()), jobs)
    run(graph, dataset=dataset)

    out = graph.invoke(Command(resume={"action": "approve", "config": {"batch_size": 32}}), cfg(), context=Context())

    assert jobs.calls == [] and out["__interrupt__"][0].value["config"]["batch_size"] == 32


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"action": "edit", "config": {"learning_rate": 5.0}}, "learning_rate must satisfy"),
        ({"action": "edit", "config": {"backbone": "resnet18"}}, "no pretrained weights"),
        ({"action": "edit", "config": {"augmentation": "strong"}}, "augmentation must be 'none' in frozen mode"),
        ({"action": "edit"}, "an edit needs the fields"),
        ({"action": "train it!"}, "cannot read the answer"),
        ("maybe", "cannot read the answer"),
    ],
)
def test_invalid_answer_is_refused_with_a_message(
    store: FakeStore, jobs: FakeJobs, dataset: str, answer: Any, message: str
) -> None:
    graph = make(store, chat(draft()), chat(scores()), jobs)
    first = run(graph, dataset=dataset)["__interrupt__"][0].value

    out = graph.invoke(Command(resume=answer), cfg(), context=Context())

    again = out["__interrupt__"][0].value
    assert message in again["error"]
    assert again["config"] == first["config"]  # the offer is unchanged
    assert jobs.calls == []


def test_reject_ends_without_training(store: FakeStore, jobs: FakeJobs, dataset: str) -> None:
    graph = make(store, chat(draft()), chat(scores()), jobs)
    run(graph, dataset=dataset)

    out = graph.invoke(Command(resume={"action": "reject", "reason": "too slow"}), cfg(), context=Context())

    assert out["decision"] == {"status": "rejected", "reason": "too slow"}
    assert "__interrupt__" not in out and jobs.calls == [] and graph.get_state(cfg()).next == ()


def test_approval_without_a_dataset_asks_for_one(store: FakeStore, jobs: FakeJobs, dataset: str) -> None:
    graph = make(store, chat(draft()), chat(scores()), jobs)
    run(graph)

    out = graph.invoke(Command(resume={"action": "approve"}), cfg(), context=Context())
    assert "training needs a dataset" in out["__interrupt__"][0].value["error"] and jobs.calls == []

    graph.invoke(Command(resume={"action": "approve", "dataset": dataset}), cfg(), context=Context())
    assert [c["dataset"] for c in jobs.calls] == [dataset]


def test_train_is_refused_without_approval(store: FakeStore, jobs: FakeJobs, dataset: str) -> None:
    graph = make(store, chat(draft()), chat(scores()), jobs)
    run(graph, dataset=dataset)

    with pytest.raises(TrainingNotApproved, match="no configuration was approved"):
        graph.invoke(Command(goto="train"), cfg(), context=Context())
    assert jobs.calls == []


def test_train_is_refused_when_the_approval_is_not_the_offer(store: FakeStore, jobs: FakeJobs, dataset: str) -> None:
    graph = make(store, chat(draft()), chat(scores()), jobs)
    offered = run(graph, dataset=dataset)["__interrupt__"][0].value
    other = TrainConfig.model_validate({**offered["config"], "epochs": 99})
    graph.update_state(cfg(), {"approval": {"config": other.model_dump(), "key": other.key(), "dataset": dataset}})

    with pytest.raises(TrainingNotApproved, match="not the one offered"):
        graph.invoke(Command(goto="train"), cfg(), context=Context())
    assert jobs.calls == []


def test_threads_survive_a_restart_with_sqlite(store: FakeStore, jobs: FakeJobs, dataset: str, tmp_path: Path) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = tmp_path / "threads.sqlite"
    with sqlite3.connect(db, check_same_thread=False) as conn:
        run(make(store, chat(draft()), chat(scores()), jobs, checkpointer=SqliteSaver(conn)), dataset=dataset)
    with sqlite3.connect(db, check_same_thread=False) as conn:
        graph = make(store, chat(), chat(), jobs, checkpointer=SqliteSaver(conn))
        assert graph.get_state(cfg()).next == ("approve",)
        graph.invoke(Command(resume={"action": "approve"}), cfg(), context=Context())
    assert len(jobs.calls) == 1


# ------------------------------------------------------------------------- the API / CLI
def test_recommender_runs_to_the_interrupt_and_renders(store: FakeStore, tmp_path: Path) -> None:
    r = Recommender(
        llm=chat(draft()),
        judge_llm=chat(scores()),
        kb=store,
        metamodel=FakeMetaModel(png=False),
        context=Context(plot_dir=str(tmp_path / "plots")),
    )

    rec, payload = r.run(TASK, thread_id="api")

    assert (
        rec.thread_id == "api" and rec.timings["total"] >= sum(v for k, v in rec.timings.items() if k != "total") * 0.5
    )
    assert payload["config"] == rec.config.model_dump(mode="json")
    assert rec.shap_plot and Path(rec.shap_plot).exists()
    text = render_text(rec)
    assert "efficientnet_lite0" in text and "Expected test accuracy 0.80" in text and "Judge: passed" in text


@pytest.fixture
def cli_recommender(monkeypatch: pytest.MonkeyPatch, store: FakeStore) -> Recommender:
    r = Recommender(llm=chat(draft()), judge_llm=chat(scores()), kb=store, metamodel=FakeMetaModel(png=False))
    monkeypatch.setattr("agent.recommend.default_recommender", lambda kb_dir=None: r)
    return r


def test_cli_prints_json(cli_recommender: Recommender, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    assert main(["recommend", TASK, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backbone"] == "efficientnet_lite0" and data["fallback"] is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["recommend", TASK, "--train"], "--train needs --dataset"),
        (["recommend", TASK, "--yes"], "needs --train"),
        (["recommend", TASK, "--budget-minutes", "-3"], "must be > 0"),
        (["recommend", "x-ray, I have -5 minutes"], "must be positive"),
        (["recommend", "chest x-ray", "--backbones", "vit_huge"], "backbones must be drawn from"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(
    cli_recommender: Recommender, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    from agent.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_train_without_yes_refuses_after_showing_the_config(
    cli_recommender: Recommender, capsys: pytest.CaptureFixture[str], dataset: str
) -> None:
    from agent.cli import main

    assert main(["recommend", TASK, "--dataset", dataset, "--train"]) == 2
    out = capsys.readouterr()
    assert "Recommendation:" in out.out
    assert "nothing trains without explicit approval" in out.err and "--yes" in out.err


def test_cli_train_yes_runs_the_recommended_config(
    cli_recommender: Recommender, capsys: pytest.CaptureFixture[str], dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.cli import main

    trained: list[Any] = []

    def fake_run(ds: str, config: TrainConfig, **kw: Any) -> ExperimentRecord:
        trained.append((ds, config))
        return make_record("run", config.backbone, config.mode, 0.8)

    monkeypatch.setattr("agent.cli.run_training_job", fake_run)
    assert main(["recommend", TASK, "--dataset", dataset, "--train", "--yes", "--quiet"]) == 0
    ((ds, config),) = trained
    assert ds == dataset and config.backbone == "efficientnet_lite0"
    assert "status=ok" in capsys.readouterr().out


def test_stored_records_keeps_the_order_and_skips_unknown_ids(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    a, b = store.records()[:2]
    assert stored_records(store, [b.id, "no-such-id", a.id]) == [b, a]

    class RecordsOnly:  # a store without `get`: one dict per call
        def records(self) -> list:
            return store.records()

    assert stored_records(RecordsOnly(), [a.id, "no-such-id", b.id]) == [a, b]
    assert stored_records(store, []) == []
