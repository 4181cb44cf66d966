"""What the LLM is shown: the reasoner's and the judge's prompts, built from the graph's state.

The reasoner sees the task, the data, the constraints, the meta-model's candidates, the SHAP
drivers of the first, the similar past runs and contrasts computed from them (agent.facts).
The judge's prompt is the reasoner's conversation with its answer and the judging request, so
llama.cpp reuses the cached tokens of the shared prefix. Also the retrieval query
(`task_query`) and the record lookup the evidence lines come from (`stored_records`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agent import judge as J
from agent.context import Context
from agent.facts import contrast_facts
from agent.formatting import config_text, data_text, duration_text
from agent.prompts import prompt
from agent.state import State


def constraints_text(profile: dict[str, Any]) -> str:
    parts = [f"budget {duration_text(profile['budget_seconds'])}" if profile.get("budget_seconds") else "no time budget",
             f"device {profile['device']}"]
    if profile.get("backbones"):
        parts.append("backbones " + ", ".join(profile["backbones"]))
    if profile.get("modes"):
        parts.append("modes " + ", ".join(profile["modes"]))
    goals = profile.get("goals") or {}
    if goals.get("objective"):
        parts.append({"accuracy": "the user wants the most accurate", "speed": "the user wants the fastest that is "
                      "good enough"}[goals["objective"]])
    if goals.get("worries"):
        parts.append("the user worries about " + ", ".join(w.replace("_", " ") for w in goals["worries"]))
    if goals.get("compare"):
        parts.append("the user asks to compare " + " with ".join(goals["compare"]))
    return "; ".join(parts)


def candidate_line(c: dict[str, Any]) -> str:
    """"c1 <config>: 0.71 ±0.04, 3.2 min": its predicted accuracy, how far the dataset-bootstrap
    models disagree on it (shown when they do; the ranking counts it against the candidate) and its time."""
    flag = " (over budget)" if c.get("over_budget") else ""
    spread = f" ±{c['spread']:.2f}" if round(c.get("spread") or 0.0, 2) > 0 else ""
    return f"{c['id']} {config_text(c['config'])}: {c['accuracy']:.2f}{spread}, {duration_text(c['seconds'])}{flag}"


def evidence_line(e: dict[str, Any]) -> str:
    result = f"{e['test_accuracy']:.2f}" if e.get("test_accuracy") is not None else e["status"]
    c = e["config"]
    size = f" {c['input_size']}px" if c["input_size"] != 64 else ""
    return (f"{e['alias']} {e['dataset']} {c['backbone']}/{c['mode']}{size} {c['optimizer']} lr={c['learning_rate']:.3g}: "
            f"{result}, {duration_text(e['seconds'])}")


def shap_line(explanation: dict[str, Any], top: int = 3) -> str:
    """The SHAP drivers of the top candidate in one line (prompt tokens cost latency)."""
    parts = []
    for name, value, c in explanation.get("contributions", [])[:top]:
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{name}={shown} {c:+.2f}")
    return "; ".join(parts) + f" (average run {explanation['base_value']:.2f})"


def stored_records(store: Any, ids: Sequence[str]) -> list[Any]:
    """The store's records with these ids, in their order (ids it lacks are skipped).

    Looked up one by one (`get`, the store's cached id map): a dict of every record built
    per request would cost time that grows with the store.
    """
    get = getattr(store, "get", None)
    if get is None:
        by_id = {r.id: r for r in store.records()}
        get = by_id.get
    return [r for r in map(get, ids) if r is not None]


def prompt_evidence(state: State, ctx: Context) -> list[dict[str, Any]]:
    """The past runs shown to the LLM: the nearest ones that ran (ok or diverged)."""
    ran = [e for e in state.get("evidence", []) if e["status"] in ("ok", "diverged")]
    return ran[: ctx.k_prompt]


def shown_accuracies(state: State, ctx: Context) -> list[float]:
    """The accuracies the reasoner's prompt shows besides the candidates' (a rationale may quote them)."""
    values = [e["test_accuracy"] for e in prompt_evidence(state, ctx) if e.get("test_accuracy") is not None]
    explanation = state.get("explanation") or {}
    if explanation.get("base_value") is not None:
        values.append(explanation["base_value"])
    return values


def reason_messages(state: State, ctx: Context) -> list[BaseMessage]:
    """The reasoner's prompt. The judge reuses it as its prefix (llama.cpp then reuses the
    KV cache of the shared tokens), so it must depend only on state the judge sees too."""
    profile = state["profile"]
    cands = state["candidates"]
    shown = prompt_evidence(state, ctx)
    assumed = sorted({a.split("=")[0] for a in profile["assumed"]} - {"device"})  # the device is in the constraints
    user = prompt("reason_user").format(
        task=profile.get("task_text", state.get("task") or "").strip()[: ctx.task_chars] or "(none: see the data)",
        data=data_text(profile) + (f" (assumed: {', '.join(assumed)})" if assumed else ""),
        constraints=constraints_text(profile),
        candidates="\n".join(candidate_line(c) for c in cands),
        top_id=cands[0]["id"],
        shap=shap_line(state["explanation"]),
        evidence="\n".join(evidence_line(e) for e in shown) or "none",
        facts="\n".join(contrast_facts(cands, shown, profile.get("goals"))) or "none",
    )
    if state.get("critique"):
        user += prompt("reason_retry").format(critique=state["critique"])
    return [SystemMessage(prompt("reason_system").strip()), HumanMessage(user.strip())]


def judge_messages(state: State, ctx: Context, raw_draft: Any) -> list[BaseMessage]:
    """The judge's prompt: the reasoner's conversation, its answer, then the judging request."""
    # Short (its tokens are the judge's cost) and without "the best candidate is c1": primed
    # with it, the judge called every other choice a wrong id; whether a choice is
    # competitive, in budget and true to the numbers is the deterministic checks' call.
    text = prompt("judge")
    # The reasoner's own text, when it is usable as is: its tokens are still in llama.cpp's
    # KV cache after the reason call, so the judge re-reads none of them.
    answer = state.get("draft_text") or J.short_json(raw_draft)
    return [*reason_messages(state, ctx), AIMessage(answer), HumanMessage(text.strip())]


def task_query(profile: dict[str, Any], text: str, ctx: Context) -> str:
    """The retrieval query: the task described the way records describe themselves."""
    m = profile["meta"]
    body = f" {m['body_part']}" if m.get("body_part") else ""
    name = f" Dataset {profile['dataset_name']}." if profile.get("dataset_name") else ""
    return (f"{m['modality']}{body} {m['task_type']} classification, {m['n_classes']} classes, {m['n_instances']} images, "
            f"{m['resolution']}px {'RGB' if m['channels'] == 3 else 'grey'}, imbalance {m['imbalance_ratio']:.1f}.{name} "
            f"{text.strip()[: ctx.task_chars]}").strip()


__all__ = [
    "candidate_line", "constraints_text", "evidence_line", "judge_messages", "prompt_evidence", "reason_messages",
    "shap_line", "shown_accuracies", "stored_records", "task_query",
]
