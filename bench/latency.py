"""Time to recommend: p50/p95 over varied tasks, per node, LLM vs everything else.

Goals (issue 3): p50 <= 10 s and p95 <= 20 s per recommendation on a 2-core CPU, and
everything except the LLM calls <= 0.3 s once warm.

The parts (embedded LLM, knowledge base + Chroma index, meta-model) are built and warmed
once, untimed, as in a long-running app; then each task runs through the graph up to the
approval interrupt. Printed: one row per task (total, LLM, the rest, drafts, judge, and "cut..." when
the rationale was cut off at its length limit with no full sentence to end at), the
per-node breakdown (p50/p95, with the LLM part of reason and judge apart), and the goals.

Baselines (`--baseline rationale|judge`): every task also runs on an earlier version of one LLM
call, re-enacted by swapping names of agent.judge for copies of their old versions (in the package,
which agent.nodes reads, and in each of its modules that binds the name, which the judge's own
code reads):
- `rationale` (before fc07a05): the reasoner's rationale had a maxLength of 150 characters, so
  the grammar stopped a long sentence mid-word and it ended at its last full sentence, else at
  its last word with "..."; now the grammar ends it at its first full stop (`one_sentence`, 190
  characters at most) and a cut one ends before its trailing comment when it can;
- `judge` (before 7e4c428): the judge's prompt repeated a tidied answer (a rationale cut at its
  last full sentence) as compact JSON of the completed draft, which llama.cpp had to evaluate
  whole; now it repeats the model's own answer with the tidied rationale, in the KV cache up to
  the cut; and the judge wrote a free critique after every label, now only after "vague reason"
  and "unreadable" (the others' critique is "ok": see `agent.judge.judge_schema`).
- `grammar` (issue 17): the LLM calls as before agent.llama_greedy and the judge's short answer: the
  library's sampler chain applied the JSON grammar to all 151,936 tokens of the vocabulary at every
  generated token (now greedy calls ask it about the chosen token first), and the judge wrote
  `"critique": "ok"` after "none" and "wrong number or id" (now the answer ends at the label).
  Also printed per path: the tokens each LLM call read (prefill, past llama.cpp's reused prefix)
  and generated, and the seconds of each.
Two passes, each task once per path, the paths alternating from task to task and swapped in the
second pass, so that consecutive requests never share a prompt (a repeated prompt would come from
the KV cache) and drift hits both paths alike.

Usage:
    python -m bench.latency [--kb-dir DIR] [--model qwen2.5-coder-0.5b] [--repeat 1] [--tasks 12] [--no-judge]
                            [--baseline rationale|judge|grammar]

Timings are wall-clock on whatever else the machine is doing; the load average is printed
(ENVIRONMENT.md: LLM timings fall 3-5x while other processes load the 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import DATA, percentile  # noqa: E402

# Varied on purpose: modalities, sizes, budgets, devices, with and without a dataset.
TASKS: list[tuple[str, str | None]] = [
    ("skin lesion dermoscopy, 8 classes, 2,000 images, I have 15 minutes on a laptop CPU", None),
    ("chest x-ray, pneumonia vs normal, 5k images, 10 min", None),
    ("brain MRI tumour types, 4 classes, about 6,500 slices, imbalanced, 1 hour on CPU", None),
    ("breast ultrasound, normal vs benign vs malignant, 780 images, 5 minutes", None),
    ("peripheral blood smear microscopy, 8 cell types, 2.7k RGB images, half an hour", None),
    ("lung histopathology H&E patches, 3 classes, 2,000 images, 20 minutes, GPU", None),
    ("knee radiographs, KL grades 0-4, 5 classes, 6,000 images, imbalance ratio of 13, 2 hours", None),
    ("retinal fundus photographs, 5 grades of diabetic retinopathy, 3,500 images, 30 min on a laptop", None),
    ("breast ultrasound lesions", "busi_ultrasound.npz"),
    ("dermoscopy, 15 minutes", "skin_lesion_isic.npz"),
    ("", "blood_cells_pbc.npz"),
    ("chest x-ray, I have 10 minutes", "pneumoniamnist_merged.npz"),
]
WARM_UP_TASK = "abdominal CT slices, 3 organ classes, 1,200 images, 20 minutes"


def _old_tidy_text(text: str, limit: int) -> str:
    """agent.judge.tidy_text before fc07a05 (a copy on purpose: the `rationale` baseline re-enacts it)."""
    text = " ".join(str(text).split())
    if len(text) < limit - 3:
        return text
    end = max(text.rfind(p, 0, limit) for p in (". ", "; ", "! ", "? "))
    if end >= limit // 3:
        return text[: end + 1]
    if text.endswith((".", "!", "?")) and len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."


@contextlib.contextmanager
def _llm_call(path: str, baseline: str | None) -> Iterator[None]:
    """Run the graph as it is, or re-enact the `baseline` version of one LLM call (see the docstring)."""
    if path == "current":
        yield
        return
    from agent import judge

    swaps: dict[str, Any]
    if baseline == "grammar":
        from agent.llama_greedy import llama_with_greedy_grammar

        def critique_ok_schema() -> dict[str, Any]:  # agent.judge.judge_schema before issue 17
            def verdict(problems: list[str], critique: dict[str, Any]) -> dict[str, Any]:
                return {"type": "object", "properties": {"problem": {"type": "string", "enum": problems},
                                                         "critique": critique},
                        "required": ["problem", "critique"], "additionalProperties": False}

            free = [p for p in judge.JUDGE_PROBLEMS if p not in judge.NO_CRITIQUE]
            return {"title": "Verdict", "anyOf": [verdict(list(judge.NO_CRITIQUE), {"type": "string", "const": "ok"}),
                                                  verdict(free, {"type": "string", "maxLength": judge.CRITIQUE_MAX})]}

        swaps = {"judge_schema": critique_ok_schema}
        llama_class = llama_with_greedy_grammar()
        llama_class.greedy_grammar = False  # every call through the library's sampler chain
    elif baseline == "judge":
        def old_schema() -> dict[str, Any]:
            return {"title": "Verdict", "type": "object",
                    "properties": {"problem": {"type": "string", "enum": list(judge.JUDGE_PROBLEMS)},
                                   "critique": {"type": "string", "maxLength": judge.CRITIQUE_MAX}},
                    "required": ["problem", "critique"], "additionalProperties": False}

        swaps = {
            "with_rationale": lambda text, rationale, tidied: None,  # a tidied answer went in as the completed draft
            "judge_schema": old_schema,
        }
    else:
        swaps = {
            # read by agent.nodes through the package, and by the draft's schema and parser in agent.judge._draft
            "DRAFT_RATIONALE_MAX": 150,
            "one_sentence": lambda limit, min_length=20: {"type": "string", "minLength": min_length, "maxLength": limit},
            "tidy_text": _old_tidy_text,
        }
    kept = [(module, name, getattr(module, name)) for module in _judge_modules() for name in swaps
            if hasattr(module, name)]
    for module, name, _ in kept:
        setattr(module, name, swaps[name])
    try:
        yield
    finally:
        for module, name, value in kept:
            setattr(module, name, value)
        if baseline == "grammar":
            llama_class.greedy_grammar = True


class CallMeter:
    """Per LLM call: the tokens llama.cpp read (prefill, past the prefix it reused) and generated, and the
    seconds of each (generation includes sampling). Wraps the embedded model's `Llama` class while active."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        from agent.llama_greedy import llama_with_greedy_grammar

        cls = llama_with_greedy_grammar()
        chat, eval_, sample = cls.create_chat_completion, cls.eval, cls.sample
        meter = self

        def create_chat_completion(llama: Any, *args: Any, **kw: Any) -> Any:
            schema = (kw.get("response_format") or {}).get("schema") or {}
            meter.calls.append({"call": {"Verdict": "judge", "Recommendation": "reason"}.get(schema.get("title"), "other"),
                                "reused": None, "prefill_tokens": 0, "prefill_s": 0.0, "gen_tokens": 0, "gen_s": 0.0})
            return chat(llama, *args, **kw)

        def timed_eval(llama: Any, tokens: Any) -> None:
            call, n0, start = meter.calls[-1] if meter.calls else None, llama.n_tokens, time.perf_counter()
            eval_(llama, tokens)
            if call is not None:
                prefill = call["reused"] is None or len(tokens) > 1
                if call["reused"] is None:
                    call["reused"] = n0
                key = "prefill" if prefill else "gen"
                call[f"{key}_tokens"] += len(tokens)
                call[f"{key}_s"] += time.perf_counter() - start

        def timed_sample(llama: Any, *args: Any, **kw: Any) -> int:
            start = time.perf_counter()
            token = sample(llama, *args, **kw)
            if meter.calls:
                meter.calls[-1]["gen_s"] += time.perf_counter() - start
            return token

        cls.create_chat_completion, cls.eval, cls.sample = create_chat_completion, timed_eval, timed_sample
        try:
            yield
        finally:
            cls.create_chat_completion, cls.eval, cls.sample = chat, eval_, sample

    def take(self) -> list[dict[str, Any]]:
        calls, self.calls = self.calls, []
        return calls


def _judge_modules() -> list[ModuleType]:
    """agent.judge and its modules: the code of each reads the names its own module binds."""
    from agent import judge

    return [judge, *(importlib.import_module(f"{judge.__name__}.{m.name}") for m in pkgutil.iter_modules(judge.__path__))]


def _print_calls(rows: list[dict[str, Any]]) -> None:
    """Where one answer's LLM time goes: per path and call kind, p50 over the calls of the tokens read
    (llama.cpp's reused prefix, then the prefill it evaluated) and generated, and their seconds."""
    print()
    print(f"{'path':<9} {'call':<7} {'calls':>5} {'reused tok':>10} {'prefill tok':>11} {'prefill s':>9} "
          f"{'gen tok':>7} {'gen s':>6} {'ms/gen tok':>10} {'call s':>6}")
    for path in dict.fromkeys(x["path"] for x in rows):
        for kind in ("reason", "judge"):
            calls = [c for x in rows if x["path"] == path for c in x["calls"] if c["call"] == kind]
            if not calls:
                continue

            def p50(key: str, xs: list[dict[str, Any]] = calls) -> float:
                return percentile([float(c[key] or 0) for c in xs], 50)

            per_token = percentile([1000 * c["gen_s"] / c["gen_tokens"] for c in calls if c["gen_tokens"]], 50)
            whole = percentile([c["prefill_s"] + c["gen_s"] for c in calls], 50)
            print(f"{path:<9} {kind:<7} {len(calls):>5} {p50('reused'):10.0f} {p50('prefill_tokens'):11.0f} "
                  f"{p50('prefill_s'):9.2f} {p50('gen_tokens'):7.0f} {p50('gen_s'):6.2f} {per_token:10.0f} {whole:6.2f}")
    loads = [x["load"] for x in rows]
    print(f"load average (1 min) after each request: {min(loads):.1f}-{max(loads):.1f}")


def _print_baseline(rows: list[dict[str, Any]], baseline: str) -> None:
    """Current vs baseline: p50 of the totals and of the reasoner's and judge's LLM time, drafts,
    fallbacks and cut rationales, and the paired ratios."""
    by = {path: [x for x in rows if x["path"] == path] for path in ("current", "baseline")}
    pairs = [(a, b) for a in by["current"] for b in by["baseline"] if a["task"] == b["task"]]
    print()
    print(f"{baseline + ' call':<16} {'requests':>8} {'total p50 s':>12} {'reason LLM p50 s':>17} "
          f"{'judge LLM p50 s':>16} {'mean drafts':>12} {'fallbacks':>10} {'cut':>4}")
    for path, xs in by.items():
        print(f"{path:<16} {len(xs):>8} {percentile([x['total'] for x in xs], 50):12.2f} "
              f"{percentile([x['llm_t'].get('reason', 0.0) for x in xs], 50):17.2f} "
              f"{percentile([x['llm_t'].get('judge', 0.0) for x in xs], 50):16.2f} "
              f"{statistics.mean(x['drafts'] for x in xs):12.2f} {sum(x['fallback'] for x in xs):>10} "
              f"{sum(x['cut'] for x in xs):>4}")
    if pairs:
        line = f"paired by task (median of {len(pairs)}, current / baseline): total x" + \
               f"{statistics.median(a['total'] / b['total'] for a, b in pairs):.2f}"
        for node in ("reason", "judge"):
            both = [(a, b) for a, b in pairs if a["llm_t"].get(node) and b["llm_t"].get(node)]
            if both:
                line += f"; {node} LLM x{statistics.median(a['llm_t'][node] / b['llm_t'][node] for a, b in both):.2f}"
        print(line)
        same = sum(a["answer"] == b["answer"] for a, b in pairs)
        print(f"same choice, rationale and judge scores on both paths: {same} of {len(pairs)} tasks")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kb-dir", default=None, help="knowledge base (default: the user's, seeded from the package)")
    parser.add_argument("--model", default=None, help="embedded model name (default: agent.llm's default)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per task")
    parser.add_argument("--tasks", type=int, default=len(TASKS), help="use the first N tasks")
    parser.add_argument("--no-judge", action="store_true", help="deterministic checks only (no LLM judge call)")
    parser.add_argument("--baseline", choices=("rationale", "judge", "grammar"), default=None,
                        help="also run every task on that call's old version (interleaved; see the docstring)")
    args = parser.parse_args(argv)

    from agent.context import Context
    from agent.llm import get_chat_model
    from agent.recommend import Recommender
    from knowledge.store import open_default

    t0 = time.perf_counter()
    kb = open_default(args.kb_dir)
    r = Recommender(llm=get_chat_model(model=args.model, max_tokens=320),
                    judge_llm=get_chat_model(model=args.model, max_tokens=160), kb=kb)
    r.warm_up()
    context = Context(llm_judge=not args.no_judge)
    # One untimed request loads the LLM weights and compiles its grammar paths. Not one of the
    # tasks: llama.cpp keeps the last prompt in its KV cache, so a task right after itself
    # would skip most of its prompt (the first task here ran 3 s faster than the others).
    r.recommend(WARM_UP_TASK, context=context)
    print(f"warm-up (parts + first request): {time.perf_counter() - t0:.1f} s; knowledge base {len(kb.records())} "
          f"records; model {getattr(r.parts.llm, 'model_name', type(r.parts.llm).__name__)}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    # Repeats go round the list, so no task runs twice in a row (given two tasks or more).
    tasks = [task for _ in range(args.repeat) for task in TASKS[: args.tasks]]
    runs = [(task, "current") for task in tasks]
    if args.baseline:  # two passes, the paths alternating by task and swapped in the second
        runs = [(task, ("current", "baseline")[(i + p) % 2]) for p in (0, 1) for i, task in enumerate(tasks)]
    rows: list[dict[str, Any]] = []
    meter = CallMeter()
    for (text, ds), path in runs:
        dataset = str(DATA / ds) if ds else None
        if dataset and not Path(dataset).exists():
            print(f"skipping {ds}: not in {DATA}", file=sys.stderr)
            continue
        with _llm_call(path, args.baseline), meter.active():
            rec = r.recommend(text, dataset=dataset, context=context)
        total = rec.timings["total"]
        rows.append({
            "task": (text or "(dataset only)")[:48] + (f" +{Path(ds).stem}" if ds else ""), "path": path,
            "total": total, "llm": rec.llm_seconds, "rest": total - rec.llm_seconds,
            "drafts": rec.verdict.attempts, "passed": rec.verdict.passed, "fallback": rec.fallback,
            "choice": f"{rec.config.backbone}/{rec.config.mode}", "timings": rec.timings, "llm_t": rec.llm_timings,
            # The LLM's rationale, cut off at its length limit with no full sentence to end at (tidy_text's "...").
            "cut": not rec.fallback and rec.rationale.endswith("..."),
            "calls": meter.take(), "load": os.getloadavg()[0],
            # What a change to how the LLM is called must keep: the choice, its words, the judge's scores.
            "answer": (f"{rec.config.backbone}/{rec.config.mode}", rec.rationale,
                       sorted((rec.verdict.scores or {}).items()), rec.verdict.overruled is not None, rec.fallback),
        })
        row = rows[-1]
        print(f"{row['task']:<62} {total:6.2f} s  llm {row['llm']:6.2f}  rest {row['rest']:5.3f}  drafts "
              f"{row['drafts']}  {'fallback' if row['fallback'] else 'judged ok' if row['passed'] else 'FAILED'}  "
              f"{row['choice']}" + ("  cut..." if row["cut"] else "") + (f"  [{path}]" if args.baseline else ""),
              flush=True)
        if not rec.verdict.passed:
            failed = [c.name for c in rec.verdict.checks if not c.ok] or ["llm-judge"]
            print(f"    judge: {', '.join(failed)}: {(rec.verdict.critique or '')[:160]}", flush=True)
    _print_calls(rows)
    if args.baseline:
        _print_baseline(rows, args.baseline)
    rows = [x for x in rows if x["path"] == "current"]
    if not rows:
        print("no task ran", file=sys.stderr)
        return 1

    totals = [x["total"] for x in rows]
    rests = [x["rest"] for x in rows]
    print()
    print(f"{'node':<10} {'p50 s':>8} {'p95 s':>8} {'LLM p50':>8} {'rest p50':>9} {'rest p95':>9}")
    for node in ("profile", "retrieve", "explain", "reason", "judge", "respond"):
        t = [x["timings"].get(node, 0.0) for x in rows]
        llm = [x["llm_t"].get(node, 0.0) for x in rows]
        rest = [a - b for a, b in zip(t, llm, strict=True)]
        print(f"{node:<10} {percentile(t, 50):8.3f} {percentile(t, 95):8.3f} {percentile(llm, 50):8.3f} "
              f"{percentile(rest, 50):9.3f} {percentile(rest, 95):9.3f}")
    overhead = [x["total"] - sum(x["timings"][k] for k in x["timings"] if k != "total") for x in rows]
    print(f"{'graph':<10} {percentile(overhead, 50):8.3f} {percentile(overhead, 95):8.3f} {0:8.3f} "
          f"{percentile(overhead, 50):9.3f} {percentile(overhead, 95):9.3f}")
    print()
    p50, p95 = percentile(totals, 50), percentile(totals, 95)
    rest95 = percentile(rests, 95)
    fallbacks = sum(x["fallback"] for x in rows)
    print(f"requests {len(rows)}; total p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(totals):.2f} s; "
          f"LLM share {sum(x['llm'] for x in rows) / sum(totals):.0%}; mean drafts "
          f"{statistics.mean(x['drafts'] for x in rows):.2f}; fallbacks {fallbacks}; rationales cut off mid-sentence "
          f"{sum(x['cut'] for x in rows)}")
    print(f"goals: p50 <= 10 s {'met' if p50 <= 10 else 'MISSED'}; p95 <= 20 s {'met' if p95 <= 20 else 'MISSED'}; "
          f"non-LLM <= 0.3 s (p95 {rest95:.3f} s, max {max(rests):.3f} s) {'met' if max(rests) <= 0.3 else 'MISSED'}; "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
