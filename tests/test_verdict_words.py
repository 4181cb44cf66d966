"""The judge's verdict in words: what its scores mean and what decided (agent.judge.verdict_summary)."""

from __future__ import annotations

from agent.chat.cards import card_md, verdict_md
from agent.judge import verdict_summary

CHECKS = [{"name": f"check{i}", "ok": True, "message": ""} for i in range(9)]


def test_an_overruled_low_score_next_to_passed_says_it_was_overruled_and_what_decided() -> None:
    v = {"passed": True, "attempt": 1, "checks": CHECKS, "scores": {"format": 5, "accuracy": 1, "completeness": 5},
         "judged_by": "checks+llm", "min_score": 3.0,
         "overruled": "the LLM judge found a wrong number or id, but every number and id the rationale quotes matches "
                      "the evidence"}
    text = verdict_summary(v)
    assert "accuracy 1 of 5" in text and "overruled" in text
    assert "deterministic checks: all 9 passed" in text and text.endswith("Verdict: passed")
    title, body = verdict_md(v)
    assert title.startswith("Judge: draft 1 passed") and "accuracy 1 of 5" in body and "1/5" not in body
    assert "| deterministic check | result | message |" in body  # no column without a header


def test_a_low_score_that_fails_the_draft_says_so() -> None:
    v = {"passed": False, "checks": CHECKS, "scores": {"format": 5, "accuracy": 5, "completeness": 1},
         "judged_by": "checks+llm", "min_score": 3.0, "critique": "vague"}
    text = verdict_summary(v)
    assert "every score must reach 3 of 5, so completeness failed the draft" in text and text.endswith("failed")


def test_checks_alone_and_a_failed_check() -> None:
    failed = [*CHECKS[:8], {"name": "grounding", "ok": False, "message": "r9 is not evidence"}]
    text = verdict_summary({"passed": False, "checks": failed, "scores": None, "judged_by": "checks"})
    assert "LLM judge: not asked" in text and "1 of 9 failed (grounding)" in text
    text = verdict_summary({"passed": True, "checks": CHECKS, "scores": None, "judged_by": "checks",
                            "judge_error": "timeout"})
    assert "no answer (timeout)" in text and "all 9 passed" in text


def test_the_card_words_the_verdict_the_same_way() -> None:
    rec = {"config": {"backbone": "resnet18", "mode": "finetune", "optimizer": "adam", "learning_rate": 1e-3,
                      "batch_size": 64, "epochs": 5, "input_size": 64, "weight_decay": 0.0, "dropout": 0.0,
                      "scheduler": "cosine", "augmentation": "basic", "label_smoothing": 0.0, "freeze": 0.0},
           "accuracy_interval": [0.7, 0.9], "expected_accuracy": 0.8, "expected_seconds": 60.0,
           "profile": {"device": "cpu"}, "rationale": "because", "timings": {"reason": 1.0},
           "verdict": {"passed": True, "attempts": 1, "checks": CHECKS, "judged_by": "checks+llm",
                       "scores": {"format": 5, "accuracy": 5, "completeness": 5}}}
    text = card_md(rec, None)
    assert "Judge: passed on draft 1 (checks+llm): LLM judge: format 5 of 5" in text
    assert "each must reach 3 of 5: no problem found" in text and "deterministic checks: all 9 passed" in text
