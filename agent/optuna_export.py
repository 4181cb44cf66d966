"""Warm start for classic HPO: the recommendation and top candidates as an Optuna study.

    from agent import recommend
    from agent.optuna_export import export_study
    rec = recommend("breast ultrasound, 3 classes", dataset="../shared/data/busi_ultrasound.npz")
    export = export_study(rec, storage="sqlite:///study.db", study_name="busi", top_k=4)
    print(export.snippet)

The study's search space is `knowledge.space` (the same names, ranges and log scales),
narrowed to the backbones and modes the request allowed. The recommendation is enqueued
first, then the meta-model's top candidates (`study.enqueue_trial`), so the first trials a
sampler hands out are exactly these, and TPE continues from their results.

Two rules of the space are not box constraints (a backbone without weights only trains
from scratch; frozen mode takes no augmentation): `suggest_config` raises
`optuna.TrialPruned` for such a combination, so TPE learns to avoid it. A third is a
condition: `freeze` (the share of the pretrained backbone kept frozen) belongs to finetune
mode, so `suggest_config` suggests it only there (0 otherwise: drawn for every mode, it would
almost never be 0 and prune nearly every frozen and scratch trial), and prunes a trial whose
fixed params (an enqueued trial) set freeze > 0 with another mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from knowledge.schema import TrainConfig
from knowledge.space import BACKBONES, CHOICES, MODES, RANGES

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

    from agent.recommend import Recommendation

PARAMS = ("backbone", "mode", "input_size", "optimizer", "learning_rate", "batch_size", "epochs", "weight_decay",
          "dropout", "scheduler", "augmentation", "label_smoothing", "freeze")
# Parameters that exist only under a condition on others (suggested after them).
CONDITIONAL = {"freeze": ("mode", "finetune")}


def search_space(backbones: list[str] | None = None, modes: list[str] | None = None) -> dict[str, BaseDistribution]:
    """Optuna distributions for every TrainConfig field, from knowledge.space.

    Args:
        backbones: allowed backbones (default all).
        modes: allowed modes (default all).
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    choices = dict(CHOICES)
    if backbones:
        choices["backbone"] = tuple(b for b in BACKBONES if b in backbones)
    if modes:
        choices["mode"] = tuple(m for m in MODES if m in modes)
    space: dict[str, BaseDistribution] = {}
    for name in PARAMS:
        if name in choices:
            space[name] = CategoricalDistribution(choices[name])
        else:
            r = RANGES[name]
            if r.integer:
                space[name] = IntDistribution(int(r.low), int(r.high), log=r.log)
            else:
                space[name] = FloatDistribution(r.low, r.high, log=r.log)
    return space


def trial_params(config: TrainConfig) -> dict[str, Any]:
    """A config as Optuna trial params (exactly the search space's names)."""
    data = config.model_dump()
    return {name: data[name] for name in PARAMS}


def suggest_config(trial: optuna.Trial, space: dict[str, BaseDistribution] | None = None) -> TrainConfig:
    """Suggest every parameter of `space` on `trial` and build the TrainConfig.

    Raises:
        optuna.TrialPruned: the combination breaks a rule of the space (e.g. augmentation in
            frozen mode); pruning tells the sampler without training anything.
    """
    import optuna

    space = space or search_space()
    params: dict[str, Any] = {}
    for name, dist in space.items():
        if name not in CONDITIONAL:
            params[name] = _suggest(trial, name, dist)
    for name, (parent, value) in CONDITIONAL.items():
        if name not in space:
            continue
        if params.get(parent) == value:
            params[name] = _suggest(trial, name, space[name])
        elif name in _fixed_params(trial):  # an enqueued trial set it: the rule decides (and prunes)
            params[name] = _fixed_params(trial)[name]
    try:
        return TrainConfig.model_validate(params)
    except ValueError as exc:
        raise optuna.TrialPruned(f"invalid combination: {exc}") from exc


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    raise TypeError(f"unsupported distribution for {name}: {dist!r}")  # pragma: no cover - only these are built


def _fixed_params(trial: optuna.Trial) -> dict[str, Any]:
    """The params `study.enqueue_trial` fixed for this trial (empty for a sampled one).

    Read from the trial's public record (`FrozenTrial.system_attrs`): Optuna 5 has no public
    accessor on the live `Trial`.
    """
    study = getattr(trial, "study", None)
    if study is None:
        return {}
    for frozen in study.get_trials(deepcopy=False):
        if frozen.number == trial.number:
            return dict(frozen.system_attrs.get("fixed_params") or {})
    return {}


@dataclass
class StudyExport:
    """What `export_study` wrote."""

    study_name: str
    storage: str
    enqueued: list[dict[str, Any]] = field(default_factory=list)
    snippet: str = ""


def export_study(
    rec: Recommendation,
    *,
    storage: str,
    study_name: str,
    top_k: int = 5,
    dataset: str | None = None,
    metamodel: Any | None = None,
    kb_dir: str | None = None,
) -> StudyExport:
    """Create an Optuna study holding the recommendation and the top-K candidates as enqueued trials.

    Args:
        rec: the recommendation (its config first, then its candidates, best first).
        storage: an Optuna storage URL, e.g. "sqlite:///study.db".
        study_name: must not exist yet in that storage.
        top_k: candidates enqueued after the recommendation (duplicates of it are skipped).
        dataset: the dataset path shown in the snippet (default: the recommendation's).
        metamodel: when the recommendation carries fewer than `top_k` other candidates,
            more are asked from it (same task and constraints), best first.
        kb_dir: the knowledge base the snippet records trials into (default: the user's).

    Raises:
        ValueError: the study already exists, or top_k is negative.
    """
    import optuna

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0, but got {top_k!r}.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    profile = rec.profile
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        raise ValueError(
            f"a study named {study_name!r} already exists in {storage}; choose another --study-name, or delete it "
            f"with optuna.delete_study(study_name={study_name!r}, storage={storage!r})."
        ) from None
    entries = [("recommendation", rec.config, rec.expected_accuracy, rec.expected_seconds)]
    ranked = [(f"candidate {c.id}", c.config, c.accuracy, c.seconds) for c in rec.candidates]
    if metamodel is not None and len(ranked) < top_k + 1:
        from agent.profiling import open_fields
        from tools.metamodel import Constraints

        more = metamodel.candidates(profile.meta, Constraints(
            budget_seconds=profile.budget_seconds, device=profile.device, backbones=profile.backbones,
            modes=profile.modes, max_memory_bytes=profile.max_memory_bytes), n=top_k + 1,
            open_fields=open_fields(profile.model_dump()))  # a text profile's numbers as the pick's (stated)
        ranked += [(f"meta-model rank {i}", c.config, c.prediction.accuracy, c.prediction.seconds)
                   for i, c in enumerate(more, start=1)]
    seen = {rec.config.key()}
    for origin, config, accuracy, seconds in ranked:
        if len(entries) > top_k:
            break
        if config.key() not in seen:
            seen.add(config.key())
            entries.append((origin, config, accuracy, seconds))
    enqueued = []
    for origin, config, accuracy, seconds in entries:
        params = trial_params(config)
        study.enqueue_trial(params, user_attrs={"metallmix_origin": origin, "predicted_test_accuracy": accuracy,
                                                "predicted_seconds": seconds})
        enqueued.append({"origin": origin, "params": params, "predicted_test_accuracy": accuracy,
                         "predicted_seconds": seconds})
    study.set_user_attr("metallmix", {
        "task_source": profile.source, "dataset": profile.dataset, "dataset_name": profile.dataset_name,
        "backbones": profile.backbones, "modes": profile.modes, "rationale": rec.rationale,
        "objective": "validation accuracy of tools.jobs.Job runs (test accuracy is for the final report)",
    })
    path = dataset or profile.dataset or "PATH/TO/DATASET.npz"
    return StudyExport(study_name=study_name, storage=storage, enqueued=enqueued,
                       snippet=snippet(storage, study_name, path, backbones=profile.backbones, modes=profile.modes,
                                       kb_dir=kb_dir))


def snippet(storage: str, study_name: str, dataset: str, *, backbones: list[str] | None = None,
            modes: list[str] | None = None, kb_dir: str | None = None) -> str:
    """Python that continues the study with TPE, training each trial as a MetaLLMiX job."""
    return f'''import optuna
from agent.optuna_export import search_space, suggest_config
from knowledge.store import open_default
from tools.jobs import Job

space = search_space(backbones={backbones!r}, modes={modes!r})
kb_root = open_default({kb_dir!r}, index=False).root   # every trial's record lands in the knowledge base

def objective(trial):
    config = suggest_config(trial, space)   # prunes invalid combinations
    record = Job.start({dataset!r}, config, kb_root=kb_root).wait()
    if record is None or record.outcome.status != "ok":
        raise optuna.TrialPruned(record.outcome.status if record else "the job did not start")
    trial.set_user_attr("test_accuracy", record.outcome.test_accuracy)
    return record.outcome.val_accuracy

study = optuna.load_study(study_name={study_name!r}, storage={storage!r},
                          sampler=optuna.samplers.TPESampler(seed=0))
study.optimize(objective, n_trials=20)   # the enqueued trials run first
print(study.best_params, study.best_value)
'''


def storage_url(out: str | None, storage: str | None) -> str:
    """The storage URL from `--out FILE.db` or `--storage URL` (exactly one)."""
    if bool(out) == bool(storage):
        raise ValueError("give exactly one of --out FILE.db (a new SQLite file) or --storage URL.")
    if storage:
        return storage
    assert out is not None
    if not out.endswith((".db", ".sqlite", ".sqlite3")):
        raise ValueError(f"--out must name a SQLite file ending in .db, .sqlite or .sqlite3, but got {out!r}.")
    from pathlib import Path

    path = Path(out).expanduser().resolve()
    if not path.parent.is_dir():
        raise ValueError(f"the folder of --out does not exist: {path.parent}")
    return f"sqlite:///{path}"


__all__ = ["PARAMS", "StudyExport", "export_study", "search_space", "snippet", "storage_url", "suggest_config",
           "trial_params"]
