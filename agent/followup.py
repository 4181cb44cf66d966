"""Follow-up questions about a recommendation, answered from the thread's state.

    answer = answer_followup(state, "what if I only have 10 minutes?", metamodel, store)
    print(answer.markdown())

The state is the graph's (`agent.state.State` as a plain dict): the profile, the retrieved
runs, the meta-model's candidates, the recommendation, the offer, the training outcome.
Nothing is invented: every number in an answer is read from that state or predicted by the
meta-model for a named configuration, and a question that needs data the thread does not
have says which data is missing.

The question's intent is read by agent.intents (deterministic rules first; a chat model, when
given, only where they find nothing). What-if answers re-run the judge's deterministic
checks (`agent.judge.run_checks`) on the changed configuration, so a what-if is held to
the same rules as the recommendation.

This module reads the intent and dispatches: agent.followup_whatif answers why, what-if and
budget questions through the meta-model; agent.followup_answers answers similar, compare,
training, summary and unknown questions from the state and the knowledge base; both build on
agent.followup_thread (the answer type, the thread's state, predictions and checks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.followup_answers import answer_compare, answer_similar, answer_summary, answer_training, answer_unknown
from agent.followup_thread import FollowupAnswer, ThreadView, recheck
from agent.followup_whatif import answer_what_if, answer_why
from agent.intents import detect_intent, parse_changes, read_intent
from tools.weights import weights_available as default_weights_available


def answer_followup(
    state: dict[str, Any],
    question: str,
    metamodel: Any,
    store: Any,
    *,
    llm: Any | None = None,
    weights_available: Callable[[str], bool] | None = None,
    plot_dir: str | None = None,
    accuracy_tolerance: float = 0.05,
    max_accuracy_gap: float = 0.05,
) -> FollowupAnswer:
    """Answer a follow-up question from a thread's state.

    Args:
        state: the thread's graph state (a dict; `graph.get_state(config).values`).
        question: the question as the user typed it.
        metamodel: the fitted meta-model (`predict`, `explain`, `candidates`, `shap_plot`); None
            answers what it can from the state and says what needs the meta-model.
        store: the knowledge base (`records`, `search`, `get`); may be None.
        llm: optional chat model used only to classify a question the rules do not recognise.
        weights_available: whether a backbone's pretrained weights exist here (default: look on disk).
        plot_dir: where a SHAP plot of a changed configuration may be written; None writes none.
        accuracy_tolerance: the judge's tolerance (agent.context.Context).
        max_accuracy_gap: the judge's competitive gap (agent.context.Context).

    Returns:
        The answer; `intent == "missing"` when the thread lacks the data, with `missing` naming it.
    """
    weights = weights_available or default_weights_available
    question = (question or "").strip()
    if not question:
        return FollowupAnswer(intent="unknown", text="Ask a question about the recommendation, or describe a task.")
    t = ThreadView(state)
    intent = read_intent(question, llm)
    if intent.kind == "why":
        answer = answer_why(t, intent, metamodel, weights, plot_dir)
    elif intent.kind == "what_if":
        answer = answer_what_if(t, intent, metamodel, store, weights, accuracy_tolerance, max_accuracy_gap)
    elif intent.kind == "similar":
        answer = answer_similar(t, store)
    elif intent.kind == "compare":
        answer = answer_compare(t, intent)
    elif intent.kind == "training":
        answer = answer_training(t, store)
    elif intent.kind == "summary":
        answer = answer_summary(t)
    else:
        answer = answer_unknown(t, question)
    if intent.source == "llm":
        how = intent.kind.replace("_", "-") + (f" about {intent.param}" if intent.param else "")
        answer.understood_as = how
        answer.text = f"(I read this as a {how} question.)\n\n{answer.text}"
    return answer


# detect_intent and parse_changes live in agent.intents; re-exported until the chat reads messages through
# agent.chat.router.
__all__ = ["FollowupAnswer", "ThreadView", "answer_followup", "detect_intent", "parse_changes", "recheck"]
