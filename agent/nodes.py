"""The nodes of the recommendation graph, built around injected parts.

`Nodes` holds the parts a request needs (chat models, knowledge base, meta-model, job
starter) and caches what is expensive to build (the meta-model, dataset profiles, weight
availability) for the life of the process; each node is a method taking the state and the
runtime and returning a state update (or a `Command` where it routes). The steps live in
modules by what they share, and `Nodes` puts them together:

- agent.nodes_base: the parts, and the prediction and offer every later step states;
- agent.nodes_evidence: profile, retrieve, explain (what the recommendation rests on);
- agent.nodes_draft: reason, judge, respond (the LLM's draft, its checks, the answer);
- agent.nodes_approval: approve, train, record (the approval and what follows it).

Side effects live in `train` and `record` only, behind an approval; `approve` does nothing
before its `interrupt()` (a resumed node re-runs from its top). `timed` wraps a node to
add its wall time to the state's timings.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from langgraph.types import Command, Overwrite

from agent.errors import TaskError, TrainingNotApproved
from agent.formatting import data_text
from agent.nodes_approval import RESUME_HELP, RESUME_SCHEMA, ApprovalNodes, job_id_for, new_job_id
from agent.nodes_approval import _read_answer as _read_answer  # tests read resume values through it
from agent.nodes_draft import RETRY_TEMPERATURE, DraftNodes
from agent.nodes_evidence import EvidenceNodes
from agent.prompting import reason_messages, task_query
from agent.prompts import prompt
from agent.state import add_seconds


# ------------------------------------------------------------------------------ timing
def timed(name: str, fn: Callable[..., Any], *, first: bool = False) -> Callable[..., Any]:
    """Wrap a node so its wall time is added to `timings[name]` (retries add up).

    `functools.wraps` keeps the node's signature visible, so LangGraph still injects
    `runtime` and `config`. The `first` node of a request overwrites the timings instead,
    so a second request in the same thread starts from zero.
    """

    @functools.wraps(fn)
    def node(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = {name: round(time.perf_counter() - start, 6)}
        if isinstance(out, Command):
            update = dict(out.update or {})
            update["timings"] = add_seconds(update.get("timings"), seconds)
            return Command(graph=out.graph, update=update, resume=out.resume, goto=out.goto)
        out = dict(out or {})
        out["timings"] = Overwrite(seconds) if first else add_seconds(out.get("timings"), seconds)
        return out

    return node


class Nodes(EvidenceNodes, DraftNodes, ApprovalNodes):
    """The graph's nodes around their parts (agent.parts.Parts).

    Built as `Nodes(parts)`; the node methods come from the step classes it joins.
    """


__all__ = ["RESUME_HELP", "RESUME_SCHEMA", "RETRY_TEMPERATURE", "Nodes", "TaskError", "TrainingNotApproved", "data_text",
           "job_id_for", "new_job_id", "prompt", "reason_messages", "task_query", "timed"]
