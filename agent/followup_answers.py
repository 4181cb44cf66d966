"""Follow-up answers read from the thread's state and the knowledge base: similar, compare, training, summary.

These quote what the thread already holds (the retrieved runs, the meta-model's candidates,
the recommendation, the training outcome) or what the knowledge base records, and predict
nothing. A question none of the intents covers gets either the data it would need (per-class
metrics, saliency maps and inference timings are not recorded) or a list of what can be asked.
"""

from __future__ import annotations

import re
from typing import Any

from agent.context import Context
from agent.followup_thread import FollowupAnswer, ThreadView, acc, no_recommendation
from agent.formatting import (
    CANDIDATE_COLUMNS,
    EVIDENCE_COLUMNS,
    EVIDENCE_LEGEND,
    accuracy_text,
    candidate_legend,
    candidate_note,
    config_text,
    duration_text,
)
from agent.intents import Intent, norm
from knowledge.schema import TrainConfig

# agent.prompting and tools.evidence are imported where an answer needs the knowledge base, so that
# the chat's import of agent.followup stays light.

# Questions this module cannot answer from a thread, and the data each would need.
_NOT_RECORDED = (
    (r"per.?class|confusion|sensitivity|specificity|precision|recall|roc\b|calibrat",
     "per-class metrics (the knowledge base records accuracy, macro AUC and F1 per run, not per class)"),
    (r"saliency|grad.?cam|heat ?map|attention map",
     "saliency maps of the trained network (SHAP here explains the meta-model's prediction, not the network)"),
    (r"inference (?:time|speed|latency)|throughput|deploy",
     "inference timings (runs record training time, not inference latency)"),
)


def answer_similar(t: ThreadView, store: Any) -> FollowupAnswer:
    """The most similar past runs: the thread's retrieved evidence, else a fresh search of the knowledge base."""
    evidence = list(t.state.get("evidence") or [])
    if not evidence and store is not None and t.profile:
        from agent.prompting import task_query

        try:
            query = task_query(t.profile, t.state.get("task") or "", Context())
            if hasattr(store, "search_vectors"):
                from tools.evidence import diverse_runs

                hits = diverse_runs(store, query, 8).runs
            else:
                hits = store.search(query, k=8)
        except Exception as exc:  # the index may be unavailable; say so rather than guess
            return FollowupAnswer(intent="missing", text=f"The knowledge base could not be searched: {exc}",
                                  missing=["a searchable knowledge base"])
        evidence = [{"alias": f"r{i}", "id": r.id, "dataset": r.dataset.name, "config": r.config.model_dump(mode="json"),
                     "status": r.outcome.status, "test_accuracy": r.outcome.test_accuracy,
                     "seconds": r.outcome.total_seconds, "distance": d} for i, (r, d) in enumerate(hits, start=1)]
    if not evidence:
        return FollowupAnswer(
            intent="missing",
            text="This conversation has no retrieved experiments yet: describe your task first, and I will list the "
                 "most similar past runs from the knowledge base.",
            missing=["retrieved past runs (describe the task first)"],
        )
    rows = [[e["alias"], e["dataset"], config_text(e["config"]), e.get("status", "?"),
             None if e.get("test_accuracy") is None else round(e["test_accuracy"], 3), duration_text(e.get("seconds")),
             round(float(e.get("distance", 0.0)), 3)] for e in evidence]
    ok = [e for e in evidence if e.get("test_accuracy") is not None]
    datasets = len({e["dataset"] for e in evidence})
    text = (f"{len(evidence)} similar past experiments from the knowledge base, on {datasets} dataset"
            f"{'s' if datasets != 1 else ''}: near your task but unlike each other, the nearest dataset's first.")
    if ok:
        best = max(ok, key=lambda e: e["test_accuracy"])
        text += (f" The best of them, {best['alias']} ({best['dataset']}, {config_text(best['config'])}), reached "
                 f"test accuracy {best['test_accuracy']:.2f} in {duration_text(best.get('seconds'))}.")
    return FollowupAnswer(intent="similar", text=text, columns=EVIDENCE_COLUMNS, rows=rows, legend=EVIDENCE_LEGEND)


def answer_compare(t: ThreadView, intent: Intent) -> FollowupAnswer:
    """The meta-model's candidates side by side (those the question names, else all), the pick marked."""
    cands = list(t.state.get("candidates") or [])
    if not cands:
        return no_recommendation("compare")
    wanted = set(intent.candidates)
    shown = [c for c in cands if not wanted or c["id"] in wanted]
    unknown = sorted(wanted - {c["id"] for c in cands})
    current = t.config()
    key = current[0].key() if current else None
    rows = [[c["id"], config_text(c["config"]), acc(c), duration_text(c["seconds"]), c.get("support", 0),
             candidate_note(c, recommended=TrainConfig.model_validate(c["config"]).key() == key)] for c in shown]
    text = f"The meta-model's candidates for this task ({len(shown)} shown, best predicted first)."
    if unknown:
        text += f" There is no candidate {', '.join(unknown)} in this conversation (it has {', '.join(c['id'] for c in cands)})."
    if len(shown) >= 2:
        a, b = shown[0], shown[1]
        text += (f" {a['id']} is predicted {a['accuracy'] - b['accuracy']:+.2f} versus {b['id']} and takes "
                 f"{duration_text(a['seconds'])} versus {duration_text(b['seconds'])}.")
    return FollowupAnswer(intent="compare", text=text, columns=CANDIDATE_COLUMNS, rows=rows, legend=candidate_legend())


def answer_training(t: ThreadView, store: Any) -> FollowupAnswer:
    """How the thread's training run went, against the meta-model's prediction for it."""
    training = t.state.get("training")
    decision = t.state.get("decision") or {}
    if not training:
        if decision.get("status") == "rejected":
            why = "the recommendation was rejected, so nothing was trained"
        elif t.rec is not None:
            why = "nothing has been trained yet: approve the offered configuration to train it"
        else:
            why = "there is no recommendation yet"
        return FollowupAnswer(intent="missing", text=f"There is no training run in this conversation: {why}.",
                              missing=["a finished training run"])
    status = training.get("status")
    if status in (None, "error"):
        return FollowupAnswer(intent="training", text=f"The training job failed before it produced metrics: "
                                                      f"{training.get('error') or 'no error message was recorded'}.")
    lines = [f"The training run ended **{status}** after {duration_text(training.get('seconds'))}."]
    test, val = training.get("test_accuracy"), training.get("val_accuracy")
    if test is not None:
        lines.append(f"Test accuracy {test:.3f}" + (f", validation accuracy {val:.3f}." if val is not None else "."))
    rec = t.rec or {}
    if test is not None and rec.get("accuracy_interval"):
        low, high = rec["accuracy_interval"]
        where = "inside" if low <= test <= high else ("above" if test > high else "below")
        lines.append(f"The meta-model predicted {accuracy_text(rec['expected_accuracy'], low, high)}: the result is "
                     f"{where} that interval; predicted time was {duration_text(rec.get('expected_seconds'))}.")
    record_id = training.get("record_id")
    if record_id and store is not None and hasattr(store, "get"):
        r = store.get(record_id)
        if r is not None:
            o = r.outcome
            extra = [f"{n} {v:.3f}" for n, v in (("test AUC", o.test_auc), ("test F1", o.test_f1)) if v is not None]
            if extra:
                lines.append("Also recorded: " + ", ".join(extra) + ".")
    if record_id:
        lines.append(f"It is in the knowledge base as record {record_id}, so future recommendations learn from it.")
    if status == "cancelled":
        lines.append("The run was cancelled, so its metrics cover the epochs that finished.")
    return FollowupAnswer(intent="training", text=" ".join(lines))


def answer_summary(t: ThreadView) -> FollowupAnswer:
    """The configuration under discussion and its predicted accuracy and time."""
    current = t.config()
    if current is None or t.rec is None:
        return no_recommendation("summary")
    config, label = current
    rec = t.rec
    text = (f"{label.capitalize()}: **{config_text(config)}**, predicted test accuracy "
            f"{accuracy_text(rec['expected_accuracy'], *rec['accuracy_interval'])} in "
            f"{duration_text(rec['expected_seconds'])}.")
    return FollowupAnswer(intent="summary", text=text, config=config.model_dump(mode="json"))


def answer_unknown(t: ThreadView, question: str) -> FollowupAnswer:
    """A question no intent covers: the data it would need, or what can be asked."""
    q = norm(question)
    for pattern, what in _NOT_RECORDED:
        if re.search(pattern, q):
            return FollowupAnswer(intent="missing", text=f"I cannot answer that from this conversation: it needs {what}.",
                                  missing=[what])
    return FollowupAnswer(
        intent="unknown",
        text=("I can answer, from this conversation: *why this learning rate?* (or any hyperparameter, backbone, mode), "
              "*what if I only have 10 minutes?*, *what about resnet18?*, *what if I fine-tune?*, *what if lr=0.01?*, "
              "*show similar experiments*, *compare the candidates*, *how did training go?*. To start over, describe a "
              "new task."),
    )
