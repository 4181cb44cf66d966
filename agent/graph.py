"""The MetaLLMiX graph: a task in, a judged recommendation out, training only on approval.

    START -> profile -> retrieve -> explain -> reason -> judge
    judge   -> reason   (draft failed, retries left: with the critique)
            -> respond  (draft passed, or retries spent: the meta-model's best, labelled fallback)
    respond -> approve  (interrupt: the offered config; nothing trains without an explicit yes)
    approve -> approve  (an edit to re-offer, or an answer that could not be used, with its message)
            -> train    (approved: exactly the offered config)
            -> END      (rejected)
    train   -> record -> END

Built from injected parts, so tests hand in fake chat models, a tiny store and a fake
meta-model, and the app hands in the real ones:

    graph = build_graph(Parts(llm=chat, kb=kb), checkpointer=SqliteSaver(conn))

`make_graph()` is the entry of `langgraph.json`: the real parts, no checkpointer (the
LangGraph server brings its own).
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent.context import Context
from agent.nodes import Nodes, timed
from agent.parts import Parts
from agent.state import InputState, State

Graph = CompiledStateGraph[State, Context, InputState, State]

NODES = ("profile", "retrieve", "explain", "reason", "judge", "respond", "approve", "train", "record")


def compile_graph(nodes: Nodes, *, checkpointer: Any | None = None, name: str = "metallmix") -> Graph:
    """Wire the nodes of `nodes` into the graph and compile it.

    Args:
        nodes: the node implementations around their parts.
        checkpointer: e.g. InMemorySaver() or SqliteSaver(conn); the approval interrupt needs one.
        name: the graph's name (shown in traces).
    """
    builder = StateGraph(State, input_schema=InputState, context_schema=Context)
    builder.add_node("profile", timed("profile", nodes.profile, first=True))
    builder.add_node("retrieve", timed("retrieve", nodes.retrieve))
    builder.add_node("explain", timed("explain", nodes.explain))
    builder.add_node("reason", timed("reason", nodes.reason))
    builder.add_node("judge", timed("judge", nodes.judge), destinations=("reason", "respond"))
    builder.add_node("respond", timed("respond", nodes.respond))
    builder.add_node("approve", nodes.approve, destinations=("approve", "train", END))
    builder.add_node("train", timed("train", nodes.train))
    builder.add_node("record", timed("record", nodes.record))
    builder.add_edge(START, "profile")
    builder.add_edge("profile", "retrieve")
    builder.add_edge("retrieve", "explain")
    builder.add_edge("explain", "reason")
    builder.add_edge("reason", "judge")
    builder.add_edge("respond", "approve")
    builder.add_edge("train", "record")
    builder.add_edge("record", END)
    graph = builder.compile(checkpointer=checkpointer, name=name)
    return graph


def build_graph(parts: Parts, *, checkpointer: Any | None = None) -> Graph:
    """The recommendation graph around `parts` (agent.parts.Parts).

    Args:
        parts: the chat models, knowledge base, meta-model, job starter and weights check.
        checkpointer: needed for the approval interrupt (InMemorySaver, SqliteSaver, ...).
    """
    return compile_graph(Nodes(parts), checkpointer=checkpointer)


def make_graph(config: RunnableConfig | None = None) -> Graph:
    """The graph with the real parts and no checkpointer: the entry of `langgraph.json`.

    The chat model is resolved (weights verified) here; the knowledge base, the embedder
    and the meta-model load on the first request.
    """
    from agent.llm import get_chat_model
    from knowledge.store import open_default

    return build_graph(Parts(llm=get_chat_model(max_tokens=320), judge_llm=get_chat_model(max_tokens=160),
                             kb=open_default()))


__all__ = ["NODES", "Graph", "build_graph", "compile_graph", "make_graph"]
