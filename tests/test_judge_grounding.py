"""The grounding check: what a rationale may state, read against the evidence it was shown."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.judge import (
    CHECKS,
    Check,
    Draft,
    complete_draft,
    dropped,
    heads,
    merge_config,
    quoted_accuracies,
    quoted_ids,
    run_checks,
    tidy_text,
    trim,
    trimmed,
    ungrounded,
    validate_config,
    with_rationale,
)
from knowledge.schema import TrainConfig

CANDIDATES = [
    {"id": "c1", "accuracy": 0.93, "low": 0.67, "high": 1.0, "seconds": 25,
     "config": {"backbone": "efficientnet_lite0", "mode": "frozen", "optimizer": "sgd", "input_size": 128,
                "learning_rate": 0.001, "batch_size": 16, "epochs": 40}},
    {"id": "c2", "accuracy": 0.92, "low": 0.65, "high": 1.0, "seconds": 13,
     "config": {"backbone": "efficientnet_lite1", "mode": "frozen", "optimizer": "rmsprop", "input_size": 64,
                "learning_rate": 0.0002, "batch_size": 16, "epochs": 40}},
]
EVIDENCE = [{"alias": "r1", "test_accuracy": 0.70,
             "config": {"backbone": "efficientnet_lite1", "optimizer": "adam", "input_size": 64}}]
SHOWN = [0.93, 0.67, 1.0, 0.92, 0.65, 0.70]


def problems(text: str) -> list[str]:
    return ungrounded(text, ["c1", "c2", "r1"], SHOWN, CANDIDATES, EVIDENCE)


@pytest.mark.parametrize("text", [
    "c1 has the highest predicted accuracy (0.93) and trains in about 25 s, within the budget.",
    "c1 is predicted 0.93 in 25 s, above the 0.70 of r1 with adam.",
    "c1 (0.93) beats r1 (0.70); c2 is the fastest at 13 s.",
    "c2 with rmsprop at lr 0.0002 is nearly as accurate (92%) and twice as fast as c1.",
    "EfficientNet-Lite0 at 128 px (c1) is predicted 0.9323 on this small ultrasound set.",
    "c1 has a higher predicted accuracy (0.93) than c2 and r1.",
    "c2 is less accurate than c1 but trains in half the time.",
    "c2 uses a lower learning rate than c1 and is predicted 0.92.",  # a comparison, but not of accuracy
    "c1 uses a larger input size and more epochs than r1.",  # 128 px against r1's 64 (r1 shows no epochs)
    "c1 uses a learning rate of 0.001, which is higher than the learning rates of the other candidates.",
    "c2 has a smaller input size than the other candidates and trains in 13 s.",
    "c1 would be trained on your images; r1 was trained on a similar set and reached 0.70.",
    # A candidate's line copied: its settings are values, not accuracies (drop=0.5 was read as "quotes 0.50").
    "The candidate c1, efficientnet_lite0/frozen sgd lr=0.001 bs=16 ep=40 128px drop=0.5 freeze=0.9, is predicted 0.93.",
])
def test_a_rationale_true_to_the_evidence_passes(text: str) -> None:
    assert problems(text) == []


@pytest.mark.parametrize(("text", "problem"), [
    ("c1 is predicted 0.97, the best here.", "quotes 0.97"),
    # A setting compared between runs, against their configurations (the 1.5B wrote "fewer epochs (32) compared to c2").
    ("c2 uses a higher learning rate than c1 and reaches 0.92.", "c2 has higher learning rate than c1"),
    ("c1 uses a smaller input size (128) compared to c2.", "c1 uses input size 128 and c2 64"),
    ("c1 has more epochs than c2.", "c1 uses epochs 40 and c2 40"),
    # against every other candidate, and with the setting named after the "than" (the 1.5B, in the CLI)
    ("c2 uses a learning rate of 0.0002, which is higher than the learning rates of the other candidates.",
     "c2 has higher learning rate than c1, but c2 uses learning rate 0.0002 and c1 0.001"),
    ("c1 has a smaller input size than the others.", "c1 uses input size 128 and c2 64"),
    ("c1 was trained on HAM10000 with a learning rate of 0.001.", "c1 has not been trained yet"),
    # the embedded model's words in the CLI: a size compared, with the input sizes beside it
    ("The candidate c2 uses a larger model (64px) compared to c1 (128px).", "c2 uses input size 64 and c1 128"),
    ("c1 beats r7 on a similar set.", "names r7"),
    ("c2 reaches 0.70, the best of the candidates.", "gives c2 0.70"),
    ("c2 is the most accurate choice for this task.", "calls c2 the most accurate"),
    ("c1 is the fastest option, predicted 0.93.", "calls c1 the fastest"),
    ("c1 with the Adam optimizer is predicted 0.93.", "optimizer adam"),
    ("c2 at 96px is nearly as accurate as c1.", "input size 96"),
    ("c2, an EfficientNet-Lite2, is nearly as good as c1.", "backbone efficientnet_lite2"),
    ("The predicted accuracy of c2 (0.92) is higher than that of c1 (0.93).", "c2 is more accurate than c1"),
    ("c2 has a higher predicted accuracy than the other candidates.", "c2 is more accurate than c1"),
    ("c2 beats c1 on this kind of data.", "c2 is more accurate than c1"),
    ("c1 is less accurate than c2.", "c1 is less accurate than c2"),
])
def test_a_rationale_that_states_what_the_evidence_does_not_is_caught(text: str, problem: str) -> None:
    assert any(problem in p for p in problems(text)), problems(text)


def test_a_rationale_that_names_no_id_is_held_to_the_candidate_it_picked() -> None:
    text = "The small_cnn from scratch at 32px with AdamW is predicted 0.93."
    assert problems(text) == []  # naming nothing, and about nothing: nothing to hold it to
    found = ungrounded(text, ["c1", "c2", "r1"], SHOWN, CANDIDATES, EVIDENCE, about=["c1"])
    assert [p.split(", but")[0] for p in found] == [
        "it says input size 32", "it says optimizer adamw", "it says mode scratch", "it says backbone small_cnn"]


def test_a_comparison_without_an_id_is_about_the_candidate_picked() -> None:
    text = "Its predicted accuracy is higher than the others."
    assert problems(text) == []  # about nothing: nothing to hold it to
    assert ungrounded(text, ["c1", "c2", "r1"], SHOWN, CANDIDATES, EVIDENCE, about=["c1"]) == []
    assert ungrounded(text, ["c1", "c2", "r1"], SHOWN, CANDIDATES, EVIDENCE, about=["c2"]) == [
        "it says c2 is more accurate than c1, but c2 shows 0.92 and c1 0.93"]


@pytest.mark.parametrize(("text", "about", "problem"), [
    ("It has the highest predicted accuracy (0.93) of the candidates.", "c1", None),
    ("It has the highest predicted accuracy (0.92) of the candidates.", "c2", "calls c2 the most accurate"),
    ("Its accuracy of 0.92 is the highest among the candidates.", "c2", "calls c2 the most accurate"),
    ("It has the shortest training time (13 s) and is nearly as accurate.", "c2", None),
    ("It has the highest predicted accuracy (0.93) and the shortest training time.", "c1", "calls c1 the fastest"),
    ("It is the fastest option here.", "c1", "calls c1 the fastest"),
    ("It offers the best balance between accuracy and speed.", "c2", None),
    ("It uses the highest input size of the candidates.", "c2", None),
    ("It has the best choice of optimizer for this data.", "c2", None),
    # said of past runs or trials, not of the candidate picked
    ("It builds on the trial with the highest validation accuracy so far.", "c2", None),
    ("It is close to the past run with the highest test accuracy on similar data.", "c2", None),
])
def test_a_superlative_without_an_id_is_about_the_candidate_picked(text: str, about: str, problem: str | None) -> None:
    found = ungrounded(text, ["c1", "c2", "r1"], SHOWN, CANDIDATES, EVIDENCE, about=[about])
    assert (found == []) if problem is None else any(problem in p for p in found), found


def test_an_id_compared_with_is_not_what_the_claim_is_about() -> None:
    # The 1.5B's own words: c1 appears twice after "compared to", so the claim is c2's.
    text = ("c2 has a lower training time (13 seconds) compared to c1 (25 seconds) and a slightly higher "
            "accuracy (0.92) compared to c1 (0.93).")
    assert problems(text) == ["it says c2 is more accurate than c1, but c2 shows 0.92 and c1 0.93"]
    assert problems("c2 trains faster than c1, which has the highest accuracy.") == []


# Training times (c1 25 s, c2 13 s), as the CLI showed them wrong: the speed the wrong way round, a time in brackets
# that is another run's (agent.judge._speed).
@pytest.mark.parametrize(("text", "about", "problem"), [
    ("c2 is 1.9x faster than c1 for a point less.", "c2", None),
    ("c1 is a point above c2 and takes 1.9x its time (25 s against 13 s).", "c1", None),
    ("c2 is a point below c1 (0.93), and c1 takes 1.9x its time.", "c2", None),  # the phrase's own subject
    ("It is a point above c2 and saves nothing; c2 saves 12 s.", "c1", None),  # a difference of the two
    ("c1 is predicted 0.93 in 25 s, within the 20 min budget.", "c1", None),  # a budget: the limit rule's
    ("c2 is faster than c1, at 13 s.", "c2", None),
    ("It is predicted 0.93 against c2 (64 px), which is faster.", "c1", None),  # the relative clause is c2's
    ("It is predicted 0.93 against c2 (64 px), which is slower.", "c1", "c2 is slower than c1"),
    ("c1 is faster than c2.", "c1", "c1 is faster than c2, but c1 is predicted 25 s and c2 13 s"),
    ("It is predicted 0.93 compared to c2 (0.92) and is 1.9x faster.", "c1", "c1 is 1.9x faster than c2"),
    ("c2 is 4.0x faster than c1.", "c2", "the ratio of their predicted times (13 s, 25 s) is 1.9"),
    ("c2 trains in half the time of c1.", "c2", None),
    ("c1 is twice as fast as c2.", "c1", "c1 is 2x faster than c2"),
    ("c2 is four times as fast as c1.", "c2", "the ratio of their predicted times (13 s, 25 s) is 1.9"),
    ("c1 is a point above c2 and takes 1.9x its time (40 s).", "c1", "it quotes 40 s"),
    ("c1 (0.93) trains in 13 s.", "c1", "it quotes 13 s"),
])
def test_what_a_rationale_says_of_training_time_is_held_to_the_predicted_times(text: str, about: str,
                                                                               problem: str | None) -> None:
    found = ungrounded(text, ["c1", "c2", "r1"], SHOWN, CANDIDATES, EVIDENCE, about=[about])
    assert (found == []) if problem is None else any(problem in p for p in found), found


@pytest.mark.parametrize(("raw", "tidy"), [
    # one sentence past the limit, with a trailing clause: the sentence ends before it
    ("It has the highest predicted test accuracy of 0.89 and the shortest training time of 6 seconds, which fits "
     "within the 10-minute budget and utilizes the small network", "It has the highest predicted test accuracy of "
     "0.89 and the shortest training time of 6 seconds."),
    # no clause to drop: the last word, marked as cut
    ("The candidate c1 with efficientnet_lite0/frozen architecture, 128px resolution, and AdamW optimizer has a "
     "predicted test accuracy of 0.95 and a training time of", "The candidate c1 with efficientnet_lite0/frozen "
     "architecture, 128px resolution, and AdamW optimizer has a predicted test accuracy of 0.95..."),
    ("c1 is predicted 0.93 in 25 s, which fits the budget.", "c1 is predicted 0.93 in 25 s, which fits the budget."),
    # what is left would say nothing checkable: the cut stays visible rather than lose the evidence
    ("The candidate's hyperparameters (learning rate, batch size, and epochs) suit the given task well, which gives "
     "a test accuracy of 0.52 within the budget", "The candidate's hyperparameters (learning rate, batch size, and "
     "epochs) suit the given task well, which gives a test accuracy of 0.52..."),
    # "because" carries the reason: never dropped
    ("The candidate c1 is recommended for this dermoscopy task with eight classes, because its predicted test "
     "accuracy is 0.95 and it fits the budget of fifteen minutes", "The candidate c1 is recommended for this "
     "dermoscopy task with eight classes, because its predicted test accuracy is 0.95 and it fits the budget..."),
    # a comparison cut before what it compares with: the comparing words go with it
    ("c2 is predicted 0.74 like c1 and trains in about 40 s on this small two-core laptop CPU of ours and is about "
     "three times faster compared to the slowest of the candidates", "c2 is predicted 0.74 like c1 and trains in about "
     "40 s on this small two-core laptop CPU of ours and is about three times faster..."),
])
def test_a_cut_off_rationale_ends_at_a_full_sentence_when_it_can(raw: str, tidy: str) -> None:
    assert tidy_text(raw, 150) == tidy  # cut at 150 characters by the grammar


def test_a_full_sentence_at_the_limit_is_kept_whole_counted_as_the_grammar_counts() -> None:
    # one_sentence counts a decimal point and its digit as one: 150 of its units, 151 characters
    text = "c1 is predicted 0.93 " + "x" * 129 + "."
    assert len(text) == 151 and tidy_text(text, 150) == text
    # a text ending a sentence past the limit (no grammar held it) still ends at its last sentence within it
    two = "c1 is predicted 0.93 and fits the budget of the task. " + "It also " + "y" * 120 + "."
    assert tidy_text(two, 150) == "c1 is predicted 0.93 and fits the budget of the task."


def test_numbers_that_are_not_accuracies_are_not_read_as_accuracies() -> None:
    assert quoted_accuracies("lr 0.001, learning rate of 0.3, 0.25 s, 0.5 min, weight decay 0.05") == []
    assert quoted_accuracies("c1 at lr=0.58 reaches 0.9 (93%)") == [0.9, 0.93]
    assert quoted_ids("c1 and r12, not abc1 or c1x") == ["c1", "r12"]


def test_a_short_draft_is_completed_from_its_candidate_and_cites_what_it_names() -> None:
    draft = complete_draft({"candidate": "c2", "rationale": "c2 is faster than c1; r1 agrees."}, CANDIDATES)

    assert draft["backbone"] == "efficientnet_lite1" and draft["learning_rate"] == 0.0002
    assert draft["expected_accuracy"] == 0.92 and draft["cite"] == ["c2", "c1", "r1"]
    # A value the model did set is kept; an unknown candidate keeps its gaps for the checks.
    assert complete_draft({"candidate": "c1", "rationale": "c1.", "epochs": 5}, CANDIDATES)["epochs"] == 5
    assert "backbone" not in complete_draft({"candidate": "c9", "rationale": "c9."}, CANDIDATES)


def test_a_tidied_rationale_goes_back_into_the_answer_as_the_model_wrote_it() -> None:
    # As llama.cpp's grammar stops a long rationale (here at 150 characters): mid-sentence, in the model's own spacing.
    raw = ("c1 has the highest predicted accuracy (0.89) and fits the 10 min budget. "
           "It also trains faster than c2, which r1 confirms on a similar chest x-ray set with")[:150]
    text = '{ "candidate": "c1", "rationale": "' + raw + '" }'
    tidy = tidy_text(raw, 150)
    assert tidy.endswith("budget.") and tidy != raw

    out = with_rationale(text, raw, tidy)

    assert out == '{ "candidate": "c1", "rationale": "' + tidy + '" }'  # only the cut tail differs
    assert json.loads(out) == {"candidate": "c1", "rationale": tidy}


def test_a_rationale_with_escapes_and_non_ascii_is_replaced_exactly() -> None:
    raw = 'c1 scores \u2265 0.89 on "similar" data; r1 agrees – and then the grammar stopped'
    text = json.dumps({"candidate": "c1", "rationale": raw}, ensure_ascii=False)
    tidy = 'c1 scores \u2265 0.89 on "similar" data;'
    out = with_rationale(text, raw, tidy)
    assert out is not None and json.loads(out)["rationale"] == tidy


@pytest.mark.parametrize("text", [
    '{"candidate": "c1", "rationale": "fits the budget\nand more"}',  # written with an escape, read raw
    '{"candidate": "c1", "rationale": "fits the budget", "note": "fits the budget"}',  # found twice
    '{"candidate": "c1"}',  # not there at all
])
def test_no_replacement_when_it_would_not_be_exact(text: str) -> None:
    assert with_rationale(text, "fits the budget", "fits.") is None


# ------------------------------------------------------------------ freeze (partial fine-tuning)
def _validate(data: dict) -> list[str]:
    config, problems = validate_config(data, backbones=None, modes=None, weights_available=lambda b: True)
    assert config is None or problems == []
    return problems


@pytest.mark.parametrize(("data", "says"), [
    ({"backbone": "efficientnet_lite0", "mode": "finetune", "freeze": 1.5},
     ["freeze must satisfy 0 <= freeze <= 0.95", "freeze=1.5", "mode='frozen' to freeze the whole backbone"]),
    ({"backbone": "efficientnet_lite0", "mode": "finetune", "freeze": -0.1}, ["freeze must satisfy", "freeze=-0.1"]),
    ({"backbone": "small_cnn", "mode": "scratch", "freeze": 0.5},
     ["freeze applies to mode='finetune' only", "mode='scratch' with freeze=0.5", "set freeze=0"]),
    ({"backbone": "efficientnet_lite0", "mode": "frozen", "freeze": 0.5},
     ["freeze applies to mode='finetune' only", "freeze=0.5", "set freeze=0"]),
])
def test_the_judge_refuses_a_bad_freeze_with_the_rule_the_value_and_the_way_out(data: dict, says: list[str]) -> None:
    problems = _validate(data)
    assert len(problems) == 1
    for part in says:
        assert part in problems[0]


def test_the_judge_accepts_partial_freezing_in_finetune_mode() -> None:
    assert _validate({"backbone": "efficientnet_lite0", "mode": "finetune", "freeze": 0.5}) == []


def test_a_draft_leaving_finetune_mode_leaves_its_freeze_behind() -> None:
    candidates = [{"id": "c1", "accuracy": 0.9, "low": 0.8, "high": 0.95, "seconds": 60,
                   "config": {"backbone": "efficientnet_lite0", "mode": "finetune", "freeze": 0.5}}]
    keep = Draft(candidate="c1", backbone="efficientnet_lite0", mode="finetune", learning_rate=1e-3, batch_size=64,
                 epochs=10, expected_accuracy=0.9, rationale="c1 is predicted 0.90.", cite=["c1"])
    assert merge_config(keep, candidates).freeze == 0.5
    leave = keep.model_copy(update={"mode": "frozen"})
    assert merge_config(leave, candidates).freeze == 0.0


# ----------------------------------------------------------------------------- run_checks
def _checks(**over: Any) -> list[Check]:
    draft = Draft(candidate="c1", backbone="efficientnet_lite0", mode="frozen", learning_rate=0.001, batch_size=16,
                  epochs=40, expected_accuracy=0.93, rationale="c1 is predicted 0.93 in 25 s, the best here.",
                  cite=["c1"])
    kw: dict[str, Any] = dict(
        draft=draft, draft_error=None, candidates=CANDIDATES, evidence_aliases=["r1"],
        config=merge_config(draft, CANDIDATES), config_error=None,
        prediction={"accuracy": 0.93, "low": 0.67, "high": 1.0, "seconds": 25}, profile={"budget_seconds": 600},
        weights_available=lambda b: True, accuracy_tolerance=0.02, max_accuracy_gap=0.05, evidence=EVIDENCE,
    )
    return run_checks(**{**kw, **over})


def test_every_rule_of_the_table_runs_in_order_on_a_usable_draft() -> None:
    checks = _checks()
    assert [c.name for c in checks] == [rule.name for rule in CHECKS]
    assert all(c.ok and not c.message for c in checks), [c for c in checks if not c.ok]


@pytest.mark.parametrize(("missing", "last", "says"), [
    ({"draft": None, "draft_error": "bad JSON"}, "schema", "the answer is not valid: bad JSON"),
    ({"config": None, "config_error": "learning_rate must satisfy 1e-05 <= learning_rate <= 1"}, "search_space",
     "learning_rate must satisfy"),
    ({"prediction": None}, "metric", "the meta-model could not predict this configuration."),
])
def test_the_checks_stop_at_the_first_rule_whose_input_is_missing(missing: dict[str, Any], last: str, says: str) -> None:
    checks = _checks(**missing)
    names = [rule.name for rule in CHECKS]
    assert [c.name for c in checks] == names[: names.index(last) + 1]
    assert not checks[-1].ok and all(c.ok for c in checks[:-1])
    assert says in checks[-1].message


def test_each_check_says_what_to_fix_in_one_message() -> None:
    checks = {c.name: c for c in _checks(prediction={"accuracy": 0.70, "low": 0.6, "high": 0.8, "seconds": 900})}
    assert not checks["metric"].ok and "expected_accuracy must lie within" in checks["metric"].message
    assert not checks["competitive"].ok and "start from c1" in checks["competitive"].message
    assert not checks["budget"].ok and "(e.g. c2)" in checks["budget"].message


@pytest.mark.parametrize(("goals", "prediction", "ok", "says"), [
    # c1 (0.93, 25 s) and c2 (0.92, 13 s): "quick" wants c2, the fastest within 3 points of the best
    ({"objective": "speed", "words": {"objective": "quick"}}, {"accuracy": 0.93, "seconds": 25}, False,
     "the user asked for 'quick': c2 is predicted within 3 points of the most accurate in ~13 s, but this config "
     "needs ~25 s; start from c2."),
    ({"objective": "speed", "words": {"objective": "quick"}}, {"accuracy": 0.92, "seconds": 13}, True, ""),
    ({"objective": "speed", "words": {"objective": "quick"}}, {"accuracy": 0.92, "seconds": 14}, True, ""),  # noise
    # "maximise accuracy" wants nothing more than a point below c1 (the candidate it ranks first)
    ({"objective": "accuracy", "words": {"objective": "maximise accuracy"}}, {"accuracy": 0.92, "seconds": 13}, True, ""),
    ({"objective": "accuracy", "words": {"objective": "maximise accuracy"}}, {"accuracy": 0.90, "seconds": 13}, False,
     "the user asked for 'maximise accuracy': c1 is predicted 0.93, but this config 0.90; start from c1."),
    ({}, {"accuracy": 0.92, "seconds": 13}, True, ""),
    # "quick settings to train lite0": the objective is held among that backbone's candidates (c1 alone here)
    ({"objective": "speed", "words": {"objective": "quick"}, "use": "efficientnet_lite0"},
     {"accuracy": 0.93, "seconds": 25}, True, ""),
    # "which settings for efficientnet lite1?": a candidate of it is offered (c2), so the pick is it
    ({"use": "efficientnet_lite1", "words": {"use": "which settings for efficientnet lite1"}},
     {"accuracy": 0.93, "seconds": 25}, False,
     "the user asked about 'which settings for efficientnet lite1': c2 is efficientnet_lite1, but this config is "
     "efficientnet_lite0 frozen; start from c2."),
    ({"use": "efficientnet_lite1", "use_mode": "finetune"}, {"accuracy": 0.93, "seconds": 25}, True, ""),  # none offered
    ({"use": "efficientnet_lite0", "use_mode": "finetune"}, {"accuracy": 0.93, "seconds": 25}, True, ""),  # none offered
    ({"use": "efficientnet_lite0", "use_mode": "frozen"}, {"accuracy": 0.93, "seconds": 25}, True, ""),
    # the mode alone ("which lr for a linear probe?"): the frozen pick keeps to it; no fine-tune is offered
    ({"use_mode": "frozen", "words": {"use": "which lr for a linear probe"}}, {"accuracy": 0.93, "seconds": 25}, True, ""),
    ({"use_mode": "finetune", "words": {"use": "what should i fine tune"}}, {"accuracy": 0.93, "seconds": 25}, True, ""),
])
def test_the_pick_keeps_to_the_objective_the_user_stated(goals: dict[str, Any], prediction: dict[str, float], ok: bool,
                                                        says: str) -> None:
    pred = {"low": 0.6, "high": 1.0, **prediction}
    draft = Draft(candidate="c1", backbone="efficientnet_lite0", mode="frozen", learning_rate=0.001, batch_size=16,
                  epochs=40, expected_accuracy=prediction["accuracy"], rationale="c1 is predicted 0.93.", cite=["c1"])
    checks = {c.name: c for c in _checks(draft=draft, prediction=pred, profile={"goals": goals})}
    assert (checks["objective"].ok, checks["objective"].message) == (ok, says)


@pytest.mark.parametrize(("rationale", "ok"), [
    # c2 over c1 (the first candidate): settings set against c1 say nothing of what the choice gives
    ("c2 uses a smaller batch size (16) than c1.", False),
    ("c2 uses the efficientnet_lite1 backbone, compared to c1.", False),
    ("c2 trains faster than c1 at almost the same predicted accuracy.", True),
    # its own numbers alone say nothing of what it is chosen over (a compare of c1 and c2 was answered
    # with the less accurate side: "c2 is predicted to reach 0.69")
    ("c2 is predicted 0.92 and trains in about 13 s.", False),
    ("c2 is predicted to reach a test accuracy of 0.92.", False),
    ("c2 is predicted 0.92, one point below c1, in about half its time.", True),
    ("c2 takes half the time of c1.", True),
    ("c2 uses the settings of r1, which reached 0.70 on a similar dataset.", True),  # a past run supports it
])
def test_passing_over_the_first_candidate_takes_an_outcome_not_only_another_id(rationale: str, ok: bool) -> None:
    """c2 is predicted below c1 (0.92 against 0.93) and faster."""
    draft = Draft(candidate="c2", backbone="efficientnet_lite1", mode="frozen", learning_rate=0.0002, batch_size=16,
                  epochs=40, expected_accuracy=0.92, rationale=rationale, cite=["c2"])
    pred = {"accuracy": 0.92, "low": 0.65, "high": 1.0, "seconds": 13}
    checks = {c.name: c for c in _checks(draft=draft, config=merge_config(draft, CANDIDATES), prediction=pred)}
    assert checks["specific"].ok is ok, checks["specific"].message


# ------------------------------------------------- every statement held to its source (issue 16)
def _trial(number: int, val: float, best_epoch: int, epochs: int = 10, lr: float = 1e-3) -> Any:
    """A finished trial whose log peaks at `best_epoch`, read by the tuner's own analysis."""
    from agent.tune import PredictedOutcome, Trial, analyze

    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 0.5 + abs(e - best_epoch) * 0.01,
                "val_accuracy": round(val - abs(e - best_epoch) * 0.004, 4)} for e in range(1, epochs + 1)]
    config = TrainConfig(backbone="efficientnet_lite0", mode="frozen", learning_rate=lr, epochs=epochs)
    return Trial(number=number, config=config, source="llm", rationale="r", status="ok", val_accuracy=val,
                 best_epoch=best_epoch, epochs_run=epochs, seconds=20.0,
                 predicted=PredictedOutcome(accuracy=0.8, low=0.7, high=0.9, seconds=20.0),
                 analysis=analyze(history, status="ok", seconds=20.0))


def _option(ident: str, expected: float, gain: float, **config: Any) -> Any:
    from agent.tune import Option, PredictedOutcome

    return Option(id=ident, config=TrainConfig(backbone="efficientnet_lite0", mode="frozen", **config),
                  origin="variant of trial 2", predicted=PredictedOutcome(accuracy=expected, low=0.7, high=0.9,
                                                                          seconds=25.0),
                  expected=expected, expected_gain=gain)


TRIALS = [_trial(1, 0.780, 7), _trial(2, 0.812, 4, lr=3e-4), _trial(3, 0.790, 9)]
OPTIONS = [_option("o1", 0.815, 0.0145, learning_rate=1e-4, epochs=20), _option("o2", 0.808, 0.0129, dropout=0.2)]
PROFILES = {  # as agent.nodes' profile node writes them (agent.state.ProfileData)
    "none": {"budget_seconds": None, "read": {}, "limits": [], "device": "cpu", "assumed": ["device=cpu"]},
    "budget": {"budget_seconds": 900.0, "read": {"budget": "15 minutes", "device": "laptop CPU"}, "limits": [],
               "device": "cpu", "assumed": []},
    "params": {"budget_seconds": None, "read": {"max_params": "5M parameters"}, "device": "cpu",
               "limits": ["parameters at most 5.0M ('5M parameters'): left out resnet18 (11.7M)"], "assumed": []},
}


def found_in(context: str, text: str) -> list[str]:
    """What `unsupported` finds in `text`, judged as the recommendation's judge (`rec:<profile>`, about c1)
    or the tuner's (`tune`, about o1, with a 15-minute budget of which 10 minutes are left) judges it."""
    from agent.judge import stated_of
    from agent.tune import ungrounded_choice

    if context == "tune":
        return ungrounded_choice(text, OPTIONS[0], OPTIONS, TRIALS, stated=stated_of(PROFILES["budget"],
                                                                                  budgets=(900.0, 600.0)))
    _, profile = context.split(":")
    draft = Draft(candidate="c1", backbone="efficientnet_lite0", mode="frozen", learning_rate=0.001, batch_size=16,
                  epochs=40, expected_accuracy=0.93, rationale=text, cite=["c1"])
    checks = _checks(draft=draft, profile=PROFILES[profile], shown_accuracies=[0.70])  # r1's result, shown
    grounded = next(c for c in checks if c.name == "grounded")
    return [grounded.message] if not grounded.ok else []


@pytest.mark.parametrize(("context", "text", "finding"), [
    # hyperparameter values: the config's, the pick's when no id is named
    ("rec:none", "c1 uses a learning rate of 100 and is predicted 0.93.", "learning rate 100, but c1 uses 0.001"),
    ("rec:none", "c1 uses lr=0.001, a batch size of 16 and 40 epochs at 128 px.", None),
    ("rec:none", "It trains for 10 epochs at lr 0.001.", "epochs 10, but c1 uses 40"),
    ("rec:none", "c2 with rmsprop at lr 0.002 is nearly as accurate as c1.", "learning rate 0.002, but c2 uses 0.0002"),
    ("rec:none", "c2 with rmsprop at lr 2e-4 is nearly as accurate as c1.", None),
    ("rec:none", "c1 uses SGD rather than Adam and a batch size of 64.", "batch size 64, but c1 uses 16"),
    ("rec:none", "c1 fine-tunes EfficientNet-Lite0 with dropout 0.3.", "mode finetune, but c1 uses frozen"),
    ("rec:none", "c1 keeps the backbone frozen with no augmentation, like r1.", None),
    ("rec:none", "c1 lowers the learning rate from 0.01 to 0.001 against overfitting.", None),
    ("rec:none", "Fine-tuning beat frozen heads by 9 points on the nearest past run (r1), yet c1 is predicted 0.93.", None),
    ("rec:none", "At 128 px c1 adds 4 points for 3x the time.", None),
    ("rec:none", "c1 trains at 128 px against 32 px for the cheapest candidate.", None),  # a contrast, not c1's
    # a value later in a comparison is about what the choice is compared with
    ("rec:none", "The frozen model at 128 px is predicted 0.93, 1 point higher than the 0.92 of the frozen model "
                 "with 64px.", None),  # c2's size, c2 unnamed
    ("rec:none", "The frozen model at 128 px is predicted 0.93, 1 point higher than the 0.92 of the model with 96px.",
     "input size 96 for what it compares with, but no candidate or run shown uses it"),
    ("rec:none", "c1 (128 px) is 1 point higher than the 0.92 of the model with 64 px, with rmsprop.", None),
    ("rec:none", "c1 is 1 point higher than c2 with 128 px.", None),  # either's (c1's): lenient, as before
    ("rec:none", "c1 is predicted 0.93, higher than r1 (0.70), with 128 px.", None),  # the pick's, after the comparison
    ("rec:none", "The model with 64 px is predicted 0.93, 1 point higher than c2.", "input size 64, but c1 uses 128"),
    ("tune", "o1 lowers the learning rate to 0.0001 and doubles the epochs to 20.", None),
    ("tune", "o2 adds dropout 0.5 to t2.", "dropout 0.5, but o2 uses 0.2"),
    # comparisons and signed differences between quoted numbers
    ("rec:none", "c1 is predicted 0.93 vs 0.70 for r1, the nearest past run.", None),
    ("rec:none", "c1 (0.93) is higher than r1 (0.70) on similar data.", None),
    ("rec:none", "c1 is predicted 0.93 vs 0.92 for c2 (+0.01) and trains in 25 s.", None),
    ("rec:none", "c1 is predicted 0.93 vs 0.92 for c2 (-0.01) and trains in 25 s.", "the sign is wrong"),
    ("rec:none", "c1 is predicted 0.93, 5 points better than c2 (0.92).", "they are +0.01 apart"),
    ("rec:none", "r1 reached 0.70, which is higher than the 0.93 of c1.", "0.70 is higher than 0.93"),
    ("rec:none", "c2 trains in 13 s, faster than c1 (25 s), at 0.92.", None),
    ("tune", "o1's expected gain of +0.0145 is higher than o2's +0.0129.", None),
    ("tune", "o1's expected gain of +0.0129 is higher than o2's +0.0145.", "0.0129 is higher than 0.0145"),
    ("tune", "o1 has an expected gain of -0.0145 over t2.", "expected gain is +0.0145"),
    ("tune", "t2 reached 0.812, +0.032 over t1 (0.780).", None),
    ("tune", "t2 reached 0.812, -0.032 against t1 (0.780).", "the sign is wrong"),
    # tuning: which trial is best, and its best epoch
    ("tune", "o1 lowers the learning rate of t2, the best trial so far.", None),
    ("tune", "o1 lowers the learning rate of t3, the best trial so far.", "calls t3 the best trial"),
    ("tune", "o1 varies the best trial (t1) with more epochs.", "calls t1 the best trial"),
    ("tune", "t2 peaked at epoch 4, so o1 lowers its learning rate.", None),
    ("tune", "t2 peaked at epoch 9, so o1 trains longer.", "t2's best epoch is 4"),
    ("tune", "The last trial had its best validation accuracy at epoch 9, so o1 trains longer.", None),
    ("tune", "o1 follows t1, whose best epoch was 9 of 10.", "t1's best epoch is 7"),
    ("tune", "o1 names t7, the best so far.", "names t7"),
    # a choice's result is predicted, a past run's or trial's measured
    ("rec:none", "The candidate, efficientnet_lite0 at 128 px, achieves a test accuracy of 0.93.",
     "it says c1 achieves a result, but c1 has not been trained"),
    ("rec:none", "c1 reached 0.93 in 25 s.", "it says c1 reached a result"),
    ("rec:none", "c1 is predicted to reach 0.93 in 25 s, and r1 reached 0.70.", None),
    ("rec:none", "c1 should achieve 0.93; past runs: r1 (frozen) reached 0.70.", None),
    ("rec:none", "c1 suits this task, as similar runs reached a high accuracy.", None),
    ("rec:none", "Fine-tuning reached 0.70 on the nearest past run (r1), and c1 is predicted 0.93.", None),
    ("tune", "o1 achieves 0.815 by lowering the learning rate of t2.", "it says o1 achieves a result"),
    ("tune", "t2 reached 0.812, so o1 lowers its learning rate for an expected 0.815.", None),
    ("tune", "o1 gets the highest expected gain by lowering the learning rate of t2.", None),
    ("rec:none", "c1 achieves the best predicted accuracy, 0.93, in 25 s.", None),
    # a model this tool cannot train, said of a choice (the user had named it)
    ("rec:none", "c1 uses a ResNet-50 model with an efficientnet-lite0 architecture, predicted 0.93.",
     "it names resnet-50, but no candidate or past run shown is a resnet-50"),
    ("rec:none", "c1 (ViT-B/16) is predicted 0.93 in 25 s.", "it names vit-b"),
    ("rec:none", "c1 trains efficientnet lite0 instead of the ResNet-50 you named, predicted 0.93.", None),
    # numbers and ids run together (what the 1.5B once decoded): no value a reader can check
    ("rec:none", "c1 uses a learning rate of 0.001, which is higher than the learning rate used in c2.0.0002.01.",
     "it writes 'c2.0.0002.01', which is no number or id"),
    ("rec:none", "c1 is predicted 0.93.0 in 25 s.", "it writes '0.93.0'"),
    ("rec:none", "c1 is predicted 0.93. It trains in 25 s, and c2 0.92.", None),  # a sentence's end is no slip
    # budgets and limits: only the user's
    ("rec:none", "c1 is predicted 0.93 in 25 s, well within the 15 minute budget.", "a time budget"),
    ("rec:none", "c1 is predicted 0.93 in 25 s, with no time budget to meet.", None),
    ("rec:budget", "c1 is predicted 0.93 in 25 s, well within your 15-minute budget.", None),
    ("rec:budget", "c1 is predicted 0.93 in 25 s, well within the 10 minute budget.", "the user's budget is 15 min"),
    ("rec:none", "c1 is predicted 0.93 and stays under your 5M-parameter limit.", "a parameter limit"),
    ("rec:params", "c1 is predicted 0.93 and stays under your 5M-parameter limit.", None),
    ("rec:budget", "c1 is predicted 0.93 and fits in 8 GB of GPU memory.", "a memory limit"),
    ("rec:none", "c1 is predicted 0.93, which suits CPU-only training.", "a CPU-only device"),
    ("rec:budget", "c1 is predicted 0.93, which suits CPU-only training.", None),
    ("tune", "o1 is expected at 0.815 and fits the 10 min left of the 15 min budget.", None),
])
def test_every_statement_is_held_to_its_source(context: str, text: str, finding: str | None) -> None:
    found = found_in(context, text)
    assert (found == []) if finding is None else any(finding in f for f in found), found


@pytest.mark.parametrize(("text", "hedged"), [
    ("The candidate, efficientnet_lite0 at 128 px, achieves a test accuracy of 0.93.",
     "The candidate, efficientnet_lite0 at 128 px, is predicted to reach a test accuracy of 0.93."),
    ("c1 has achieved 0.93 while r1 reached 0.70.", "c1 is predicted to reach 0.93 while r1 reached 0.70."),
    ("c1, achieving 0.93, beats c2, which scores 0.92.", "c1, predicted to reach 0.93, beats c2, which is predicted to "
                                                        "score 0.92."),
    ("c1 should achieve 0.93; past runs: r1 (frozen) reached 0.70.", None),  # hedged already; a run's is measured
])
def test_a_choice_said_to_have_reached_a_result_is_hedged_and_then_passes(text: str, hedged: str | None) -> None:
    from agent.judge import hedge_measured

    assert hedge_measured(text, ["c1", "c2"], "c1") == (hedged or text)
    assert not any("has not been trained" in f for f in found_in("rec:none", hedged or text))


def test_the_trial_the_prompt_marks_as_kept_may_be_called_best() -> None:
    from agent.tune import ungrounded_choice

    text = "o1 lowers the learning rate of t3, the best trial so far."
    assert ungrounded_choice(text, OPTIONS[0], OPTIONS, TRIALS)  # t3 is not the highest validation accuracy
    assert ungrounded_choice(text, OPTIONS[0], OPTIONS, TRIALS, kept=TRIALS[2]) == []  # but the prompt starred it


def test_a_value_of_the_run_compared_with_is_not_held_to_the_pick() -> None:
    """A draft the seventh LODO run's judge refused (alzheimer_mri): the 32 px is c2's, named only by
    its description after "than"; a size no candidate has is still refused."""
    cands = [{"id": "c1", "accuracy": 0.70, "low": 0.63, "high": 0.84, "seconds": 298,
              "config": {"backbone": "small_cnn", "mode": "scratch", "optimizer": "adam", "input_size": 64}},
             {"id": "c2", "accuracy": 0.68, "low": 0.61, "high": 0.82, "seconds": 149,
              "config": {"backbone": "small_cnn", "mode": "scratch", "optimizer": "adam", "input_size": 32}}]
    text = ("The small_cnn/scratch model with 64px input size and Adam optimizer is predicted to achieve a test accuracy of 0.70, "
            "which is 2 points higher than the 0.68 accuracy of the small_cnn/scratch model with {size}px.")
    shown = [0.70, 0.63, 0.84, 0.68, 0.61, 0.82]
    assert ungrounded(text.format(size=32), ["c1", "c2"], shown, cands, about=["c1"]) == []
    assert ungrounded(text.format(size=48), ["c1", "c2"], shown, cands, about=["c1"]) == [
        "it says input size 48 for what it compares with, but no candidate or run shown uses it"]


SPREAD_CANDIDATES = [dict(CANDIDATES[0], spread=0.04), dict(CANDIDATES[1], spread=0.08)]


@pytest.mark.parametrize(("text", "finding"), [
    # the prompt shows each candidate's ± after its accuracy (agent.prompting.candidate_line)
    ("c1 (0.93 ±0.04) is surer than c2 (0.92 ±0.08).", None),
    ("c1 is predicted 0.93 ±0.04, c2 0.92 +/- 0.08.", None),
    ("c2 is predicted about as high as c1 but less certain (±0.08 against ±0.04).", None),  # ± after "but": the sentence's
    ("c1 is predicted 0.93 ±4 points.", None),
    ("c1 is predicted 0.93 ±0.08.", "gives c1 ±0.08, but c1 shows ±0.04"),
    ("c2 (±0.04) is nearly as accurate as c1.", "gives c2 ±0.04, but c2 shows ±0.08"),
    ("c1 is the surest pick, ±0.02.", "uncertainty of ±0.02, which no candidate shows"),
    # the ± is neither an accuracy nor a signed difference, so "0.08" is not a quoted accuracy
    ("c1 (0.93 ±0.04) is more accurate than c2 (0.92 ±0.08).", None),
])
def test_a_candidates_uncertainty_is_held_to_the_one_shown(text: str, finding: str | None) -> None:
    found = ungrounded(text, ["c1", "c2", "r1"], SHOWN, SPREAD_CANDIDATES, EVIDENCE, about=["c1"])
    assert (found == []) if finding is None else any(finding in f for f in found), found


def test_an_uncertainty_with_no_spread_shown_is_refused() -> None:
    assert ungrounded("c1 is predicted 0.93 ±0.04.", ["c1", "c2"], SHOWN, CANDIDATES, about=["c1"]) == [
        "it states an uncertainty of ±0.04, which no candidate shows"]


@pytest.mark.parametrize(("text", "image_size", "problem"), [
    # the data line showed 64px: said of the images, it is the data's size, not c1's input (128)
    ("c1, trained on 50k images with 64px resolution, is predicted 0.93.", 64, None),
    ("The 64 px grayscale images are upsampled by c1, predicted 0.93.", 64, None),
    ("c1 suits images at 64 px and is predicted 0.93.", 64, None),
    ("c1 suits 64x64 px images and is predicted 0.93.", 64, None),
    # a run's input size still: said of c1, or of images the data line does not show at that size
    ("c1 at 64 px is predicted 0.93.", 64, "it says input size 64, but c1 uses 128"),
    ("c1 uses 64 px input images and is predicted 0.93.", 64, "it says input size 64, but c1 uses 128"),
    ("c1, trained on 50k images with 64px resolution, is predicted 0.93.", 224, "it says input size 64, but c1 uses 128"),
    ("c1, trained on 50k images with 64px resolution, is predicted 0.93.", None, "it says input size 64, but c1 uses 128"),
])
def test_the_images_own_size_said_of_the_images_is_not_a_claim_on_the_input_size(
        text: str, image_size: int | None, problem: str | None) -> None:
    from agent.judge import Facts, unsupported

    runs = {c["id"]: c for c in CANDIDATES} | {e["alias"]: e for e in EVIDENCE}
    facts = Facts(known=frozenset(["c1", "c2", "r1"]), shown=tuple(SHOWN), runs=runs, candidates=CANDIDATES,
                  about=("c1",), image_size=image_size)
    found = unsupported(text, facts)
    assert (found == []) if problem is None else any(problem in p for p in found), found


def test_a_most_accurate_claim_refused_on_a_tie_at_two_digits_names_the_better_one_in_three() -> None:
    """c1 0.766 and c2 0.774 both show as 0.77: "c1 is predicted 0.77 and the best candidate 0.77" read as no
    reason at all; the critique names the better candidate and the digits that tell them apart."""
    tied = [{**CANDIDATES[0], "accuracy": 0.766}, {**CANDIDATES[1], "accuracy": 0.774}]
    found = ungrounded("c1 has the highest predicted accuracy.", ["c1", "c2"], [0.77, 0.67, 1.0], tied, [])
    assert any("calls c1 the most accurate, but c1 is predicted 0.766 and c2 0.774" in p for p in found), found
    found = ungrounded("c2 is the most accurate.", ["c1", "c2"], SHOWN, CANDIDATES, [])
    assert any("but c2 is predicted 0.92 and c1 0.93" in p for p in found), found


@pytest.mark.parametrize(("accuracy", "seconds", "ok"), [
    (0.94, 13, True),   # more accurate and faster than c1: its own numbers are the reason
    (0.93, 25, True),   # as accurate, as fast
    (0.92, 13, False),  # a point below c1: what the point buys must be said
    (0.94, 60, False),  # more accurate but slower: the trade must be said
])
def test_a_pick_ahead_of_the_first_candidate_may_give_its_own_numbers(accuracy: float, seconds: float, ok: bool) -> None:
    cands = [CANDIDATES[0], {**CANDIDATES[1], "accuracy": accuracy, "seconds": seconds}]
    draft = Draft(candidate="c2", backbone="efficientnet_lite1", mode="frozen", learning_rate=0.0002, batch_size=16,
                  epochs=40, expected_accuracy=accuracy, rationale=f"c2 is predicted to reach {accuracy:.2f}.",
                  cite=["c2"])
    pred = {"accuracy": accuracy, "low": 0.65, "high": 1.0, "seconds": seconds}
    checks = {c.name: c for c in _checks(draft=draft, candidates=cands, config=merge_config(draft, cands),
                                         prediction=pred)}
    assert checks["specific"].ok is ok, checks["specific"].message


@pytest.mark.parametrize(("text", "finding"), [
    # c1 0.93 ±0.04 and c2 0.92 ±0.08: a 1-point lead inside both spreads is not "significant"
    ("c1 is predicted 0.93 against 0.92 for c2, a significant advantage.", "calls c1's lead over c2 'significant advantage'"),
    ("c1 has a much higher predicted accuracy than the other candidates.", "1 point above c2, within their uncertainties"),
    ("c1 is clearly better than c2 and trains in 25 s.", "'clearly better'"),
    ("c1 is predicted 0.93 against 0.92 for c2, a small lead.", None),
    ("c1 is predicted 0.93 and uses a large input size.", None),  # "large" of a setting, not of a lead
    ("c2 is much faster than c1 at almost the same accuracy.", None),  # speed: the speed rule's, not this one's
])
def test_a_lead_called_large_is_held_to_the_candidates_spreads(text: str, finding: str | None) -> None:
    found = ungrounded(text, ["c1", "c2", "r1"], SHOWN, SPREAD_CANDIDATES, EVIDENCE, about=["c1"])
    assert (found == []) if finding is None else any(finding in f for f in found), found


def test_a_lead_wider_than_both_spreads_may_be_called_large() -> None:
    wide = [dict(SPREAD_CANDIDATES[0]), dict(SPREAD_CANDIDATES[1], accuracy=0.70, low=0.5, high=0.9)]
    shown = [0.93, 0.67, 1.0, 0.70, 0.5, 0.9]
    assert ungrounded("c1 (0.93) is significantly more accurate than c2 (0.70).", ["c1", "c2"], shown, wide,
                      about=["c1"]) == []


@pytest.mark.parametrize(("rationale", "ok"), [
    # the first candidate named with its settings only says no why (the LLM judge scored such a draft 5 of 5)
    ("The candidate c1 uses efficientnet_lite0 with a learning rate of 0.001.", False),
    ("c1 fine-tunes a pretrained backbone, which suits medical images.", False),
    ("c1 is predicted 0.93.", True),
    ("c1 is the most accurate candidate.", True),
    ("c1 trains in about 25 s.", True),
    ("c1 uses the settings of r1 on a similar dataset.", True),
])
def test_the_first_candidate_needs_a_reason_not_only_its_name(rationale: str, ok: bool) -> None:
    draft = Draft(candidate="c1", backbone="efficientnet_lite0", mode="frozen", learning_rate=0.001, batch_size=16,
                  epochs=40, expected_accuracy=0.93, rationale=rationale, cite=["c1"])
    checks = {c.name: c for c in _checks(draft=draft)}
    assert checks["specific"].ok is ok, checks["specific"].message


def test_a_large_lead_is_the_leaders_whichever_id_the_clause_names_first() -> None:
    wide = [dict(SPREAD_CANDIDATES[0]), dict(SPREAD_CANDIDATES[1], accuracy=0.70, low=0.5, high=0.9)]
    shown = [0.93, 0.67, 1.0, 0.70, 0.5, 0.9]
    assert ungrounded("Compared to c2 (0.70), c1 (0.93) is much more accurate.", ["c1", "c2"], shown, wide,
                      about=["c1"]) == []


# ----------------------------------------------------------------------------- trimming a rationale
@pytest.mark.parametrize(("text", "expected"), [
    ("c1 is predicted 2 points above c2 and takes 2x its time, which is a significant advantage for this task.",
     ["c1 is predicted 2 points above c2 and takes 2x its time."]),
    ("c1 reaches 0.93 in 25 s; c2 is faster, but r1 on a similar set reached 0.70.",
     ["c1 reaches 0.93 in 25 s; c2 is faster.", "c1 reaches 0.93 in 25 s."]),
    ("c1 is predicted 0.93 and c2 0.92, making c1 the pick.", ["c1 is predicted 0.93 and c2 0.92.", "c1 is predicted 0.93."]),
    ("Although c2 is faster, c1 is predicted 0.93.", []),  # a head that is a subordinate clause says nothing alone
    ("c1 is good, which is all.", []),                    # too short to be a rationale
    ("This configuration suits the task well, which c1 shows.", []),  # the head names no id and quotes nothing
    ("c1 uses a learning rate and batch size that suit it.", []),      # "and" inside a claim is no clause
])
def test_a_rationale_is_cut_only_where_a_clause_starts(text: str, expected: list[str]) -> None:
    assert heads(text) == expected


def test_the_longest_head_that_passes_every_check_is_kept() -> None:
    def passes(rationale: str) -> bool:
        d = Draft(candidate="c1", backbone="efficientnet_lite0", mode="frozen", learning_rate=0.001, batch_size=16,
                  epochs=40, expected_accuracy=0.93, rationale=rationale, cite=["c1"])
        return all(c.ok for c in _checks(draft=d, candidates=SPREAD_CANDIDATES))

    said = "c1 is predicted 0.93 against 0.92 for c2 and takes 25 s, a significant advantage."
    assert not passes(said)
    assert trimmed(said, passes) == "c1 is predicted 0.93 against 0.92 for c2 and takes 25 s."
    assert dropped(said, "c1 is predicted 0.93 against 0.92 for c2 and takes 25 s.") == "a significant advantage."
    # a false first clause leaves nothing to keep: the draft goes back to the reasoner as before
    assert trimmed("c1 is predicted 0.97 in 25 s, which fits the budget.", passes) is None


def test_a_draft_is_cut_only_when_its_rationale_alone_failed() -> None:
    said = "c1 is predicted 0.93 in 25 s, which beats r9 on a similar set."
    d = Draft(candidate="c1", backbone="efficientnet_lite0", mode="frozen", learning_rate=0.001, batch_size=16,
              epochs=40, expected_accuracy=0.93, rationale=said, cite=["c1"])

    def check(draft: Draft) -> list[Check]:
        return _checks(draft=draft)

    kept, checks, why = trim(d, check(d), check)
    assert kept.rationale == "c1 is predicted 0.93 in 25 s." and all(c.ok for c in checks)
    assert why.startswith("the rationale was cut before 'which beats r9 on a similar set.': ") and "names r9" in why
    # an expected accuracy outside the interval fails `metric` too: no cut mends that
    wrong = d.model_copy(update={"expected_accuracy": 0.5})
    assert trim(wrong, _checks(draft=wrong), lambda x: _checks(draft=x)) is None
