"""Answers start at once (issue 17): when the chat shows the pick, the LLM's first words and the card.

The chat's real parts (embedded LLM, knowledge base + Chroma, meta-model, SQLite checkpoints),
built by app.build_parts and warmed once, untimed; each task then runs through the ChatAdapter
as the window runs it, and every view it yields is timed from the message's submission:
- pick: the meta-model's pick, with its numbers, is on screen;
- words: the first words of the LLM's rationale are on screen (streamed, or with the card);
- drafted: the LLM's whole answer is in (the reason step has ended: without streaming, the
  earliest its words could show), a baseline inside the same request, whatever the load;
- card: the recommendation card is on screen.

Baseline, measured in the same run: the chat without token streaming (`LiveRuns.stream_tokens`
off), where the LLM's first words can show only once its whole answer is in (the end of the
reason step; before this change they sat there in a collapsed step, the card later). Two passes, each task once per path,
the paths alternating from task to task and swapped in the second pass (so consecutive requests
never share a prompt, which llama.cpp would serve from its KV cache, and drift hits both alike).
Then Stop: a few more requests, each stopped at its first streamed words, timed from the click
to the end of the run.

Usage:
    python -m bench.chat_stream [--tasks 6] [--stops 3] [--kb-dir DIR]

Timings are wall-clock on whatever else the machine is doing; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.common import header, table  # noqa: E402
from bench.latency import TASKS  # noqa: E402

PICK = "**The meta-model's pick:**"
CARD = "### Recommendation"


def _timed(adapter: Any, thread: str, task: str, dataset: str | None, stop: bool = False) -> dict[str, Any]:
    """One request through the adapter: seconds to the pick, the first words, the card; Stop at the first words."""
    from agent.chat.runs import STOPPED, WRITING

    t0 = time.perf_counter()
    seen: dict[str, Any] = {"pick": None, "words": None, "drafted": None, "card": None, "updates": 0, "stop": None}
    stopped_at = None
    for view in adapter.submit(thread, task, dataset=dataset):
        now = time.perf_counter() - t0
        body = [m["content"] for m in view.messages if isinstance(m.get("content"), str)]
        if seen["pick"] is None and any(t.startswith(PICK) for t in body):
            seen["pick"] = now
        if seen["drafted"] is None and any(str(m.get("metadata", {}).get("title", "")).startswith("LLM draft")
                                           for m in view.messages):
            seen["drafted"] = now
        if any(t.startswith(WRITING) for t in body):
            seen["updates"] += 1
            seen["words"] = seen["words"] or now
            if stop and stopped_at is None:
                adapter.stop(thread)
                stopped_at = now
        if seen["card"] is None and any(t.startswith(CARD) for t in body):
            seen["card"] = now
            seen["words"] = seen["words"] or now  # a draft that never showed: the words came with the card
        if not view.busy:
            seen["end"] = now
            seen["stopped"] = bool(body) and body[-1] == STOPPED
    if stopped_at is not None:
        seen["stop"] = seen["end"] - stopped_at
    return seen


def _s(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chat_stream", description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=6, help="tasks of bench.latency's list to time (each twice)")
    p.add_argument("--stops", type=int, default=3, help="requests stopped at their first streamed words")
    p.add_argument("--kb-dir", default=None, help="knowledge base folder (default: the packaged one)")
    args = p.parse_args(argv)

    import app as app_module
    from agent.llm import get_chat_model

    tmp = Path(tempfile.mkdtemp(prefix="chat-stream-"))
    settings = app_module.AppSettings(port=None, db_path=tmp / "threads.sqlite", plot_dir=tmp / "plots",
                                      uploads_dir=tmp / "uploads", secret="bench", kb_dir=args.kb_dir)
    t0 = time.perf_counter()
    parts = app_module.build_parts(settings, llm=get_chat_model(max_tokens=320),
                                   judge_llm=get_chat_model(max_tokens=160))
    if parts.warm_up is not None:
        parts.warm_up()
    adapter = parts.adapter
    runs = adapter._runs  # the chat's live runs: the baseline turns token streaming off
    _timed(adapter, "warm", "breast ultrasound, 3 classes, 800 images, 10 minutes on a CPU", None)
    print(f"warm-up (parts + first request): {time.perf_counter() - t0:.1f} s")

    tasks = [t for t in TASKS if t[1] is None][: args.tasks]  # text only: no dataset folder to allow
    rows: list[dict[str, Any]] = []
    for pass_ in (0, 1):
        for i, (task, dataset) in enumerate(tasks):
            streamed = (i + pass_) % 2 == 0
            runs.stream_tokens = streamed
            r = _timed(adapter, f"p{pass_}-{i}", task, dataset)
            rows.append({"task": i + 1, "path": "streamed" if streamed else "baseline", **r})
            print(f"  task {i + 1} {rows[-1]['path']}: pick {_s(r['pick'])} s, words {_s(r['words'])} s, "
                  f"card {_s(r['card'])} s, {r['updates']} streamed updates", flush=True)
    runs.stream_tokens = True
    stops = [_timed(adapter, f"stop-{i}", task, dataset, stop=True)
             for i, (task, dataset) in enumerate(tasks[: args.stops])]

    print()
    print(header("bench.chat_stream: when the chat shows the pick, the LLM's first words and the card "
                 "(seconds from sending the message)"))
    print()
    print(table([[r["task"], r["path"], _s(r["pick"]), _s(r["words"]), _s(r["drafted"]), _s(r["card"]), r["updates"]]
                 for r in rows],
                ["task", "path", "pick", "first words", "answer in", "card", "views with words, before the card"],
                "llrrrrr"))
    print()
    summary = []
    for path in ("baseline", "streamed"):
        mine = [r for r in rows if r["path"] == path]
        summary.append([path, _s(statistics.median(r["pick"] for r in mine if r["pick"] is not None)),
                        _s(statistics.median(r["words"] for r in mine if r["words"] is not None)),
                        _s(statistics.median(r["card"] for r in mine if r["card"] is not None))])
    print(table(summary, ["path", "pick p50", "first words p50", "card p50"], "lrrr"))
    base = [r for r in rows if r["path"] == "baseline" and r["words"]]
    fast = [r for r in rows if r["path"] == "streamed" and r["words"]]
    inside = [r["drafted"] / r["words"] for r in fast if r["drafted"]]
    if inside:
        print(f"\nstreamed requests: the answer was in {statistics.median(inside):.1f}x later than its first words "
              f"(p50 of {len(inside)}; min {min(inside):.1f}x)")
    if base and fast:
        words = statistics.median(r["words"] for r in base) / statistics.median(r["words"] for r in fast)
        card = statistics.median(r["card"] for r in fast) / statistics.median(r["card"] for r in base)
        print(f"\nfirst words: baseline p50 / streamed p50 = {words:.1f}x sooner; "
              f"card: streamed p50 / baseline p50 = {card:.2f} (the cost of streaming)")
    print()
    print(table([[i + 1, _s(s["words"]), _s(s["stop"]), "yes" if s.get("stopped") else "no"]
                 for i, s in enumerate(stops)],
                ["request", "first words (Stop clicked)", "Stop to end of run", "chat says Stopped."], "lrrl"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
