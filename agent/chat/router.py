"""Which way a chat message goes: one table, read top to bottom, the first matching row wins.

    route = route_message("what about resnet18?", Situation(offer=True, recommended=True))
    route.kind, route.rule   # "question", "a follow-up question"

A message is one of: approve, reject, edit (the offered configuration), tune (start the
iterative mode), question (about the thread's recommendation), task (a new request), wait
(something runs, and the message is not a question about it) or prompt (nothing to act on:
the user is told what to type). What a message means depends on where the thread stands
(`Situation`): "yes" approves an offer, "lr=0.01" edits it, and during a run only questions
are answered.

Every row reads the message with deterministic rules (agent.intents, the patterns below). A
chat model takes part only later, as the fallback for a question the rules cannot classify
(agent.intents.read_intent, called by the follow-up answers).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.intents import Intent, detect_intent, parse_changes

Kind = Literal["approve", "reject", "edit", "tune", "question", "task", "wait", "prompt"]

APPROVE = re.compile(r"^\s*(?:yes|y|yep|yeah|ok|okay|sure|approved?|go(?: ahead)?|do it|train(?: it)?|"
                     r"start(?: training)?|lgtm|sounds good|let'?s go)\b[^?]*$", re.I)
REJECT = re.compile(r"^\s*(?:no|nope|reject(?:ed)?|don'?t|do not|not now|never ?mind)\b[^?]*$", re.I)
USE_IT = re.compile(r"^\s*(?:ok,? |yes,? )?(?:use|take|adopt|apply|offer) (?:it|that|this)\b", re.I)
QUESTION_START = re.compile(r"^\s*(?:why|what|how|which|show|compare|can|could|should|would|is|are|does|do)\b", re.I)
# Fields whose mention makes a message a task description rather than a remark.
TASK_FIELDS = frozenset({"modality", "body_part", "n_classes", "n_instances", "resolution"})

DEFAULT_TRIALS = 5
_TUNE = re.compile(r"^\s*(?:please\s+)?(?:tune|iterate|tuning|hpo)\b", re.I)
_TRIALS = re.compile(r"(\d{1,3})\s*(?:more\s+)?(?:trials?|runs?|rounds?|iterations?)\b", re.I)
_MINUTES = re.compile(r"(\d+(?:\.\d+)?)\s*(min(?:ute)?s?|m|h(?:ours?)?|hrs?)\b", re.I)
_EACH = re.compile(r"\b(?:each|every|one by one|one at a time|per trial|step by step|ask)\b", re.I)


@dataclass(frozen=True)
class Situation:
    """Where the thread stands when the message arrives.

    Attributes:
        tuning: a tuning session runs in this thread.
        trial_waiting: it waits for the approval of its next trial.
        running: a recommendation or a training run is in progress.
        offer: the graph waits for the approval of an offered configuration.
        recommended: the thread has a recommendation to ask about.
        dataset: the message comes with a dataset (an upload or a path) other than the one the thread uses.
    """

    tuning: bool = False
    trial_waiting: bool = False
    running: bool = False
    offer: bool = False
    recommended: bool = False
    dataset: bool = False


@dataclass
class TuneCommand:
    """What a "tune ..." message asks for."""

    trials: int = DEFAULT_TRIALS
    budget_minutes: float | None = None
    per_trial: bool = False


@dataclass(frozen=True)
class Route:
    """How to handle a message.

    Attributes:
        kind: what to do (see the module docstring).
        rule: the name of the table row that decided it (tests and logs read it).
        changes: for an edit, the fields to change ({} with `from_whatif`: take the last what-if).
        from_whatif: an edit that adopts the configuration of the last what-if answer.
        tune: for tune, the trials, budget and per-trial approval asked for.
        intent: for a question, how the rules read it.
        reason: for a reject, what the user gave as the reason.
    """

    kind: Kind
    rule: str
    changes: dict[str, Any] = field(default_factory=dict)
    from_whatif: bool = False
    tune: TuneCommand | None = None
    intent: Intent | None = None
    reason: str = ""


def parse_tune_command(text: str) -> TuneCommand | None:
    """The tuning request in a message, or None when the message is not one.

    >>> parse_tune_command("tune 5 trials in 10 minutes")
    TuneCommand(trials=5, budget_minutes=10.0, per_trial=False)
    >>> parse_tune_command("iterate 3 trials, ask before each").per_trial
    True
    """
    if not text or not _TUNE.match(text):
        return None
    cmd = TuneCommand()
    if m := _TRIALS.search(text):
        cmd.trials = int(m.group(1))
    if m := _MINUTES.search(text):
        value = float(m.group(1))
        cmd.budget_minutes = value * 60 if m.group(2).lower().startswith("h") else value
    cmd.per_trial = bool(_EACH.search(text))
    return cmd


def looks_like_task(text: str) -> bool:
    """Whether a message describes a task (a modality, body part, class count, size or resolution),
    as opposed to a question or a remark."""
    from tools.task_text import parse_task

    if not text or QUESTION_START.match(text):
        return False
    try:
        said = set(parse_task(text).said)
    except ValueError:
        return True  # the graph says what is wrong with it
    return bool(said & TASK_FIELDS)


# ------------------------------------------------------------------------ what each row reads
Reader = Callable[[str], Route | None]


def _kind(kind: Kind, rule: str) -> Reader:
    return lambda text: Route(kind, rule)


def _matching(pattern: re.Pattern[str], kind: Kind, rule: str) -> Reader:
    return lambda text: Route(kind, rule) if pattern.match(text) else None


def _question(rule: str) -> Reader:
    def read(text: str) -> Route | None:
        intent = detect_intent(text) if text else None
        return Route("question", rule, intent=intent) if intent is not None and intent.kind != "unknown" else None
    return read


def _tune(text: str) -> Route | None:
    command = parse_tune_command(text)
    return Route("tune", "a tuning command", tune=command) if command is not None else None


def _task(text: str) -> Route | None:
    return Route("task", "a task description") if looks_like_task(text) else None


def _use_whatif(text: str) -> Route | None:
    return Route("edit", "adopt the last what-if", from_whatif=True) if USE_IT.match(text) else None


def _edit(text: str) -> Route | None:
    changes = parse_changes(text)
    if changes and not text.endswith("?") and not QUESTION_START.match(text):
        return Route("edit", "an edit of the offer", changes=changes)
    return None


def _rejecting(rule: str) -> Reader:
    """A "no" (the words after it are the reason: "no, too slow" -> "too slow")."""
    def read(text: str) -> Route | None:
        if not REJECT.match(text):
            return None
        return Route("reject", rule, reason=re.sub(r"^\s*\w+[,.!:]*\s*", "", text, count=1))
    return read


def _after_recommendation(text: str) -> Route | None:
    return Route("question", "anything else about the recommendation", intent=detect_intent(text))


def _short(text: str) -> Route | None:
    return Route("prompt", "too short to be a task") if len(text.split()) < 4 else None


@dataclass(frozen=True)
class Row:
    """A row of the table: when the thread is in this situation, this reader decides (or passes)."""

    when: Callable[[Situation], bool]
    reads: Reader


def _always(s: Situation) -> bool:
    return True


# The table. Order matters: the first row whose situation holds and whose reader returns a
# route decides.
TABLE: tuple[Row, ...] = (
    # A tuning session owns the thread: it takes approvals of its trials and questions.
    Row(lambda s: s.tuning and s.trial_waiting, _matching(APPROVE, "approve", "approve the waiting trial")),
    Row(lambda s: s.tuning and s.trial_waiting, _rejecting("reject the waiting trial")),
    Row(lambda s: s.tuning and not s.dataset, _question("a question during tuning")),
    Row(lambda s: s.tuning, _kind("wait", "tuning is in progress")),
    Row(lambda s: not s.running and not s.dataset, _tune),
    # A run in progress: questions are answered, anything else waits.
    Row(lambda s: s.running and not s.dataset, _question("a question during a run")),
    Row(lambda s: s.running, _kind("wait", "a run is in progress")),
    Row(lambda s: s.dataset, _kind("task", "a dataset")),
    Row(_always, lambda text: None if text else Route("prompt", "nothing typed")),
    Row(_always, _task),
    # An offer waits for approval: adopt a what-if, edit, approve or reject it.
    Row(lambda s: s.offer, _use_whatif),
    Row(lambda s: s.offer, _edit),
    Row(lambda s: s.offer, _matching(APPROVE, "approve", "approve the offer")),
    Row(lambda s: s.offer, _rejecting("reject the offer")),
    Row(_always, _question("a follow-up question")),
    Row(lambda s: s.recommended, _after_recommendation),
    Row(_always, _short),
    Row(_always, _kind("task", "a new task")),
)


def route_message(text: str, situation: Situation) -> Route:
    """How to handle `text` (stripped) given where the thread stands: the first row that decides."""
    text = (text or "").strip()
    for row in TABLE:
        if row.when(situation) and (route := row.reads(text)) is not None:
            return route
    raise AssertionError("the table's last row always decides")  # pragma: no cover


__all__ = [
    "APPROVE", "QUESTION_START", "REJECT", "TABLE", "USE_IT", "Route", "Row", "Situation", "TuneCommand",
    "looks_like_task", "parse_tune_command", "route_message",
]
