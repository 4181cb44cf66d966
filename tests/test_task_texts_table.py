"""The task-text benchmark's table (bench/task_texts.py) is well formed: no LLM, no knowledge base."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from bench.task_texts import (
    CASES,
    CATEGORIES,
    REQUIRED,
    SCOPE_MESSAGE,
    Case,
    Outcome,
    interleaved,
    judge,
    no_stated_limit_in_rationale,
    params_at_most,
)
from tools.scope import WHAT_IT_DOES


def test_the_table_has_forty_texts_or_more_covering_every_required_kind() -> None:
    assert len(CASES) >= 40
    counts = Counter(c.category for c in CASES)
    assert set(counts) <= set(CATEGORIES)
    assert REQUIRED <= set(counts), f"missing categories: {sorted(REQUIRED - set(counts))}"
    # injections alone and inside real tasks; refusals and recommendations both present
    assert {c.expect for c in CASES if c.category == "injection"} == {"refused", "recommended"}


def test_every_row_states_its_behaviour_as_checks() -> None:
    for case in CASES:
        assert case.category and case.text.strip(), case
        assert case.expect in ("recommended", "refused", "rejected"), case
        if case.expect == "recommended":
            assert case.checks, f"a recommended row needs at least one check: {case.text!r}"
        if case.expect == "rejected":
            assert case.says, f"a rejected row names what its message must say: {case.text!r}"
        if case.expect == "refused":
            assert not case.checks, f"checks on a refusal are never read: {case.text!r}"
    texts = [c.text for c in CASES]
    assert len(set(texts)) == len(texts), "a text appears twice"


def test_the_refusal_message_it_expects_is_the_products() -> None:
    assert WHAT_IT_DOES.startswith(SCOPE_MESSAGE)


def test_interleaving_keeps_every_case_and_a_prefix_covers_every_category() -> None:
    order = interleaved(CASES)
    assert sorted(order, key=CASES.index) == list(CASES)
    assert {c.category for c in order[: len(CATEGORIES)]} == set(CATEGORIES)


def test_judge_reports_what_was_wrong() -> None:
    case = Case("limits", "t", "recommended", (params_at_most(3e6),))
    config = SimpleNamespace(backbone="resnet18", mode="finetune")
    rec = SimpleNamespace(config=config, candidates=[SimpleNamespace(config=config)],
                          profile=SimpleNamespace(meta=SimpleNamespace(n_classes=2)))
    assert judge(case, Outcome("recommended", 1.0, rec=rec)) == ["params <= 3 M: over the limit: resnet18 (11.18 M)"]
    assert judge(case, Outcome("refused", 0.0, message=WHAT_IT_DOES))[0].startswith("expected recommended, got refused")
    refusal = Case("vague", "hi", "refused")
    assert judge(refusal, Outcome("refused", 0.0, message=WHAT_IT_DOES)) == []
    assert judge(refusal, Outcome("refused", 0.0, message="no."))  # refused without saying what the tool does


def test_a_rationale_may_say_there_is_no_budget_but_not_invent_one() -> None:
    check = no_stated_limit_in_rationale()
    said = SimpleNamespace(rationale="c1 is predicted 0.80, which aligns with the constraints of no time budget.")
    invented = SimpleNamespace(rationale="c1 is predicted 0.80, well within the 15 minute budget.")
    assert check.test(said) is None
    assert "budget" in (check.test(invented) or "")


def test_the_goal_checks_tell_a_kept_objective_from_a_traded_one() -> None:
    from bench.task_texts import compared, objective_kept

    def cand(i: str, acc: float, seconds: float, backbone: str = "efficientnet_lite0", mode: str = "frozen") -> SimpleNamespace:
        return SimpleNamespace(id=i, accuracy=acc, seconds=seconds, config=SimpleNamespace(backbone=backbone, mode=mode))

    cands = [cand("c1", 0.90, 600), cand("c2", 0.88, 60), cand("c3", 0.70, 5, "small_cnn", "scratch")]

    def rec(objective: str, accuracy: float, seconds: float, notes: tuple[str, ...] = ()) -> SimpleNamespace:
        return SimpleNamespace(profile=SimpleNamespace(goals={"objective": objective, "notes": list(notes)}),
                               candidates=cands, expected_accuracy=accuracy, expected_seconds=seconds)

    quick = objective_kept("speed")
    assert quick.test(rec("speed", 0.88, 60)) is None
    assert quick.test(rec("speed", 0.90, 600)) == "the pick needs 600 s, c2 60 s"
    assert quick.test(rec("accuracy", 0.88, 60)) == "objective read as 'accuracy'"
    best = objective_kept("accuracy")
    assert best.test(rec("accuracy", 0.90, 600)) is None and best.test(rec("accuracy", 0.88, 60))
    both = compared("finetune", "resnet18", "efficientnet_lite0")
    assert both.test(rec("accuracy", 0.9, 600)) == "not shown finetune and not explained: resnet18, efficientnet_lite0"
    assert both.test(rec("accuracy", 0.9, 600, ("you asked about resnet18 fine-tuned ...",
                                                 "you asked about efficientnet_lite0 fine-tuned ..."))) is None
