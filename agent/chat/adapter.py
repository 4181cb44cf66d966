"""The chat window's adapter over the compiled graph, apart from any screen layout.

The checkpointer is the source of truth of a thread: the conversation shown is rebuilt
from the thread's checkpoint history (each checkpoint is one finished node), so a page
reload or an app restart shows the same conversation and a pending approval is still
pending. The one thing the graph state has no place for, follow-up questions and their
answers, is kept in a side table (`Transcript`) anchored to the checkpoint that was
current when the question was asked.

Graph runs execute in a background thread per request (`LiveRun`), so a closed browser
tab does not stop a training run; any page of that thread can attach to it again. Every
public method returns or yields a `ChatView`: plain messages (Gradio's messages format:
dicts with `role`, `content`, optional `metadata` for collapsible "thoughts") and the
state of the approval and of training.

Which way a typed message goes (an approval reply, an edit, a tuning request, a follow-up
question or a new task) is decided by one table, agent.chat.router; `ChatAdapter.submit`
only acts on the route.

This module is over the package's ~400 lines because it is one class: every public method
of ChatAdapter is one action of the screen over the same graph, transcript, live runs and
tuning sessions, and its parts (views, rendering, runs, tuning, uploads) live in their own
modules already; cutting the class into mixins would scatter `submit`'s routing.

    adapter = ChatAdapter(graph, parts, context=ctx)
    for view in adapter.submit(thread_id, "chest x-ray, 2 classes, 5,000 images, 10 minutes"):
        show(view.messages)
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.chat.rendering import RenderedThreads, ThreadRenderer
from agent.chat.router import Situation, route_message
from agent.chat.runs import JobRegistry, LiveRun, LiveRuns, while_job_runs, writing
from agent.chat.transcript import Transcript
from agent.chat.tuning import TuneSession, TuneSessions, show_session
from agent.chat.uploads import prepare_dataset
from agent.chat.views import (
    STALLED,
    SUPERSEDED_BY_TUNING,
    ChatView,
    follow,
    pending_offer,
    pending_step,
    read_job_log,
    say,
    thread_config,
    training_view,
)
from agent.context import Context
from agent.followup import answer_followup
from agent.intents import parse_changes
from agent.parts import Parts
from agent.recommendation import Recommendation
from agent.tune import Trial, TuneError, Tuner

log = logging.getLogger(__name__)

class ChatAdapter:
    """The chat over a compiled graph: requests, approvals, follow-ups, live training.

    Args:
        graph: the compiled graph, with a checkpointer (the source of truth of every thread).
        parts: the agent's parts (agent.parts.Parts): follow-ups and the knowledge-base tab read
            its knowledge base and meta-model (loaded on first use), what-ifs its weights check.
        context: run settings passed to every graph run (plot_dir, allowed_data_dirs, ...).
        jobs: the job registry the graph's train node starts jobs through (for Cancel).
        transcript: where follow-ups are kept (default: in memory).
        uploads_dir: where uploaded datasets are copied or unpacked (an allowed data folder).
        followup_llm: a chat model for follow-up questions the rules do not recognise, and
            for the tuning agent; None answers by the rules alone.
    """

    def __init__(
        self,
        graph: Any,
        parts: Parts,
        *,
        context: Context | None = None,
        jobs: JobRegistry | None = None,
        transcript: Transcript | None = None,
        uploads_dir: str | Path | None = None,
        followup_llm: Any | None = None,
    ) -> None:
        self.graph = graph
        self.parts = parts
        self.kb = parts.kb
        self.context = context or Context()
        self.jobs = jobs or JobRegistry()
        self.transcript = transcript or Transcript()
        self.uploads_dir = Path(uploads_dir) if uploads_dir else None
        self.followup_llm = followup_llm
        self.renderer = ThreadRenderer(self.context.plot_dir)
        self._rendered = RenderedThreads(graph, self.transcript, self.renderer)
        self._runs = LiveRuns(graph, self.context, self._anchor)
        self._tunes = TuneSessions()  # iterative mode, one session per thread

    # ------------------------------------------------------------------ state
    @staticmethod
    def new_thread_id() -> str:
        return uuid.uuid4().hex

    @staticmethod
    def config(thread_id: str) -> dict[str, Any]:
        return thread_config(thread_id)

    @property
    def metamodel(self) -> Any:
        return self.parts.get_metamodel()

    def values(self, thread_id: str) -> dict[str, Any]:
        return dict(self.graph.get_state(self.config(thread_id)).values or {})

    def view(self, thread_id: str, notice: str | None = None) -> ChatView:
        """The thread as the screen shows it now (rebuilt from its checkpoints)."""
        cached, last, ran = self._rendered.get(thread_id)
        messages = list(cached)
        run = self._runs.live(thread_id)
        latest = self._runs.latest(thread_id)
        offer = pending_offer(last) if run is None else None
        training = training_view(run, last, ran)
        stalled = run is None and last is not None and last.next == ("train",)
        if run is not None:
            messages += pending_step(run, last)
            if run.draft:
                messages.append(writing(run.draft))
        elif latest is not None and latest.error and not (last is not None and any(t.error for t in last.tasks)):
            notice = notice or f"The last step failed: {latest.error}"
        if stalled:
            messages.append(say(STALLED))
        view = ChatView(thread_id=thread_id, messages=messages, offer=offer, training=training,
                        busy=run is not None, stalled=stalled, notice=notice,
                        stoppable=run is not None and run.stoppable)
        show_session(view, self._tunes.get(thread_id), last)  # a tuning session, its panel while it is the latest
        return view

    def _anchor(self, thread_id: str) -> str | None:
        state = self.graph.get_state(self.config(thread_id))
        return (state.config or {}).get("configurable", {}).get("checkpoint_id")

    # ------------------------------------------------------------------- runs
    def _follow(self, run: LiveRun, poll: float = 0.5) -> Iterator[ChatView]:
        return follow(run, lambda: self.view(run.thread_id), lambda: run.done, poll)

    def _follow_tune(self, session: TuneSession, poll: float = 0.5) -> Iterator[ChatView]:
        """Stream a tuning session until it ends or waits for an answer (the answer's click follows it on)."""
        return follow(session, lambda: self.view(session.thread_id),
                      lambda: session.done or session.waiting is not None, poll)

    def _start(self, thread_id: str, payload: Any, kind: str, request: str | None = None) -> Iterator[ChatView]:
        """Launch a graph run and follow it, or say the thread is busy."""
        run = self._runs.launch(thread_id, payload, kind, request=request)
        if run is None:
            yield self._busy(thread_id)
            return
        yield from self._follow(run)

    def follow(self, thread_id: str) -> Iterator[ChatView]:
        """Attach to the thread's running graph run (after a reload); one view when none runs."""
        tune = self._tunes.running(thread_id)
        if tune is not None:
            yield from self._follow_tune(tune)
            return
        run = self._runs.live(thread_id)
        if run is None:
            yield self.view(thread_id)
            return
        yield from self._follow(run)

    def _busy(self, thread_id: str) -> ChatView:
        view = self.view(thread_id, notice="Still working on the previous step; wait for it (or cancel training). "
                                           "Your message is still in the box.")
        view.unsent = True
        return view

    # --------------------------------------------------------------- requests
    def start_request(self, thread_id: str, text: str, *, dataset: str | None = None,
                      constraints: dict[str, Any] | None = None) -> Iterator[ChatView]:
        """Run the graph on a new task in this thread, streaming each step."""
        inputs: dict[str, Any] = {"task": text or "", "dataset": dataset or None,
                                  "constraints": {k: v for k, v in (constraints or {}).items() if v not in (None, [], "")}}
        shown = (text or "") + (f"\n\n*(dataset `{Path(dataset).name}`)*" if dataset else "")
        yield from self._start(thread_id, inputs, "request", request=shown)

    def resume(self, thread_id: str, answer: Any) -> Iterator[ChatView]:
        """Answer the pending approval (approve / edit / reject), streaming training if it starts."""
        state = self.graph.get_state(self.config(thread_id))
        if state.next != ("approve",):
            yield self.view(thread_id, notice="There is no configuration waiting for approval in this conversation.")
            return
        from langgraph.types import Command

        yield from self._start(thread_id, Command(resume=answer), "resume")

    def approve(self, thread_id: str, dataset: str | None = None, *, said: str | None = None) -> Iterator[ChatView]:
        """Approve the offer (`said`: the words the user typed, shown as their message; a click shows "Approve")."""
        if (tune := self._tunes.waiting(thread_id)) is not None:
            tune.answer(True, said=said)
            yield from self._follow_tune(tune)
            return
        answer: dict[str, Any] = {"action": "approve"}
        if dataset:
            answer["dataset"] = dataset
        if said:
            answer["said"] = said[:500]
        yield from self.resume(thread_id, answer)

    def edit(self, thread_id: str, text: str, *, said: str | None = None) -> Iterator[ChatView]:
        """Edit the offer from "epochs=5, lr=3e-4" or a JSON object of fields (`said`: as typed in the chat)."""
        if self._tunes.waiting(thread_id) is not None:  # a tuning trial is asked about, not an offer
            yield self.view(thread_id, notice=(
                "A tuning trial cannot be edited: the agent proposes each one from the trials before it. Approve it, "
                "or Reject it (with a reason) to stop tuning and then ask for the run you want, e.g. "
                "`train with epochs=5`."))
            return
        changes: Any
        try:
            changes = json.loads(text) if text.strip().startswith("{") else parse_changes(text)
        except json.JSONDecodeError as exc:
            yield self.view(thread_id, notice=f"The edit is not valid JSON: {exc}")
            return
        if not isinstance(changes, dict) or not changes:
            yield self.view(thread_id, notice="Say what to change, e.g. `epochs=5`, `lr=3e-4, batch size 32` or "
                                              "`{\"epochs\": 5}`.")
            return
        yield from self.resume(thread_id, {"action": "edit", "config": changes, **({"said": said[:500]} if said else {})})

    def reject(self, thread_id: str, reason: str = "", *, said: str | None = None) -> Iterator[ChatView]:
        """Reject the offer (`said`: the words the user typed, shown as their message)."""
        if (tune := self._tunes.waiting(thread_id)) is not None:
            tune.answer(False, said=said, reason=reason)
            yield from self._follow_tune(tune)
            return
        yield from self.resume(thread_id, {"action": "reject", "reason": reason[:500],
                                           **({"said": said[:500]} if said else {})})

    def cancel(self, thread_id: str) -> str:
        """Ask the thread's running training job to stop; returns what happened, in words."""
        tune = self._tunes.running(thread_id)
        if tune is not None:
            tune.cancel()
            return "Cancelling the tuning session: the running trial stops after the current batch (recorded as " \
                   "cancelled) and no further trial is proposed."
        run = self._runs.live(thread_id)
        if run is None or run.training is None or not run.training.job_id:
            return "No training job is running in this conversation."
        if self.jobs.cancel(run.training.job_id):
            return "Cancelling: the job stops after the current batch and is recorded as cancelled."
        return "This job was not started by this app process, so it cannot be cancelled from here."

    def stop(self, thread_id: str) -> str:
        """Stop the thread's recommendation in progress at its next step or LLM token; what happened, in words.

        The run ends with the last finished step as the thread's checkpoint, so the next message
        starts cleanly; the chat says "Stopped." there.
        """
        run = self._runs.live(thread_id)
        if run is None:
            return "No recommendation is running in this conversation."
        if run.training is not None:
            return "Training is running: use **Cancel training** to stop it."
        if not run.stop():
            return "Only a recommendation in progress can be stopped; this step finishes on its own."
        return "Stopping…"

    def reattach(self, thread_id: str, wait_seconds: float = 3600.0, poll: float = 1.0,
                 idle_seconds: float = 600.0) -> Iterator[ChatView]:
        """Resume a thread stopped inside training (an app restart): wait for the job, then record it.

        Args:
            thread_id: the thread.
            wait_seconds: the longest wait for a still-running job.
            poll: seconds between looks at the job's run folder.
            idle_seconds: a job whose log has not grown for this long is taken as dead.
        """
        state = self.graph.get_state(self.config(thread_id))
        if state.next != ("train",):
            yield self.view(thread_id)
            return
        # The train node re-attaches by job id; wait until the worker has written its result, so a
        # still-running job is not mistaken for a dead one.
        from agent.nodes import job_id_for
        from knowledge.schema import TrainConfig
        from tools.jobs import runs_dir

        approval = state.values.get("approval") or {}
        if approval.get("config"):
            job_id = approval.get("job_id") or job_id_for(thread_id, TrainConfig.model_validate(approval["config"]))
            run_dir = Path(self.context.runs_dir or runs_dir()) / job_id
            for _ in while_job_runs(run_dir, wait_seconds=wait_seconds, poll=poll, idle_seconds=idle_seconds):
                view = self.view(thread_id, notice="Waiting for the training job to finish…")
                view.training = read_job_log(run_dir)
                yield view
        yield from self._start(thread_id, None, "resume")

    # -------------------------------------------------------------- messages
    def ask(self, thread_id: str, question: str) -> ChatView:
        """Answer a follow-up question from the thread's state and keep it in the transcript."""
        answer = answer_followup(
            self.values(thread_id), question, self._safe_metamodel(), self.kb, llm=self.followup_llm,
            weights_available=self.parts.has_weights, plot_dir=self.context.plot_dir,
            accuracy_tolerance=self.context.accuracy_tolerance, max_accuracy_gap=self.context.max_accuracy_gap,
        )
        data = answer.to_json()
        state = self.graph.get_state(self.config(thread_id))
        if answer.config and state.next == ("approve",):
            offered = (state.values.get("offer") or {}).get("config")
            if offered and offered != answer.config:
                data["text"] += "\n\nReply **use it** to offer this configuration for approval instead."
        self.transcript.add(thread_id, self._anchor(thread_id), question, data)
        return self.view(thread_id)

    def note(self, thread_id: str, text: str, reply: str) -> ChatView:
        """Keep an exchange the graph does not take part in (help, refusals) in the transcript."""
        self.transcript.add(thread_id, self._anchor(thread_id), text, {"kind": "note", "text": reply})
        return self.view(thread_id)

    def _safe_metamodel(self) -> Any:
        try:
            return self.metamodel
        except Exception as exc:  # the follow-up then says it needs the meta-model
            log.warning("meta-model unavailable for a follow-up: %s", exc)
            return None

    def _last_whatif(self, thread_id: str) -> dict[str, Any] | None:
        for entry in reversed(self.transcript.entries(thread_id)):
            cfg = entry["answer"].get("config")
            if entry["answer"].get("intent") == "what_if" and cfg:
                return cfg
        return None

    def submit(self, thread_id: str, text: str, *, dataset: str | None = None,
               constraints: dict[str, Any] | None = None) -> Iterator[ChatView]:
        """A message typed into the chat, routed by agent.chat.router's table."""
        text = (text or "").strip()
        tune = self._tunes.running(thread_id)
        state = self.graph.get_state(self.config(thread_id))
        values = state.values or {}
        # The dataset path under Options stays filled after the request that used it: that dataset again is not
        # a new one, so "yes", "tune 3 trials" or "why?" still answer the thread (a task text still starts a
        # request on it).
        situation = Situation(
            tuning=tune is not None, trial_waiting=tune is not None and tune.waiting is not None,
            running=self._runs.live(thread_id) is not None, offer=state.next == ("approve",),
            recommended=bool(values.get("recommendation")),
            dataset=bool(dataset) and not _same_path(dataset, _thread_dataset(values)),
        )
        route = route_message(text, situation)
        if route.kind == "approve" or route.kind == "reject":
            if tune is not None:  # the words typed show as the user's message, as for the single run's offer
                tune.answer(route.kind == "approve", said=text, reason=route.reason)
                yield from self._follow_tune(tune)
            elif route.kind == "approve":
                yield from self.approve(thread_id, said=text)
            else:
                yield from self.reject(thread_id, route.reason, said=text)
        elif route.kind == "edit":
            yield from (self._use_whatif(thread_id, text, values) if route.from_whatif else self.edit(thread_id, text, said=text))
        elif route.kind == "tune":
            yield from self.start_tune(thread_id, text, route.tune)
        elif route.kind == "question":
            yield self.ask(thread_id, text)
        elif route.kind == "task":
            yield from self.start_request(thread_id, text, dataset=dataset, constraints=constraints)
        elif route.kind == "wait":
            if tune is None:
                yield self._busy(thread_id)
                return
            view = self.view(thread_id, notice="Tuning is in progress: answer its question (yes / no), ask about it, "
                                               "or Cancel it. Your message is still in the box.")
            view.unsent = True
            yield view
        elif not text:
            yield self.view(thread_id, notice="Describe your task, give a dataset, or ask a question.")
        else:
            yield self.note(thread_id, text, (
                "Describe your imaging task so I can recommend a model: the modality, the number of classes and "
                "images, and your time budget, e.g. *\"chest x-ray, 2 classes, 5,000 images, 10 minutes on a laptop\"*. "
                "You can also upload a .npz or a zipped image folder, or give a dataset path under Options."))

    def _use_whatif(self, thread_id: str, text: str, values: dict[str, Any]) -> Iterator[ChatView]:
        """Offer the configuration of the thread's last what-if answer instead ("use it")."""
        cfg = self._last_whatif(thread_id)
        if cfg is None:
            yield self.note(thread_id, text, "There is no what-if configuration to use yet; ask e.g. "
                                             "*what about resnet18?* first.")
            return
        offered = (values.get("offer") or {}).get("config") or {}
        changes = {k: v for k, v in cfg.items() if offered.get(k) != v}
        yield from self.resume(thread_id, {"action": "edit", "config": changes or cfg, "said": text[:500]})

    def start_tune(self, thread_id: str, text: str, command: Any) -> Iterator[ChatView]:
        """Iterative mode (agent.tune): trial 1 is the thread's recommendation, then LLM-proposed trials.

        The message approves every trial within its count and budget, unless it asks for
        per-trial approval ("ask before each"). A pending approval of the graph's offer is
        closed first (trial 1 trains that recommendation).
        """
        values = self.values(thread_id)
        if not values.get("recommendation"):
            yield self.note(thread_id, text, "Tuning starts from a recommendation: describe your task and give its "
                                             "dataset first, then say e.g. *tune 5 trials in 10 minutes*.")
            return
        rec = Recommendation.model_validate(values["recommendation"])
        dataset = (values.get("offer") or {}).get("dataset") or (values.get("profile") or {}).get("dataset")
        if not dataset or not self.context.allows(dataset):
            yield self.note(thread_id, text, "Tuning trains real runs, so it needs the dataset: start a new request "
                                             "with the dataset (upload it or give its path under Options).")
            return
        try:
            tuner = Tuner(values.get("task") or "", dataset=dataset, trials=command.trials,
                          budget_minutes=command.budget_minutes, recommendation=rec, parts=self.parts,
                          llm=self.followup_llm, start_job=self.jobs.start, runs_dir=self.context.runs_dir,
                          seed=self.context.seed, previous=self._earlier_trials(thread_id, dataset, rec))
        except TuneError as exc:
            yield self.note(thread_id, text, f"⚠ {exc}")
            return
        if self.graph.get_state(self.config(thread_id)).next == ("approve",):
            from langgraph.types import Command

            self.graph.invoke(Command(resume={"action": "reject", "reason": SUPERSEDED_BY_TUNING}),
                              self.config(thread_id), context=self.context)

        def keep(session: TuneSession) -> None:
            # The trials too (all of them, earlier sessions' included): the next "tune" continues from them.
            self.transcript.add(thread_id, self._anchor(thread_id), session.request, {
                "kind": "tune", "messages": session.messages, "dataset": dataset, "recommended": rec.config.key(),
                "trials": [t.model_dump(mode="json") for t in session.tuner.trials]})
            session.persisted = True

        session = TuneSession(thread_id, text, tuner, per_trial=command.per_trial, dataset=dataset, on_done=keep)
        if not self._tunes.start(session):
            yield self._busy(thread_id)
            return
        yield from self._follow_tune(session)

    def _earlier_trials(self, thread_id: str, dataset: str, rec: Recommendation) -> list[Trial]:
        """The trials of the thread's latest tuning session, when it tuned this recommendation on this
        dataset (a new task in the thread starts its tuning afresh)."""
        for entry in reversed(self.transcript.entries(thread_id)):
            a = entry["answer"]
            if a.get("kind") == "tune" and "trials" in a:
                if a.get("dataset") == dataset and a.get("recommended") == rec.config.key():
                    return [Trial.model_validate(t) for t in a["trials"]]
                return []
        return []

    # ---------------------------------------------------------------- uploads
    def dataset_from(self, upload: str | None, path: str | None) -> str | None:
        """The dataset for a request: an upload (copied into the uploads folder) or a server path.

        Raises:
            ValueError: a bad upload (the message says why).
        """
        if upload:
            if self.uploads_dir is None:
                raise ValueError("uploads are disabled on this server; give a dataset path instead.")
            return prepare_dataset(upload, self.uploads_dir)
        return path.strip() if path and path.strip() else None


def _thread_dataset(values: dict[str, Any]) -> str | None:
    """The dataset the thread's request or offer uses, if any."""
    return (values.get("offer") or {}).get("dataset") or (values.get("profile") or {}).get("dataset")


def _same_path(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):
        return a == b


__all__ = ["ChatAdapter"]
