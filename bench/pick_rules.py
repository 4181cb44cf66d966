"""Which of its trials should the iterative agent keep? Pick rules compared offline.

Reads the agent sessions bench/lodo.py saves (bench/results/lodo_agent/*.json: every trial's
config, meta-model prediction, validation and test accuracy) and scores each rule by the
test accuracy of the trial it keeps. No training and no LLM: the trials are the ones the agent
ran, so every rule chooses among the same runs. Test accuracy here is the session's own run
(one training seed), not LODO's re-run on its evaluation seeds.

Rules:
- `zero-shot`: the first trial (the zero-shot recommendation, before any tuning);
- `best-val`: the best validation accuracy (ties: the earlier trial);
- `one-SE`: the product's rule, `agent.tune.pick` (the near-ties within one standard error of
  the best validation accuracy, then the meta-model's best prediction among them);
- `best-predicted`: the meta-model's best prediction among the trials that ran;
- `oracle`: the best test accuracy among the trials (the ceiling of any rule; picked on test).

Usage:
    python -m bench.pick_rules [--sessions bench/results/lodo_agent] [--docs docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, RESULTS, header, table, write_section  # noqa: E402

SESSIONS = RESULTS / "lodo_agent"


def _trials(session: dict[str, Any]) -> list[SimpleNamespace]:
    """The session's trials that finished with both accuracies, as `agent.tune.pick` reads them."""
    return [SimpleNamespace(number=t["number"], status=t["status"], val_accuracy=t["val_accuracy"],
                            test_accuracy=t["test_accuracy"], predicted=SimpleNamespace(**t["predicted"]))
            for t in session["trials"]
            if t["status"] == "ok" and t["val_accuracy"] is not None and t["test_accuracy"] is not None]


def _one_se(trials: Sequence[SimpleNamespace], n_val: int | None) -> SimpleNamespace:
    from agent.tune import pick

    kept, _ = pick(trials, n_val)  # type: ignore[arg-type]
    return kept  # type: ignore[return-value]


RULES: dict[str, Callable[[Sequence[SimpleNamespace], int | None], SimpleNamespace]] = {
    "zero-shot": lambda ts, n: min(ts, key=lambda t: t.number),
    "best-val": lambda ts, n: max(ts, key=lambda t: (t.val_accuracy, -t.number)),
    "one-SE": _one_se,
    "best-predicted": lambda ts, n: max(ts, key=lambda t: (t.predicted.accuracy, -t.number)),
    "oracle": lambda ts, n: max(ts, key=lambda t: (t.test_accuracy, -t.number)),
}


def compare(sessions: dict[str, dict[str, Any]]) -> dict[str, dict[str, tuple[int, float]]]:
    """{session name: {rule: (trial number kept, its test accuracy)}} over the sessions with trials."""
    out: dict[str, dict[str, tuple[int, float]]] = {}
    for name, s in sessions.items():
        trials = _trials(s)
        if trials:
            out[name] = {rule: (kept.number, kept.test_accuracy)
                         for rule, kept in ((r, f(trials, s.get("n_val"))) for r, f in RULES.items())}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=Path, default=SESSIONS)
    ap.add_argument("--docs", type=Path, default=None, help="also write the table into this markdown file")
    args = ap.parse_args(argv)
    files = sorted(args.sessions.glob("*.json"))
    if not files:
        print(f"no agent sessions in {args.sessions}: run `python -m bench.lodo` first", file=sys.stderr)
        return 1
    result = compare({f.stem: json.loads(f.read_text()) for f in files})  # "<dataset>-agent<N>"
    rules = list(RULES)
    rows = [[name] + [f"{acc:.3f} (t{n})" for n, acc in (picks[r] for r in rules)] for name, picks in result.items()]
    mean = {r: statistics.mean(picks[r][1] for picks in result.values()) for r in rules}
    rows.append(["**mean**"] + [f"**{mean[r]:.3f}**" for r in rules])
    gap = {r: statistics.mean(p["oracle"][1] - p[r][1] for p in result.values()) for r in rules}
    rows.append(["mean gap to oracle"] + [f"{gap[r]:.3f}" for r in rules])
    where = args.sessions.resolve()
    where = where.relative_to(REPO) if where.is_relative_to(REPO) else where
    report = "\n".join([
        "## Which trial the agent keeps (`python -m bench.pick_rules`)",
        "",
        header("pick_rules", extra=f"{len(result)} agent sessions from {where}/; test accuracy of the "
                                   "trial each rule keeps (its trial number in brackets), one training run each."),
        "",
        table(rows, ["session", *rules]),
    ])
    print(report)
    if args.docs:
        print(f"\nwritten: {write_section('pick-rules', report, args.docs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
