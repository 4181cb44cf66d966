"""Follow-up questions answered from a thread's state: intents, what-ifs, missing data.

The states come from the real graph run with the scripted parts of tests/fakes.py
(a deterministic meta-model: 0.80 / 40 s for efficientnet_lite0 frozen at 10 epochs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import Runnable, RunnableLambda

from agent.followup import answer_followup, recheck
from agent.intents import detect_intent, parse_changes
from knowledge.schema import MetaFeatures, TrainConfig
from tests.fakes import TASK, FakeMetaModel, ScriptChat, last, make_adapter, tiny_dataset


def weights(backbone: str) -> bool:
    return backbone.startswith("efficientnet_lite")


@pytest.fixture
def thread(tmp_path: Path) -> tuple[dict[str, Any], Any]:
    """(state after a recommendation with a dataset, the adapter that made it)."""
    adapter, _ = make_adapter(tmp_path)
    last(adapter.submit("t1", TASK, dataset=tiny_dataset(tmp_path / "data")))
    return adapter.values("t1"), adapter


def ask(state: dict[str, Any], question: str, **kw: Any) -> Any:
    kw.setdefault("weights_available", weights)
    return answer_followup(state, question, kw.pop("metamodel", FakeMetaModel()), kw.pop("store", None), **kw)


@pytest.mark.parametrize(
    ("question", "kind", "expected"),
    [
        ("why this learning rate?", "why", {"param": "learning_rate"}),
        ("Why batch size 64?", "why", {"param": "batch_size"}),
        ("why frozen?", "why", {"param": "mode"}),
        ("why efficientnet?", "why", {"param": "backbone"}),
        ("why?", "why", {"param": None}),
        ("what if I only have 10 minutes?", "what_if", {"budget_seconds": 600.0, "changes": {}}),
        ("what about resnet18?", "what_if", {"changes": {"backbone": "resnet18"}}),
        ("compare with resnet-18", "what_if", {"changes": {"backbone": "resnet18"}}),
        ("why not densenet?", "what_if", {"changes": {"backbone": "densenet121"}}),
        ("what if I fine-tune?", "what_if", {"changes": {"mode": "finetune"}}),
        ("what if lr=3e-4 and 20 epochs?", "what_if", {"changes": {"learning_rate": 3e-4, "epochs": 20}}),
        ("what if I use a GPU?", "what_if", {"device": "cuda"}),
        ("would a bigger batch help?", "why", {"param": "batch_size"}),  # the sweep of its values answers it
        ("is a lower learning rate better?", "why", {"param": "learning_rate"}),
        ("would a higher lr of 0.01 help?", "what_if", {"changes": {"learning_rate": 0.01}}),
        ("how confident are you?", "why", {"param": None}),
        ("what did the judge say?", "why", {"param": None}),
        ("what is the second best option?", "compare", {}),
        ("what if I double the epochs?", "what_if", {"changes": {"epochs": "*2"}}),
        ("show similar experiments", "similar", {}),
        ("which past runs is this based on?", "similar", {}),
        ("compare c1 and c3", "compare", {"candidates": ["c1", "c3"]}),
        ("how did training go?", "training", {}),
        ("what was the test AUC?", "training", {}),
        ("what did you recommend again?", "summary", {}),
        ("tell me a joke", "unknown", {}),
    ],
)
def test_intents_are_read_by_rules(question: str, kind: str, expected: dict[str, Any]) -> None:
    intent = detect_intent(question)

    assert intent.kind == kind and intent.source == "rules"
    for name, value in expected.items():
        assert getattr(intent, name) == value, name


@pytest.mark.parametrize(
    ("text", "changes"),
    [
        ("epochs=2", {"epochs": 2}),
        ("change the learning rate to 3e-4", {"learning_rate": 3e-4}),
        ("set batch size to 32, dropout 0.2", {"batch_size": 32, "dropout": 0.2}),
        ("use sgd with a cosine schedule", {"optimizer": "sgd", "scheduler": "cosine"}),
        ("no augmentation", {"augmentation": "none"}),
        ("128px input", {"input_size": 128}),
        ("fine-tune resnet18 instead", {"backbone": "resnet18", "mode": "finetune"}),
        ("what if I freeze 50% of the backbone?", {"mode": "finetune", "freeze": 0.5}),
        ("freeze=0.25", {"mode": "finetune", "freeze": 0.25}),
        ("lite0 frozen", {"backbone": "efficientnet_lite0", "mode": "frozen"}),
        ("make it better", {}),
        # a change relative to the value ("*": by a factor, "+": by a step), taken when the config is known
        ("double the epochs", {"epochs": "*2"}),
        ("halve the batch size", {"batch_size": "*0.5"}),
        ("10x lower lr", {"learning_rate": "*0.1"}),
        ("reduce the learning rate by 50%", {"learning_rate": "*0.5"}),
        ("increase the epochs by 10", {"epochs": "+10"}),
        ("decrease epochs by 5", {"epochs": "+-5"}),
        # partial fine-tuning and augmentation in words
        ("freeze half the backbone", {"mode": "finetune", "freeze": 0.5}),
        ("unfreeze everything", {"mode": "finetune", "freeze": 0.0}),
        ("turn off augmentation", {"augmentation": "none"}),
        ("use stronger augmentation", {"augmentation": "strong"}),
        ("lite2 at 96 pixels", {"backbone": "efficientnet_lite2", "input_size": 96}),
    ],
)
def test_config_changes_in_words(text: str, changes: dict[str, Any]) -> None:
    assert parse_changes(text) == changes


def test_a_relative_change_is_taken_of_the_config_it_changes() -> None:
    from agent.intents import apply_changes

    base = {"learning_rate": 0.003, "batch_size": 32, "epochs": 15, "dropout": 0.0, "mode": "frozen"}
    assert apply_changes(base, {"epochs": "*2", "batch_size": "*0.5"}) == {**base, "epochs": 30, "batch_size": 16}
    assert apply_changes(base, {"learning_rate": "*0.1", "epochs": "+-5"}) == {**base, "learning_rate": 0.0003, "epochs": 10}
    assert apply_changes(base, {"batch_size": "*0.001"})["batch_size"] == 1  # a whole number, at least 1
    assert apply_changes(base, {"mode": "finetune"}) == {**base, "mode": "finetune"}
    assert apply_changes(base, {"epochs": "*x"})["epochs"] == "*x"  # left for validation to refuse


def test_what_if_a_relative_change_predicts_the_changed_config(thread: Any) -> None:
    state, _ = thread
    epochs = state["recommendation"]["config"]["epochs"]

    a = ask(state, "what if I double the epochs?")

    assert a.intent == "what_if" and a.config is not None and a.config["epochs"] == 2 * epochs


def test_why_a_hyperparameter_uses_shap_a_what_if_sweep_and_the_evidence(thread: Any) -> None:
    state, _ = thread

    a = ask(state, "why this learning rate?", plot_dir=None)

    assert a.intent == "why" and "learning_rate = 0.001 raises the predicted test accuracy by +0.010" in a.text
    assert a.columns and a.columns[0] == "learning_rate" and all(a.columns)  # every column has a header
    chosen = [r for r in a.rows if r[-1] == "chosen"]
    assert chosen == [["0.001", "0.80 (0.75-0.85)", "40 s", "chosen"]] and len(a.rows) == 5
    assert "no other value is predicted better" in a.text
    assert "r1 0.001 on skin_lesion_isic -> test 0.78" in a.text  # r1: the nearest dataset's best run
    assert a.plot and Path(a.plot).is_file()  # the recommendation's own SHAP plot


def test_why_the_whole_recommendation(thread: Any) -> None:
    state, _ = thread

    a = ask(state, "why?")

    assert "The reasoner's rationale: c1 ranks first among the candidates" in a.text
    assert "mode = frozen raises it by +0.080" in a.text and "The judge passed it" in a.text

    sure = ask(state, "how confident are you?")  # the interval and what the recommendation warned of
    rec = state["recommendation"]
    low, high = rec["accuracy_interval"]
    assert f"Predicted test accuracy {rec['expected_accuracy']:.2f}, 90 % interval {low:.2f}-{high:.2f}." in sure.text
    assert all(f"- {w}" in sure.text for w in rec["warnings"] if not w.startswith("assumed"))


def test_what_if_a_budget_that_still_fits(thread: Any) -> None:
    a = ask(thread[0], "what if I only have 10 minutes?")

    assert a.intent == "what_if" and "still fits: predicted 40 s" in a.text and "passes the judge's checks" in a.text


def test_what_if_a_budget_that_does_not_fit_offers_a_shorter_run(thread: Any) -> None:
    a = ask(thread[0], "what if I only have 30 seconds?")

    assert "does not fit" in a.text and "same setup, 7 epochs" in a.text
    assert a.config is not None and a.config["epochs"] == 7 and a.prediction["seconds"] <= 30
    assert all(c["ok"] for c in a.checks)


def test_what_if_another_backbone_is_predicted_and_rejudged(thread: Any) -> None:
    a = ask(thread[0], "what about resnet18?")

    assert a.config is not None and a.config["backbone"] == "resnet18" and a.config["mode"] == "scratch"
    assert "no pretrained weights on this machine" in a.text and "(-0.30)" in a.text
    failed = {c["name"] for c in a.checks if not c["ok"]}
    assert failed == {"competitive"} and "would refuse it" in a.text
    assert "5 past run" not in a.text and "0 past run(s) of resnet18/scratch" in a.text


def test_what_if_a_value_outside_the_search_space(thread: Any) -> None:
    a = ask(thread[0], "what if lr=5?")

    assert "not valid" in a.text and "learning_rate must satisfy" in a.text and a.config is None


def test_what_if_a_gpu_changes_the_predicted_time(thread: Any) -> None:
    a = ask(thread[0], "what if I had a GPU?")

    assert "on a GPU" in a.text and a.prediction["seconds"] == pytest.approx(4.0)


def test_what_if_over_the_budget_fails_the_budget_check(thread: Any) -> None:
    a = ask(thread[0], "what if 300 epochs?")  # 40 s per 10 epochs -> 1200 s > the 15 min budget

    assert {c["name"] for c in a.checks if not c["ok"]} == {"budget"}


def test_similar_experiments_and_candidates_come_from_the_state(thread: Any) -> None:
    state, _ = thread

    similar = ask(state, "show similar experiments")
    assert [r[0] for r in similar.rows] == [e["alias"] for e in state["evidence"]]
    assert "r3 (blood_cells_pbc" in similar.text and "the nearest dataset's first" in similar.text
    # Every column is named and explained under the table, "distance" with which way is nearer.
    assert all(similar.columns) and "**distance** cosine distance" in similar.markdown()
    assert "lower is nearer" in similar.markdown() and "**test acc**" in similar.markdown()

    compare = ask(state, "compare c1 and c2")
    assert [r[0] for r in compare.rows] == ["c1", "c2"] and compare.rows[0][-1] == "recommended"
    assert all(compare.columns) and "**past runs** how many knowledge-base runs" in compare.markdown()
    unknown = ask(state, "compare c1 and c9")
    assert "no candidate c9" in unknown.text


def test_training_questions_before_and_after_a_run(thread: Any) -> None:
    state, adapter = thread
    before = ask(state, "how did training go?")
    assert before.intent == "missing" and "approve the offered configuration" in before.text

    last(adapter.approve("t1"))
    after = answer_followup(adapter.values("t1"), "what was the final accuracy?", FakeMetaModel(), adapter.kb)

    assert after.intent == "training" and "Test accuracy 0.810" in after.text
    assert "inside that interval" in after.text and "It is in the knowledge base as record" in after.text


def test_no_recommendation_yet_says_so() -> None:
    for q in ("why this learning rate?", "what about resnet18?", "compare the candidates", "show similar experiments"):
        a = answer_followup({}, q, FakeMetaModel(), None)
        assert a.intent == "missing" and a.missing, q


def test_what_if_without_a_meta_model_says_it_is_missing(thread: Any) -> None:
    a = answer_followup(thread[0], "what about resnet18?", None, None, weights_available=weights)

    assert a.missing == ["the meta-model"]


def test_data_the_knowledge_base_does_not_record_is_named(thread: Any) -> None:
    a = ask(thread[0], "what is the per-class recall?")

    assert a.intent == "missing" and "per-class metrics" in a.missing[0]


def test_an_llm_maps_what_the_rules_miss_without_writing_the_answer(thread: Any) -> None:
    class Mapper(ScriptChat):
        def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:
            return RunnableLambda(lambda _: {"intent": "what_if", "param": "epochs", "value": "5"})

    a = ask(thread[0], "gimme a quicker variant", llm=Mapper())

    assert a.intent == "what_if" and a.config is not None and a.config["epochs"] == 5
    assert a.understood_as == "what-if" and a.text.startswith("(I read this as a what-if question.)")


def test_recheck_of_the_recommended_config_passes(thread: Any) -> None:
    state, _ = thread
    config = TrainConfig.model_validate(state["recommendation"]["config"])
    pred = {"accuracy": 0.8, "low": 0.75, "high": 0.85, "seconds": 40.0}

    checks = recheck(state, config, pred, weights_available=weights)

    assert [c["name"] for c in checks] == ["search_space", "constraints", "competitive", "budget"]
    assert all(c["ok"] for c in checks)


def test_a_what_if_predicted_above_the_pick_says_why_it_was_not_picked(thread: Any) -> None:
    a = ask(thread[0], "what if I fine-tune?")

    assert a.prediction is not None and a.prediction["accuracy"] > 0.8  # the fake: finetune 0.82, the pick 0.80
    assert "Why it was not picked: its 90 % interval (0.77-0.87) overlaps the pick's (0.75-0.85)" in a.text
    assert "it takes 60.0x the time" in a.text and "it exceeds the budget of 15 min" in a.text


def test_a_what_if_predicted_below_the_pick_needs_no_excuse(thread: Any) -> None:
    assert "Why it was not picked" not in ask(thread[0], "what about resnet18?").text


def test_a_what_if_on_a_text_profiles_pick_states_the_picks_number(tmp_path: Path) -> None:
    """A task in words leaves fields assumed: the pick is stated at its mean over their plausible
    values (tools.metamodel.MetaModel.stated), and so is a what-if on the same config, on the real
    meta-model, never the prediction at the defaults filled in for them."""
    from agent.profiling import open_fields
    from tests.reliability import real_metamodel

    mm = real_metamodel()
    adapter, _ = make_adapter(tmp_path, metamodel=mm)
    last(adapter.submit("t1", TASK))
    state = adapter.values("t1")
    assert state["profile"]["source"] == "text" and open_fields(state["profile"])
    rec = state["recommendation"]
    config = TrainConfig.model_validate(rec["config"])
    pick = next(c for c in state["candidates"] if TrainConfig.model_validate(c["config"]).key() == config.key())
    at_defaults = mm.predict(MetaFeatures.model_validate(state["profile"]["meta"]), [config], device=state["profile"]["device"],
                             open_fields=open_fields(state["profile"]))[0].accuracy
    assert round(at_defaults, 4) != pick["accuracy"], "the test needs a profile whose defaults and mean differ"

    a = ask(state, f"what if epochs={config.epochs}?", metamodel=mm)

    assert a.prediction is not None and a.config == config.model_dump(mode="json")
    assert a.prediction["accuracy"] == pick["accuracy"] == rec["expected_accuracy"]
    assert "the same configuration" in a.text


class _KindsMetaModel(FakeMetaModel):
    """The fake with a trust region: fine-tunes are a kind of run the knowledge base never measured."""

    def cell_evidence(self, config: TrainConfig, resolution: int) -> tuple[str, int, int, bool]:
        if config.mode == "finetune":
            return "full fine-tunes at about the images' own size for 10 epochs or more", 1, 1, False
        return "frozen-backbone heads at about the images' own size for 10 epochs or more", 40, 6, True

    def spread(self, meta: MetaFeatures, configs: list[TrainConfig]) -> list[float]:
        return [0.09 if c.mode == "finetune" else 0.02 for c in configs]


def test_a_what_if_of_a_kind_the_base_never_measured_says_so(thread: Any) -> None:
    model = _KindsMetaModel()
    a = ask(thread[0], "what if I fine-tune?", metamodel=model)
    assert "Runs of its kind (full fine-tunes at about the images' own size for 10 epochs or more): 1 on 1 dataset(s); " \
           "the meta-model extrapolates here" in a.text
    why = a.text.split("Why it was not picked:")[1]
    assert "the knowledge base has 1 run(s) of its kind" in why
    assert "models fitted on subsets of the knowledge base's datasets disagree more on it (±0.09 against ±0.02 for " \
           "the pick)" in why
    b = ask(thread[0], "what if lr=3e-4?", metamodel=model)
    assert "Runs of its kind (frozen-backbone heads at about the images' own size for 10 epochs or more): 40 on 6 " \
           "dataset(s)." in b.text and "extrapolates" not in b.text
    assert "Runs of its kind" not in ask(thread[0], "what if lr=3e-4?").text  # a model without kinds says nothing
