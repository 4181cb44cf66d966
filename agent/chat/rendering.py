"""Rendering: a thread's checkpoint history (and its transcript) turned into chat messages.

Each checkpoint is one finished node, so the conversation is rebuilt from the history: for
every node that ran, `RENDERERS` names the function that shows it (one small `_render_*` per
step type: a collapsible "thought" for the pipeline's steps, the recommendation card, the
approval's answer, the training result with its learning curve, the new record). Follow-up
entries of the transcript go back after the checkpoint they were anchored to. The
meta-model's pick is shown as a message as soon as the explain step has run (about a second,
long before the LLM has written its rationale); the recommendation card takes its place. The Markdown
of each step is agent.chat.cards'; `RenderedThreads` keeps the rendered conversation per
thread until the thread changes.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.chat.cards import (
    candidates_md,
    card_md,
    draft_md,
    evidence_md,
    offer_md,
    pick_md,
    profile_md,
    verdict_md,
)
from agent.chat.export import export_md
from agent.chat.plots import save_learning_curve
from agent.chat.runs import STOPPED, STOPPED_BY_USER
from agent.chat.transcript import Transcript
from agent.chat.views import (
    SUPERSEDED_BY_TUNING,
    answer_message,
    image,
    read_job_log,
    run_time_text,
    say,
    thought,
    thread_config,
    user,
)
from agent.followup import FollowupAnswer
from agent.formatting import config_text

log = logging.getLogger(__name__)

Message = dict[str, Any]


def _error_text(error: str) -> str:
    """The message of a stored task error ("TaskError('...')" -> "...")."""
    m = re.match(r"^(\w+)\((['\"])(.*)\2\)$", error.strip(), re.S)
    if not m:
        return error
    kind, text = m.group(1), m.group(3).replace("\\'", "'").replace('\\"', '"')
    return text if kind in ("TaskError", "ValueError") else f"{kind}: {text}"


def _followup_messages(entry: dict[str, Any]) -> list[Message]:
    a = entry["answer"]
    out = [user(entry["question"])]
    if a.get("kind") == "note":
        out.append(say(a["text"]))
        return out
    if a.get("kind") == "tune":  # a finished tuning session (agent.chat.tuning): its messages as streamed
        out += [m for m in a.get("messages") or [] if isinstance(m, dict) and "content" in m]
        return out
    answer = FollowupAnswer(**{k: v for k, v in a.items() if k in FollowupAnswer.__dataclass_fields__})
    out.append(say(answer.markdown()))
    if answer.plot and Path(answer.plot).is_file():
        out.append(image(answer.plot, "SHAP plot of the configuration discussed"))
    return out


# ------------------------------------------------------------------------ renderers
@dataclass(frozen=True)
class Step:
    """One node having run: the state before it, the checkpoint after it, and where plots go."""

    before: dict[str, Any]
    snap: Any
    plot_dir: str | None

    @property
    def values(self) -> dict[str, Any]:
        return self.snap.values

    @property
    def timings(self) -> dict[str, Any]:
        return self.snap.values.get("timings") or {}


def _render_start(step: Step) -> list[Message]:
    v = step.values
    text = v.get("task") or ""
    extra = []
    if v.get("dataset"):
        extra.append(f"dataset `{Path(str(v['dataset'])).name}`")
    for k, val in (v.get("constraints") or {}).items():
        if val not in (None, [], ""):
            extra.append(f"{k.replace('_', ' ')} {', '.join(val) if isinstance(val, list) else val}")
    return [user((text or "(no description)") + (f"\n\n*({'; '.join(extra)})*" if extra else ""))]


def _render_profile(step: Step) -> list[Message]:
    if not step.values.get("profile"):
        return []
    title, text = profile_md(step.values["profile"])
    return [thought(title, text, duration=step.timings.get("profile"))]


def _render_retrieve(step: Step) -> list[Message]:
    title, text = evidence_md(step.values.get("evidence") or [])
    return [thought(title, text, duration=step.timings.get("retrieve"))]


def _render_explain(step: Step) -> list[Message]:
    if not step.values.get("candidates"):
        return []
    title, text = candidates_md(step.values["candidates"], step.values.get("explanation"))
    return [thought(title, text, duration=step.timings.get("explain"))]


def _render_reason(step: Step) -> list[Message]:
    v = step.values
    title, text = draft_md(v.get("draft"), v.get("draft_error"), int(v.get("attempts") or 1))
    return [thought(title, text, duration=(v.get("llm_seconds") or {}).get("reason"))]


def _render_judge(step: Step) -> list[Message]:
    if not step.values.get("verdict"):
        return []
    title, text = verdict_md(step.values["verdict"])
    return [thought(title, text)]


def _render_respond(step: Step) -> list[Message]:
    v = step.values
    if not v.get("recommendation"):
        return []
    rec = v["recommendation"]
    offer = v.get("offer") if step.snap.next == ("approve",) else None
    out = [say(card_md(rec, offer))]
    if rec.get("shap_plot") and Path(rec["shap_plot"]).is_file():
        out.append(image(rec["shap_plot"], "SHAP: what drives the predicted accuracy of this configuration"))
    data = (offer or {}).get("dataset") or (v.get("profile") or {}).get("dataset")
    out.append(thought(*export_md((offer or {}).get("config") or rec["config"], data)))
    return out


def _render_approve(step: Step) -> list[Message]:
    v, snap = step.values, step.snap
    old, new = step.before.get("offer") or {}, v.get("offer") or {}
    if snap.next == ("approve",):
        if new.get("key") != old.get("key"):
            diffs = [f"{k}={val}" for k, val in new.get("config", {}).items()
                     if (old.get("config") or {}).get(k) != val]
            return [user(new.get("said") or "Edit: " + (", ".join(diffs) or "(no change)")), say(offer_md(new, old)),
                    thought(*export_md(new["config"], new.get("dataset")))]
        if new.get("error"):  # the user's words when they typed them, then why they could not be used
            return [*([user(new["said"])] if new.get("said") else []),
                    say(f"⚠ I could not use that answer: {new['error']}")]
        return []
    decision = v.get("decision") or {}
    if snap.next == ("train",) or decision.get("status") == "approved":
        data = new.get("dataset") or (v.get("approval") or {}).get("dataset")
        return [answer_message(True, decision.get("said")), say(f"Approved: training **{config_text(new['config'])}** on "
                                     f"`{Path(str(data)).name}`.")]
    reason = decision.get("reason")
    if reason == SUPERSEDED_BY_TUNING:  # the chat closed the offer, the user did not type "Reject"
        return [say("The offer above was not trained on its own: the tuning session below starts from it "
                    "(its trial 1 trains it).")]
    # What the user typed ("no, too slow"), else the button they clicked, with the reason given there.
    return [answer_message(False, decision.get("said"), reason or ""),
            say("Rejected: nothing was trained. Describe the task again, or ask for a what-if, to get another offer.")]


def _render_train(step: Step) -> list[Message]:
    training = step.values.get("training") or {}
    if not training:
        return []
    status = training.get("status")
    out: list[Message] = []
    if status == "ok":
        text = (f"Training finished: **test accuracy {training.get('test_accuracy'):.3f}**, validation accuracy "
                f"{training.get('val_accuracy') or float('nan'):.3f}, {run_time_text(training)}.")
    elif status == "error":
        text = f"⚠ The training job failed: {training.get('error')}"
    else:
        text = f"Training ended **{status}**" + (f": {training['error']}" if training.get("error") else ".")
    out.append(say(text))
    run_dir = training.get("run_dir")
    if run_dir and step.plot_dir:
        view = read_job_log(run_dir)
        if view.history:
            path = Path(step.plot_dir) / f"curve-{Path(run_dir).name}.png"
            try:
                if not path.exists():
                    acc = training.get("test_accuracy")
                    save_learning_curve(view.history, path, title=f"training run {status}" + (
                        f": test accuracy {acc:.3f}" if acc is not None else ""))
                out.append(image(str(path), "Learning curve: validation accuracy and loss per epoch"))
            except Exception as exc:  # a picture must never lose the conversation
                log.warning("learning curve failed: %s", exc)
    return out


def _render_record(step: Step) -> list[Message]:
    r = step.values.get("recorded")
    if not r or not r.get("record_id"):
        return []
    idx = r.get("index") or {}
    return [say(f"New knowledge-base record `{r['record_id']}` ({r.get('status')}); the search index now "
                f"holds {idx.get('total', '?')} runs. Future recommendations learn from it.")]


UNANSWERED = "The offer above was left unanswered (nothing was trained): your new request replaces it."

RENDERERS: dict[str, Callable[[Step], list[Message]]] = {
    "__start__": _render_start,
    "profile": _render_profile,
    "retrieve": _render_retrieve,
    "explain": _render_explain,
    "reason": _render_reason,
    "judge": _render_judge,
    "respond": _render_respond,
    "approve": _render_approve,
    "train": _render_train,
    "record": _render_record,
}
"""Graph node name -> the function that shows it having run (a node not listed shows nothing)."""


# ------------------------------------------------------------------------- threads
class ThreadRenderer:
    """Turns a thread's checkpoint history (oldest first) into chat messages."""

    def __init__(self, plot_dir: str | None) -> None:
        self.plot_dir = plot_dir

    def render(self, snapshots: list[Any], followups: list[dict[str, Any]]) -> tuple[list[Message], list[str]]:
        """Messages, and the checkpoint ids in order (to anchor follow-ups)."""
        messages: list[Message] = []
        ids: list[str] = []
        by_anchor: dict[str | None, list[dict[str, Any]]] = {}
        for entry in followups:
            by_anchor.setdefault(entry["anchor"], []).append(entry)
        for entry in by_anchor.pop(None, []):
            messages += _followup_messages(entry)
        pick: int | None = None  # where the meta-model's early pick stands, until the card replaces it
        for i, snap in enumerate(snapshots):
            cid = snap.config["configurable"]["checkpoint_id"]
            ids.append(cid)
            if i > 0:
                prev = snapshots[i - 1]
                for node in prev.next:
                    if node == "__start__":
                        pick = None
                    shown = self._after(node, prev.values, snap)
                    if node == "respond" and shown and pick is not None:
                        del messages[pick]
                        pick = None
                    messages += shown
                    if node == "explain" and snap.values.get("candidates"):
                        pick = len(messages)
                        messages.append(say(pick_md(snap.values["candidates"], snap.values.get("profile"))))
            for task in snap.tasks:
                if task.error and STOPPED_BY_USER in str(task.error):  # the user's Stop, not a failure
                    if pick is not None:  # the pick stays, without its note that the LLM's answer follows
                        messages[pick] = say(str(messages[pick]["content"]).split("\n\n", 1)[0])
                    messages.append(say(STOPPED))
                elif task.error:
                    messages.append(say(f"⚠ **I could not finish this request:** {_error_text(str(task.error))}"))
            for entry in by_anchor.pop(cid, []):
                messages += _followup_messages(entry)
        for entries in by_anchor.values():  # anchors from a forked history: keep them, at the end
            for entry in entries:
                messages += _followup_messages(entry)
        return messages, ids

    def _after(self, node: str, before: dict[str, Any], snap: Any) -> list[Message]:
        """Messages for `node` having run: `before` is the state before it, `snap` the checkpoint after."""
        if (getattr(snap, "metadata", None) or {}).get("source") == "input":
            # A new request came in while `node` was still to run (an offer left unanswered): it never ran,
            # and nothing the user did not type is shown for it.
            return [say(UNANSWERED)] if node == "approve" else []
        renderer = RENDERERS.get(node)
        return renderer(Step(before, snap, self.plot_dir)) if renderer is not None else []


class RenderedThreads:
    """Each thread's rendered conversation, re-rendered only when the thread has changed.

    The history is re-read only when the thread has a new checkpoint or follow-up, so
    training progress (many updates, no new checkpoint) does not re-read it each time.

    Args:
        graph: the compiled graph (its checkpointer holds the threads).
        transcript: the threads' follow-ups.
        renderer: turns a history into messages.
        size: how many threads to keep.
    """

    def __init__(self, graph: Any, transcript: Transcript, renderer: ThreadRenderer, size: int = 256) -> None:
        self.graph = graph
        self.transcript = transcript
        self.renderer = renderer
        self.size = size
        self._cache: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, thread_id: str) -> tuple[list[Message], Any, set[str]]:
        """(messages, latest checkpoint, nodes run in the latest request)."""
        config = thread_config(thread_id)
        state = self.graph.get_state(config)
        entries = self.transcript.entries(thread_id)
        # Errors and interrupts are written to the latest checkpoint after it exists: part of the key.
        key = ((state.config or {}).get("configurable", {}).get("checkpoint_id"), len(entries),
               sum(1 for t in state.tasks if t.error), sum(len(t.interrupts or ()) for t in state.tasks))
        with self._lock:
            hit = self._cache.get(thread_id)
        if hit is not None and hit[0] == key:
            return hit[1]
        snaps = list(reversed(list(self.graph.get_state_history(config))))
        messages, _ = self.renderer.render(snaps, entries)
        last = snaps[-1] if snaps else None
        starts = [i for i, s in enumerate(snaps) if "__start__" in s.next]
        turn = snaps[starts[-1]:] if starts else snaps  # the latest request and what followed it
        result = (messages, last, {n for s in turn[:-1] for n in s.next})
        with self._lock:
            self._cache[thread_id] = (key, result)
            self._cache.move_to_end(thread_id)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return result


__all__ = ["RENDERERS", "RenderedThreads", "Step", "ThreadRenderer", "card_md"]
