"""The steps after the offer: approve, train and record, with the run folder names they use.

`approve` interrupts for an explicit answer and routes by it (an edit is re-offered, an
unusable answer is asked again with its problem); `train` starts, or re-attaches to, the job
of exactly the approved config and streams its progress; `record` brings the search index up
to date. These are the graph's only side effects, all behind the approval, and `approve`
does nothing before its `interrupt()` (a resumed node re-runs from its top).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from agent import judge as J
from agent.context import Context
from agent.errors import TrainingNotApproved
from agent.intents import apply_changes
from agent.nodes_base import NodeBase
from agent.state import State
from knowledge.schema import TrainConfig

log = logging.getLogger(__name__)

RESUME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["approve", "edit", "reject"]},
        "config": {"type": "object", "description": "approve: must equal the offered config; edit: fields to change"},
        "dataset": {"type": "string", "description": "the dataset to train on, when the offer has none"},
        "reason": {"type": "string", "maxLength": 500},
        "said": {"type": "string", "maxLength": 500,
                 "description": "the words the user typed, shown as their message (else the action's name)"},
    },
    "required": ["action"],
}
RESUME_HELP = {
    "approve": {"action": "approve"},
    "edit": {"action": "edit", "config": {"epochs": 5}},
    "reject": {"action": "reject", "reason": "..."},
}


def thread_id_of(config: RunnableConfig | None) -> str:
    """The thread a node runs in (its checkpoint's `thread_id`), "no-thread" outside one."""
    return str(((config or {}).get("configurable") or {}).get("thread_id") or "no-thread")


def job_id_for(thread_id: str, config: TrainConfig) -> str:
    """The run folder name of a thread's first training of a config (see `new_job_id` for the next ones)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", thread_id).strip("._")[:48] or "thread"
    return f"{safe}-{config.key()}"


def new_job_id(thread_id: str, config: TrainConfig, runs: str | os.PathLike[str] | None) -> str:
    """A run folder name no earlier job has: `job_id_for`, then "-2", "-3", ... for the same config
    approved again in the same thread (the same id would re-attach to the finished first run)."""
    from tools.jobs import runs_dir

    root = Path(runs) if runs else runs_dir()
    base = job_id_for(thread_id, config)
    job_id, n = base, 1
    while (root / job_id).exists():
        n += 1
        job_id = f"{base}-{n}"
    return job_id


class ApprovalNodes(NodeBase):
    """The approve, train and record nodes."""

    def approve(self, state: State, runtime: Runtime[Context], config: RunnableConfig) -> Command[Any]:
        """Ask for approval of the exact offered config; route by the answer.

        Nothing happens before `interrupt()`: on resume this node re-runs from the top.
        """
        ctx = runtime.context or Context()
        offer = state["offer"]
        payload = {
            "type": "approval",
            "question": "Train this exact configuration? Resume with one of `resume`.",
            **offer,
            "resume": RESUME_HELP,
        }
        answer = interrupt(payload, response_schema=RESUME_SCHEMA)
        action, fields, problem = _read_answer(answer)
        said = str(fields.get("said") or "")[:500] or None  # what the user typed, the chat shows it as typed
        offer = {**offer, "said": said}
        if problem:
            return Command(goto="approve", update={"offer": {**offer, "error": problem}})
        if action == "reject":
            return Command(goto=END, update={
                "decision": {"status": "rejected", "reason": str(fields.get("reason") or "")[:500],
                             **({"said": said} if said else {})},
                "approval": None, "offer": {**offer, "error": None},
            })
        proposed = fields.get("config")
        if proposed is not None and not isinstance(proposed, dict):
            return Command(goto="approve", update={"offer": {**offer, "error": "config must be a JSON object."}})
        if action == "edit" or (proposed is not None and _normalised(proposed, offer) != offer["key"]):
            edited, problems = J.validate_config(
                apply_changes(offer["config"], proposed or {}), backbones=state["profile"].get("backbones"),
                modes=state["profile"].get("modes"), weights_available=self.weights_available,
            )
            if edited is None or problems:
                message = "the edited configuration was refused: " + " ".join(problems)
                return Command(goto="approve", update={"offer": {**offer, "error": message}})
            new_offer = self._offer(state["profile"], edited, self._predict(state["profile"], edited),
                                    dataset=offer.get("dataset"))
            new_offer["note"] = "edited: approve this exact configuration to train it"
            new_offer["said"] = said
            return Command(goto="approve", update={"offer": new_offer})
        dataset = offer.get("dataset") or fields.get("dataset")
        if not dataset:
            return Command(goto="approve", update={"offer": {**offer, "error": (
                "training needs a dataset: resume with {\"action\": \"approve\", \"dataset\": \"PATH\"}, or reject.")}})
        if not ctx.allows(dataset) or not Path(dataset).expanduser().exists():
            return Command(goto="approve", update={"offer": {**offer, "error": (
                f"cannot train on {dataset!r}: it does not exist or lies outside the allowed folders.")}})
        # Named once here, after the answer (a node re-runs from its top on resume): train re-attaches
        # to this job after a restart, and a second approval of the same config is a new job.
        job_id = new_job_id(thread_id_of(config), TrainConfig.model_validate(offer["config"]), ctx.runs_dir)
        return Command(goto="train", update={
            "approval": {"config": offer["config"], "key": offer["key"], "dataset": str(dataset), "job_id": job_id},
            "decision": {"status": "approved", **({"said": said} if said else {})}, "offer": {**offer, "dataset": str(dataset), "error": None},
        })

    def train(self, state: State, runtime: Runtime[Context], config: RunnableConfig) -> dict[str, Any]:
        """Start (or re-attach to) the training job of the approved config; stream its progress."""
        ctx = runtime.context or Context()
        approval = state.get("approval")
        offer = state.get("offer") or {}
        if not approval:
            raise TrainingNotApproved("refusing to train: no configuration was approved in this thread.")
        chosen = TrainConfig.model_validate(approval["config"])
        if chosen.key() != approval["key"] or approval["key"] != offer.get("key"):
            raise TrainingNotApproved(
                "refusing to train: the approved configuration is not the one offered for approval "
                f"(approved {approval['key']}, offered {offer.get('key')}); approve the offered config again."
            )
        from tools.jobs import drive

        meta = state["profile"]["meta"]
        job = self.parts.job_starter()(
            approval["dataset"], chosen, seed=ctx.seed, kb_root=getattr(self.store, "root", None),
            runs=ctx.runs_dir, job_id=approval.get("job_id") or job_id_for(thread_id_of(config), chosen),
            modality=None if meta["modality"] == "unknown" else meta["modality"], body_part=meta.get("body_part"),
        )
        write = get_stream_writer()
        write({"type": "job", "job_id": job.id, "run_dir": str(job.run_dir)})
        ended: dict[str, Any] = {}

        def forward(event: dict[str, Any]) -> None:
            if event.get("event") == "end":
                ended.update(event)
            write({"type": "train", **event})

        finished = drive(job, forward)
        record = finished.record
        training: dict[str, Any] = {"job_id": job.id, "run_dir": str(job.run_dir)}
        if record is None:
            training.update(status="error", error=finished.error)
        else:
            o = record.outcome
            # seconds: the record's total (what a time prediction is scored on); train_seconds and
            # feature_seconds apart, with whether the features came from an earlier run's cache,
            # so the chat reports the run's own time.
            training.update(status=o.status, record_id=record.id, test_accuracy=o.test_accuracy,
                            val_accuracy=o.val_accuracy, seconds=o.total_seconds, train_seconds=o.train_seconds,
                            feature_seconds=o.feature_seconds, features_cached=ended.get("cache") == "hit",
                            error=o.error)
        write({"type": "train_done", **training})
        return {"training": training}

    def record(self, state: State) -> dict[str, Any]:
        """Report the new knowledge-base record and bring the search index up to date."""
        training = state.get("training") or {}
        record_id = training.get("record_id")
        index: dict[str, int] | None = None
        if record_id and hasattr(self.store, "sync_index"):
            try:
                index = self.store.sync_index()
            except Exception as exc:  # the JSONL holds the record; the index re-syncs on the next search
                log.warning("index sync failed: %s", exc)
        return {"recorded": {"record_id": record_id, "index": index, "status": training.get("status")}}


def _read_answer(answer: Any) -> tuple[str, dict[str, Any], str | None]:
    """(action, fields, problem) from a resume value; shorthands True/False/"approve"/"reject"."""
    if answer is True or (isinstance(answer, str) and answer.strip().lower() in ("approve", "yes", "y")):
        return "approve", {}, None
    if answer is False or (isinstance(answer, str) and answer.strip().lower() in ("reject", "no", "n")):
        return "reject", {}, None
    if isinstance(answer, dict) and answer.get("action") in ("approve", "edit", "reject"):
        if answer["action"] == "edit" and not isinstance(answer.get("config"), dict):
            return "edit", {}, "an edit needs the fields to change: {\"action\": \"edit\", \"config\": {\"epochs\": 5}}."
        return str(answer["action"]), answer, None
    return "", {}, (f"cannot read the answer {str(answer)[:200]!r}: resume with {{\"action\": \"approve\"}}, "
                    "{\"action\": \"edit\", \"config\": {...}} or {\"action\": \"reject\"}.")


def _normalised(proposed: dict[str, Any], offer: dict[str, Any]) -> str | None:
    """The key of the offered config with `proposed` on top (None when that is invalid)."""
    try:
        return TrainConfig.model_validate(apply_changes(offer["config"], proposed)).key()
    except Exception:
        return None
