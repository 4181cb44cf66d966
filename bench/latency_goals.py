"""Issue 17's latency goals, measured: a first answer after a fresh install, the pick, the whole answer.

    python -m bench.latency_goals                           # print the tables
    python -m bench.latency_goals --docs docs/BENCHMARKS.md # and write its section there

Goals: the first recommendation after a fresh install within 30 s; the pick (the meta-model's
choice, the explain node's output) visible within 2 s of a warm request; the whole answer
within 10 s warm. Measured here, in one run:

(a) fresh install: a new knowledge-base folder and a new cache folder, then the setup step
    (`python -m agent.warm`, timed on its own), then `metallmix recommend` as a new process;
(b) the pick, warm: a warm in-process graph (the chat's path), request to the explain node's update;
(c) the whole answer, warm in-process: the same runs, request to the approval interrupt;
(d) `metallmix recommend --json` called as a script (a new process each time): cold in-process
    (`--server off`, the baseline every ratio divides) and through the warm server (`--server auto`;
    the call that starts it is shown on its own row).

Each request is one of the task texts below (written for this benchmark, not taken from the
tests). The 2-core machine is shared: the load average is recorded per row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import header, table, write_section

REPO = Path(__file__).resolve().parents[1]
TEXTS = (
    "fundus photographs graded for diabetic retinopathy, 5 grades, about 1,600 images, I have 10 minutes on a laptop CPU",
    "chest CT slices, 4 classes (normal, adenocarcinoma, large cell, squamous), roughly 1,000 images, maximise accuracy",
    "blood cell microscopy, 8 cell types, 17,000 images, model under 5M parameters, 30 minutes on CPU",
    "knee x-rays graded KL 0-4, 5 classes, 8,000 images, GPU available",
    "brain MRI tumour types, 4 classes, 7,000 images, 20 minutes on a CPU, smallest model that does well",
)
GOALS = {"first": 30.0, "pick": 2.0, "whole": 10.0}


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def _cli(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one `metallmix ...` in a new process, and its stdout; a failure stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "agent.cli", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"`metallmix {' '.join(argv)}` exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def _row(name: str, values: list[float], goal: float | None, loads: list[float], baseline: float | None) -> list[Any]:
    p50 = statistics.median(values)
    return [name, len(values), f"{p50:.2f}", f"{max(values):.2f}", "" if goal is None else f"{goal:g}",
            "" if goal is None else ("yes" if p50 <= goal else "no"),
            "" if baseline is None else f"{p50 / baseline:.2f}", f"{min(loads):g}-{max(loads):g}"]


def fresh_install(text: str, work: Path) -> dict[str, Any]:
    """(a): new knowledge-base and cache folders, the setup step, then the first recommendation."""
    env = dict(os.environ, METALLMIX_KB=str(work / "fresh-kb"), METALLMIX_CACHE=str(work / "fresh-cache"),
               METALLMIX_SERVER_DIR=str(work / "fresh-server"))
    loads = [_load()]
    setup, _ = _cli(["warm", "--json"], env)
    loads.append(_load())
    first, out = _cli(["recommend", text, "--json", "--server", "off"], env)
    loads.append(_load())
    return {"setup": setup, "first": first, "loads": loads, "backbone": json.loads(out)["backbone"]}


def cli_script(texts: list[str], env: dict[str, str], server: str) -> tuple[list[float], list[float]]:
    """(d): `metallmix recommend TEXT --json` per text, a new process each; seconds and loads."""
    seconds, loads = [], []
    for text in texts:
        loads.append(_load())
        s, out = _cli(["recommend", text, "--json", "--server", server], env)
        json.loads(out)  # a whole JSON answer, nothing else on stdout
        seconds.append(s)
    loads.append(_load())
    return seconds, loads


def in_process(texts: list[str], kb_dir: str) -> tuple[list[float], list[float], list[float], float]:
    """(b) and (c): a warm Recommender (the chat's graph); per text the seconds to the explain node's
    update and to the end of the run. Also the seconds the parts took to load and warm up."""
    from agent.recommend import default_recommender
    from agent.state import InputState, Limits

    start = time.perf_counter()
    r = default_recommender(kb_dir)
    r.warm_up()
    loading = time.perf_counter() - start
    picks, wholes, loads = [], [], []
    for text in texts:
        loads.append(_load())
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        start = time.perf_counter()
        pick = None
        for update in r.graph.stream(InputState(task=text, dataset=None, constraints=Limits()), config,
                                     context=r.context, stream_mode="updates"):
            if pick is None and "explain" in update:
                pick = time.perf_counter() - start
        wholes.append(time.perf_counter() - start)
        if pick is None:
            raise SystemExit(f"the explain node never ran for {text!r} (out of scope?)")
        picks.append(pick)
    loads.append(_load())
    return picks, wholes, loads, loading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=len(TEXTS), help=f"how many of the {len(TEXTS)} texts to use")
    parser.add_argument("--docs", type=Path, help="write the section into this markdown file")
    args = parser.parse_args(argv)
    texts = list(TEXTS[: args.texts])
    work = Path(tempfile.mkdtemp(prefix="latency-goals-"))
    try:
        # The knowledge base every warm measurement uses: a new folder from the seed, set up as
        # `make setup` sets up the user's (the caches are this machine's, built by the same step).
        env = dict(os.environ, METALLMIX_KB=str(work / "kb"), METALLMIX_SERVER_DIR=str(work / "server"))
        _cli(["warm"], env)
        t0 = time.perf_counter()
        os.environ.update(env)  # first, so that a mistake in it shows before the long subprocess phases
        picks, wholes, warm_loads, loading = in_process(texts, str(work / "kb"))
        print(f"(b, c) in-process: {[round(s, 1) for s in picks]} {[round(s, 1) for s in wholes]}", file=sys.stderr)
        a = fresh_install(texts[0], work)
        print(f"(a) fresh install: setup {a['setup']:.1f} s, first answer {a['first']:.1f} s", file=sys.stderr)
        cold, cold_loads = cli_script(texts, env, "off")
        print(f"(d) cold CLI: {[round(s, 1) for s in cold]}", file=sys.stderr)
        start_loads = [_load()]
        starting, _ = _cli(["recommend", texts[0], "--json", "--server", "auto"], env)  # starts the server
        start_loads.append(_load())
        served, served_loads = cli_script(texts, env, "reuse")
        states = list((work / "server").glob("server-*.json"))
        _cli(["serve", "--stop"], env)
        print(f"(d) served CLI: start {starting:.1f}, {[round(s, 1) for s in served]}", file=sys.stderr)
        minutes = (time.perf_counter() - t0) / 60
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(cold)
    rows = [
        _row("(a) setup step on new folders (`metallmix warm`, once per install)", [a["setup"]], None, a["loads"][:2], None),
        _row("(a) first recommendation after it, new process", [a["first"]], GOALS["first"], a["loads"][1:], base),
        _row("(b) pick visible, warm in-process (request to the explain node)", picks, GOALS["pick"], warm_loads, base),
        _row("(c) whole answer, warm in-process (the chat's path)", wholes, GOALS["whole"], warm_loads, base),
        _row("(d) CLI as a script, in-process (`--server off`): the baseline", cold, GOALS["whole"], cold_loads, base),
        _row("(d) CLI as a script, the call that starts the server", [starting], GOALS["whole"], start_loads, base),
        _row("(d) CLI as a script, through the warm server", served, GOALS["whole"], served_loads, base),
    ]
    head = ["measure", "n", "p50 s", "max s", "goal s", "p50 meets goal", "ratio to baseline p50", "load (1 min)"]
    method = (
        f"{len(texts)} task texts of bench/latency_goals.py, one request each per row; wall seconds; the baseline is "
        f"the cold in-process CLI of this same run (p50 {base:.1f} s). The warm server answered every served call "
        f"({'one server' if len(states) == 1 else f'{len(states)} servers'}); the in-process parts took {loading:.1f} s "
        f"to load and warm up. Whole run {minutes:.0f} min; load average per row (the machine is shared)."
    )
    text = "\n\n".join(["## Latency goals (issue 17)", header("", method), table(rows, head, "lrrrrrrr")])
    print(text)
    if args.docs:
        write_section("latency-goals", text, args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
