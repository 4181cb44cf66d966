"""Does the judge tell good drafts from bad ones? Deterministic checks vs the LLM judge.

For each task, the real pipeline (knowledge base, retrieval, meta-model) builds the state
the judge sees; then up to six drafts are judged, each written from that state's own numbers:

- good: the top candidate, quoting its real predicted accuracy and time (should pass);
- wrong_number: the same sentence with an accuracy no candidate or run shows;
- wrong_claim: the least accurate candidate called "the most accurate" (no number quoted);
- wrong_comparison: the top candidate, whose rationale says the least accurate one is predicted
  more accurate than it (where the two differ);
- wrong_claim_no_id: the least accurate candidate, whose rationale calls "it" the most accurate
  without naming it (where it is not the top one);
- vague: the top candidate, "a good configuration for this task" (no reason, no evidence).

Each draft goes through the deterministic checks and, separately, the real LLM judge (the
graph only asks the LLM when the checks pass; here it is asked every time so its own
discrimination shows). Printed: per kind, how often each part rejects it, and the LLM call
time. A good judge rejects every bad kind and passes `good`.

Usage:
    python -m bench.judge_quality [--tasks 6] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.latency import TASKS  # noqa: E402

KINDS = ("good", "wrong_number", "wrong_claim", "wrong_comparison", "wrong_claim_no_id", "vague")


def drafts_for(candidates: list[dict[str, Any]], budget_text: str) -> dict[str, dict[str, Any]]:
    """The drafts for one task, written from its real candidates."""
    top = candidates[0]
    worst = min(candidates, key=lambda c: c["accuracy"])
    seconds = f"{top['seconds']:.0f} s"
    shown = {round(v, 2) for c in candidates for v in (c["accuracy"], c["low"], c["high"])}
    wrong = next(v for v in (0.97, 0.41, 0.58, 0.77, 0.23) if all(abs(v - s) > 0.02 for s in shown))
    drafts = {
        "good": {"candidate": top["id"], "cite": [top["id"]],
                 "rationale": f"{top['id']} has the highest predicted accuracy ({top['accuracy']:.2f}) and trains in "
                              f"about {seconds}, {budget_text}."},
        "wrong_number": {"candidate": top["id"], "cite": [top["id"]],
                         "rationale": f"{top['id']} has the highest predicted accuracy ({wrong:.2f}) and trains in "
                                      f"about {seconds}, {budget_text}."},
        "wrong_claim": {"candidate": worst["id"], "cite": [worst["id"]],
                        "rationale": f"{worst['id']} is the most accurate candidate, clearly ahead of all the others."},
        "vague": {"candidate": top["id"], "cite": [top["id"]],
                  "rationale": "This is a good configuration for this kind of task."},
    }
    if worst["accuracy"] < top["accuracy"] - 0.005:
        drafts["wrong_comparison"] = {
            "candidate": top["id"], "cite": [top["id"], worst["id"]],
            "rationale": f"{top['id']} trains in about {seconds}, {budget_text}, though {worst['id']} has a higher "
                         f"predicted accuracy than {top['id']}."}
        drafts["wrong_claim_no_id"] = {
            "candidate": worst["id"], "cite": [worst["id"]],
            "rationale": f"It has the highest predicted accuracy of the candidates and trains in about "
                         f"{worst['seconds']:.0f} s, {budget_text}."}
    return drafts


class _Capture:
    """A chat model that records the reasoner's state and gives no answer."""

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
        from langchain_core.runnables import RunnableLambda

        def fail(messages: Any) -> Any:
            raise RuntimeError("captured")

        return RunnableLambda(fail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=6, help="use the first N tasks of bench.latency")
    parser.add_argument("--model", default=None, help="embedded model name (default: agent.llm's default)")
    parser.add_argument("--kb-dir", default=None)
    args = parser.parse_args(argv)

    from agent import judge as J
    from agent.context import Context
    from agent.llm import get_chat_model
    from agent.nodes import Nodes, judge_messages, shown_accuracies
    from agent.recommend import Recommender
    from knowledge.store import open_default

    data = Path(os.environ.get("METALLMIX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    judge_llm = get_chat_model(model=args.model, max_tokens=160)
    ctx = Context(max_judge_retries=0)
    r = Recommender(llm=_Capture(), judge_llm=_Capture(), kb=open_default(args.kb_dir), context=ctx)
    nodes = Nodes(r.parts)  # the graph's nodes over the same parts: its meta-model and weights check
    rows: dict[str, list[tuple[bool, bool | None, float]]] = {k: [] for k in KINDS}
    examples: dict[str, str] = {}
    for text, dataset in TASKS[: args.tasks]:
        rec = r.recommend(text, dataset=str(data / dataset) if dataset else None)
        state = dict(r.graph.get_state({"configurable": {"thread_id": rec.thread_id}}).values)
        profile, candidates = state["profile"], state["candidates"]
        budget = profile.get("budget_seconds")
        budget_text = f"well within the {budget / 60:.0f} minute budget" if budget else "with no time budget to meet"
        aliases = [e["alias"] for e in state.get("evidence", [])[: ctx.k_prompt]]
        for kind, raw in drafts_for(candidates, budget_text).items():
            draft_dict = J.complete_draft(raw, candidates)
            draft, error = J.parse_draft(draft_dict)
            config = J.merge_config(draft, candidates)
            prediction = nodes._predict(profile, config)
            checks = J.run_checks(
                draft=draft, draft_error=error, candidates=candidates, evidence_aliases=aliases, config=config,
                config_error=None, prediction=prediction, profile=profile, weights_available=nodes.weights_available,
                accuracy_tolerance=ctx.accuracy_tolerance, max_accuracy_gap=ctx.max_accuracy_gap,
                shown_accuracies=shown_accuracies(state, ctx),
            )
            checks_reject = not all(c.ok for c in checks)
            # The judge reads the answer as the model writes it: the candidate and the rationale.
            answer = json.dumps({"candidate": raw["candidate"], "rationale": raw["rationale"]})
            judged = {**state, "draft": draft_dict, "draft_text": answer, "critique": None}
            start = time.perf_counter()
            scores, judge_error = J.llm_scores(judge_llm, judge_messages(judged, ctx, draft_dict))
            seconds = time.perf_counter() - start
            llm_reject = None if scores is None else not J.passes(scores, ctx.min_judge_score)
            rows[kind].append((checks_reject, llm_reject, seconds))
            label = "error: " + str(judge_error) if scores is None else (scores.problem or "none")
            examples.setdefault(kind, f"{raw['rationale']!r} -> LLM: {label} ({scores.critique if scores else ''})")
            print(f"{text[:40]:40}  {kind:17} checks {'reject' if checks_reject else 'pass  '}  "
                  f"LLM {label:20} {seconds:5.1f} s", flush=True)

    print("\nkind               n  checks reject  LLM reject  either rejects  LLM p50 s")
    for kind in KINDS:
        got = rows[kind]
        n = len(got)
        if not n:  # wrong_comparison needs a candidate predicted below the top one
            continue
        ck = sum(c for c, _, _ in got)
        ll = sum(bool(v) for _, v, _ in got)
        either = sum(c or bool(v) for c, v, _ in got)
        errors = sum(v is None for _, v, _ in got)
        p50 = statistics.median(s for _, _, s in got)
        note = f"  ({errors} judge errors)" if errors else ""
        print(f"{kind:17} {n:2}  {ck:6}/{n:<6}  {ll:5}/{n:<5}  {either:7}/{n:<7}  {p50:8.1f}{note}")
    good = rows["good"]
    bad = [x for k in KINDS[1:] for x in rows[k]]
    print(f"\ngood drafts passed by both: {sum(not c and not v for c, v, _ in good)}/{len(good)}; "
          f"bad drafts caught by checks alone {sum(c for c, _, _ in bad)}/{len(bad)}, by the LLM alone "
          f"{sum(bool(v) for _, v, _ in bad)}/{len(bad)}, by either {sum(c or bool(v) for c, v, _ in bad)}/{len(bad)}")
    for kind, line in examples.items():
        print(f"example {kind}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
