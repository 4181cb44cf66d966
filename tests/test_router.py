"""The chat's message router, row by row: each case is a message, where the thread stands, and the
route (kind and deciding row) it must take."""

from __future__ import annotations

import pytest

from agent.chat.router import TABLE, Situation, TuneCommand, parse_tune_command, route_message

IDLE = Situation()
OFFER = Situation(offer=True, recommended=True)
DONE = Situation(recommended=True)  # a recommendation, nothing pending
RUNNING = Situation(running=True, recommended=True)
TRIAL = Situation(tuning=True, trial_waiting=True, recommended=True)
TUNING = Situation(tuning=True, recommended=True)

CASES = [
    # (message, situation, kind, rule)
    ("yes", TRIAL, "approve", "approve the waiting trial"),
    ("no, stop here", TRIAL, "reject", "reject the waiting trial"),
    ("why this learning rate?", TRIAL, "question", "a question during tuning"),
    ("lovely weather", TUNING, "wait", "tuning is in progress"),
    ("yes", TUNING, "wait", "tuning is in progress"),  # no trial waits: nothing to approve
    ("tune 5 trials in 10 minutes", DONE, "tune", "a tuning command"),
    ("iterate 3 trials, ask before each", OFFER, "tune", "a tuning command"),
    ("tune 5 trials", RUNNING, "wait", "a run is in progress"),
    ("what if I only have 10 minutes?", RUNNING, "question", "a question during a run"),
    ("chest x-ray, 2 classes, 5,000 images", RUNNING, "wait", "a run is in progress"),
    ("", IDLE, "prompt", "nothing typed"),
    ("   ", OFFER, "prompt", "nothing typed"),
    ("chest x-ray, 2 classes, 5,000 images, 10 minutes on a laptop", IDLE, "task", "a task description"),
    ("knee MRI with 4 classes", OFFER, "task", "a task description"),  # a new task replaces the offer
    ("use it", OFFER, "edit", "adopt the last what-if"),
    ("ok, take that", OFFER, "edit", "adopt the last what-if"),
    ("lr=0.01 and 20 epochs", OFFER, "edit", "an edit of the offer"),
    ("switch to resnet18", OFFER, "edit", "an edit of the offer"),
    ("double the epochs and halve the batch size", OFFER, "edit", "an edit of the offer"),
    ("what about resnet18?", OFFER, "question", "a follow-up question"),  # a question, not an edit
    ("yes", OFFER, "approve", "approve the offer"),
    ("go ahead", OFFER, "approve", "approve the offer"),
    ("yes?", OFFER, "question", "anything else about the recommendation"),
    ("no, too slow", OFFER, "reject", "reject the offer"),
    ("why this backbone?", DONE, "question", "a follow-up question"),
    ("show similar experiments", DONE, "question", "a follow-up question"),
    ("hmm interesting", DONE, "question", "anything else about the recommendation"),
    ("yes", DONE, "question", "anything else about the recommendation"),  # nothing offered to approve
    ("hello", IDLE, "prompt", "too short to be a task"),
    ("help me pick a model for my project", IDLE, "task", "a new task"),
]


@pytest.mark.parametrize(("text", "situation", "kind", "rule"), CASES, ids=[f"{c[3]}: {c[0]!r}" for c in CASES])
def test_a_message_takes_its_row(text: str, situation: Situation, kind: str, rule: str) -> None:
    route = route_message(text, situation)
    assert (route.kind, route.rule) == (kind, rule)


def test_with_a_dataset_the_message_is_a_task_unless_something_runs() -> None:
    assert route_message("", Situation(dataset=True)).kind == "task"
    assert route_message("why?", Situation(dataset=True, offer=True)).kind == "task"
    assert route_message("tune 3 trials", Situation(dataset=True)).kind == "task"
    assert route_message("why?", Situation(dataset=True, running=True)).kind == "wait"


def test_routes_carry_what_their_handler_needs() -> None:
    edit = route_message("lr=0.01 and 20 epochs", OFFER)
    assert edit.changes == {"learning_rate": 0.01, "epochs": 20} and not edit.from_whatif
    assert route_message("no, too slow", OFFER).reason == "too slow"
    question = route_message("what if I only have 10 minutes?", DONE)
    assert question.intent is not None and question.intent.kind == "what_if"
    assert question.intent.budget_seconds == 600
    assert route_message("tune 4 runs in 2 hours, one by one", DONE).tune == TuneCommand(4, 120.0, True)


def test_every_row_of_the_table_decides_some_case() -> None:
    rules = {route_message(text, situation).rule for text, situation, _, _ in CASES}
    rules |= {route_message("", Situation(dataset=True)).rule}
    assert len(rules) == len(TABLE)


@pytest.mark.parametrize(("text", "command"), [
    ("tune 5 trials in 10 minutes", TuneCommand(5, 10.0, False)),
    ("please tune", TuneCommand()),
    ("HPO 12 rounds within 1.5 h", TuneCommand(12, 90.0, False)),
    ("iterate 3 trials, ask before each", TuneCommand(3, None, True)),
    ("what would tuning give?", None),
    ("", None),
])
def test_a_tuning_command_reads_trials_budget_and_per_trial_approval(text: str, command: TuneCommand | None) -> None:
    assert parse_tune_command(text) == command
