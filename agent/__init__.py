"""MetaLLMiX's agent: the LangGraph state machine that turns a task into a recommendation.

Imports are lazy so that `import agent` stays fast (the graph pulls in LangGraph, the
recommendation pulls in pydantic models; the real parts load only when used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.graph import build_graph
    from agent.recommend import Recommender, recommend
    from agent.recommendation import Recommendation, render_text

__all__ = ["Recommendation", "Recommender", "build_graph", "recommend", "render_text"]

_WHERE = {
    "build_graph": "agent.graph",
    "Recommendation": "agent.recommendation",
    "Recommender": "agent.recommend",
    "recommend": "agent.recommend",
    "render_text": "agent.recommendation",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
