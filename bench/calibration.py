"""Do the meta-model's 90 % intervals hold, near the knowledge base and far from it?

Nested leave-one-dataset-out over the seed records. For each dataset D the meta-model is
fitted on every other dataset's runs with cross-validation, so its interval calibration (the
leave-dataset-out residuals of the other datasets, their distance bands and the threshold)
never saw D; it then predicts every recorded run of D, with D's own meta-features (every current
one: a stale run, measured before a runner fix that changes it, knowledge.runner_revisions, is
scored on nothing, though the models learn from the other datasets' stale runs as the product's
do; the same for the cached runs below). Per D:

- its distance to the nearest other dataset (what the model reports for D) and whether the
  model calls the evidence thin (beyond the threshold it calibrated without D: an
  `evidence_note`);
- the point prediction's mean absolute error over D's runs (ok and diverged, as the
  meta-model's target counts them), and its mean error (truth - prediction: a held-out
  dataset's errors share an offset, how much easier or harder D is than its meta-features say);
- coverage of the stated 90 % interval and its mean width, **before** (the leave-dataset-out
  residuals per quartile of predicted accuracy, the interval every new task got until now)
  and **after** (the distance bands, what `predict` gives now), from the same fitted model.

Overall: coverage and MAE for the datasets the model called near and far, over runs (every
run counts once) and over datasets (each dataset's coverage counts once: a new task is one
dataset, and the seed holds 31 to 301 runs per dataset).

Then three more views of the same folds:

- **assumed fields**: D described as a text-only profile would describe it (D's modality,
  body part, resolution and channels, but the text defaults of tools.task_text for the class
  count, the size and the imbalance), predicted as given and with those three as
  `open_fields` (and no probe: no images were seen): does the interval cover what the
  defaults leave open?
- **picks among D's runs** (the winner's curse): the recorded config of D that the ranking of
  MetaModel.candidates would pick, by the predictions at the profile as given and by the
  corrected ones it ranks by now (for the text profile, the mean over the fields left open):
  regret to D's best run and the pick's stated minus real accuracy, before and after.
- **real picks** (bench/results/lodo_runs.jsonl, runs bench/lodo.py trained on D for every
  method: each method's pick, the search trials, the reference protocol): coverage of the
  interval D's model states for each cached run, and, labelled apart, for the configs the
  zero-shot methods (`metamodel-top1`, `metallmix`) picked in bench/lodo.py's last report
  (bench/results/lodo.md; picked by the models of that run, which may predate today's seed).

Usage:
    nice -n 19 python -m bench.calibration [--records knowledge/seed] [--docs docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, header, table, write_section
from bench.lodo import ZERO_SHOT, short
from bench.reference import is_stale_row
from knowledge.runner_revisions import is_stale
from knowledge.schema import ExperimentRecord, MetaFeatures, TrainConfig
from knowledge.store import read_records, read_seed
from tools.metamodel import (
    INTERVAL,
    SPREAD_WEIGHT,
    TIME_WEIGHT,
    MetaModel,
    _binned_q,
    _bounds,
    _config_matrix,
    _predict,
    accuracy_target,
    usable,
)
from tools.novelty import vary
from tools.task_text import DEFAULTS

RUNS_FILE = RESULTS / "lodo_runs.jsonl"
LODO_REPORT = RESULTS / "lodo.md"
TEXT_OPEN = ("n_classes", "n_instances", "imbalance_ratio")  # what a text that names only the modality leaves open


@dataclass
class Scored:
    """Predictions against truths for one set of runs: coverage, width and error."""

    truth: list[float] = field(default_factory=list)
    point: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    def add(self, truth: Sequence[float], point: Sequence[float], low: Sequence[float], high: Sequence[float]) -> None:
        self.truth += list(truth)
        self.point += list(point)
        self.low += list(low)
        self.high += list(high)

    @property
    def n(self) -> int:
        return len(self.truth)

    @property
    def coverage(self) -> float:
        t, lo, hi = (np.asarray(v) for v in (self.truth, self.low, self.high))
        return float(np.mean((t >= lo - 1e-9) & (t <= hi + 1e-9))) if self.n else float("nan")

    @property
    def width(self) -> float:
        return float(np.mean(np.asarray(self.high) - np.asarray(self.low))) if self.n else float("nan")

    @property
    def bias(self) -> float:
        """Mean of truth - prediction: how much easier (+) or harder (-) than predicted."""
        return float(np.mean(np.asarray(self.truth) - np.asarray(self.point))) if self.n else float("nan")

    @property
    def mae_around_bias(self) -> float:
        """The MAE left once the mean error is taken out: the error in ranking configs, not in the level."""
        e = np.asarray(self.truth) - np.asarray(self.point)
        return float(np.mean(np.abs(e - e.mean()))) if self.n else float("nan")

    @property
    def mae(self) -> float:
        return float(np.mean(np.abs(np.asarray(self.truth) - np.asarray(self.point)))) if self.n else float("nan")


@dataclass
class Fold:
    """One held-out dataset: what its model said and how it scored."""

    name: str
    distance: float
    nearest: str
    thin: bool
    threshold: float | None
    before: Scored
    after: Scored
    text_given: Scored
    text_open: Scored
    cached: Scored
    picks: Scored
    pick_note: str
    ranked: dict[str, Pick] = field(default_factory=dict)  # "<profile> <ranking>" -> the pick


def text_meta(meta: MetaFeatures) -> MetaFeatures:
    """`meta` as a text naming only its modality and body part would profile it: tools.task_text's
    defaults for the class count, the size and the imbalance (class sizes built as it builds them),
    and no probe (no images were seen: the model predicts it at the knowledge base's median and
    leaves it open)."""
    return vary(meta, n_classes=float(DEFAULTS["n_classes"]), n_instances=float(DEFAULTS["n_instances"]),  # type: ignore[arg-type]
                imbalance_ratio=float(DEFAULTS["imbalance_ratio"])).model_copy(update={"probe_accuracy": None})  # type: ignore[arg-type]


@dataclass
class Pick:
    """The config a ranking picks among D's recorded runs: its real and predicted accuracy."""

    truth: float
    best: float
    predicted: float

    @property
    def regret(self) -> float:
        return self.best - self.truth

    @property
    def gap(self) -> float:
        """Predicted - real: how optimistic the stated accuracy of the pick was."""
        return self.predicted - self.truth


def picks_among_runs(model: MetaModel, meta: MetaFeatures, configs: Sequence[TrainConfig], truth: Sequence[float],
                     open_fields: Sequence[str] = ()) -> tuple[Pick, Pick]:
    """(raw, corrected): the recorded config each ranking scores best (MetaModel.candidates' score:
    accuracy minus its spread and TIME_WEIGHT per decade of seconds), by the model's own predictions and by the
    corrected ones MetaModel.candidates ranks by (MetaModel.corrected), with the pick's stated accuracy."""
    preds = model.predict(meta, configs, open_fields=open_fields)
    spread = model.spread(meta, configs)
    out = []
    for ps in (preds, model.corrected(meta, configs, preds, open_fields)):
        score = [p.accuracy - SPREAD_WEIGHT * s - TIME_WEIGHT * np.log10(max(p.seconds, 1e-3))
                 for p, s in zip(ps, spread, strict=True)]
        i = int(np.argmax(score))
        out.append(Pick(float(truth[i]), float(max(truth)), ps[i].accuracy))
    return out[0], out[1]


def cached_runs(path: Path, recorded: Sequence[ExperimentRecord] = ()) -> dict[str, list[dict[str, Any]]]:
    """bench/lodo.py's cached real runs, by dataset fingerprint, less those `recorded` holds already
    (the same dataset, config as it ran, and seed: knowledge.bench_runs imports cached runs into
    the seed, and a run the model is scored on as one of D's records is not new evidence twice)."""
    held = {r.run_key for r in recorded}
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if is_stale_row(row):  # measured before a runner fix that changes it: not evidence of today's runner
                    continue
                ran = TrainConfig.model_validate(row.get("ran_as") or row["config"])
                if ExperimentRecord.make_run_key(row["fingerprint"], ran, int(row["seed"]), "sweep") not in held:
                    out[row["fingerprint"]].append(row)
    return out


def zero_shot_picks(path: Path) -> dict[str, dict[str, set[str]]]:
    """The configs the zero-shot methods picked in bench/lodo.py's report: {dataset: {config line: {method}}}."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    dataset = None
    if path.is_file():
        for line in path.read_text().splitlines():
            m = re.match(r"\*\*(\w+)\*\* \((?:best known|reference)", line)  # the full report, or --zero-shot-only's
            if m:
                dataset = m.group(1)
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("#"):
                dataset = None  # the summary tables after the per-dataset ones
            if dataset and len(cells) > 2 and cells[0] in ZERO_SHOT and "/" in cells[1]:
                out[dataset][cells[1]].add(cells[0])
    return {k: dict(v) for k, v in out.items()}


def _truth(row: dict[str, Any], chance: float) -> float | None:
    """A cached run's test accuracy (the majority share for a diverged one, as the meta-model counts it)."""
    if row["status"] == "ok" and row.get("test_accuracy") is not None:
        return float(row["test_accuracy"])
    return chance if row["status"] == "diverged" else None


def evaluate(name: str, records: Sequence[ExperimentRecord], cache: dict[str, list[dict[str, Any]]],
             picks_by_dataset: dict[str, dict[str, set[str]]], seed: int = 0) -> Fold:
    """Fit without `name`, then score every prediction the model makes for its current runs (a stale run,
    measured before a runner fix that changes it, is not what the runner gives now: scored on nothing,
    while the model learns from other datasets' stale runs as the product's does)."""
    test = [r for r in records if r.dataset.name == name and not is_stale(r)]
    model = MetaModel.fit([r for r in records if r.dataset.name != name], seed=seed, cross_validate=True)
    meta = test[0].dataset.meta
    configs = [r.config for r in test]
    truth = [accuracy_target(r) for r in test]
    preds = model.predict(meta, configs)
    raw = _predict(model._acc, model._x_acc(meta, _config_matrix(configs)))  # unclipped, as predict bins it
    before = Scored()
    point, low, high = _bounds(raw, _binned_q(model._info["residuals"]["new"], raw))
    before.add(truth, point, low, high)
    after = Scored()
    after.add(truth, [p.accuracy for p in preds], [p.low for p in preds], [p.high for p in preds])

    text = text_meta(meta)
    given, opened = Scored(), Scored()
    tp = model.predict(text, configs)
    given.add(truth, [p.accuracy for p in tp], [p.low for p in tp], [p.high for p in tp])
    to = model.predict(text, configs, open_fields=TEXT_OPEN)
    opened.add(truth, [p.accuracy for p in to], [p.low for p in to], [p.high for p in to])

    cached, picks = Scored(), Scored()
    chance = meta.class_size_max / meta.n_instances
    rows = cache.get(test[0].dataset.fingerprint, [])
    runs = [(TrainConfig.model_validate(r.get("ran_as") or r["config"]), _truth(r, chance)) for r in rows]
    runs = [(c, t) for c, t in runs if t is not None]
    if runs:
        cp = model.predict(meta, [c for c, _ in runs])
        cached.add([t for _, t in runs], [p.accuracy for p in cp], [p.low for p in cp], [p.high for p in cp])
    picked = picks_by_dataset.get(name, {})
    hits: list[tuple[float, str]] = []
    for r in rows:
        cfg = TrainConfig.model_validate(r["config"])
        t = _truth(r, chance)
        if short(cfg) in picked and t is not None:
            hits.append((t, short(cfg)))
    if hits:
        pp = dict(zip(sorted({c for _, c in hits}), model.predict(meta, [
            next(TrainConfig.model_validate(r["config"]) for r in rows if short(TrainConfig.model_validate(r["config"])) == c)
            for c in sorted({c for _, c in hits})]), strict=True))
        picks.add([t for t, _ in hits], [pp[c].accuracy for _, c in hits], [pp[c].low for _, c in hits],
                  [pp[c].high for _, c in hits])
    pick_note = ", ".join(f"{'/'.join(sorted(picked[c]))}: {c}" for c in sorted(picked)) if picked else "no pick recorded"
    ranked: dict[str, Pick] = {}
    for profile, m, fields in (("full", meta, ()), ("text", text, TEXT_OPEN)):
        ranked[f"{profile} raw"], ranked[f"{profile} corrected"] = picks_among_runs(model, m, configs, truth, fields)
    near = model.nearest_datasets(meta, k=1)
    bands = model.distance_bands
    return Fold(name, model.distance(meta), near[0][0] if near else "", model.evidence_note(meta) is not None,
                bands["threshold"], before, after, given, opened, cached, picks, pick_note, ranked)


def _shown(path: Path) -> str:
    """`path` as the docs name it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(RESULTS.parents[1])) if path.is_relative_to(RESULTS.parents[1]) else str(path)


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.0f} %"


def _f(x: float, nd: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{nd}f}"


def _pool(folds: Sequence[Fold], attr: str) -> Scored:
    out = Scored()
    for f in folds:
        s = getattr(f, attr)
        out.add(s.truth, s.point, s.low, s.high)
    return out


def _mean(folds: Sequence[Fold], attr: str, what: str) -> float:
    values = [getattr(getattr(f, attr), what) for f in folds if getattr(f, attr).n]
    return statistics.mean(values) if values else float("nan")


def render(folds: Sequence[Fold], full: MetaModel, seconds: float, n_records: int,
           lodo_report: Path = LODO_REPORT) -> str:
    """The markdown section."""
    lo, hi = INTERVAL
    bands = full.distance_bands
    out = [header(f"Records {n_records} ({len(folds)} datasets); nested leave-one-dataset-out, {seconds / 60:.1f} min.")]
    out.append("")
    out.append(
        f"Per held-out dataset D (the model fitted on the other datasets, with cross-validation): D's distance to the "
        f"nearest other dataset and which it is; **thin**: the model's verdict (beyond the threshold it calibrated "
        f"without D, given in the column after); the point prediction's MAE over D's recorded runs and its mean error (truth - prediction); coverage of the "
        f"stated {round(100 * (hi - lo))} % interval and its mean width, before (leave-dataset-out residuals per "
        f"quartile of predicted accuracy) and after (distance bands).")
    out.append("")
    rows = []
    for f in sorted(folds, key=lambda f: f.distance):
        rows.append([f.name, f.after.n, _f(f.distance, 2), f.nearest, "yes" if f.thin else "no",
                     _f(f.threshold, 2) if f.threshold is not None else "n/a", _f(f.after.mae), f"{f.after.bias:+.3f}",
                     _pct(f.before.coverage), _f(f.before.width, 2), _pct(f.after.coverage), _f(f.after.width, 2)])
    out.append(table(rows, ["dataset", "runs", "distance", "nearest", "thin", "threshold", "MAE", "mean error",
                            "coverage before", "width before", "coverage after", "width after"], "lrrlllrrrrrr"))
    out.append("")
    groups = [("near (no note)", [f for f in folds if not f.thin]), ("far (evidence note)", [f for f in folds if f.thin]),
              ("all", list(folds))]
    rows = []
    for label, fs in groups:
        if not fs:
            rows.append([label, 0, 0, "", "", "", "", "", ""])
            continue
        b, a = _pool(fs, "before"), _pool(fs, "after")
        rows.append([label, len(fs), a.n, _f(a.mae), _f(_mean(fs, "after", "mae")),
                     f"{_pct(b.coverage)} / {_pct(_mean(fs, 'before', 'coverage'))}", _f(b.width, 2),
                     f"{_pct(a.coverage)} / {_pct(_mean(fs, 'after', 'coverage'))}", _f(a.width, 2)])
    out.append(table(rows, ["datasets", "n", "runs", "MAE (runs)", "MAE (datasets)", "coverage before (runs / datasets)",
                            "width before", "coverage after (runs / datasets)", "width after"], "lrrrrrrrr"))
    out.append("")
    out.append(
        f"Point error: MAE {_f(_pool(folds, 'after').mae)} over runs, {_f(_mean(folds, 'after', 'mae'))} over datasets "
        f"(goal 0.05). Mean error (truth - prediction) per dataset: mean |mean error| "
        f"{_f(statistics.mean(abs(f.after.bias) for f in folds))}; with each dataset's mean error taken out, the MAE "
        f"left is {_f(_mean(folds, 'after', 'mae_around_bias'))} over datasets.")
    out.append("")
    out.append("Text-only profiles: D's modality, body part, resolution and channels, with tools.task_text's defaults "
               f"for {', '.join(TEXT_OPEN)} ({DEFAULTS['n_classes']} classes, {DEFAULTS['n_instances']} images, "
               f"imbalance {DEFAULTS['imbalance_ratio']}), scored on D's recorded runs: the defaults taken as given, and "
               "left open (`open_fields`).")
    out.append("")
    rows = []
    for label, attr in (("defaults as given", "text_given"), ("defaults left open", "text_open")):
        s = _pool(folds, attr)
        rows.append([label, s.n, _f(s.mae), _f(_mean(folds, attr, "mae")), _pct(s.coverage),
                     _pct(_mean(folds, attr, "coverage")), _f(s.width, 2)])
    out.append(table(rows, ["profile", "runs", "MAE (runs)", "MAE (datasets)", "coverage (runs)", "coverage (datasets)",
                            "width"]))
    out.append("")
    out.append("Picks among D's recorded runs (the winner's curse): the config D's model scores best "
               "(accuracy minus the time weight, as MetaModel.candidates ranks), by its predictions at the profile "
               "as given (**raw**) and by the **corrected** ones candidates ranks by now (MetaModel.corrected: for "
               "the text-only profile above, each config's mean prediction over the plausible values of the fields "
               "left open; the full profile is not corrected, so its two rows agree); the pick's stated accuracy "
               "is the one ranked by. Regret: D's best recorded accuracy minus the pick's; gap: the pick's stated "
               "accuracy minus its real one.")
    out.append("")
    rows = []
    for key in ("full raw", "full corrected", "text raw", "text corrected"):
        ps = [f.ranked[key] for f in folds if key in f.ranked]
        if ps:
            rows.append([key, len(ps), _f(statistics.mean(p.regret for p in ps)), _f(max(p.regret for p in ps)),
                         f"{statistics.mean(p.gap for p in ps):+.3f}", _f(statistics.mean(abs(p.gap) for p in ps)),
                         _f(max(p.gap for p in ps))])
    out.append(table(rows, ["profile, ranking", "datasets", "mean regret", "max regret", "mean gap",
                            "mean abs gap", "max gap"], "lrrrrrr"))
    out.append("")
    with_cache = [f for f in folds if f.cached.n]
    if with_cache:
        out.append(f"Real runs of bench/lodo.py (`{RUNS_FILE.relative_to(RESULTS.parents[1])}`, those the "
                   "records do not hold: each method's pick, search trials, the reference protocol), predicted by D's model:")
        out.append("")
        rows = []
        for f in sorted(with_cache, key=lambda f: f.distance):
            rows.append([f.name, "yes" if f.thin else "no", f.cached.n, _f(f.cached.mae), _pct(f.cached.coverage),
                         _f(f.cached.width, 2), f.picks.n, _pct(f.picks.coverage) if f.picks.n else "", f.pick_note])
        c, p = _pool(with_cache, "cached"), _pool(with_cache, "picks")
        rows.append(["all", "", c.n, _f(c.mae), _pct(c.coverage), _f(c.width, 2), p.n,
                     _pct(p.coverage) if p.n else "", ""])
        out.append(table(rows, ["dataset", "thin", "cached runs", "MAE", "coverage", "width", "zero-shot pick runs",
                                "pick coverage", f"zero-shot picks ({_shown(lodo_report)})"], "llrrrrrrl"))
        out.append("")
    out.append(
        f"The product's model (all {n_records} records): threshold {_f(bands['threshold'] or float('nan'), 2)}, "
        f"farthest held-out distance {_f(bands['max_measured'] or float('nan'), 2)}; bands "
        + "; ".join(f"{'<= ' + _f(e, 2) if i < len(bands['edges']) else '> ' + _f(bands['edges'][-1], 2) if bands['edges'] else 'all'}"
                    f": {q[0]:+.3f} to {q[1]:+.3f} ({len(d)} datasets)"
                    for i, (e, q, d) in enumerate(zip([*bands['edges'], None], bands["q"], bands["datasets"], strict=True)))
        + ".")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=None,
                        help="a records .jsonl, or a folder (a seed of shards, a knowledge base); default: the packaged seed")
    parser.add_argument("--runs", type=Path, default=RUNS_FILE, help="bench/lodo.py's cache of real runs")
    parser.add_argument("--lodo-report", type=Path, default=LODO_REPORT,
                        help="bench/lodo.py's report, for the configs its zero-shot methods picked")
    parser.add_argument("--datasets", nargs="*", help="hold out only these (default: every dataset)")
    parser.add_argument("--docs", type=Path, help="also write the section into this markdown file (docs/BENCHMARKS.md)")
    args = parser.parse_args(argv)
    records = usable(read_seed(args.records) if args.records is None or args.records.is_dir()
                     else read_records(args.records))
    cache = cached_runs(args.runs, records)
    picks = zero_shot_picks(args.lodo_report)
    names = args.datasets or sorted({r.dataset.name for r in records})
    start = time.perf_counter()
    folds = []
    for name in names:
        t = time.perf_counter()
        folds.append(evaluate(name, records, cache, picks))
        f = folds[-1]
        print(f"{name:<24} d={f.distance:.2f} thin={f.thin} mae={f.after.mae:.3f} cov {f.before.coverage:.2f}->"
              f"{f.after.coverage:.2f} width {f.before.width:.2f}->{f.after.width:.2f} "
              + " ".join(f"[{k}: regret {p.regret:.3f} gap {p.gap:+.3f}]" for k, p in f.ranked.items())
              + f" ({time.perf_counter() - t:.0f} s)", flush=True)
    full = MetaModel.fit(records, seed=0)
    text = render(folds, full, time.perf_counter() - start, len(records), args.lodo_report)
    print()
    print(text)
    if args.docs:
        section = ("## Meta-model intervals by distance (`python -m bench.calibration`)\n\n"
                   + (__doc__ or "").split("\n\n", 1)[1].split("Usage:")[0].strip() + "\n\n" + text)
        write_section("calibration", section, args.docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
