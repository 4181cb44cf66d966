"""Leave-one-dataset-out quality benchmark: MetaLLMiX against its baselines, scored by real training.

For each dataset D in the data folder (every .npz there: 13 now, a dataset the knowledge base
has no runs of included):

1. a temporary knowledge base (a tmp folder: never the seed, never the user's) holds the
   seed records minus every record of D; the meta-model is fitted on it (cached per D);
2. every method chooses one configuration for D, under the same search space and budget:
   - ``random-config``: one seeded draw from the benchmark's search space (below);
   - ``popular``: the most popular configuration in the knowledge base (per field, the value
     most runs used; see `popular_config`);
   - ``metamodel-top1``: retrieval + the meta-model's top candidate, no LLM;
   - ``metamodel-generated``: the same, ranking configs generated field by field from the values
     past runs used instead of the measured pool (the product before it; `metamodel_top1(task, measured=False)`);
   - ``metallmix``: the zero-shot graph with the real embedded LLM and judge, D's profile
     computed from the dataset file (`agent.recommend.Recommender.run`);
   - ``llm-only``: the same LLM, no SHAP, no retrieval, no meta-model: it sees the task
     profile, the budget and the search space, and answers the search-space fields in JSON
     (`LLM_ONLY_SYSTEM`; its answer is projected onto the benchmark space, see `project`);
   - ``random-N`` / ``tpe-N``: random search and Optuna TPE with N real trials (N = 5, 10, 20):
     each trial trains the sampled config on D (seed 0) and is scored on validation accuracy;
     the choice is the best-validation trial. N = 5 and 10 are the first 5 and 10 trials of
     the 20-trial run (both samplers are sequential, so a shorter run is exactly a prefix). With
     ``--ray`` the trials train on a Ray cluster (bench/lodo_ray.py): random search's at once, the
     same configs; TPE's in batches of the cluster's slots, which changes TPE slightly (a batch
     is sampled before any of its results is told);
   - ``agent-N``: the iterative agent (`agent.tune.tune`, AgentHPO) with up to N trials;
3. every chosen config is then trained for real on D with the same seeds (`--seeds`), through
   `tools.train.train`; results are cached in bench/results/lodo_runs.jsonl by (dataset
   fingerprint, config key, seed, device kind), so re-running the report retrains nothing.
   Each cached number is a real run of this repository's code (`bench.reference.Runs`);
4. the reference protocol (bench/reference.py: Lite0 fine-tuned for 15 epochs, 128 px on a
   GPU or 64 px as the CPU stand-in, and small_cnn from scratch for 30 epochs) is run on D
   with the same seeds through the same cache.

Reported per dataset and method: test accuracy (mean over the seeds); regret to the reference
(issue 14: the max of D's best recorded test accuracy and the protocol's seed mean); regret to
the best recorded run on D (a max over 170-300 runs selected on test, so an optimistic bar,
but one the knowledge base's own sweep never fine-tuned long enough to make a real ceiling)
and to its config re-run on the same seeds; rank among D's recorded runs; time to recommend;
and the training cost of the pick on CPU and on GPU where a run of it was measured (train +
feature-extraction seconds, with the run's device string). Then the three goals of issue 14
(within 2 points of the reference on >= 10 of 13 datasets; mean regret <= 0.02; better than
random-10 and tpe-20), and those of issue 5 for comparison, each MET or NOT MET.

Search space and budget (the same for every method):
- the space the knowledge base was swept over (`tools.sweep.plan_sweep`): frozen
  EfficientNet-Lite0/1/2 heads at 64 px, Lite0 also at 96 and 128 px on datasets with
  <= 2,500 training images, every head hyperparameter; trainable runs (scratch small_cnn,
  mobilenet_v3_small, resnet18; fine-tuned Lite0) at 32-64 px and 1-6 epochs, sized by the
  dataset. Every config of it took <= a few minutes in the seed sweep.
- widened by partial fine-tuning (issue 14): a finetune config also draws `freeze`, the share
  of the pretrained backbone's blocks kept frozen from the input side (`FREEZES`: 0, i.e. the
  whole network, to 0.9); frozen and scratch configs keep freeze = 0. Random search and TPE
  sample modes frozen, finetune and scratch and this freeze.
- budget: 5 minutes of predicted training time per run, given to the recommenders as their
  time budget (the judge enforces it); random search and TPE sample only the space above,
  which fits it by construction. A run is cancelled after `HARD_CAP_S` of wall time anyway
  (a reference run after `bench.reference.REFERENCE_CAP_S`: it is meant to be long).
- one torch thread per run (as the seed sweep ran), under whatever else loads the machine;
  run it with `nice -n 19` on a shared machine.

Usage:
    python -m bench.lodo                        # full: 13 datasets, N = 5/10/20, LLM, seeds 0,1, reference trained
    python -m bench.lodo --quick                # 2 small datasets, N = 5, the LLM on the first only, cached reference
    python -m bench.lodo --reference-only       # only train and cache the reference runs (resumable), then stop
    python -m bench.lodo --reference cached     # use only reference runs already cached (train none)
    python -m bench.lodo --zero-shot-only --seeds 0   # only the zero-shot picks against the reference (CPU-sized)
    python -m bench.lodo --docs docs/BENCHMARKS.md   # also write the tables there
    python -m bench.lodo --ray auto             # random search's and TPE's trials as tasks on a Ray cluster
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.common import DATA, RESULTS, cache_root, header, table, write_section  # noqa: E402
from bench.reference import (  # noqa: E402
    EVAL_SEEDS,
    HARD_CAP_S,  # noqa: F401  (re-exported: a pick's run is cancelled after it)
    PROTOCOL_NAMES,
    REFERENCE_CAP_S,
    RUNS_FILE,
    WITHIN,
    Runs,
    fmt_cost,
    goal_verdicts,
    protocol_runs,
    reference_accuracy,
    regret,
    seconds,
)
from knowledge.schema import ExperimentRecord, MetaFeatures, TrainConfig  # noqa: E402
from knowledge.store import KnowledgeBase, read_seed  # noqa: E402

BUDGET_MINUTES = 5.0
TRIALS = (5, 10, 20)
FULL_SEEDS = EVAL_SEEDS
AGENT_DIR = RESULTS / "lodo_agent"  # one JSON per dataset and N: the agent's trials, for studying pick rules offline
SMALL_TRAIN = 2500  # the sweep's threshold for the extra feature sets and longer trainable runs

HEAD_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
TRAIN_OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("constant", "cosine", "step", "warmup_cosine")
TRAIN_SCHEDULERS = ("constant", "cosine", "warmup_cosine")
AUGMENTATIONS = ("none", "flip", "light", "strong")


# ------------------------------------------------------------------ the search space
@dataclass(frozen=True)
class Family:
    """One (backbone, mode, input size) of the benchmark space; trainable ones cap the epochs."""

    backbone: str
    mode: str
    input_size: int
    max_epochs: int = 40

    @property
    def key(self) -> str:
        return f"{self.backbone}/{self.mode}/{self.input_size}"


def families(n_train: int) -> list[Family]:
    """The benchmark space for a dataset with `n_train` training images (tools.sweep.plan_sweep's plan)."""
    small = n_train <= SMALL_TRAIN
    out = [Family("efficientnet_lite0", "frozen", 64), Family("efficientnet_lite1", "frozen", 64),
           Family("efficientnet_lite2", "frozen", 64)]
    if small:
        out += [Family("efficientnet_lite0", "frozen", 96), Family("efficientnet_lite0", "frozen", 128)]
    out += [
        Family("small_cnn", "scratch", 64 if small else 32, 6 if small else 3),
        Family("mobilenet_v3_small", "scratch", 48 if small else 32, 4 if small else 2),
        Family("efficientnet_lite0", "finetune", 64 if n_train <= 1000 else 32, 3 if small else 1),
        Family("resnet18", "scratch", 32, 2 if small else 1),
    ]
    return out


# Partial fine-tuning (issue 14): the share of the pretrained backbone's blocks kept frozen, finetune mode only.
# A grid rather than a continuum, as Quick-Tune searches pct_to_freeze; 0 (the whole network trains) is one of the
# values, so full fine-tuning stays in the space. knowledge.space allows up to 0.95.
FREEZES = (0.0, 0.25, 0.5, 0.75, 0.9)


def sample_config(rng: random.Random, fams: Sequence[Family]) -> TrainConfig:
    """A uniform family, then the sweep's own sampler for it (tools.sweep), then, for finetune, `freeze`.

    `freeze` is drawn here from `FREEZES` whatever the sweep's sampler put there, so the
    benchmark's space does not move when the sweep's does; every other mode keeps freeze = 0.
    """
    from tools.sweep import sample_head_config, sample_trainable_config

    fam = rng.choice(list(fams))
    if fam.mode == "frozen":
        return sample_head_config(rng, fam.backbone, fam.input_size)
    cfg = sample_trainable_config(rng, fam.backbone, fam.mode, fam.input_size, fam.max_epochs)
    freeze = rng.choice(FREEZES) if fam.mode == "finetune" else 0.0
    return cfg if cfg.freeze == freeze else TrainConfig.model_validate({**cfg.model_dump(), "freeze": freeze})


def project(config: TrainConfig, fams: Sequence[Family]) -> tuple[TrainConfig, list[str]]:
    """The nearest config of the benchmark space, and what had to change (empty when none).

    Frozen needs pretrained weights (else it becomes scratch), an allowed input size for its
    backbone (else the nearest) and <= 40 epochs; a trainable config keeps its family's input
    size and epoch cap (its family is the nearest one with the same mode, else small_cnn scratch);
    `freeze` snaps to the nearest of `FREEZES` in finetune mode and is 0 in the others.
    """
    data = config.model_dump()
    changes: list[str] = []

    def put(name: str, value: Any) -> None:
        if data[name] != value:
            changes.append(f"{name} {data[name]}->{value}")
            data[name] = value

    frozen = [f for f in fams if f.mode == "frozen" and f.backbone == data["backbone"]]
    if data["mode"] == "frozen" and not frozen:
        put("mode", "scratch")
    if data["mode"] == "frozen":
        sizes = [f.input_size for f in frozen]
        put("input_size", min(sizes, key=lambda s: abs(s - data["input_size"])))
        put("epochs", min(data["epochs"], 40))
        put("augmentation", "none")
    else:
        same = [f for f in fams if f.mode != "frozen" and f.backbone == data["backbone"]]
        fam = next((f for f in same if f.mode == data["mode"]), same[0] if same else None)
        if fam is None:
            fam = next(f for f in fams if f.backbone == "small_cnn")
            put("backbone", fam.backbone)
        put("mode", fam.mode)
        put("input_size", fam.input_size)
        put("epochs", min(data["epochs"], fam.max_epochs))
    if data["mode"] != "finetune":
        put("freeze", 0.0)  # partial freezing belongs to finetune mode only
    else:
        put("freeze", min(FREEZES, key=lambda f: abs(f - data["freeze"])))
    return TrainConfig.model_validate(data), changes


def popular_config(records: Sequence[ExperimentRecord]) -> TrainConfig:
    """The most popular configuration: the (backbone, mode, input size) most runs used, then per
    field the value most of those runs used; learning rates counted on a 1-3-10 grid."""
    ok = [r for r in records if r.outcome.status == "ok"]
    triple = Counter((r.config.backbone, r.config.mode, r.config.input_size) for r in ok).most_common(1)[0][0]
    same = [r.config for r in ok if (r.config.backbone, r.config.mode, r.config.input_size) == triple]
    grid = [m * 10.0**e for e in range(-6, 1) for m in (1, 3)]
    data: dict[str, Any] = {"backbone": triple[0], "mode": triple[1], "input_size": triple[2]}
    for name in ("optimizer", "batch_size", "epochs", "weight_decay", "dropout", "scheduler", "augmentation",
                 "label_smoothing"):
        data[name] = Counter(getattr(c, name) for c in same).most_common(1)[0][0]
    lrs = Counter(min(grid, key=lambda g: abs(math.log10(g) - math.log10(c.learning_rate))) for c in same)
    data["learning_rate"] = float(f"{lrs.most_common(1)[0][0]:.3g}")
    return TrainConfig.model_validate(data)


def short(c: TrainConfig) -> str:
    size = f" {c.input_size}px"
    mode = f"{c.mode}(freeze {c.freeze:g})" if c.freeze else c.mode
    return (f"{c.backbone.replace('efficientnet_', 'eff-')}/{mode}{size} {c.optimizer} lr={c.learning_rate:.3g} "
            f"bs={c.batch_size} ep={c.epochs}")


# -------------------------------------------------------------------- real training
# Runs (the cache of real runs) and `seconds` live in bench.reference, which a bare GPU machine can import.


def score(row: dict[str, Any], chance: float) -> float:
    """Test accuracy of a run; a run that did not finish ok scores the majority-class share."""
    return float(row["test_accuracy"]) if row["status"] == "ok" and row["test_accuracy"] is not None else chance


def val_score(row: dict[str, Any]) -> float:
    return float(row["val_accuracy"]) if row["status"] == "ok" and row["val_accuracy"] is not None else 0.0


# ---------------------------------------------------------------------- the methods
@dataclass
class Choice:
    """A method's choice for one dataset."""

    method: str
    config: TrainConfig | None
    recommend_seconds: float
    notes: str = ""
    search_seconds: float = 0.0  # compute spent in trials before the choice (search methods)
    trials: int = 0
    error: str | None = None
    stated: tuple[float, float, float] | None = None  # the accuracy a zero-shot method stated: (point, low, high)


@dataclass
class Task:
    """One dataset of the benchmark, with its hidden knowledge base and meta-model."""

    name: str
    path: Path
    ds: Any
    meta: MetaFeatures
    fams: list[Family]
    kb: KnowledgeBase
    metamodel: Any
    own: list[ExperimentRecord]  # D's recorded runs (hidden from kb and metamodel)
    chance: float
    fit_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def search(task: Task, runs: Runs, sampler: str, n: int, seed: int = 0,
           ray: Any = None) -> list[tuple[TrainConfig, dict[str, Any]]]:
    """n real trials of random search or Optuna TPE on the task (each trains on D with seed 0); with `ray`
    (a `bench.lodo_ray.RaySearch`) the trials train on that Ray cluster, TPE in batches."""
    if ray is not None:
        return _search_on_ray(ray, task, sampler, n, seed)
    trials: list[tuple[TrainConfig, dict[str, Any]]] = []
    if sampler == "random":
        for cfg in random_configs(task, n, seed):
            trials.append((cfg, runs.get(task.ds, cfg, 0)))
        return trials
    study = tpe_study(task, seed)

    def objective(trial: Any) -> float:
        cfg = tpe_config(trial, task.fams)
        row = runs.get(task.ds, cfg, 0)
        trials.append((cfg, row))
        return val_score(row)

    study.optimize(objective, n_trials=n)
    return trials


def _search_on_ray(ray: Any, task: Task, sampler: str, n: int, seed: int) -> list[tuple[TrainConfig, dict[str, Any]]]:
    """`search` on a Ray cluster: random search's n trials at once, TPE in batches of `ray.batch`
    (asked before any of the batch's results are in; a batch of 1 is the sequential study)."""
    path = str(task.path)
    if sampler == "random":
        configs = random_configs(task, n, seed)
        return list(zip(configs, ray.rows(task.ds, path, configs), strict=True))
    study = tpe_study(task, seed, batched=True)
    trials: list[tuple[TrainConfig, dict[str, Any]]] = []
    while len(trials) < n:
        asked = [study.ask() for _ in range(min(ray.batch, n - len(trials)))]
        configs = [tpe_config(t, task.fams) for t in asked]
        for trial, cfg, row in zip(asked, configs, ray.rows(task.ds, path, configs), strict=True):
            study.tell(trial, val_score(row))
            trials.append((cfg, row))
    return trials


def random_configs(task: Task, n: int, seed: int = 0) -> list[TrainConfig]:
    """Random search's n configs on the task (seeded by the seed and D's name; they do not depend on results)."""
    rng = random.Random(f"random-search|{seed}|{task.name}")
    return [sample_config(rng, task.fams) for _ in range(n)]


def tpe_study(task: Task, seed: int = 0, batched: bool = False) -> Any:
    """The TPE study of the task (seeded by the seed and D's name). `batched` (trials asked in batches before
    any is told) sets `constant_liar`, Optuna 5's default but not 4's; a sequential study leaves it as it was."""
    import warnings
    import zlib

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # multivariate/group
    sampler = optuna.samplers.TPESampler(seed=zlib.crc32(f"tpe|{seed}|{task.name}".encode()),
                                         n_startup_trials=TPE_STARTUP, multivariate=True, group=True,
                                         **({"constant_liar": True} if batched else {}))
    return optuna.create_study(direction="maximize", sampler=sampler)


ZERO_SHOT = ("metamodel-top1", "metamodel-generated", "metallmix")  # the methods that choose without a trial (--zero-shot-only)
TPE_STARTUP = 3  # random trials before TPE models the history (Optuna's default of 10 would make N=5 and 10 random)


def tpe_config(trial: Any, fams: Sequence[Family]) -> TrainConfig:
    """The benchmark space as an Optuna define-by-run space (the same ranges as the sweep's sampler)."""
    from tools.sweep import BATCHES, DROPOUTS, HEAD_EPOCHS, SMOOTHING, WEIGHT_DECAYS

    fam = {f.key: f for f in fams}[trial.suggest_categorical("family", [f.key for f in fams])]
    if fam.mode == "frozen":
        p = {
            "optimizer": trial.suggest_categorical("head_optimizer", HEAD_OPTIMIZERS),
            "learning_rate": trial.suggest_float("head_lr", 1e-5, 1.0, log=True),
            "batch_size": trial.suggest_categorical("head_batch", BATCHES),
            "epochs": trial.suggest_categorical("head_epochs", HEAD_EPOCHS),
            "weight_decay": trial.suggest_categorical("head_wd", sorted(set(WEIGHT_DECAYS))),
            "dropout": trial.suggest_categorical("head_dropout", DROPOUTS),
            "scheduler": trial.suggest_categorical("head_scheduler", SCHEDULERS),
            "augmentation": "none",
            "label_smoothing": trial.suggest_categorical("head_ls", sorted(set(SMOOTHING))),
        }
    else:
        p = {
            "optimizer": trial.suggest_categorical("train_optimizer", TRAIN_OPTIMIZERS),
            "learning_rate": trial.suggest_float("train_lr", 1e-4, 0.3, log=True),
            "batch_size": trial.suggest_categorical("train_batch", (32, 64, 128)),
            "epochs": trial.suggest_int(f"epochs_{fam.backbone}_{fam.mode}", 1, fam.max_epochs),
            "weight_decay": trial.suggest_categorical("train_wd", sorted(set(WEIGHT_DECAYS))),
            "dropout": trial.suggest_categorical("train_dropout", (0.0, 0.2, 0.5)),
            "scheduler": trial.suggest_categorical("train_scheduler", TRAIN_SCHEDULERS),
            "augmentation": trial.suggest_categorical("train_aug", AUGMENTATIONS),
            "label_smoothing": trial.suggest_categorical("train_ls", sorted(set(SMOOTHING))),
        }
        if fam.mode == "finetune":
            p["freeze"] = trial.suggest_categorical("freeze", FREEZES)
    p["learning_rate"] = float(f"{p['learning_rate']:.3g}")
    return TrainConfig(backbone=fam.backbone, mode=fam.mode, input_size=fam.input_size, **p)  # type: ignore[arg-type]


def best_by_val(trials: Sequence[tuple[TrainConfig, dict[str, Any]]]) -> tuple[TrainConfig, dict[str, Any]]:
    """The best-validation trial (ties: the earlier one)."""
    best = 0
    for i, (_, row) in enumerate(trials):
        if val_score(row) > val_score(trials[best][1]):
            best = i
    return trials[best]


def search_cost(trials: Sequence[tuple[TrainConfig, dict[str, Any]]]) -> float:
    """Seconds the trials cost: training, plus each feature set's extraction once."""
    feature_sets: dict[tuple[str, int], float] = {}
    total = 0.0
    for cfg, row in trials:
        total += float(row["train_seconds"])
        if cfg.mode == "frozen":
            feature_sets[(cfg.backbone, cfg.input_size)] = float(row["feature_seconds"])
    return total + sum(feature_sets.values())


LLM_ONLY_SYSTEM = (
    "You are an expert in deep learning for medical image classification. Recommend one training configuration "
    "for the task below, on a 2-core CPU without GPU. What this machine can run: mode 'frozen' trains only a "
    "linear head on features of a pretrained EfficientNet-Lite0/1/2 (ImageNet weights; input 64 px, Lite0 also "
    "96 or 128 px for datasets of at most 2,500 training images); mode 'scratch' trains small_cnn, "
    "mobilenet_v3_small or resnet18 from random initialisation; mode 'finetune' trains all of EfficientNet-Lite0. "
    "One training run must finish within the time budget. The rationale is one sentence of at most 30 words. "
    "Answer with JSON only."
)


def llm_only_schema() -> dict[str, Any]:
    from tools.sweep import BATCHES, DROPOUTS, SMOOTHING, WEIGHT_DECAYS

    lrs = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3]
    return {
        "title": "Recommendation", "type": "object",
        "properties": {
            "backbone": {"type": "string", "enum": ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
                                                    "small_cnn", "mobilenet_v3_small", "resnet18"]},
            "mode": {"type": "string", "enum": ["frozen", "finetune", "scratch"]},
            "input_size": {"type": "integer", "enum": [32, 48, 64, 96, 128]},
            "optimizer": {"type": "string", "enum": list(HEAD_OPTIMIZERS)},
            "learning_rate": {"type": "number", "enum": lrs},
            "batch_size": {"type": "integer", "enum": list(BATCHES)},
            "epochs": {"type": "integer", "minimum": 1, "maximum": 40},
            "weight_decay": {"type": "number", "enum": sorted(set(WEIGHT_DECAYS))},
            "dropout": {"type": "number", "enum": list(DROPOUTS)},
            "scheduler": {"type": "string", "enum": list(SCHEDULERS)},
            "augmentation": {"type": "string", "enum": list(AUGMENTATIONS)},
            "label_smoothing": {"type": "number", "enum": sorted(set(SMOOTHING))},
            "rationale": {"type": "string", "minLength": 10, "maxLength": 200},
        },
        "required": ["backbone", "mode", "input_size", "optimizer", "learning_rate", "batch_size", "epochs",
                     "weight_decay", "dropout", "scheduler", "augmentation", "label_smoothing", "rationale"],
        "additionalProperties": False,
    }


def llm_only(task: Task, llm: Any) -> Choice:
    """The LLM alone: task profile, budget and space in, a config out (no SHAP, retrieval or meta-model)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from agent.formatting import data_text

    sizes = task.meta.split_sizes
    user = (f"Task: classify {data_text({'meta': task.meta.model_dump(mode='json')})}; splits: "
            f"{sizes.get('train')} train, {sizes.get('val')} validation, {sizes.get('test')} test images.\n"
            f"Constraints: budget {BUDGET_MINUTES:g} minutes per training run; device cpu (2 cores).")
    start = time.perf_counter()
    try:
        out = llm.with_structured_output(llm_only_schema()).invoke([SystemMessage(LLM_ONLY_SYSTEM), HumanMessage(user)])
    except Exception as exc:  # a failed answer is a result of this baseline, not a crash of the benchmark
        return Choice("llm-only", None, time.perf_counter() - start, error=f"{type(exc).__name__}: {str(exc)[:200]}")
    took = time.perf_counter() - start
    data = {k: v for k, v in dict(out).items() if k != "rationale"}
    fixes: list[str] = []
    if data.get("mode") == "frozen" and data.get("augmentation") != "none":
        fixes.append(f"augmentation {data['augmentation']}->none")
        data["augmentation"] = "none"
    if data.get("backbone") == "small_cnn" and data.get("mode") != "scratch":
        fixes.append(f"mode {data['mode']}->scratch")
        data["mode"] = "scratch"
    if data.get("backbone") in ("resnet18", "mobilenet_v3_small") and data.get("mode") != "scratch":
        fixes.append(f"mode {data['mode']}->scratch (no weights here)")
        data["mode"] = "scratch"
    try:
        cfg = TrainConfig.model_validate(data)
    except ValueError as exc:
        return Choice("llm-only", None, took, error=f"invalid config: {str(exc)[:200]}")
    cfg, changes = project(cfg, task.fams)
    fixes += changes
    return Choice("llm-only", cfg, took, notes=("projected: " + ", ".join(fixes)) if fixes else "")


def metamodel_top1(task: Task, measured: bool = True) -> Choice:
    """Retrieval + the meta-model's top candidate under the budget, no LLM (the graph's explain step).

    With `measured=False`, `metamodel-generated`: the ranking before the measured pool
    (tools.metamodel_candidates.MEASURED_PER_PAIR), configs generated field by field from the values
    past runs used, kept as the comparison."""
    from agent.context import Context
    from agent.prompting import task_query
    from tools.metamodel import Constraints

    start = time.perf_counter()
    profile = {"meta": task.meta.model_dump(mode="json"), "dataset_name": task.ds.name}
    hits = task.kb.search(task_query(profile, "", Context()), k=Context().k_retrieve)
    found = task.metamodel.candidates(task.meta, Constraints(budget_seconds=BUDGET_MINUTES * 60, device="cpu"),
                                      retrieved=[r for r, _ in hits], n=Context().n_candidates, measured=measured)
    p = found[0].prediction
    return Choice("metamodel-top1" if measured else "metamodel-generated", found[0].config, time.perf_counter() - start,
                  notes=f"predicted {p.accuracy:.3f}, {p.seconds:.0f} s", stated=(p.accuracy, p.low, p.high))


def sweep_best_val(task: Task) -> Choice:
    """Reference, not a method: D's recorded run with the best validation accuracy.

    A search whose trials are D's whole recorded sweep (170-300 real runs), selecting on
    validation as any honest method must. How far it falls from the best known run (selected
    on test) measures how much of that bar is test-set luck rather than a findable config.
    """
    ok = [r for r in task.own if r.outcome.status == "ok" and r.outcome.val_accuracy is not None]
    pick = max(ok, key=lambda r: r.outcome.val_accuracy or 0.0)
    cost = sum(r.outcome.total_seconds or 0.0 for r in task.own)
    return Choice("sweep-best-val", pick.config, cost, search_seconds=cost, trials=len(task.own),
                  notes=f"reference: best val {pick.outcome.val_accuracy:.3f} of D's {len(task.own)} recorded runs")


def metallmix(task: Task, llm: Any, judge_llm: Any) -> Choice:
    """The zero-shot graph with the real LLM and judge, on the hidden knowledge base and meta-model."""
    from agent.recommend import Recommender

    r = Recommender(llm=llm, judge_llm=judge_llm, kb=task.kb, metamodel=task.metamodel)
    r.warm_up()
    rec, _ = r.run("", dataset=str(task.path), budget_minutes=BUDGET_MINUTES, device="cpu")
    v = rec.verdict
    failed = [c.name for c in v.checks if not c.ok] or (["llm-judge"] if not v.passed else [])
    note = f"LLM {rec.llm_seconds:.1f} s, drafts {v.attempts}, " + (
        f"FALLBACK (last draft failed: {', '.join(failed)})" if rec.fallback else f"judged {v.judged_by}")
    task.extra["metallmix_top1"] = rec.candidates[0].config if rec.candidates else None
    return Choice("metallmix", rec.config, rec.timings["total"], notes=note,
                  stated=(rec.expected_accuracy, *rec.accuracy_interval))


def agent_tune(task: Task, llm: Any, judge_llm: Any, n: int, runs_dir: Path) -> tuple[Choice, Any]:
    """The iterative agent (agent.tune) with up to n trials and n x the per-run budget."""
    from agent.tune import tune

    start = time.perf_counter()
    result = tune("", dataset=str(task.path), trials=n, budget_minutes=BUDGET_MINUTES * n, approve="once",
                  device="cpu", llm=llm, judge_llm=judge_llm, kb=task.kb, metamodel=task.metamodel,
                  runs_dir=str(runs_dir))
    took = time.perf_counter() - start
    if result.best is None:
        return Choice(f"agent-{n}", None, took, error=f"no trial finished: {result.stop_reason}",
                      trials=len(result.trials)), result
    return Choice(f"agent-{n}", result.best.config, took, search_seconds=result.train_seconds,
                  trials=len(result.trials),
                  notes=f"{len(result.trials)} trials, LLM {result.llm_seconds:.0f} s, stop: {result.stop_reason[:60]}"), result


def save_agent_session(result: Any, n_val: int | None, path: Path) -> Path:
    """Write what a pick rule needs from a tuning session (the trials' configs, predictions,
    validation and test accuracies, and the trial kept) as JSON; replaced atomically."""
    trials = [{"number": t.number, "config": t.config.model_dump(mode="json"), "source": t.source,
               "predicted": t.predicted.model_dump(mode="json"), "status": t.status,
               "val_accuracy": t.val_accuracy, "test_accuracy": t.test_accuracy, "seconds": t.seconds,
               "labels": t.analysis.labels} for t in result.trials]
    data = {"dataset": result.dataset, "n_val": n_val, "kept": result.best.number if result.best else None,
            "kept_reason": result.best_reason, "stop_reason": result.stop_reason, "trials": trials}
    from tools.jobs import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return path


# ------------------------------------------------------------------------ the tasks
def build_task(name: str, seed_records: Sequence[ExperimentRecord], vectors: dict[str, Any], root: Path) -> Task:
    """D's dataset and profile, and a knowledge base + meta-model that never saw D."""
    from bench.common import PrecomputedEmbedder
    from tools.datasets import load_dataset, profile_dataset
    from tools.metamodel import MetaModel

    path = DATA / f"{name}.npz"
    ds = load_dataset(path)
    meta = profile_dataset(ds)
    hidden, own = split_out(seed_records, name, ds.fingerprint)
    kb = KnowledgeBase(root / name, embedder=PrecomputedEmbedder(vectors))
    kb.append(hidden)
    start = time.perf_counter()
    mm = MetaModel.load_or_fit(kb.records(), cache_dir=cache_root() / "lodo-metamodel" / name)
    fit = time.perf_counter() - start
    chance = meta.class_size_max / meta.n_instances
    return Task(name, path, ds, meta, families(len(ds.splits["train"])), kb, mm, own, chance, fit)


def split_out(records: Sequence[ExperimentRecord], name: str, fingerprint: str | None = None
              ) -> tuple[list[ExperimentRecord], list[ExperimentRecord]]:
    """(every record not of dataset `name`, the records of `name`); a record matching by name or fingerprint is D's."""
    def is_d(r: ExperimentRecord) -> bool:
        return r.dataset.name == name or (fingerprint is not None and r.dataset.fingerprint == fingerprint)

    return [r for r in records if not is_d(r)], [r for r in records if is_d(r)]


# ------------------------------------------------------------------------ reporting
@dataclass
class Row:
    dataset: str
    method: str
    config: TrainConfig | None
    test: float | None
    test_by_seed: list[float]
    regret: float | None
    rank: int | None
    n_runs: int
    recommend_s: float
    train_s: float | None
    search_s: float
    notes: str
    regret_same_seeds: float | None = None  # to the best known config re-run on the evaluation seeds
    regret_ref: float | None = None  # to the reference: max(best recorded, the protocol's seed mean); issue 14
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)  # Runs.measured: seconds and device per kind
    stated: tuple[float, float, float] | None = None  # Choice.stated


def reachable(own_ok: Sequence[ExperimentRecord]) -> dict[str, float]:
    """How many of D's recorded ok runs clear each goal's bar: the reference for goals 1 and 3.

    `within` runs have a test accuracy within 1 point of D's best (the best one included);
    `within_fast` of those also took <= 1/3 of the best run's recorded training time (train +
    feature extraction). A recommender that picks a recorded config can reach goal 3 on D
    only when `within_fast` > 0. `best_in_budget`: the best test accuracy of D's runs that took
    at most the benchmark's budget as recorded (`within_budget` reads the regret against it).
    """
    best = max(own_ok, key=lambda r: r.outcome.test_accuracy or 0.0)
    top, secs = best.outcome.test_accuracy or 0.0, best.outcome.total_seconds
    near = [r for r in own_ok if (r.outcome.test_accuracy or 0.0) >= top - 0.01]
    in_budget = [r.outcome.test_accuracy or 0.0 for r in own_ok if r.outcome.total_seconds <= BUDGET_MINUTES * 60]
    return {"within": len(near), "within_fast": sum(1 for r in near if r.outcome.total_seconds * 3 <= secs),
            **({"best_in_budget": max(in_budget)} if in_budget else {})}


def evaluate(task: Task, choice: Choice, runs: Runs, seeds: Sequence[int], best: float | None,
             best_rerun: float | None = None, reference: float | None = None) -> Row:
    """Train (or find cached) the choice on the evaluation seeds and score it against each bar.

    `best` is D's best recorded test accuracy (None: the knowledge base has no run of D),
    `best_rerun` that config's mean on the same seeds, `reference` the issue-14 reference.
    """
    truth = sorted((r.outcome.test_accuracy or 0.0 for r in task.own if r.outcome.status == "ok"), reverse=True)
    if choice.config is None:
        return Row(task.name, choice.method, None, None, [], None, None, len(truth), choice.recommend_seconds, None,
                   choice.search_seconds, f"no choice: {choice.error}")
    rows = [runs.get(task.ds, choice.config, s) for s in seeds]
    accs = [score(r, task.chance) for r in rows]
    acc = statistics.mean(accs)
    statuses = {r["status"] for r in rows} - {"ok"}
    notes = choice.notes + (f" status {','.join(sorted(statuses))}" if statuses else "")
    return Row(task.name, choice.method, choice.config, acc, accs, regret(best, acc),
               1 + sum(t > acc for t in truth) if truth else None, len(truth), choice.recommend_seconds,
               statistics.mean(seconds(r) for r in rows), choice.search_seconds, notes.strip(),
               regret(best_rerun, acc), regret(reference, acc), runs.measured(task.ds.fingerprint, choice.config),
               choice.stated)


def protocol_row(task: Task, res: Any, runs: Runs, best: float | None, best_rerun: float | None,
                 reference: float | None) -> Row:
    """A reference protocol's runs as a row of the per-dataset table (a reference, not a method, like
    sweep-best-val); its method column is the protocol's label, e.g. 'ref: Lite0 FT 64 px (CPU stand-in)'."""
    truth = [r.outcome.test_accuracy or 0.0 for r in task.own if r.outcome.status == "ok"]
    acc = res.accuracy
    accs = [score(r, task.chance) for r in res.rows]
    bad = [r["status"] for r in res.rows if r["status"] != "ok"]
    return Row(task.name, f"ref: {res.title}", res.config, acc, accs, regret(best, acc),
               1 + sum(t > acc for t in truth) if truth and acc is not None else None, len(truth), 0.0,
               res.train_seconds, 0.0, f"reference protocol, {len(res.ok)} seed(s) ok" + (
                   f"; not ok: {', '.join(bad)} (left out of the mean)" if bad else ""),
               regret(best_rerun, acc), regret(reference, acc), runs.measured(task.ds.fingerprint, res.config))


def fmt(x: float | None, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.0f}"


def render(rows: list[Row], bests: dict[str, dict[str, Any]], args: argparse.Namespace, wall: float,
           runs: Runs, skipped: list[str]) -> str:
    out: list[str] = []
    seeds = ",".join(map(str, args.seeds))
    out.append(header(
        "Leave-one-dataset-out", extra=(
            f"Datasets {len(bests)}; trials N = {', '.join(map(str, args.trials)) or 'none (no search baselines)'}; evaluation seeds {seeds} (test "
            f"accuracy is their mean); budget {BUDGET_MINUTES:g} min per run; LLM "
            f"{'on' if not args.no_llm else 'off'}; torch threads {args.threads}; wall time {wall / 60:.1f} min, "
            f"{runs.trained} runs trained now, {len(runs.rows)} in the cache ({_shown(runs.path)})"
            + (f"; search trials on Ray ({args.ray}; TPE in batches of that many)" if getattr(args, "ray", None) else "")
            + ("; zero-shot methods only (--zero-shot-only: no baselines, no re-run of the best recorded config)"
               if getattr(args, "zero_shot_only", False) else "")
            + ".")))
    out.append("")
    out.append(
        "The reference per dataset (issue 14) is the best of two bars: D's best recorded run (the best test accuracy "
        "among D's recorded seed runs, hidden from the knowledge base and meta-model while recommending for D; "
        "missing where the knowledge base has no run of D) and a fixed protocol re-run now with the evaluation seeds "
        "(bench/reference.py): EfficientNet-Lite0 fine-tuned end to end (AdamW 1e-3, batch 64, 15 epochs, weight "
        "decay 0.05, warmup-cosine, flips; 128 px where a GPU ran it, 64 px as the CPU stand-in) and small_cnn from "
        "scratch for 30 epochs at 64 px with the same recipe. Training cost: train + feature-extraction seconds, "
        "mean over the seeds, with the device the runs reported.")
    out.append("")
    ref_rows = []
    for d, b in bests.items():
        row: list[Any] = [d, b["n"], fmt(b["best"]), short(b["config"]) if b.get("config") else "-",
                          fmt(b.get("rerun")), fmt_s(b.get("rerun_seconds"))]
        for name in PROTOCOL_NAMES:
            res = b.get("protocol", {}).get(name)
            row += ([res.title, fmt(res.accuracy), fmt_cost({"seconds": res.train_seconds, "device": res.device})
                     if res.train_seconds is not None else "-"] if res else [_not_run(args), "-", "-"])
        ref_rows.append([*row, fmt(b.get("reference")), b.get("source") or "-"])
    out.append(table(ref_rows, ["dataset", "recorded runs", "best recorded", "its config", "re-run acc", "re-run s",
                                "protocol 1", "acc", "train s", "protocol 2", "acc", "train s", "reference", "from"],
                     "lrrlrrlrrlrrrl"))
    methods = list(dict.fromkeys(r.method for r in rows))
    out.append("")
    out.append("Per dataset and method: test accuracy (mean over seeds); regret to the reference; regret to the best "
               "recorded run and to its config re-run on the same seeds (the bars before issue 14, kept for "
               "comparison); rank among D's recorded runs; time to recommend (for search methods: the wall time of "
               "the search, trials included); training cost of the chosen config on CPU and on GPU where a run of it "
               "was measured (train + feature extraction, mean over the cached seeds, and the run's device); notes. "
               "`sweep-best-val` and the `ref:` rows are references, not methods: D's recorded run with the best "
               "validation accuracy (a search with D's whole sweep as its trials), and the reference protocol.")
    for d in bests:
        out.append("")
        b = bests[d]
        out.append(f"**{d}** (reference {fmt(b.get('reference'))}, from {b.get('source') or '-'}; best recorded "
                   f"{fmt(b['best'])}, {b['n']} runs)")
        out.append("")
        drows = [r for r in rows if r.dataset == d]
        out.append(table([[r.method, short(r.config) if r.config else "-", fmt(r.test), fmt(r.regret_ref, 3),
                           fmt(r.regret, 3), fmt(r.regret_same_seeds, 3), f"{r.rank}/{r.n_runs}" if r.rank else "-",
                           fmt_s(r.recommend_s), fmt_cost(r.costs.get("cpu")), fmt_cost(r.costs.get("cuda")), r.notes]
                          for r in drows],
                         ["method", "config", "test acc", "regret to reference", "regret to recorded best",
                          "regret same seeds", "rank", "recommend s", "CPU train s", "GPU train s", "notes"],
                         "llrrrrrrrrl"))
    out.append("")
    out.append(f"Summary over datasets (within {WITHIN * 100:g} points of the reference: regret <= {WITHIN:g}; "
               "within 1 point of the recorded best: regret <= 0.01):")
    out.append("")
    summ = []
    for m in methods:
        mr = [r for r in rows if r.method == m and (r.regret is not None or r.regret_ref is not None)]
        if not mr:
            continue
        to_ref = [r.regret_ref for r in mr if r.regret_ref is not None]
        rec = [r.regret for r in mr if r.regret is not None]
        same = [r.regret_same_seeds for r in mr if r.regret_same_seeds is not None]
        ranks = [r.rank for r in mr if r.rank is not None]
        trains = [r.train_s for r in mr if r.train_s is not None]
        summ.append([m, len(mr), fmt(statistics.mean(to_ref)) if to_ref else "-",
                     fmt(statistics.median(to_ref)) if to_ref else "-",
                     f"{sum(x <= WITHIN + 1e-9 for x in to_ref)}/{len(to_ref)}",
                     fmt(statistics.mean(rec)) if rec else "-", f"{sum(x <= 0.01 for x in rec)}/{len(rec)}",
                     fmt(statistics.mean(same)) if same else "-", f"{sum(x <= 0.01 for x in same)}/{len(same)}",
                     f"{statistics.mean(ranks):.1f}" if ranks else "-",
                     fmt_s(statistics.median(r.recommend_s for r in mr)),
                     fmt_s(statistics.mean(trains)) if trains else "-"])
    out.append(table(summ, ["method", "datasets", "mean regret to reference", "median regret to reference",
                            "within 2 pts of reference", "mean regret to recorded best", "within 1 pt of recorded best",
                            "mean regret same seeds", "within 1 pt same seeds", "mean rank", "median recommend s",
                            "mean train s"], "lrrrrrrrrrrr"))
    out.append("")
    out.append(reference_goals(rows))
    out.append("")
    out.append(stated_vs_real(rows))
    out.append("")
    out.append(within_budget(rows, bests))
    out.append("")
    out.append(goals(rows, bests))
    if skipped:
        out.append("")
        out.append("Not run: " + "; ".join(skipped))
    return "\n".join(out)


def _shown(path: Path) -> str:
    """A path relative to the repository when inside it (the report names the cache it read)."""
    try:
        return str(path.resolve().relative_to(RUNS_FILE.parents[2]))
    except ValueError:
        return str(path)


def _not_run(args: argparse.Namespace) -> str:
    return {"off": "not run (--reference off)", "cached": "not cached (--reference cached)"}.get(
        getattr(args, "reference", "train"), "not run")


def reference_goals(rows: Sequence[Row]) -> str:
    """The three goals of issue 14, each MET, NOT MET or NOT MEASURED, from the rows' regret to the reference."""
    def regrets(method: str) -> dict[str, float]:
        return {r.dataset: r.regret_ref for r in rows if r.method == method and r.regret_ref is not None}

    lines = ["Goals of issue 14 (zero-shot MetaLLMiX = the `metallmix` rows; regret to the reference):"]
    lines += [v.line() for v in goal_verdicts(regrets("metallmix"), regrets("random-10"), regrets("tpe-20"))]
    return "\n".join(lines)


def within_budget(rows: Sequence[Row], bests: dict[str, dict[str, Any]]) -> str:
    """How much of the zero-shot regret is the budget's: each pick against D's best recorded run that
    took at most the budget (its recorded train + feature seconds), beside the regret to the
    reference, which has no time limit."""
    lines = [f"Within the budget ({BUDGET_MINUTES:g} min per run): the regret to D's best recorded run that took at most "
             "that long as recorded (train + feature seconds, on the machine and threads it ran with), beside the regret to the "
             "reference (no time limit); the difference is what the budget costs, the rest is the choice:"]
    for method in ZERO_SHOT:
        got = [(r.test - bests[r.dataset]["best_in_budget"], r.regret_ref) for r in rows
               if r.method == method and r.test is not None and r.regret_ref is not None
               and bests.get(r.dataset, {}).get("best_in_budget") is not None]
        if not got:
            lines.append(f"- {method}: NOT MEASURED (no pick with a recorded run within the budget to compare).")
            continue
        regret = [max(0.0, -gap) for gap, _ in got]
        lines.append(f"- {method}: {len(got)} datasets; mean regret to the best run within the budget "
                     f"{statistics.mean(regret):.3f} (to the reference {statistics.mean(ref for _, ref in got):.3f}); "
                     f"within {WITHIN * 100:g} points of it on {sum(x <= WITHIN + 1e-9 for x in regret)}/{len(got)}; "
                     f"above it on {sum(gap > 0 for gap, _ in got)}/{len(got)}.")
    return "\n".join(lines)


def stated_vs_real(rows: Sequence[Row]) -> str:
    """Issue 16, item 2, on real picks: how far the accuracy each zero-shot method stated for its pick was
    from the test accuracy the pick then reached, and how often the stated 90 % interval held it."""
    lines = ["Stated against real, the zero-shot picks (issue 16: the point prediction's error, goal <= 0.05; the "
             "stated 90 % interval should hold the real accuracy about 90 % of the time):"]
    for method in ZERO_SHOT:
        got = [(r.stated, r.test) for r in rows if r.method == method and r.stated and r.test is not None]
        if not got:
            lines.append(f"- {method}: NOT MEASURED (no pick with a stated accuracy).")
            continue
        errors = [test - point for (point, _, _), test in got]
        inside = sum(low <= test <= high for (_, low, high), test in got)
        lines.append(f"- {method}: {len(got)} picks; MAE {statistics.mean(abs(e) for e in errors):.3f}, mean error "
                     f"(real - stated) {statistics.mean(errors):+.3f}, largest miss {max(errors, key=abs):+.3f}; "
                     f"interval held {inside}/{len(got)} (mean width "
                     f"{statistics.mean(high - low for (_, low, high), _ in got):.2f}).")
    return "\n".join(lines)


def goals(rows: list[Row], bests: dict[str, dict[str, Any]]) -> str:
    """The three goals of issue 5, each MET or NOT MET (or NOT MEASURED)."""
    z = {r.dataset: r for r in rows if r.method == "metallmix" and r.regret is not None}
    lines = ["Goals of issue 5 (zero-shot MetaLLMiX = the `metallmix` rows; against the best recorded run, kept for "
             "comparison):"]
    if not z:
        return "\n".join(lines + ["- NOT MEASURED: no zero-shot recommendation ran (LLM off)."])
    n = len(z)
    within = sum(r.regret <= 0.01 for r in z.values())
    need = math.ceil(7 / 8 * n)
    lines.append(f"1. within 1 point of the best known config on >= 7 of 8 datasets: {within}/{n} "
                 f"(need {need}/{n}): {'MET' if within >= need else 'NOT MET'} (against the recorded best run).")
    same = [r.regret_same_seeds for r in z.values() if r.regret_same_seeds is not None]
    ref = [r.regret for r in rows if r.method == "sweep-best-val" and r.dataset in z and r.regret is not None]
    if same:
        lines.append(f"   Against the best known config re-run on the same seeds: {sum(x <= 0.01 for x in same)}/"
                     f"{len(same)} within 1 point.")
    if ref:
        lines.append(f"   Reference: the best-validation run of D's whole recorded sweep is within 1 point of the recorded "
                     f"best on {sum(x <= 0.01 for x in ref)}/{len(ref)} datasets (mean regret "
                     f"{statistics.mean(ref):.3f}): the rest of that bar is selection on test, which no method that "
                     f"chooses without the test set can reproduce.")
    near = [bests[d]["within"] for d in z if "within" in bests[d]]
    if near:
        sizes = [bests[d]["n"] for d in z]
        lines.append(f"   Of D's recorded runs ({min(sizes)}-{max(sizes)} per dataset), {min(near)}-{max(near)} are "
                     f"within 1 point of the best (median {statistics.median(near):g}).")

    def mean_regret(method: str) -> float | None:
        mr = [r.regret for r in rows if r.method == method and r.regret is not None and r.dataset in z]
        return statistics.mean(mr) if len(mr) == n else None

    zs = statistics.mean(r.regret for r in z.values())
    rs10, tpe20 = mean_regret("random-10"), mean_regret("tpe-20")
    if rs10 is None or tpe20 is None:
        lines.append(f"2. beats random search (10 trials) and ties TPE (20): NOT MEASURED (random-10 "
                     f"{fmt(rs10)}, tpe-20 {fmt(tpe20)}; needs both on the same datasets).")
    else:
        beats, ties = zs < rs10, zs <= tpe20 + 0.01
        lines.append(f"2. mean regret: zero-shot {zs:.3f} vs random-10 {rs10:.3f} ({'beats' if beats else 'does not beat'}) "
                     f"and vs tpe-20 {tpe20:.3f} ({'ties or beats (within 0.01)' if ties else 'worse by more than 0.01'}): "
                     f"{'MET' if beats and ties else 'NOT MET'}.")
    fast = []
    for d, r in z.items():
        ref = bests[d].get("rerun_seconds") or bests[d]["seconds"]
        if r.train_s and r.regret <= 0.01 and ref / r.train_s >= 3:
            fast.append(d)
    fast_same = [d for d, r in z.items() if r.train_s and r.regret_same_seeds is not None
                 and r.regret_same_seeds <= 0.01
                 and (bests[d].get("rerun_seconds") or bests[d]["seconds"]) / r.train_s >= 3]
    faster_any = sum(1 for d, r in z.items() if r.train_s and (bests[d].get("rerun_seconds") or bests[d]["seconds"])
                     / r.train_s >= 3)
    lines.append(f"3. at least half the recommendations reach that accuracy (within 1 point) in >= 3x less training "
                 f"time than the best-accuracy config (its re-run time): {len(fast)}/{n}"
                 f"{' (' + ', '.join(fast) + ')' if fast else ''}: {'MET' if len(fast) * 2 >= n else 'NOT MET'}. "
                 f"({faster_any}/{n} are >= 3x faster at any accuracy; {len(fast_same)}/{n} within 1 point of the "
                 f"re-run on the same seeds and >= 3x faster.)")
    fast_known = [d for d in z if bests[d].get("within_fast")]
    if any("within_fast" in bests[d] for d in z):
        lines.append(f"   Reference: a recorded run within 1 point of the best that took <= 1/3 of its time exists on "
                     f"{len(fast_known)}/{n} datasets{' (' + ', '.join(fast_known) + ')' if fast_known else ''}; "
                     f"elsewhere no config of D's sweep reaches this goal.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with --quick's defaults filled in and the lists parsed (trials of 0 dropped)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=None, help="comma-separated dataset names (default: all in METALLMIX_DATA)")
    ap.add_argument("--trials", default=None,
                    help="comma-separated N for the search baselines (default 5,10,20; 0 = no search baselines)")
    ap.add_argument("--seeds", default=None, help="evaluation seeds (default 0,1)")
    ap.add_argument("--no-llm", action="store_true", help="skip the LLM methods (metallmix, llm-only, agent)")
    ap.add_argument("--llm-datasets", type=int, default=None, help="run the LLM methods on the first K datasets only")
    ap.add_argument("--agent-trials", default=None, help="comma-separated N for the iterative agent (default 5; 0 = off)")
    ap.add_argument("--agent-datasets", type=int, default=None, help="run the agent on the first K datasets only")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training run (the seed sweep used 1)")
    ap.add_argument("--zero-shot-only", action="store_true",
                    help="only the zero-shot methods (metamodel-top1, metamodel-generated, metallmix) against the reference: no search, "
                         "agent, baselines or re-run of the best recorded config (on a CPU each costs minutes per dataset)")
    ap.add_argument("--quick", action="store_true", help="2 small datasets, N = 5, seed 0, LLM on the first only, no agent")
    ap.add_argument("--docs", type=Path, default=None, help="write the report into this markdown file's lodo section")
    ap.add_argument("--section", default=None, help="the section name in --docs (default lodo, or lodo-quick)")
    ap.add_argument("--out", type=Path, default=None, help="also write the report here (default bench/results/lodo[-quick].md)")
    ap.add_argument("--reference", choices=("train", "cached", "off"), default=None,
                    help="the reference protocol's runs (bench.reference): train what is not cached (default), use "
                         "only cached ones (the default with --quick), or leave the protocol out")
    ap.add_argument("--cache", type=Path, default=RUNS_FILE,
                    help="the JSONL cache of real runs (default bench/results/lodo_runs.jsonl; a copy for a trial run)")
    ap.add_argument("--reference-only", action="store_true",
                    help="only train and cache the reference protocol's runs on --datasets and --seeds, then stop "
                         "(resumable: a cached run is never retrained); no knowledge base, meta-model or LLM")
    ap.add_argument("--ray", metavar="auto|HOST:PORT", default=None,
                    help="train the random-search and TPE trials as tasks on this Ray cluster, TPE in batches of the "
                         "cluster's slots (default $METALLMIX_RAY; unset: one after another here; bench/lodo_ray.py)")
    args = ap.parse_args(argv)
    args.reference = args.reference or ("cached" if args.quick else "train")
    if args.quick:
        args.datasets = args.datasets or "busi_ultrasound,skin_lesion_isic"
        args.trials = args.trials or "5"
        args.seeds = args.seeds or "0"
        args.llm_datasets = 1 if args.llm_datasets is None else args.llm_datasets
        args.agent_trials = args.agent_trials or "0"
    args.trials = [int(x) for x in (args.trials or ",".join(map(str, TRIALS))).split(",") if int(x) > 0]
    args.seeds = [int(x) for x in (args.seeds or ",".join(map(str, FULL_SEEDS))).split(",")]
    args.agent_trials = [int(x) for x in (args.agent_trials or "5").split(",") if int(x) > 0]
    if args.zero_shot_only:
        args.trials, args.agent_trials = [], []
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.datasets.split(",") if args.datasets else sorted(p.stem for p in DATA.glob("*.npz"))
    missing = [n for n in names if not (DATA / f"{n}.npz").is_file()]
    if missing:
        print(f"datasets not found in {DATA}: {', '.join(missing)} (set METALLMIX_DATA)", file=sys.stderr)
        return 2
    if args.reference_only:
        from bench.reference import fill

        return fill(names, args.seeds, args.threads, Runs(args.cache, threads=args.threads))

    runs = Runs(args.cache, threads=args.threads)
    ray = None
    from tools.ray_runner import RayUnavailableError, ray_address

    if (address := ray_address(args.ray)) is not None:
        from bench.lodo_ray import RaySearch

        try:
            ray = RaySearch(address, runs, threads=args.threads)
        except RayUnavailableError as exc:
            print(exc, file=sys.stderr)
            return 3
        args.ray = f"{address}: {ray.batch} trials at once on {ray.device}"
    t0 = time.perf_counter()
    seed_records = read_seed()
    if runs.stale and (taken := runs.adopt(seed_records)):
        print(f"took {taken} stale cached runs' new measurements from the seed (knowledge.runner_revisions)")
    from bench.common import seed_vectors

    vectors = seed_vectors(r.describe() for r in seed_records)
    llm = judge = None
    if not args.no_llm:
        from agent.llm import get_chat_model

        llm, judge = get_chat_model(max_tokens=320), get_chat_model(max_tokens=160)
    agent_ok = True
    if args.agent_trials and not args.no_llm:
        try:
            import agent.tune  # noqa: F401
        except Exception as exc:  # the agent is another engineer's work in progress
            agent_ok = False
            print(f"agent.tune unavailable ({type(exc).__name__}: {exc}); the agent rows are left out", file=sys.stderr)
    rows: list[Row] = []
    bests: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    warmed = False
    with tempfile.TemporaryDirectory(prefix="metallmix-lodo-") as tmp:
        root = Path(tmp)
        for i, name in enumerate(names):
            td = time.perf_counter()
            task = build_task(name, seed_records, vectors, root / "kb")
            own_ok = [r for r in task.own if r.outcome.status == "ok"]
            best_rec = max(own_ok, key=lambda r: r.outcome.test_accuracy or 0.0) if own_ok else None
            best = float(best_rec.outcome.test_accuracy or 0.0) if best_rec else None
            print(f"\n== {name}: {len(task.own)} runs hidden, {len(task.kb.records())} in the KB; meta-model "
                  f"{task.fit_seconds:.1f} s; best known "
                  + (f"{best:.3f} ({short(best_rec.config)})" if best_rec else "- (no recorded run)"), flush=True)
            choices: list[Choice] = []
            if not args.zero_shot_only:
                rng = random.Random(f"random-config|{name}")
                choices.append(Choice("random-config", sample_config(rng, task.fams), 0.0))
                t = time.perf_counter()
                choices.append(Choice("popular", popular_config(task.kb.records()), time.perf_counter() - t))
            choices.append(metamodel_top1(task))
            choices.append(metamodel_top1(task, measured=False))
            use_llm = llm is not None and (args.llm_datasets is None or i < args.llm_datasets)
            if use_llm:
                if not warmed:  # one untimed text-only request loads the LLM weights, as in a running app
                    from agent.recommend import Recommender

                    tw = time.perf_counter()
                    Recommender(llm=llm, judge_llm=judge, kb=task.kb, metamodel=task.metamodel).run(
                        "chest x-ray, pneumonia vs normal, 5,000 images, 10 minutes on a CPU")
                    warmed = True
                    print(f"   LLM warm-up {time.perf_counter() - tw:.1f} s (untimed)", flush=True)
                methods = [lambda t=task: metallmix(t, llm, judge)]
                if not args.zero_shot_only:
                    methods.append(lambda t=task: llm_only(t, llm))
                for fn in methods:
                    try:
                        choices.append(fn())
                    except Exception as exc:
                        traceback.print_exc()
                        skipped.append(f"{name}: an LLM method failed: {type(exc).__name__}: {str(exc)[:120]}")
            elif llm is not None:
                skipped.append(f"{name}: LLM methods (--llm-datasets {args.llm_datasets})")
            for sampler in ("random", "tpe") if args.trials else ():
                ts = time.perf_counter()
                trials = search(task, runs, sampler, max(args.trials), ray=ray)
                print(f"   {sampler} search, {len(trials)} trials: {time.perf_counter() - ts:.0f} s", flush=True)
                for n in args.trials:
                    cfg, row = best_by_val(trials[:n])
                    cost = search_cost(trials[:n])
                    choices.append(Choice(f"{sampler}-{n}", cfg, cost, search_seconds=cost, trials=n,
                                          notes=f"best val {val_score(row):.3f}"))
            use_agent = use_llm and agent_ok and (args.agent_datasets is None or i < args.agent_datasets)
            if use_llm and agent_ok and args.agent_trials and not use_agent:
                skipped.append(f"{name}: agent (--agent-datasets {args.agent_datasets})")
            if use_agent:
                for n in args.agent_trials:
                    try:
                        choice, session = agent_tune(task, llm, judge, n, root / "runs")
                        choices.append(choice)
                        save_agent_session(session, task.meta.split_sizes.get("val"), AGENT_DIR / f"{name}-agent{n}.json")
                    except Exception as exc:
                        traceback.print_exc()
                        skipped.append(f"{name}: agent-{n} failed: {type(exc).__name__}: {str(exc)[:160]}")
            # The best recorded config re-run on the evaluation seeds: with several seeds, the recorded best (a max
            # over D's runs, selected on seed 0's test accuracy) is partly luck; the re-run is the like-for-like bar.
            bests[name] = {"n": len(own_ok), "best": best}
            if args.zero_shot_only:  # no re-run of the best recorded config (nor sweep-best-val)
                if best_rec is not None:
                    bests[name].update(config=best_rec.config, seconds=best_rec.outcome.total_seconds,
                                       **reachable(own_ok))
            elif best_rec is not None:
                # a bar, not a pick: it may take as long as it took when recorded (and more on fewer threads)
                rerun = [runs.get(task.ds, best_rec.config, s, cap_s=REFERENCE_CAP_S) for s in args.seeds]
                bests[name].update(config=best_rec.config, seconds=best_rec.outcome.total_seconds, **reachable(own_ok))
                if all(r["status"] == "ok" for r in rerun):
                    bests[name].update(rerun=statistics.mean(score(r, task.chance) for r in rerun),
                                       rerun_seconds=statistics.mean(seconds(r) for r in rerun))
                else:  # a re-run that did not finish is no bar (a pick that fails scores chance; a reference does not)
                    failed = next(r for r in rerun if r["status"] != "ok")
                    skipped.append(f"{name}: the best recorded config's re-run ended {failed['status']} "
                                   f"({failed.get('error') or 'no error'}); the same-seeds bar is left out")
                choices.append(sweep_best_val(task))
            # The issue-14 reference: the max of the best recorded run and the fixed protocol re-run on the same seeds.
            protocol = {} if args.reference == "off" else protocol_runs(
                task.ds, runs, args.seeds, log=lambda m: print(m, flush=True), train=args.reference == "train")
            ref, source = reference_accuracy(best, {k: v.accuracy for k, v in protocol.items()})
            bests[name].update(protocol=protocol, reference=ref,
                               source=protocol[source].title if source in protocol else source)
            for choice in choices:
                rows.append(evaluate(task, choice, runs, args.seeds, best, bests[name].get("rerun"), ref))
                r = rows[-1]
                print(f"   {r.method:<15} {short(r.config) if r.config else '-':<58} test {fmt(r.test)} regret "
                      f"{fmt(r.regret)} to ref {fmt(r.regret_ref)} rank {f'{r.rank}/{r.n_runs}' if r.rank else '-'} rec "
                      f"{fmt_s(r.recommend_s)} s train {fmt_s(r.train_s)} s  {r.notes}", flush=True)
            for res in protocol.values():
                rows.append(protocol_row(task, res, runs, best, bests[name].get("rerun"), ref))
                print(f"   {rows[-1].method:<40} test {fmt(rows[-1].test)} train {fmt_s(rows[-1].train_s)} s on "
                      f"{res.device}", flush=True)
            print(f"   reference {fmt(ref)} ({bests[name]['source'] or 'none'})"
                  + (f"; best known re-run: {bests[name]['rerun']:.3f} in {bests[name]['rerun_seconds']:.0f} s "
                     f"(recorded {best:.3f} in {best_rec.outcome.total_seconds:.0f} s)" if "rerun" in bests[name] else "")
                  + f"; dataset {time.perf_counter() - td:.0f} s", flush=True)
    if llm is not None and args.agent_trials and not agent_ok:
        skipped.append("agent rows: agent.tune was not importable")
    wall = time.perf_counter() - t0
    report = render(rows, bests, args, wall, runs, skipped)
    print("\n" + report)
    out = args.out or RESULTS / ("lodo-quick.md" if args.quick else "lodo.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + "\n")
    if args.docs:
        write_section(args.section or ("lodo-quick" if args.quick else "lodo"),
                      "## Leave-one-dataset-out quality" + (" (quick variant)" if args.quick else "")
                      + (" (zero-shot against the issue-14 reference, `--zero-shot-only`)" if args.zero_shot_only else "")
                      + "\n\n" + report,
                      args.docs)
        print(f"\nwritten: {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
