"""How fast and how good is the meta-model on the knowledge base we have?

Printed:
1. fit time (both models, with the cross-validation that calibrates the intervals) and the
   cross-validated errors; load-from-cache time (median of 5); candidates() time (p50 and
   p95 over 20 varied tasks, after one warm-up call that imports torch for the weights
   check and builds the candidate pool, reported apart); explain() time.
2. Leave-one-dataset-out: for each dataset D, the model fitted without D ranks D's recorded
   runs. Per D: MAE of predicted test accuracy (ok runs), MAE of ln(seconds), Spearman
   correlation of predicted vs true accuracy, the chosen run's true accuracy, the best
   recorded accuracy, regret, the chosen run's rank among D's runs, and the expected
   regret of picking a recorded run at random (the baseline to beat).
3. `--targets`: what the accuracy booster learns, compared on the same leave-one-dataset-out
   folds (booster settings as the product's, without its starting line). `absolute` is the
   product's target (test accuracy). The others are within-dataset targets, which leave out how
   hard a dataset is (the between-dataset variance that dominates the absolute target) so the trees may spend
   their splits on the configuration: `centred` (accuracy minus the dataset's mean run),
   `scaled` (0 at the majority-class share, 1 at the dataset's best run), `pairwise` (XGBoost's
   rank:pairwise with each dataset a query group). Per target: the top-1 regret on D's runs,
   how often it is within 1 point, the mean regret of the top 5 (a less noisy read), and the
   Spearman correlation, per XGBoost seed 0-2 and their mean. A within-dataset target would need
   a second model for the expected accuracy the product shows, so it is worth adopting only for a
   clear gain here.

4. `--features`: which columns the accuracy booster reads, on the same folds, for XGBoost seeds
   0-2: every row feature (`tools.metamodel_features.ROW_FEATURES`, the product's until
   FEATURE_VERSION 12) against the product's `ACC_FEATURES` (without `ACC_LEFT_OUT`: the raw size
   and the class-size statistics, which name the dataset among a dozen). Both learn from the
   same unknown-modality copies and starting line as the product. Per set and seed: the point
   error over D's runs (MAE over runs and over datasets: what the interval and the stated
   accuracy rest on) and the ranking of D's runs (Spearman, top-1 regret, mean regret of the top 5).
5. `--margin`: the accuracy booster's starting line (`tools.metamodel_features.AccMargin`), on
   the same folds with the product's features, per share of the line (0: the mean accuracy
   alone, the product before FEATURE_VERSION 13; 1: the whole line), and nested: each held-out
   dataset gets the share an inner leave-one-dataset-out on the other datasets chose.
6. `--booster`: the accuracy booster's XGBoost settings (`BOOSTERS`: the product's, the median by
   absolute error; the mean by squared error, the product's until FEATURE_VERSION 17; stronger
   leaf regularisation, shallower trees, a lower learning rate), on the same folds with
   everything else as the product trains it, for XGBoost seeds 0-2: the point error, the
   ranking, and what the fold fits cost against the product's settings.
7. `--stale`: the accuracy booster trained with the knowledge base's stale runs (measured before a
   runner fix that changes them, knowledge.runner_revisions; the product learns from them) or
   without them, on the same folds, scored only on held-out runs that are current, for XGBoost
   seeds 0-2.
8. `--own-runs`: how the point error on a dataset falls once k of its own runs are written back
   (k = 0, 1, 3, 10, 30; `own_runs_curve`): the booster retrained with them, as the product
   retrains after each run, and two query-time shifts by their median residual, beside the error
   a perfect estimate of the dataset's difficulty would leave (the oracle's shift), for seeds 0-2.

Usage:
    python -m bench.metamodel [--records knowledge/seed] [--targets] [--features] [--booster] [--margin] [--stale]
                              [--own-runs]

Timings are wall-clock on whatever else the machine is doing; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import tools.metamodel as tm
import tools.metamodel_features as mf
from knowledge.runner_revisions import is_stale
from knowledge.schema import ExperimentRecord
from knowledge.space import BACKBONES, MODES
from knowledge.store import read_records, read_seed
from tools.metamodel import Constraints, MetaModel, leave_one_dataset_out, usable


def _tasks(records: list[ExperimentRecord], n: int, seed: int = 0) -> list[tuple[object, Constraints, list[ExperimentRecord]]]:
    """n varied requests: KB datasets and perturbed (new) ones, with and without constraints."""
    rng = random.Random(seed)
    metas = {r.dataset.name: r.dataset.meta for r in records}
    ok = usable(records)
    out = []
    for i in range(n):
        meta = metas[rng.choice(sorted(metas))]
        if i % 2:  # an unseen task: same kind of data, another size
            scale = rng.choice([0.3, 0.5, 2.0, 4.0])
            meta = meta.model_copy(update={
                "n_instances": max(20, int(meta.n_instances * scale)),
                "class_size_min": max(1, int(meta.class_size_min * scale)),
                "class_size_max": max(2, int(meta.class_size_max * scale)),
                "class_size_mean": meta.class_size_mean * scale,
            })
        budget = rng.choice([None, 60.0, 300.0, 1800.0])
        backbones = rng.choice([None, None, ["efficientnet_lite0", "small_cnn"], list(BACKBONES)[:3]])
        modes = rng.choice([None, None, ["frozen"], ["finetune", "scratch"], list(MODES)])
        retrieved = rng.sample(ok, min(5, len(ok)))
        out.append((meta, Constraints(budget_seconds=budget, backbones=backbones, modes=modes), retrieved))
    return out


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


TARGETS = ("absolute", "centred", "scaled", "pairwise")


def _target(kind: str, y: np.ndarray, groups: np.ndarray, chance: np.ndarray) -> np.ndarray:
    """The training target of one kind (see the docstring); `pairwise` ranks raw accuracy."""
    if kind in ("absolute", "pairwise"):
        return y
    out = np.empty_like(y)
    for g in np.unique(groups):
        m = groups == g
        if kind == "centred":
            out[m] = y[m] - y[m].mean()
        else:
            out[m] = (y[m] - chance[m]) / max(float(y[m].max() - chance[m].mean()), 1e-3)
    return out


def target_ablation(records: list[ExperimentRecord], seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict[str, object]]:
    """Leave-one-dataset-out over the accuracy target (rows: one per target and XGBoost seed, with
    per-dataset regrets): a single seed's top-1 pick moves by more than the targets differ."""
    import xgboost as xgb
    from scipy.stats import spearmanr

    d = tm._design(usable(records))
    groups = np.array(d.groups_acc)
    chance = d.x_acc[:, tm.ACC_FEATURES.index("majority_share")]
    names = sorted(set(groups))
    rows = []
    for kind, seed in ((k, sd) for k in TARGETS for sd in seeds):
        per = []
        for name in names:
            test, train = np.flatnonzero(groups == name), np.flatnonzero(groups != name)
            if kind == "pairwise":  # query groups must be contiguous
                train = train[np.argsort(groups[train], kind="stable")]
            y = _target(kind, d.y_acc[train], groups[train], chance[train])
            dm = xgb.DMatrix(d.x_acc[train], y, feature_names=list(tm.ACC_FEATURES),
                             feature_types=tm._feature_types(tm.ACC_FEATURES), enable_categorical=True)
            params = {**tm._XGB_PARAMS, "seed": seed}
            if kind == "pairwise":
                dm.set_group([int((groups[train] == g).sum()) for g in dict.fromkeys(groups[train])])
                params["objective"] = "rank:pairwise"
            pred = xgb.train(params, dm, tm._ROUNDS).inplace_predict(d.x_acc[test])
            truth = d.y_acc[test]
            order = np.argsort(-pred, kind="stable")
            per.append((float(truth.max() - truth[order[0]]), float(truth.max() - truth[order[:5]].mean()),
                        float(spearmanr(pred, truth).statistic)))
        regrets = [x[0] for x in per]
        rows.append({"target": kind, "seed": seed, "regret": statistics.mean(regrets), "within": sum(r <= 0.01 for r in regrets),
                     "top5": statistics.mean(x[1] for x in per), "rho": statistics.mean(x[2] for x in per),
                     "per_dataset": dict(zip(names, regrets, strict=True)), "n": len(names)})
    return rows


FEATURE_SETS = {"all row features": mf.ROW_FEATURES, "ACC_FEATURES (product)": mf.ACC_FEATURES}


def _lodo_rows(records: list[ExperimentRecord], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The usable records' rows (columns `names`), targets and dataset names."""
    recs = usable(records)
    modalities = sorted({r.dataset.meta.modality for r in recs})
    x_row = mf._records_rows(recs, modalities)
    y = np.array([tm.accuracy_target(r) for r in recs])
    return x_row[:, [mf.ROW_FEATURES.index(n) for n in names]], y, np.array([r.dataset.name for r in recs])


def _held_out(x: np.ndarray, y: np.ndarray, groups: np.ndarray, names: tuple[str, ...], seed: int, share: float,
              name: str, overrides: dict[str, object] | None = None) -> np.ndarray:
    """Predictions for dataset `name` by an accuracy booster trained on the others, as the product
    trains it (unknown-modality copies, the starting line at `share`; XGBoost settings `overrides`)."""
    test, train = groups == name, groups != name
    xt, yt = mf._unknown_modality_copies(x[train], y[train], seed, names)
    return mf._predict(mf._boost(xt, yt, names, seed, share, overrides), x[test])


def _scores(per: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Point error and ranking over held-out datasets, from (prediction, truth) per dataset."""
    from scipy.stats import spearmanr

    orders = [np.argsort(-p, kind="stable") for p, _ in per]
    tops = [(t.max() - t[o[0]], t.max() - t[o[:5]].mean()) for (_, t), o in zip(per, orders, strict=True)]
    return {"mae_runs": float(np.concatenate([np.abs(p - t) for p, t in per]).mean()),
            "mae_datasets": statistics.mean(float(np.abs(p - t).mean()) for p, t in per),
            "rho": statistics.mean(float(spearmanr(p, t).statistic) for p, t in per),
            "regret": statistics.mean(float(a) for a, _ in tops), "top5": statistics.mean(float(b) for _, b in tops),
            "n": len(per)}


def feature_ablation(records: list[ExperimentRecord], seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict[str, object]]:
    """Leave-one-dataset-out per feature set and XGBoost seed (rows: one per set and seed)."""
    rows = []
    for label, names in FEATURE_SETS.items():
        x, y, groups = _lodo_rows(records, names)
        for seed in seeds:
            per = [(_held_out(x, y, groups, names, seed, mf.ACC_MARGIN_SHARE, d), y[groups == d])
                   for d in sorted(set(groups))]
            rows.append({"features": label, "n_features": len(names), "seed": seed, **_scores(per)})
    return rows


MARGIN_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def margin_ablation(records: list[ExperimentRecord], seed: int = 0) -> tuple[list[dict[str, object]], dict[str, str]]:
    """Leave-one-dataset-out per share of the accuracy model's starting line (`mf.AccMargin`; 0 is
    the mean alone), and a nested row: for each held-out dataset the share with the lowest MAE
    over datasets in an inner leave-one-dataset-out on the others, then scored on it (an honest
    estimate of choosing the share from these data). Returns the rows and each dataset's inner choice."""
    names = mf.ACC_FEATURES
    x, y, groups = _lodo_rows(records, names)
    datasets = sorted(set(groups))
    rows = []
    held = {share: {d: (_held_out(x, y, groups, names, seed, share, d), y[groups == d]) for d in datasets}
            for share in MARGIN_SHARES}
    for share, per in held.items():
        rows.append({"share": f"{share:g}", **_scores(list(per.values()))})
    nested, chosen = [], {}
    for d in datasets:
        inner = groups != d
        xi, yi, gi = x[inner], y[inner], groups[inner]

        def inner_mae(share: float, xi=xi, yi=yi, gi=gi) -> float:
            return statistics.mean(float(np.abs(_held_out(xi, yi, gi, names, seed, share, e) - yi[gi == e]).mean())
                                   for e in sorted(set(gi)))

        best = min(MARGIN_SHARES, key=inner_mae)
        chosen[d] = f"{best:g}"
        nested.append(held[best][d])  # the outer fit at that share, made above
    rows.append({"share": "nested choice", **_scores(nested)})
    return rows, chosen


# XGBoost settings compared by `booster_ablation` (overrides of tools.metamodel_features._XGB_PARAMS).
BOOSTERS: dict[str, dict[str, object]] = {
    "product": {},
    "squared error (mean)": {"objective": "reg:squarederror"},
    "L2 leaves lambda=10": {"lambda": 10.0},
    "squared error, lambda=10": {"objective": "reg:squarederror", "lambda": 10.0},
    "max_depth 3": {"max_depth": 3},
    "eta 0.02": {"eta": 0.02},
}


def booster_ablation(records: list[ExperimentRecord], seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict[str, object]]:
    """Leave-one-dataset-out per XGBoost setting (`BOOSTERS`) and seed, the accuracy booster otherwise as the
    product trains it (features, unknown-modality copies, starting line); rows also carry the seconds the
    fold fits took (fit cost is paid again each time the knowledge base grows)."""
    names = mf.ACC_FEATURES
    x, y, groups = _lodo_rows(records, names)
    rows = []
    for label, overrides in BOOSTERS.items():
        for seed in seeds:
            t = time.perf_counter()
            per = [(_held_out(x, y, groups, names, seed, mf.ACC_MARGIN_SHARE, d, overrides), y[groups == d])
                   for d in sorted(set(groups))]
            rows.append({"booster": label, "seed": seed, "fit_s": time.perf_counter() - t, **_scores(per)})
    return rows


def stale_ablation(records: list[ExperimentRecord], seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict[str, object]]:
    """Leave-one-dataset-out scored on the held-out runs that are current (a stale run's accuracy is not what
    the runner gives now, knowledge.runner_revisions), for an accuracy booster trained as the product trains it
    on every usable record, stale ones included, or on the current ones only; per XGBoost seed."""
    names = mf.ACC_FEATURES
    x, y, groups = _lodo_rows(records, names)
    stale = np.array([is_stale(r) for r in usable(records)], dtype=bool)  # the rows of _lodo_rows, in order
    rows = []
    for label, keep in (("stale runs kept (product)", np.ones(len(y), dtype=bool)), ("stale runs left out", ~stale)):
        for seed in seeds:
            per = []
            for d in sorted(set(groups)):
                test, train = (groups == d) & ~stale, (groups != d) & keep
                if test.sum() < 2:  # nothing current to score (or no ranking to score) on this dataset
                    continue
                per.append((mf._predict(mf._train(x[train], y[train], names, seed), x[test]), y[test]))
            rows.append({"training": label, "seed": seed, "trained_on": int(keep.sum()), "stale": int(stale.sum()),
                         **_scores(per)})
    return rows


OWN_RUNS = (0, 1, 3, 10, 30)


def own_runs_curve(records: list[ExperimentRecord], seeds: tuple[int, ...] = (0, 1, 2),
                   ks: tuple[int, ...] = OWN_RUNS) -> list[dict[str, object]]:
    """How the point error on a dataset D falls as D's own runs are written back. Per D and seed, D's runs are
    shuffled; the first `max(ks)` (at most a third of them) are the runs a user could have trained, the rest are
    scored. For each k: an accuracy booster trained as the product trains it on the other datasets plus D's first
    k runs, scored as it is (`plain`) and shifted by the median residual of those k runs under it (`offset`, what
    a correction at query time could use: the rows are in its training, so their residual is shrunk by the fit),
    and the booster without D shifted by the k runs' median residual under it (`held-out offset`: the residual of
    runs it never saw). The `oracle offset` row shifts the booster without D by the scored runs' own median
    residual: the error left by a perfect estimate of D's difficulty."""
    names = mf.ACC_FEATURES
    x, y, groups = _lodo_rows(records, names)
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        per: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for d in sorted(set(groups)):
            idx = rng.permutation(np.flatnonzero(groups == d))
            pool, scored = idx[:min(max(ks), len(idx) // 3)], idx[min(max(ks), len(idx) // 3):]
            others = np.flatnonzero(groups != d)
            blind = mf._train(x[others], y[others], names, seed)  # as the product trains it
            blind_scored = mf._predict(blind, x[scored])
            per.setdefault("oracle offset", []).append((blind_scored + np.median(y[scored] - blind_scored), y[scored]))
            for k in ks:
                own = pool[:k]
                if k:
                    train = np.concatenate([others, own])
                    model = mf._train(x[train], y[train], names, seed)
                    shift = float(np.median(y[own] - mf._predict(model, x[own])))
                    held = float(np.median(y[own] - mf._predict(blind, x[own])))
                    pred = mf._predict(model, x[scored])
                else:
                    pred, shift, held = blind_scored, 0.0, 0.0
                per.setdefault(f"{k} plain", []).append((pred, y[scored]))
                per.setdefault(f"{k} offset", []).append((pred + shift, y[scored]))
                per.setdefault(f"{k} held-out offset", []).append((blind_scored + held, y[scored]))
        rows += [{"own runs": label, "seed": seed, **_scores(p)} for label, p in per.items()]
    return rows


_SCORE_COLUMNS = (("MAE runs", 8, "mae_runs", ".4f"), ("MAE datasets", 12, "mae_datasets", ".4f"), ("rho", 6, "rho", ".3f"),
                  ("top-1 regret", 12, "regret", ".3f"), ("top-5 regret", 12, "top5", ".3f"))


def _print_seed_rows(rows: list[dict[str, object]], key: str, width: int,
                     before: tuple[tuple[str, int, str], ...] = (), after: tuple[tuple[str, int, str], ...] = ()) -> None:
    """A table of the rows: `key`, the seed, the columns `before` (header, width, field), the point error and
    ranking, then the columns `after` (floats to one decimal)."""
    columns = [(h, w, f, "") for h, w, f in before] + list(_SCORE_COLUMNS) + [(h, w, f, ".1f") for h, w, f in after]
    print(f"{key:<{width}} {'seed':>4} " + " ".join(f"{h:>{w}}" for h, w, _, _ in columns))
    for row in rows:
        print(f"{row[key]!s:<{width}} {row['seed']!s:>4} " + " ".join(f"{row[f]:>{w}{spec}}" for _, w, f, spec in columns))


def _print_seed_means(rows: list[dict[str, object]], key: str, width: int,
                      extra: Callable[[list[dict[str, Any]]], str] = lambda mine: "") -> None:
    """One line per value of `key` (in the rows' order): the point error and ranking averaged over its seeds."""
    for label in dict.fromkeys(r[key] for r in rows):
        mine: list[dict[str, Any]] = [r for r in rows if r[key] == label]
        print(f"{label!s:<{width}} mean over seeds: MAE runs {statistics.mean(r['mae_runs'] for r in mine):.4f}, datasets "
              f"{statistics.mean(r['mae_datasets'] for r in mine):.4f}; rho {statistics.mean(r['rho'] for r in mine):.3f}; "
              f"top-1 regret {statistics.mean(r['regret'] for r in mine):.3f}; top-5 {statistics.mean(r['top5'] for r in mine):.3f}"
              + extra(mine))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=None,
                        help="a records .jsonl, or a folder (a seed of shards, a knowledge base); default: the packaged seed")
    parser.add_argument("--targets", action="store_true", help="also compare accuracy targets (leave-one-dataset-out)")
    parser.add_argument("--features", action="store_true",
                        help="also compare the accuracy model's feature sets (leave-one-dataset-out, 3 seeds)")
    parser.add_argument("--stale", action="store_true",
                        help="also compare training with and without stale runs, scored on current ones (3 seeds)")
    parser.add_argument("--booster", action="store_true",
                        help="also compare the accuracy booster's XGBoost settings (leave-one-dataset-out, 3 seeds)")
    parser.add_argument("--own-runs", action="store_true",
                        help="also measure how the point error on a dataset falls with its own runs written back (3 seeds)")
    parser.add_argument("--margin", action="store_true",
                        help="also compare shares of the accuracy model's starting line (leave-one-dataset-out, nested)")
    args = parser.parse_args()
    records = read_seed(args.records) if args.records is None or args.records.is_dir() else read_records(args.records)
    statuses = Counter(r.outcome.status for r in records)
    datasets = Counter(r.dataset.name for r in usable(records))
    print(f"records: {len(records)} {dict(statuses)}; datasets: {len(datasets)}; load average {os.getloadavg()[0]:.2f}")

    t, cpu = time.perf_counter(), time.process_time()
    model = MetaModel.fit(records)
    fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - cpu
    with tempfile.TemporaryDirectory() as tmp:
        MetaModel.load_or_fit(records, cache_dir=Path(tmp))  # fits once and writes the cache
        loads = []
        for _ in range(5):
            t = time.perf_counter()
            MetaModel.load_or_fit(records, cache_dir=Path(tmp))
            loads.append(time.perf_counter() - t)
    tasks = _tasks(records, 20)
    t = time.perf_counter()
    model.candidates(*tasks[0])
    first_s = time.perf_counter() - t
    cand_s = []
    for meta, constraints, retrieved in tasks:
        t = time.perf_counter()
        model.candidates(meta, constraints, retrieved)
        cand_s.append(time.perf_counter() - t)
    meta, constraints, retrieved = tasks[0]
    best = model.candidates(meta, constraints, retrieved)[0].config
    model.explain(meta, best)  # imports shap, builds the explainer
    t = time.perf_counter()
    model.explain(meta, best)
    explain_s = time.perf_counter() - t

    print("\n== speed (wall clock, seconds)")
    rows = [
        ("fit (2 models + CV)", fit_s),
        ("fit, CPU seconds of this process", fit_cpu),
        ("load_or_fit, cache hit (median of 5)", statistics.median(loads)),
        ("candidates(), first call (torch import, pool)", first_s),
        ("candidates(), p50 over 20 tasks", _p(cand_s, 0.5)),
        ("candidates(), p95 over 20 tasks", _p(cand_s, 0.95)),
        ("explain(), warm explainer", explain_s),
    ]
    for name, value in rows:
        print(f"{name:<48} {value:8.3f}")
    print("\n== cross-validated errors of the full model")
    for key, value in model.metrics.items():
        print(f"{key:<40} {value}")
    print("\n== global importance (mean |SHAP| on the accuracy model)")
    for name, value in model.global_importance(10):
        print(f"{name:<20} {value:.4f}")

    print("\n== leave-one-dataset-out")
    t = time.perf_counter()
    lodo = leave_one_dataset_out(records)
    header = f"{'dataset':<24} {'runs':>5} {'MAE':>6} {'MAE ln s':>8} {'rho':>6} {'chosen':>7} {'best':>6} {'regret':>7} {'rank':>9} {'random':>7}"
    print(header)
    print("-" * len(header))
    for row in lodo:
        print(
            f"{row['dataset']:<24} {row['n_runs']:>5} {row['mae']:>6.3f} {row['mae_log_seconds']:>8.3f} "
            f"{row['spearman']:>6.2f} {row['chosen_accuracy']:>7.3f} {row['best_accuracy']:>6.3f} "
            f"{row['regret']:>7.3f} {str(row['rank']) + '/' + str(row['n_runs']):>9} {row['random_regret']:>7.3f}"
        )
    if lodo:
        mean = {k: statistics.mean(r[k] for r in lodo) for k in ("mae", "mae_log_seconds", "regret", "random_regret")}
        print(
            f"{'mean':<24} {'':>5} {mean['mae']:>6.3f} {mean['mae_log_seconds']:>8.3f} {'':>6} {'':>7} {'':>6} "
            f"{mean['regret']:>7.3f} {'':>9} {mean['random_regret']:>7.3f}"
        )
        print(f"top-1 optimal on {sum(r['regret'] == 0 for r in lodo)}/{len(lodo)} datasets; "
              f"within 1 point on {sum(r['regret'] <= 0.01 for r in lodo)}/{len(lodo)}; "
              f"({time.perf_counter() - t:.1f} s)")
    for row in lodo:
        print(f"  {row['dataset']}: chose {row['chosen']} ({row['chosen_seconds']:.0f} s)")

    if args.targets:
        print("\n== accuracy target, leave-one-dataset-out (top-1 regret per dataset in the last columns)")
        t = time.perf_counter()
        rows = target_ablation(records)
        names = list(rows[0]["per_dataset"])
        print(f"{'target':<10} {'seed':>4} {'regret':>7} {'within 1pt':>10} {'top-5 regret':>12} {'rho':>6}  "
              + " ".join(f"{n[:8]:>8}" for n in names))
        for row in rows:
            print(f"{row['target']:<10} {row['seed']:>4} {row['regret']:>7.3f} {str(row['within']) + '/' + str(row['n']):>10} "
                  f"{row['top5']:>12.3f} {row['rho']:>6.2f}  " + " ".join(f"{v:>8.3f}" for v in row["per_dataset"].values()))
        for kind in TARGETS:
            mine = [r for r in rows if r["target"] == kind]
            print(f"{kind:<10} mean over seeds: top-1 regret {statistics.mean(r['regret'] for r in mine):.3f} "
                  f"(seeds {min(r['regret'] for r in mine):.3f}-{max(r['regret'] for r in mine):.3f}), top-5 "
                  f"{statistics.mean(r['top5'] for r in mine):.3f}, rho {statistics.mean(r['rho'] for r in mine):.2f}")
        print(f"({time.perf_counter() - t:.1f} s)")

    if args.stale:
        print("\n== stale runs in training, leave-one-dataset-out on current runs (XGBoost seeds 0-2)")
        t = time.perf_counter()
        rows = stale_ablation(records)
        _print_seed_rows(rows, "training", 26, before=(("runs", 5, "trained_on"), ("datasets", 8, "n")))
        _print_seed_means(rows, "training", 26)
        print(f"({time.perf_counter() - t:.1f} s; {rows[0]['stale']} stale runs)")

    if args.features:
        print("\n== accuracy model's features, leave-one-dataset-out (XGBoost seeds 0-2)")
        t = time.perf_counter()
        rows = feature_ablation(records)
        _print_seed_rows(rows, "features", 24, before=(("n", 3, "n_features"),))
        _print_seed_means(rows, "features", 24)
        print(f"({time.perf_counter() - t:.1f} s)")

    if args.booster:
        print("\n== accuracy booster's XGBoost settings, leave-one-dataset-out (XGBoost seeds 0-2)")
        t = time.perf_counter()
        rows = booster_ablation(records)
        _print_seed_rows(rows, "booster", 28, after=(("fits s", 7, "fit_s"),))
        base = sum(r["fit_s"] for r in rows if r["booster"] == "product")
        _print_seed_means(rows, "booster", 28,
                          lambda mine: f"; fit time x{sum(r['fit_s'] for r in mine) / base:.2f} the product's")
        print(f"({time.perf_counter() - t:.1f} s)")

    if args.own_runs:
        print(f"\n== the point error on a dataset after k of its own runs are written back (k = "
              f"{', '.join(map(str, OWN_RUNS))}; XGBoost and sample seeds 0-2; scored on the dataset's other runs)")
        t = time.perf_counter()
        rows = own_runs_curve(records)
        _print_seed_rows(rows, "own runs", 20)
        _print_seed_means(rows, "own runs", 20)
        print(f"({time.perf_counter() - t:.1f} s)")

    if args.margin:
        print(f"\n== accuracy model's starting line (AccMargin), leave-one-dataset-out, XGBoost seed 0; "
              f"the product's share: {mf.ACC_MARGIN_SHARE:g}")
        t = time.perf_counter()
        rows, chosen = margin_ablation(records)
        print(f"{'share':<14} {'MAE runs':>8} {'MAE datasets':>12} {'rho':>6} {'top-1 regret':>12} {'top-5 regret':>12}")
        for row in rows:
            print(f"{row['share']:<14} {row['mae_runs']:>8.4f} {row['mae_datasets']:>12.4f} {row['rho']:>6.3f} "
                  f"{row['regret']:>12.3f} {row['top5']:>12.3f}")
        print("nested: the share each held-out dataset's inner leave-one-dataset-out chose: "
              + ", ".join(f"{d} {v}" for d, v in chosen.items()))
        print(f"({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
