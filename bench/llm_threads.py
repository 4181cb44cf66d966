"""How llama.cpp's threads wait, on an idle machine and beside a busy core.

agent/llm.py lets llama.cpp's OpenMP threads spin briefly between ops (GOMP_SPINCOUNT=5000)
and, before every call, generates on the cores that other processes leave free
(`generation_threads`). The old setting waited passively (OMP_WAIT_POLICY=PASSIVE) on every
core. Both run here, and the spin without the thread choice, each in its own process
(libgomp reads its policy once, at load), on the same requests, with the machine idle and
with a one-core CPU hog standing in for a training job; the order alternates so drift hits
all alike.

Printed per setting and load: recommend p50 (end to end, up to the approval question), the
LLM's generation and prompt speed from llama.cpp's own counters, and the ratio to the old
setting measured in the same run.

Usage:
    python -m bench.llm_threads [--tasks 4] [--kb-dir DIR] [--docs docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

SETTINGS = {
    "old: passive wait, all cores": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0", "METALLMIX_FIXED_THREADS": "1"},
    "short spin, all cores": {"METALLMIX_FIXED_THREADS": "1"},  # the spin without the thread choice
    "new: short spin, free cores": {},
}
HOG = "while True: pass"


def child(n_tasks: int, kb_dir: str | None) -> dict[str, Any]:
    """Run the requests in this process and return their times and llama.cpp's counters."""
    import llama_cpp

    import agent.llm_threads as L  # owns generation_threads: a patch on agent.llm's re-export is never read
    from agent.llm import get_chat_model
    from agent.recommend import Recommender
    from bench.latency import DATA, TASKS
    from knowledge.store import open_default

    if os.environ.get("METALLMIX_FIXED_THREADS"):
        L.generation_threads = lambda n_max, other_busy, n_cpus: n_max  # the old behaviour
    counters = {"gen_tokens": 0, "gen_ms": 0.0, "prompt_tokens": 0, "prompt_ms": 0.0}
    original = llama_cpp.Llama.create_chat_completion

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        llama_cpp.llama_perf_context_reset(self.ctx)
        out = original(self, *args, **kwargs)
        perf = llama_cpp.llama_perf_context(self.ctx)
        counters["gen_tokens"] += perf.n_eval
        counters["gen_ms"] += perf.t_eval_ms
        counters["prompt_tokens"] += perf.n_p_eval
        counters["prompt_ms"] += perf.t_p_eval_ms
        return out

    llama_cpp.Llama.create_chat_completion = counted
    r = Recommender(llm=get_chat_model(max_tokens=320), judge_llm=get_chat_model(max_tokens=160),
                    kb=open_default(kb_dir))
    r.warm_up()
    r.recommend(TASKS[0][0])  # untimed: loads the weights
    for key in counters:
        counters[key] = 0
    times = []
    for task, dataset in TASKS[1:n_tasks + 1]:
        t = time.perf_counter()
        r.recommend(task, dataset=str(DATA / dataset) if dataset else None)
        times.append(time.perf_counter() - t)
    return {"times": times, **counters}


def run_child(setting: str, n_tasks: int, kb_dir: str | None) -> dict[str, Any]:
    env = {**os.environ, **SETTINGS[setting]}
    cmd = [sys.executable, "-m", "bench.llm_threads", "--child", "--tasks", str(n_tasks)]
    if kb_dir:
        cmd += ["--kb-dir", kb_dir]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=4, help="timed requests per setting and load")
    parser.add_argument("--kb-dir", default=None)
    parser.add_argument("--docs", default=None, help="also write the table into this Markdown file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.tasks, args.kb_dir)))
        return 0

    t0 = time.perf_counter()
    results: dict[tuple[str, str], dict[str, Any]] = {}
    names = list(SETTINGS)
    for i, load in enumerate(("idle", "one core busy")):
        hog = subprocess.Popen([sys.executable, "-c", HOG]) if load != "idle" else None
        try:
            for setting in (names if i % 2 == 0 else names[::-1]):
                results[(load, setting)] = res = run_child(setting, args.tasks, args.kb_dir)
                print(f"{load:14s} {setting:30s} p50 {statistics.median(res['times']):5.1f} s", flush=True)
        finally:
            if hog:
                hog.kill()
                hog.wait()

    rows = []
    for load in ("idle", "one core busy"):
        base = statistics.median(results[(load, names[0])]["times"])
        for setting in names:
            res = results[(load, setting)]
            p50 = statistics.median(res["times"])
            rows.append([load, setting, f"{p50:.1f}", ", ".join(f"{t:.1f}" for t in res["times"]),
                         f"{res['gen_tokens'] / res['gen_ms'] * 1000:.1f}",
                         f"{res['prompt_tokens'] / res['prompt_ms'] * 1000:.0f}", f"x{p50 / base:.2f}"])
    text = "## LLM threads (`python -m bench.llm_threads`)\n\n" + common.header(
        "llm threads",
        f"{args.tasks} requests per row (bench.latency's tasks 2-{args.tasks + 1}), each setting in its own "
        f"process, the order alternating; the busy core is a CPU-bound Python loop; wall time "
        f"{(time.perf_counter() - t0) / 60:.1f} min.")
    text += "\n\n" + common.table(rows, ["load", "setting", "recommend p50 s", "every request s",
                                         "generation tok/s", "prompt tok/s", "p50 vs old"], "llrlrrr")
    print("\n" + text)
    if args.docs:
        common.write_section("llm-threads", text, Path(args.docs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
