"""The iterative mode in the chat: a tuning session run in the background, shown as chat messages.

A thread that holds a recommendation (and a dataset) can be tuned with a follow-up such as
"tune 5 trials in 10 minutes" (the message approves every trial within that budget) or
"tune 3 trials, ask before each" (every trial waits for Approve / Reject). Trial 1 is the
thread's recommendation; each trial's proposal, rationale, training progress, result and
log analysis stream into the conversation; when the session ends its messages are kept in
the thread's transcript, so they survive a reload or a restart.

The loop is `agent.tune.Tuner`'s; this module only turns its steps into messages, holds the
per-trial approval gate, keeps the sessions of every thread (`TuneSessions`) and lays a live
session over the thread's view (`show_session`). `agent.chat.adapter.ChatAdapter` starts the
sessions and routes the chat's messages to them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agent.chat.views import ChatView, Observed, TrainingView, answer_message, thought, user
from agent.formatting import accuracy_text, config_text, duration_text, run_time_text
from agent.tune import Proposal, Trial, Tuner, TuneResult
from agent.tune._render import trial_timing

log = logging.getLogger(__name__)

APPROVAL_TIMEOUT = 3600.0  # a per-trial question unanswered for an hour stops the session
_UNSET: Any = object()  # a session not shown yet has no anchor (None is a thread without checkpoints)


def proposal_md(p: Proposal, *, ask: bool) -> str:
    pred = p.predicted
    head = {"zero-shot": "the recommendation", "llm": f"the LLM's pick ({p.option})",
            "fallback": f"fallback ({p.option or 'the meta-model'})"}[p.source]
    text = (f"**Trial {p.number}** — {head}: `{config_text(p.config)}`  \n"
            f"predicted test accuracy {accuracy_text(pred.accuracy, pred.low, pred.high)} in ~{duration_text(pred.seconds)}"
            + (f", expected gain {p.expected_gain:+.3f}" if p.expected_gain is not None else "")
            + f"\n\n*Why:* {p.rationale}")
    if p.fallback_reason:
        text += f"\n\n*Fallback because:* {p.fallback_reason}"
    if ask:
        text += "\n\n**Approve** to train it, **Reject** to stop tuning (beside the chat), or reply *yes* / *no, why*."
    return text


def own_seconds(t: Trial) -> float:
    """The trial's own time: its training loop, plus the feature extraction when this trial did it (not when the
    features came from an earlier run's cache); the wall time for a trial without a record."""
    if t.train_seconds is None:
        return t.seconds
    return t.train_seconds + (0.0 if t.features_cached else t.feature_seconds)


def trial_md(t: Trial) -> str:
    if t.val_accuracy is not None and t.test_accuracy is not None:
        result = f"validation accuracy **{t.val_accuracy:.3f}**, test {t.test_accuracy:.3f}"
    else:
        result = f"**{t.status}**"
    record = f" · record `{t.record_id}`" if t.record_id else ""
    return (f"**Trial {t.number} result:** {result} {run_time_text(trial_timing(t))}{record}\n\n"
            f"*Analysis{f' ({labels})' if (labels := ', '.join(t.analysis.labels)) else ''}:* {t.analysis.text}")


def summary_md(r: TuneResult) -> str:
    text = f"**Tuning stopped:** {r.stop_reason}."
    if r.best is not None:
        b = r.best
        test = f", test {b.test_accuracy:.3f}" if b.test_accuracy is not None else ""
        text += (f"\n\nBest: trial {b.number}, `{config_text(b.config)}`: validation accuracy "
                 f"{b.val_accuracy:.3f}{test}.")
        if r.best_reason:
            text += f" Kept because {r.best_reason}."
    if r.trials:
        rows = "\n".join(
            f"| {t.number} | {t.source} | {config_text(t.config)} | "
            f"{'' if t.val_accuracy is None else f'{t.val_accuracy:.3f}'} | "
            f"{'' if t.test_accuracy is None else f'{t.test_accuracy:.3f}'} | {duration_text(own_seconds(t))} |"
            for t in r.trials)
        text += ("\n\n| trial | source | config | val | test | own time |\n|---|---|---|---|---|---|\n" + rows
                 + f"\n\n{len(r.trials)} trial(s) in {duration_text(r.train_seconds)} of wall time (job start to "
                   "record: what the budget counts; *own time* leaves out features taken from an earlier run's "
                   "cache); every run is recorded in the knowledge base with its rationale.")
    return text


class TuneSession(Observed):
    """One tuning session of a chat thread, driven in a background thread.

    Looks like `agent.chat.runs.LiveRun` to the adapter (version, wait, done, training), so
    the same follow loop streams it.

    Args:
        thread_id: the chat thread.
        request: the user's message that started it.
        tuner: the tuning loop, built around the thread's recommendation.
        per_trial: ask before every trial (else the request approved them all).
        dataset: the dataset trials train on (shown in the approval box).
        on_done: called once at the end (the adapter keeps the messages in the transcript).
    """

    def __init__(self, thread_id: str, request: str, tuner: Tuner, *, per_trial: bool, dataset: str,
                 on_done: Callable[[TuneSession], None] | None = None) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.request = request
        self.tuner = tuner
        self.per_trial = per_trial
        self.dataset = dataset
        self.messages: list[dict[str, Any]] = []
        self.training: Any = None
        self.anchor: Any = _UNSET  # the thread's checkpoint when the session was first shown (show_session)
        self.waiting: Proposal | None = None
        self.result: TuneResult | None = None
        self.error: str | None = None
        self.persisted = False
        self._on_done = on_done
        self._answer: bool | None = None
        self._reason = ""  # what the user gave as the reason of a "no"
        self._answered = threading.Event()
        self._answering = threading.Lock()  # one answer per question, and one message for it (a double click)

    def offer(self) -> dict[str, Any] | None:
        """The proposal awaiting approval, shaped like the graph's offer (for the approval box)."""
        p = self.waiting
        if p is None:
            return None
        return {"config": p.config.model_dump(mode="json"), "key": p.config.key(), "dataset": self.dataset,
                "prediction": p.predicted.model_dump(), "warnings": [], "error": None, "tune_trial": p.number}

    # ---------------------------------------------------------------- steering
    def answer(self, yes: bool, *, said: str | None = None, reason: str = "") -> bool:
        """The user's answer to the waiting proposal; False when none waits.

        The answer shows as the user's message, as the single run's approval does (`answer_message`): the words
        they typed (`said`), else the button they clicked, with the `reason` given beside a Reject.
        """
        with self._answering:
            if self.waiting is None:
                return False
            self.messages.append(answer_message(yes, said[:500] if said else None, reason[:500]))
            return self._settle(yes, reason)

    def _settle(self, yes: bool, reason: str = "") -> bool:
        """Release the waiting proposal with an answer (the user's, or a Cancel's, which shows no message)."""
        if self.waiting is None:
            return False
        self._answer = bool(yes)
        self._reason = reason.strip()[:500]
        self.waiting = None  # at once: a page following the session must not stop at the answered question
        self._answered.set()
        self.changed()
        return True

    def cancel(self) -> None:
        """Stop the session: the running trial is cancelled (and recorded so), nothing more is proposed."""
        self.tuner.cancel()
        with self._answering:
            self._settle(False)

    def _approve(self, proposal: Proposal) -> bool:
        if not self.per_trial:
            return True
        self._answer, self._reason = None, ""
        self._answered.clear()
        self.waiting = proposal
        self.changed()
        self._answered.wait(APPROVAL_TIMEOUT)
        self.waiting = None
        return bool(self._answer)

    def _say(self, content: str) -> None:
        self.messages.append({"role": "assistant", "content": content})
        self.changed()

    def _event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "job":
            self.training = TrainingView()
            self.training.apply(event)
        elif kind == "train" and self.training is not None:
            self.training.apply(event)
        elif kind == "trial":
            t = Trial.model_validate(event["result"])
            if self.training is not None:
                self.training.apply({"type": "train_done", "status": t.status, "record_id": t.record_id,
                                     "test_accuracy": t.test_accuracy, "error": t.error, **trial_timing(t)})
            self.messages.append({"role": "assistant", "content": trial_md(t)})
        self.changed()

    # ----------------------------------------------------------------- driving
    def drive(self) -> None:
        """The loop (`agent.tune.tune`'s, one step at a time); run in a background thread."""
        tuner = self.tuner
        earlier = len(tuner.previous)
        if earlier:
            best = tuner.best
            self._say(f"Continuing this thread's earlier tuning: its {earlier} trial(s) are not run again"
                      + (f" (the one kept so far: trial {best.number}, {config_text(best.config)}, validation "
                         f"accuracy {best.val_accuracy:.3f})" if best is not None and best.val_accuracy is not None
                         else "")
                      + f"; the next trials are chosen from their results, up to {tuner.max_trials - earlier} more.")
        if not self.per_trial:
            budget = f" within {duration_text(tuner.budget_seconds)}" if tuner.budget_seconds else ""
            start = "after the earlier trials" if earlier else "starting from the recommendation"
            self._say(f"Tuning up to {tuner.max_trials - earlier} trial(s){budget}, {start}; your "
                      "message approved them all (**Cancel** stops at any time).")
        try:
            while (proposal := tuner.propose()) is not None:
                self._say(proposal_md(proposal, ask=self.per_trial))
                if not self._approve(proposal):
                    tuner.decline(proposal, self._reason or "not approved")
                    break
                tuner.run(proposal, on_event=self._event)
            self.result = tuner.result()
            self._say(summary_md(self.result))
        except Exception as exc:  # shown in the chat; the trials already run are in the knowledge base
            log.warning("tuning session of thread %s failed: %s", self.thread_id, exc)
            self.error = f"{type(exc).__name__}: {exc}"
            self._say(f"⚠ **Tuning stopped with an error:** {exc}")
        finally:
            self.waiting = None
            self.done = True
            if self._on_done is not None:
                try:
                    self._on_done(self)
                except Exception as exc:  # the messages stay visible in this process
                    log.warning("could not keep the tuning session in the transcript: %s", exc)
            self.changed()


class TuneSessions:
    """The tuning session of every thread: at most one running per thread."""

    def __init__(self) -> None:
        self._sessions: dict[str, TuneSession] = {}
        self._lock = threading.Lock()

    def get(self, thread_id: str) -> TuneSession | None:
        """The thread's latest session, running or finished."""
        return self._sessions.get(thread_id)

    def running(self, thread_id: str) -> TuneSession | None:
        """The thread's session in progress, or None."""
        session = self._sessions.get(thread_id)
        return session if session is not None and not session.done else None

    def waiting(self, thread_id: str) -> TuneSession | None:
        """The thread's session in progress when it waits for an answer, or None."""
        session = self.running(thread_id)
        return session if session is not None and session.waiting is not None else None

    def start(self, session: TuneSession) -> bool:
        """Drive `session` in a background thread; False (and nothing started) while its thread has one running."""
        thread_id = session.thread_id
        with self._lock:
            current = self._sessions.get(thread_id)
            if current is not None and not current.done:
                return False
            self._sessions[thread_id] = session
        threading.Thread(target=session.drive, name=f"tune-{thread_id[:8]}", daemon=True).start()
        return True


def show_session(view: ChatView, session: TuneSession | None, last: Any = None) -> None:
    """Lay a session over the thread's view: its messages and offer until it is kept in the transcript, and its
    training panel as long as it is the thread's latest work.

    `last` is the thread's latest checkpoint. The session takes the checkpoint current when it is first shown
    (the tuning session owns the thread from its start, so that is its start); while the thread is still there,
    the panel is the session's (none before its first job), never a run the graph trained before the session,
    which would show an earlier "ok · epoch 40/40" after a Cancel.
    """
    if session is None:
        return
    current = last.config["configurable"]["checkpoint_id"] if last is not None else None
    if session.anchor is _UNSET:
        session.anchor = current
    if session.anchor == current:
        view.training = (replace(session.training, history=list(session.training.history))
                         if session.training is not None else None)
    if session.persisted:
        return
    view.messages += [user(session.request), *session.messages]
    if not session.done:
        view.busy = True
        view.offer = session.offer()
        if view.offer is None:
            training = session.training
            detail = training.message if training is not None and not training.done else "working"
            view.messages.append(thought("Tuning…", detail, pending=True))


__all__ = ["TuneSession", "TuneSessions", "proposal_md", "show_session",
           "summary_md", "trial_md"]
