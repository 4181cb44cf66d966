"""Iterative mode (AgentHPO): propose a trial, train it once approved, read its log, propose the next.

    from agent.tune import tune
    result = tune("breast ultrasound, 3 classes", dataset="../shared/data/busi_ultrasound.npz",
                  trials=5, budget_minutes=10, approve="once")
    for t in result.trials:
        print(t.number, t.config.backbone, t.val_accuracy, t.analysis.text)

One trial after another:

1. **Trial 1** is the zero-shot recommendation of the graph (`Recommender.run`: profile,
   retrieval, meta-model + SHAP, LLM, judge), unchanged.
2. Every trial runs as a training job (`tools.jobs.Job`): its own process and run folder,
   cancellable, crash-safe, and its record lands in the knowledge base with the trial's
   rationale in `provenance.notes`; the whole session is also written to
   `<kb>/tuning/<session>.json`.
3. After a trial, `analyze` reads its per-epoch log in code (no LLM): divergence,
   overfitting (validation loss rising again while training loss falls), underfitting (at
   chance level, or training loss barely falling), a run still improving at its last epoch,
   and its time against the budget.
4. The next trial is chosen among **options**: the meta-model's best candidates for the
   task that were not tried yet, plus variants of the best trial that answer its analysis
   (more epochs, a higher or lower learning rate, more regularisation, fewer epochs). The
   LLM picks one under a JSON schema whose enum holds only these option ids, so it cannot
   repeat a trial nor leave the search space, and writes the rationale from the trial
   history, the analysis and SHAP (prompts `tune_system`/`tune_user`). Options expected more
   than 0.05 below the best one are not offered. Deterministic checks reject an answer that
   names no option, a repeat, a config outside the search space or the constraints, or one
   that does not fit the remaining budget (an LLM without grammar-constrained output can
   write anything); then the option with the highest expected gain is taken instead,
   labelled as a fallback.

Expected gain and the stop rule ("the judge sees no expected gain"): the meta-model predicts
test accuracy, and a dataset's errors share one offset (its difficulty, and here also the
gap between validation and test accuracy), so the observed trials calibrate it: offset =
mean(observed val accuracy - predicted accuracy) over the trials that ran. An option's
outcome is modelled as Normal(predicted + offset, sigma) with sigma from the meta-model's
90 % interval, and its expected gain is the expected improvement over the best observed
validation accuracy, E[max(0, X - best)]. Tuning stops when the best option's expected gain
is below `min_gain` (default 0.002, i.e. 0.2 accuracy points), when the trials are done,
when the time budget is spent (a running trial is cancelled when it runs out), when no
untried option fits the remaining budget, or when a proposal is not approved.

The trial kept (`best`): the highest validation accuracy counts only beyond validation
noise. Trials within one standard error of the best validation accuracy (sqrt(p(1-p)/n) on
the n validation images) are near-ties, and among them the one the meta-model predicts
best is kept: on a small validation set the best of five trials is often the luckiest, and
the prediction carries the evidence of every past run (`pick`).

Budget: `budget_minutes` is the wall time of all trials together (LLM time is reported
apart); each proposal is asked to fit a fair share of what is left (remaining / trials left),
and must fit what is left. Without `budget_minutes`, the budget stated in the task text
(if any) is used the same way.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import TaskError
from agent.formatting import config_text, data_text, duration_text, prediction_values
from agent.judge import one_sentence, tidy_text, ungrounded, validate_config
from agent.prompts import prompt
from knowledge.schema import MetaFeatures, TrainConfig
from tools.jobs import write_json
from tools.weights import weights_available

# agent.recommend and agent.nodes (they load LangGraph, ~1 s) are imported where a trial
# needs the graph, so that `import agent.tune` stays light for the chat and the CLI.
if TYPE_CHECKING:
    from agent.context import Context
    from agent.recommend import Recommender
    from agent.recommendation import Recommendation

log = logging.getLogger(__name__)

DEFAULT_MIN_GAIN = 0.002
N_MODEL_OPTIONS = 4  # the meta-model's untried candidates offered per proposal
MAX_VARIANTS = 3  # variants of the best trial offered per proposal
MAX_ACCURACY_GAP = 0.05  # options expected this much below the best option are not offered
RATIONALE_MAX = 200
Z90 = 1.6449  # the meta-model's interval is its 5th-95th percentile
MAX_TRIALS = 50

Approve = Literal["once", "each", "none"] | Callable[["Proposal"], bool]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prediction(_Model):
    """The meta-model's prediction for a config on the task (test accuracy, 90 % interval, wall seconds)."""

    accuracy: float
    low: float
    high: float
    seconds: float


class Analysis(_Model):
    """What a trial's per-epoch log says, computed in code.

    Attributes:
        labels: any of "diverged", "failed", "cancelled", "overfitting", "underfitting",
            "still_improving", "plateaued_early", "converged", "over_time".
        text: the same in a few sentences, with the numbers.
    """

    labels: list[str]
    text: str


class Option(_Model):
    """An untried configuration the next trial may use."""

    id: str = Field(description="'o1', 'o2', ... by expected gain, highest first.")
    config: TrainConfig
    origin: str = Field(description="'meta-model candidate', or 'variant of trial k: what changed (why)'.")
    predicted: Prediction
    expected: float = Field(description="Predicted accuracy calibrated by the trials so far (validation scale).")
    expected_gain: float = Field(description="Expected improvement over the best observed validation accuracy.")


class Proposal(_Model):
    """The next trial, offered for approval."""

    number: int
    config: TrainConfig
    source: Literal["zero-shot", "llm", "fallback"]
    rationale: str
    fallback_reason: str | None = None
    option: str | None = Field(default=None, description="The option id chosen (None for trial 1).")
    predicted: Prediction
    expected_gain: float | None = None
    options: list[Option] = Field(default_factory=list)
    llm_seconds: float = 0.0


class Trial(_Model):
    """One trial: what was proposed and why, what happened, and what its log says."""

    number: int
    config: TrainConfig
    source: Literal["zero-shot", "llm", "fallback"]
    rationale: str
    fallback_reason: str | None = None
    option: str | None = None
    predicted: Prediction
    expected_gain: float | None = None
    status: str = Field(description="ok, diverged, failed, cancelled, or error (the job never trained).")
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    val_auc: float | None = None
    test_auc: float | None = None
    best_epoch: int | None = None
    epochs_run: int = 0
    seconds: float = Field(description="Wall time of the trial: job start to its record.")
    record_id: str | None = None
    run_dir: str | None = None
    error: str | None = None
    analysis: Analysis
    llm_seconds: float = 0.0


class TuneResult(_Model):
    """A tuning session: every trial, the best one, and why it stopped."""

    session_id: str
    task: str
    dataset: str
    trials: list[Trial]
    best: Trial | None = Field(description="The trial to keep: the best validation accuracy, or among trials within "
                                           "one standard error of it, the one the meta-model predicts best (`pick`).")
    best_reason: str | None = Field(default=None, description="Why `best` is not the best validation accuracy.")
    stop_reason: str
    pending: Proposal | None = Field(default=None, description="A proposal that was not approved (nothing trained).")
    max_trials: int
    budget_seconds: float | None
    seconds: float = Field(description="Wall time of the whole session (LLM and training).")
    train_seconds: float = Field(description="Wall time of the trials (what the budget counts).")
    llm_seconds: float
    recommendation: Any = Field(default=None, description="The zero-shot Recommendation (trial 1) as JSON.")
    log_path: str | None = None


class TuneError(ValueError):
    """Bad input to tune(); the message says what to change."""


# ------------------------------------------------------------------------------ analysis
def analyze(
    history: Sequence[Any],
    *,
    status: str,
    seconds: float,
    chance: float | None = None,
    predicted_seconds: float | None = None,
    share_seconds: float | None = None,
    error: str | None = None,
) -> Analysis:
    """Read a trial's per-epoch log (train loss, val loss, val accuracy per epoch).

    Args:
        history: per-epoch metrics (EpochMetrics or dicts with epoch, train_loss, val_loss, val_accuracy).
        status: the run's status.
        seconds: the trial's wall time.
        chance: the majority-class share (accuracy of always answering the largest class).
        predicted_seconds: what the meta-model predicted.
        share_seconds: the time this trial was allowed (its share of the budget).
        error: the run's error message, if any.
    """
    rows = [h if isinstance(h, dict) else h.model_dump() for h in history]
    labels: list[str] = []
    parts: list[str] = []

    def finite(x: Any) -> bool:
        return isinstance(x, (int, float)) and math.isfinite(x)

    train = [r.get("train_loss") for r in rows]
    val_loss = [r.get("val_loss") for r in rows]
    val_acc = [r.get("val_accuracy") for r in rows]
    n = len(rows)
    if status == "diverged" or any(v is not None and not finite(v) for v in train):
        bad = next((r["epoch"] for r in rows if r.get("train_loss") is None or not finite(r["train_loss"])), n or 1)
        labels.append("diverged")
        parts.append(f"diverged: the training loss became NaN/inf at epoch {bad}; the learning rate is too high.")
    elif status in ("failed", "cancelled", "error"):
        labels.append("cancelled" if status == "cancelled" else "failed")
        what = "was cancelled" if status == "cancelled" else "failed"
        parts.append(f"the run {what} after {n} epoch(s)" + (f": {error[:160]}" if error else "") + ".")
    accs = [a for a in val_acc if finite(a)]
    if status == "ok" and n and accs:
        best_i = max(range(n), key=lambda i: (val_acc[i] if finite(val_acc[i]) else -1.0, -i))
        best_acc = val_acc[best_i]
        losses = [(i, v) for i, v in enumerate(val_loss) if finite(v)]
        min_i, min_loss = min(losses, key=lambda t: t[1]) if losses else (best_i, None)
        last_loss = val_loss[-1] if finite(val_loss[-1]) else None
        first_train, last_train = train[0], train[-1]
        if (
            min_loss is not None and last_loss is not None and n >= 3 and min_i < n - 1
            and last_loss > min_loss * 1.10 + 0.01 and finite(first_train) and finite(last_train)
            and last_train < train[min_i]
        ):
            labels.append("overfitting")
            parts.append(
                f"overfitting: validation loss rose from {min_loss:.3f} (epoch {min_i + 1}) to {last_loss:.3f} while "
                f"training loss fell to {last_train:.3f}; best validation accuracy {best_acc:.3f} at epoch {best_i + 1} of {n}."
            )
        elif chance is not None and best_acc <= chance + 0.02:
            labels.append("underfitting")
            parts.append(f"underfitting: validation accuracy {best_acc:.3f} is at chance level (majority class "
                         f"{chance:.3f}).")
        elif finite(first_train) and finite(last_train) and n >= 2 and last_train > 0.9 * first_train:
            labels.append("underfitting")
            parts.append(f"underfitting: training loss barely fell ({first_train:.3f} to {last_train:.3f} in {n} epochs); "
                         "the learning rate may be too low or the run too short.")
        if "overfitting" not in labels and n >= 2 and best_i == n - 1 and finite(val_acc[-2]) \
                and val_acc[-1] - val_acc[-2] >= 0.005:
            labels.append("still_improving")
            parts.append(f"still improving at the last epoch (validation accuracy {val_acc[-2]:.3f} to "
                         f"{val_acc[-1]:.3f}); more epochs may help.")
        if not labels and n >= 4 and best_i + 1 <= n // 2:
            labels.append("plateaued_early")
            parts.append(f"plateaued early: best validation accuracy {best_acc:.3f} at epoch {best_i + 1} of {n}; the "
                         "later epochs cost time without gain.")
        if not labels:
            labels.append("converged")
            parts.append(f"converged: best validation accuracy {best_acc:.3f} at epoch {best_i + 1} of {n}"
                         + (f", validation loss lowest at epoch {min_i + 1}." if losses else "."))
    time_text = f"took {seconds:.0f} s"
    if predicted_seconds:
        time_text += f" (predicted {predicted_seconds:.0f} s)"
    if share_seconds and seconds > share_seconds * 1.2:
        labels.append("over_time")
        time_text += f", more than its share of the budget ({share_seconds:.0f} s)"
    parts.append(time_text[0].upper() + time_text[1:] + ".")
    return Analysis(labels=labels, text=" ".join(parts))


# ----------------------------------------------------------------------- expected gain
def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _Phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def expected_improvement(mean: float, sigma: float, best: float) -> float:
    """E[max(0, X - best)] for X ~ Normal(mean, sigma)."""
    if sigma <= 0:
        return max(0.0, mean - best)
    z = (mean - best) / sigma
    return (mean - best) * _Phi(z) + sigma * _phi(z)


def sigma_of(p: Prediction) -> float:
    """The spread of a prediction from its 90 % interval (at least half a point)."""
    return max((p.high - p.low) / (2 * Z90), 0.005)


def validation_se(accuracy: float, n_val: int | None) -> float:
    """The standard error of an accuracy measured on n_val images (0 when n_val is unknown)."""
    if not n_val or n_val <= 0:
        return 0.0
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n_val)


def pick(trials: Sequence[Trial], n_val: int | None) -> tuple[Trial | None, str | None]:
    """The trial to keep, and why it is not simply the best validation accuracy (None when it is).

    Trials that finished ok within one standard error of the best validation accuracy are
    near-ties; the one the meta-model predicts best among them is kept (ties: the earlier).
    """
    ok = [t for t in trials if t.status == "ok" and t.val_accuracy is not None]
    if not ok:
        return None, None
    top = max(ok, key=lambda t: (t.val_accuracy, -t.number))
    se = validation_se(top.val_accuracy, n_val)  # type: ignore[arg-type]
    near = [t for t in ok if t.val_accuracy >= top.val_accuracy - se]  # type: ignore[operator]
    kept = max(near, key=lambda t: (t.predicted.accuracy, -t.number))
    if kept is top:
        return top, None
    return kept, (f"trial {top.number}'s validation accuracy {top.val_accuracy:.3f} is within one standard error "
                  f"({se:.3f} on {n_val} validation images) of trial {kept.number}'s {kept.val_accuracy:.3f}, and "
                  f"the meta-model predicts trial {kept.number} higher ({kept.predicted.accuracy:.3f} vs "
                  f"{top.predicted.accuracy:.3f})")


# ---------------------------------------------------------------------------- variants
def _lr(value: float) -> float:
    return float(f"{min(max(value, 1e-6), 1.0):.3g}")


def variants(config: TrainConfig, analysis: Analysis, best_epoch: int | None) -> list[tuple[TrainConfig, str]]:
    """Changes to a trial's config that answer its analysis, each with a short reason."""
    c = config.model_dump()
    out: list[tuple[dict[str, Any], str]] = []
    labels = set(analysis.labels)
    if "diverged" in labels:
        out.append(({**c, "learning_rate": _lr(c["learning_rate"] / 10)}, "learning rate / 10 (it diverged)"))
    if "overfitting" in labels:
        out.append(({**c, "weight_decay": min(max(c["weight_decay"] * 10, 1e-3), 0.1),
                     "dropout": round(min(c["dropout"] + 0.2, 0.5), 2)}, "more weight decay and dropout (overfitting)"))
        if best_epoch and best_epoch < 0.7 * c["epochs"]:
            out.append(({**c, "epochs": max(1, math.ceil(best_epoch * 1.2))}, "fewer epochs (overfitting after its best epoch)"))
    if labels & {"underfitting", "still_improving"}:
        why = "still improving" if "still_improving" in labels else "underfitting"
        out.append(({**c, "epochs": min(c["epochs"] * 2, 300)}, f"twice the epochs ({why})"))
        out.append(({**c, "learning_rate": _lr(c["learning_rate"] * 3)}, f"learning rate x3 ({why})"))
    if "plateaued_early" in labels and best_epoch and c["epochs"] > 1:
        out.append(({**c, "epochs": max(1, min(c["epochs"] - 1, math.ceil(best_epoch * 1.5)))},
                    f"fewer epochs (best at epoch {best_epoch} of {c['epochs']})"))
    if labels & {"converged", "over_time", "plateaued_early"} or not out:
        out.append(({**c, "learning_rate": _lr(c["learning_rate"] * 3)}, "learning rate x3 (explore around the best)"))
        out.append(({**c, "learning_rate": _lr(c["learning_rate"] / 3)}, "learning rate / 3 (explore around the best)"))
    if "over_time" in labels and c["epochs"] > 1:
        out.append(({**c, "epochs": max(1, c["epochs"] // 2)}, "half the epochs (over its time share)"))
    result: list[tuple[TrainConfig, str]] = []
    for data, why in out:
        if data["mode"] == "frozen":
            data["augmentation"] = "none"
        try:
            cfg = TrainConfig.model_validate(data)
        except ValueError:
            continue
        if cfg.key() != config.key() and all(cfg.key() != r.key() for r, _ in result):
            result.append((cfg, why))
    return result


# ------------------------------------------------------------------------------- tuner
def tune_schema(options: Sequence[Option]) -> dict[str, Any]:
    """The LLM's JSON schema: one option id (the enum is the untried options) and a one-sentence rationale."""
    return {
        "title": "NextTrial",
        "type": "object",
        "properties": {
            "option": {"type": "string", "enum": [o.id for o in options]},
            "rationale": one_sentence(RATIONALE_MAX),
        },
        "required": ["option", "rationale"],
        "additionalProperties": False,
    }


class Tuner:
    """A tuning session, one step at a time: `propose()`, then `run(proposal)` once approved.

    `tune()` drives it in a loop; the chat steps through it between clicks. Build it with
    the same parts as a `Recommender` (or hand in one), so tests pass fakes.

    Args:
        text: the task in words (may be "" when the dataset says enough).
        dataset: the dataset to train on (required: trials are real runs).
        trials: at most this many trials (1-50).
        budget_minutes: wall time of all trials together; None uses the text's budget, if any.
        device, backbones, modes: constraints, as for `recommend`.
        min_gain: stop when the best option's expected gain is below this (accuracy, 0-1).
        seed: seed of every training run.
        recommender: the graph with its parts; None builds one from llm/kb/metamodel (or the
            process's default one when none of them is given).
        recommendation: trial 1 as already recommended (e.g. in a chat thread); None runs the graph.
        llm: the chat model that proposes trials 2..N; None uses the recommender's reasoner.
        weights_available: whether a backbone's pretrained weights exist here (default: the
            recommender's check). With `recommendation`, `kb` and `metamodel` given, no recommender
            is built (and without `llm` every next trial is the labelled fallback).
        start_job: the job starter (`tools.jobs.Job.start`'s signature); tests inject a fake.
        runs_dir: run folders of the trials (default `tools.jobs.runs_dir()`).
        context: run settings of the graph for trial 1.
        session_id: names the session (its jobs and its log); a new one by default.
    """

    def __init__(
        self,
        text: str = "",
        *,
        dataset: str,
        trials: int = 5,
        budget_minutes: float | None = None,
        device: str | None = None,
        backbones: Sequence[str] | None = None,
        modes: Sequence[str] | None = None,
        min_gain: float = DEFAULT_MIN_GAIN,
        seed: int = 0,
        recommender: Recommender | None = None,
        recommendation: Recommendation | None = None,
        llm: Any | None = None,
        judge_llm: Any | None = None,
        kb: Any | None = None,
        kb_dir: str | None = None,
        metamodel: Any | None = None,
        weights_available: Callable[[str], bool] | None = None,
        start_job: Callable[..., Any] | None = None,
        runs_dir: str | None = None,
        context: Context | None = None,
        session_id: str | None = None,
    ) -> None:
        if not dataset or not isinstance(dataset, (str, os.PathLike)):
            raise TuneError("tuning trains real runs, so it needs a dataset: pass dataset=PATH.")
        if not Path(dataset).expanduser().exists():
            raise TuneError(f"the dataset {str(dataset)!r} does not exist; pass the path of a .npz file or image folder.")
        if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
            raise TuneError(f"trials must be an integer with 1 <= trials <= {MAX_TRIALS}, but got {trials!r}.")
        if budget_minutes is not None and (isinstance(budget_minutes, bool) or not isinstance(budget_minutes, (int, float))
                                           or not math.isfinite(budget_minutes) or budget_minutes <= 0):
            raise TuneError(f"budget_minutes must be a number > 0, but got {budget_minutes!r}.")
        if not isinstance(min_gain, (int, float)) or not 0 <= min_gain <= 1:
            raise TuneError(f"min_gain must satisfy 0 <= min_gain <= 1, but got {min_gain!r}.")
        standalone = recommendation is not None and kb is not None and metamodel is not None
        if recommender is None and not standalone:
            from agent.recommend import Recommender, default_recommender

            if llm is None and judge_llm is None and kb is None and metamodel is None:
                recommender = default_recommender(kb_dir)
            else:
                recommender = Recommender(llm=llm, judge_llm=judge_llm, kb=kb, kb_dir=kb_dir, metamodel=metamodel)
        self.recommender = recommender
        self.llm = llm or (recommender.nodes.llm if recommender is not None else None)
        self.kb = kb if recommender is None else recommender.kb
        self._metamodel = metamodel
        self._weights_available = weights_available
        self.text = text or ""
        self.dataset = str(dataset)
        self.max_trials = trials
        self.budget_seconds = None if budget_minutes is None else float(budget_minutes) * 60
        self.device, self.backbones, self.modes = device, list(backbones or []) or None, list(modes or []) or None
        self.min_gain = float(min_gain)
        self.seed = seed
        self.start_job = start_job
        self.runs_dir = runs_dir
        self.context = context
        self.session_id = session_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.trials: list[Trial] = []
        self.recommendation: Recommendation | None = recommendation
        self.profile: dict[str, Any] | None = None
        self.stop_reason: str | None = None
        self.pending: Proposal | None = None
        self._llm_seconds = 0.0
        self._started = time.perf_counter()
        self._job: Any = None
        self._cancelled = threading.Event()

    # ------------------------------------------------------------------ state
    @property
    def metamodel(self) -> Any:
        if self._metamodel is None:
            assert self.recommender is not None
            return self.recommender.nodes.metamodel
        mm = self._metamodel
        return mm() if callable(mm) and not hasattr(mm, "predict") else mm

    def weights_available(self, backbone: str) -> bool:
        if self._weights_available is not None:
            return bool(self._weights_available(backbone))
        if self.recommender is not None:
            return bool(self.recommender.nodes.weights_available(backbone))
        return weights_available(backbone)

    @property
    def meta(self) -> MetaFeatures:
        assert self.profile is not None
        return MetaFeatures.model_validate(self.profile["meta"])

    @property
    def spent(self) -> float:
        """Wall seconds of the trials so far (what the budget counts)."""
        return sum(t.seconds for t in self.trials)

    @property
    def remaining(self) -> float | None:
        return None if self.budget_seconds is None else max(0.0, self.budget_seconds - self.spent)

    def share(self) -> float | None:
        """The time the next trial should fit: what is left over the trials left."""
        if self.budget_seconds is None:
            return None
        left = max(1, self.max_trials - len(self.trials))
        return max(1.0, (self.remaining or 0.0) / left)

    @property
    def n_val(self) -> int | None:
        """Validation images of the task's dataset (None before the profile is known)."""
        if self.profile is None:
            return None
        return (self.profile["meta"].get("split_sizes") or {}).get("val")

    @property
    def best(self) -> Trial | None:
        """The trial to keep (`pick`): the best validation accuracy beyond validation noise."""
        return pick(self.trials, self.n_val)[0]

    def tried(self) -> set[str]:
        keys = {t.config.key() for t in self.trials}
        if self.pending is not None:
            keys.add(self.pending.config.key())
        return keys

    def _chance(self) -> float | None:
        if self.profile is None:
            return None
        m = self.profile["meta"]
        return m["class_size_max"] / max(m["n_instances"], 1)

    # -------------------------------------------------------------- proposing
    def propose(self) -> Proposal | None:
        """The next trial, or None when tuning should stop (`stop_reason` says why)."""
        if self.stop_reason:
            return None
        if self._cancelled.is_set():
            return self._stop("cancelled by the user")
        if len(self.trials) >= self.max_trials:
            return self._stop(f"trials done: all {self.max_trials} ran")
        if self.budget_seconds is not None and self.spent >= self.budget_seconds:
            return self._stop(f"budget spent: the trials took {duration_text(self.spent)} of {duration_text(self.budget_seconds)}")
        proposal = self._first() if not self.trials else self._next()
        if self._cancelled.is_set():  # cancelled while the LLM was thinking: propose nothing
            return self._stop("cancelled by the user")
        return proposal

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        return None

    def _first(self) -> Proposal:
        if self.recommendation is not None:  # trial 1 was recommended already (a chat thread)
            return self._from_recommendation(self.recommendation, llm_seconds=0.0)
        assert self.recommender is not None
        share = self.share()
        try:
            rec, _ = self.recommender.run(
                self.text, dataset=self.dataset, budget_minutes=None if share is None else share / 60,
                device=self.device, backbones=self.backbones, modes=self.modes, context=self.context,
                thread_id=f"tune-{self.session_id}",
            )
        except TaskError as exc:
            raise TuneError(str(exc)) from exc
        self.recommendation = rec
        self._llm_seconds += rec.llm_seconds
        return self._from_recommendation(rec, llm_seconds=rec.llm_seconds)

    def _from_recommendation(self, rec: Recommendation, *, llm_seconds: float) -> Proposal:
        self.profile = rec.profile.model_dump(mode="json")
        if self.budget_seconds is None and rec.profile.budget_seconds:
            self.budget_seconds = float(rec.profile.budget_seconds)
        return Proposal(
            number=1, config=rec.config, source="fallback" if rec.fallback else "zero-shot",
            rationale=rec.rationale, fallback_reason=rec.fallback_reason,
            predicted=Prediction(accuracy=rec.expected_accuracy, low=rec.accuracy_interval[0],
                                 high=rec.accuracy_interval[1], seconds=rec.expected_seconds),
            llm_seconds=llm_seconds,
        )

    def _predict(self, configs: Sequence[TrainConfig]) -> list[Prediction]:
        assert self.profile is not None
        preds = self.metamodel.predict(self.meta, list(configs), device=self.profile["device"])
        return [Prediction(**prediction_values(p)) for p in preds]

    def options(self) -> list[Option]:
        """Untried configs for the next trial, by expected gain (highest first)."""
        from tools.metamodel import Constraints

        assert self.profile is not None
        p = self.profile
        tried = self.tried()
        constraints = Constraints(budget_seconds=self.share(), device=p["device"], backbones=p.get("backbones"),
                                  modes=p.get("modes"))
        retrieved = []
        if self.recommendation is not None:
            from agent.nodes import stored_records

            retrieved = stored_records(self.kb, [e.id for e in self.recommendation.evidence])
        found = self.metamodel.candidates(self.meta, constraints, retrieved=retrieved,
                                          n=N_MODEL_OPTIONS + len(self.trials))
        raw: list[tuple[TrainConfig, str]] = [(c.config, "meta-model candidate") for c in found
                                              if c.config.key() not in tried][:N_MODEL_OPTIONS]
        best = self.best
        if best is not None:
            for cfg, why in variants(best.config, best.analysis, best.best_epoch)[:MAX_VARIANTS]:
                raw.append((cfg, f"variant of trial {best.number}: {why}"))
        seen: set[str] = set()
        unique = []
        for cfg, origin in raw:
            if cfg.key() in tried or cfg.key() in seen:
                continue
            seen.add(cfg.key())
            unique.append((cfg, origin))
        if not unique:
            return []
        preds = self._predict([c for c, _ in unique])
        offset, best_val = self._calibration()
        remaining = self.remaining
        opts = []
        for (cfg, origin), pred in zip(unique, preds, strict=True):
            if remaining is not None and pred.seconds > remaining:
                continue  # cannot finish in what is left of the budget
            expected = pred.accuracy + offset
            gain = expected_improvement(expected, sigma_of(pred), best_val) if best_val is not None else expected
            opts.append((cfg, origin, pred, expected, gain))
        opts.sort(key=lambda o: -o[4])
        if opts:  # a clearly worse option is never offered: the enum itself keeps the LLM competitive
            top = max(o[3] for o in opts)
            opts = [o for o in opts if o[3] >= top - MAX_ACCURACY_GAP]
        return [Option(id=f"o{i}", config=c, origin=origin, predicted=pred, expected=round(e, 4),
                       expected_gain=round(g, 5)) for i, (c, origin, pred, e, g) in enumerate(opts, start=1)]

    def _calibration(self) -> tuple[float, float | None]:
        """(offset, best): mean(observed val - predicted) over ok trials, and the best val accuracy."""
        ok = [t for t in self.trials if t.status == "ok" and t.val_accuracy is not None]
        if not ok:
            return 0.0, None
        offset = sum(t.val_accuracy - t.predicted.accuracy for t in ok) / len(ok)  # type: ignore[operator]
        return offset, max(t.val_accuracy for t in ok)  # type: ignore[type-var]

    def _next(self) -> Proposal | None:
        opts = self.options()
        if not opts:
            left = f" in the remaining {duration_text(self.remaining)}" if self.remaining is not None else ""
            return self._stop(f"no untried configuration fits the constraints{left}")
        top = opts[0]
        best_val = self._calibration()[1]
        if best_val is not None and top.expected_gain < self.min_gain:
            return self._stop(
                f"no expected gain: the best untried option ({config_text(top.config)}) is expected to improve the "
                f"best validation accuracy {best_val:.3f} by only {top.expected_gain:.4f} "
                f"(< min_gain {self.min_gain:g})"
            )
        choice, rationale, problem, seconds = self._ask_llm(opts)
        self._llm_seconds += seconds
        number = len(self.trials) + 1
        if choice is None:
            return Proposal(
                number=number, config=top.config, source="fallback", option=top.id,
                rationale=(f"Fallback: the option with the highest expected gain, {top.id} ({top.origin}), expected "
                           f"validation accuracy {top.expected:.3f}, gain {top.expected_gain:+.4f}."),
                fallback_reason=problem, predicted=top.predicted, expected_gain=top.expected_gain, options=opts,
                llm_seconds=seconds,
            )
        return Proposal(number=number, config=choice.config, source="llm", option=choice.id, rationale=rationale,
                        predicted=choice.predicted, expected_gain=choice.expected_gain, options=opts,
                        llm_seconds=seconds)

    def messages(self, opts: Sequence[Option]) -> list[Any]:
        """The LLM's prompt: the task, the trial history with analyses, SHAP of the best config, the options."""
        from langchain_core.messages import HumanMessage, SystemMessage

        assert self.profile is not None
        best = self.best
        lines = []
        for t in self.trials:
            mark = "*" if best is not None and t.number == best.number else " "
            result = f"val {t.val_accuracy:.3f}" if t.val_accuracy is not None else t.status
            lines.append(f"{mark}t{t.number} {config_text(t.config)}: {result}, {duration_text(t.seconds)} "
                         f"[{', '.join(t.analysis.labels)}]")
        last = self.trials[-1]
        shap = "none (no trial succeeded yet)"
        if best is not None:
            try:
                shap = self.metamodel.explain(self.meta, best.config).text(top=3)
            except Exception as exc:  # SHAP is context for the LLM; without it the options still stand
                log.warning("SHAP for the tuning prompt failed: %s", exc)
        option_lines = [f"{o.id} {config_text(o.config)}: expected val {o.expected:.3f}, gain {o.expected_gain:+.4f}, "
                        f"{duration_text(o.predicted.seconds)}; {o.origin}" for o in opts]
        remaining = self.remaining
        budget = (f"{duration_text(remaining)} of {duration_text(self.budget_seconds or 0)} left" if remaining is not None
                  else "no time budget") + f"; trial {len(self.trials) + 1} of at most {self.max_trials}"
        user = prompt("tune_user").format(
            task=(self.text.strip() or "(none)")[:300], data=data_text(self.profile), budget=budget,
            history="\n".join(lines), last=last.number, analysis=last.analysis.text, shap=shap,
            options="\n".join(option_lines),
        )
        return [SystemMessage(prompt("tune_system").strip()), HumanMessage(user)]

    def _ask_llm(self, opts: Sequence[Option]) -> tuple[Option | None, str, str | None, float]:
        """(chosen option, rationale, None) or (None, "", why the LLM's answer was not used)."""
        start = time.perf_counter()
        if self.llm is None:
            return None, "", "no chat model is configured", 0.0
        try:
            out = self.llm.with_structured_output(tune_schema(opts), include_raw=True).with_config(
                run_name="tune", tags=["tune"]).invoke(self.messages(opts))
            if isinstance(out, dict) and {"raw", "parsed"} <= out.keys():
                out = out["parsed"]
            if hasattr(out, "model_dump"):
                out = out.model_dump()
        except Exception as exc:  # the fallback below covers any failure of the model
            log.warning("tune: the LLM gave no usable answer: %s", exc)
            return None, "", f"the LLM gave no usable answer ({type(exc).__name__}: {str(exc)[:160]})", \
                time.perf_counter() - start
        seconds = time.perf_counter() - start
        if not isinstance(out, dict) or not isinstance(out.get("option"), str) or not isinstance(out.get("rationale"), str):
            return None, "", f"the LLM's answer is not the JSON object asked for: {str(out)[:160]}", seconds
        by_id = {o.id: o for o in opts}
        chosen = by_id.get(out["option"])
        rationale = tidy_text(out["rationale"], RATIONALE_MAX)
        if chosen is None:
            return None, "", (f"option must be one of {', '.join(by_id)}, but got {out['option']!r}"), seconds
        if chosen.config.key() in self.tried():
            return None, "", f"{chosen.id} repeats a tried configuration", seconds
        assert self.profile is not None
        _, problems = validate_config(chosen.config.model_dump(), backbones=self.profile.get("backbones"),
                                      modes=self.profile.get("modes"),
                                      weights_available=self.weights_available)
        if problems:
            return None, "", " ".join(problems), seconds
        remaining = self.remaining
        if remaining is not None and chosen.predicted.seconds > remaining:
            return None, "", f"{chosen.id} is predicted to need {duration_text(chosen.predicted.seconds)}, more than is left", seconds
        if len(rationale) < 20:
            return None, "", "the rationale is empty or too short", seconds
        false = self._ungrounded(rationale, chosen, opts)
        if false:
            return None, "", "the rationale states what the evidence does not: " + "; ".join(false), seconds
        return chosen, rationale, None, seconds

    def _ungrounded(self, rationale: str, chosen: Option, opts: Sequence[Option]) -> list[str]:
        """The judge's grounding check on a tuning rationale: the options ("o2") and trials ("t1")
        it names exist, and what it says of them (accuracies, "best", optimizer, size, backbone)
        is what the prompt showed."""
        options = [{"id": o.id, "accuracy": o.expected, "low": o.predicted.low, "high": o.predicted.high,
                    "seconds": o.predicted.seconds, "config": o.config.model_dump(mode="json"),
                    "predicted": o.predicted.accuracy} for o in opts]
        trials = [{"alias": f"t{t.number}", "test_accuracy": t.val_accuracy, "config": t.config.model_dump(mode="json")}
                  for t in self.trials]
        shown = [v for o in options for v in (o["accuracy"], o["predicted"], o["low"], o["high"])]
        shown += [t["test_accuracy"] for t in trials if t["test_accuracy"] is not None]
        known = [o["id"] for o in options] + [t["alias"] for t in trials]
        return ungrounded(rationale, known, shown, options, trials, about=[chosen.id], prefixes="ot")

    # ---------------------------------------------------------------- running
    def decline(self, proposal: Proposal, reason: str = "not approved") -> None:
        """Record that a proposal was not approved: nothing trains, tuning stops."""
        self.pending = proposal
        self.stop_reason = f"trial {proposal.number} not approved" + (f": {reason}" if reason != "not approved" else "")

    def cancel(self) -> None:
        """Stop: cancel the running trial (recorded as cancelled) and propose nothing more."""
        self._cancelled.set()
        job = self._job
        if job is not None:
            try:
                job.cancel()
            except Exception as exc:  # the job may have ended meanwhile
                log.warning("cancel: %s", exc)

    def run(self, proposal: Proposal, on_event: Callable[[dict[str, Any]], None] | None = None) -> Trial:
        """Train an approved proposal as a job, wait for its record, analyse its log."""
        if proposal.config.key() in {t.config.key() for t in self.trials}:
            raise TuneError(f"refusing to repeat a tried configuration ({config_text(proposal.config)}).")
        emit = on_event or (lambda _e: None)
        assert self.profile is not None
        if self.start_job is None:
            from tools.jobs import Job

            self.start_job = Job.start
        meta = self.profile["meta"]
        share = self.share()
        remaining = self.remaining
        notes = (f"metallmix tune {self.session_id}, trial {proposal.number} ({proposal.source}): {proposal.rationale}"
                 + (f" [fallback: {proposal.fallback_reason}]" if proposal.fallback_reason else ""))
        start = time.perf_counter()
        job = self.start_job(
            self.dataset, proposal.config, seed=self.seed, kb_root=getattr(self.kb, "root", None), runs=self.runs_dir,
            job_id=f"tune-{self.session_id}-t{proposal.number:02d}-{proposal.config.key()}",
            modality=None if meta["modality"] == "unknown" else meta["modality"], body_part=meta.get("body_part"),
            notes=notes[:2000],
        )
        self._job = job
        timer = None
        if remaining is not None:  # the budget is a limit: a trial that would overrun it is cancelled
            timer = threading.Timer(max(remaining, 1.0), job.cancel)
            timer.daemon = True
            timer.start()
        emit({"type": "job", "trial": proposal.number, "job_id": job.id, "run_dir": str(job.run_dir)})
        try:
            for event in job.events():
                emit({"type": "train", "trial": proposal.number, **event})
        except KeyboardInterrupt:
            job.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            proc = getattr(job, "proc", None)
            if proc is not None:
                proc.wait()
            self._job = None
        record = job.finalize()
        seconds = round(time.perf_counter() - start, 3)
        common = dict(
            number=proposal.number, config=proposal.config, source=proposal.source, rationale=proposal.rationale,
            fallback_reason=proposal.fallback_reason, option=proposal.option, predicted=proposal.predicted,
            expected_gain=proposal.expected_gain, seconds=seconds, run_dir=str(job.run_dir),
            llm_seconds=proposal.llm_seconds,
        )
        if record is None:
            err = Path(job.run_dir) / "error.txt"
            error = err.read_text()[:2000] if err.exists() else f"the job failed before training; see {job.run_dir}/stderr.txt"
            trial = Trial(**common, status="error", error=error,
                          analysis=analyze([], status="error", seconds=seconds, error=error))
        else:
            o = record.outcome
            trial = Trial(
                **common, status=o.status, val_accuracy=o.val_accuracy, test_accuracy=o.test_accuracy,
                val_auc=o.val_auc, test_auc=o.test_auc, best_epoch=o.best_epoch, epochs_run=o.epochs_run,
                record_id=record.id, error=o.error,
                analysis=analyze(o.history, status=o.status, seconds=seconds, chance=self._chance(),
                                 predicted_seconds=proposal.predicted.seconds, share_seconds=share, error=o.error),
            )
            if hasattr(self.kb, "sync_index"):
                try:
                    self.kb.sync_index()
                except Exception as exc:  # the JSONL holds the record; the index re-syncs on the next search
                    log.warning("index sync failed: %s", exc)
        self.trials.append(trial)
        self.write_log()
        emit({"type": "trial", "trial": trial.number, "result": trial.model_dump(mode="json")})
        return trial

    # ---------------------------------------------------------------- results
    def result(self) -> TuneResult:
        best, why = pick(self.trials, self.n_val)
        return TuneResult(
            session_id=self.session_id, task=self.text, dataset=self.dataset, trials=list(self.trials), best=best,
            best_reason=why,
            stop_reason=self.stop_reason or "not finished", pending=self.pending, max_trials=self.max_trials,
            budget_seconds=self.budget_seconds, seconds=round(time.perf_counter() - self._started, 3),
            train_seconds=round(self.spent, 3), llm_seconds=round(self._llm_seconds, 3),
            recommendation=None if self.recommendation is None else self.recommendation.model_dump(mode="json"),
            log_path=str(self.log_path) if self.log_path else None,
        )

    @property
    def log_path(self) -> Path | None:
        root = getattr(self.kb, "root", None)
        return None if root is None else Path(root) / "tuning" / f"{self.session_id}.json"

    def write_log(self) -> None:
        """The session so far, as JSON beside the knowledge base (atomic)."""
        path = self.log_path
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = self.result().model_dump(mode="json")
            data.pop("recommendation", None)
            write_json(path, data)
        except OSError as exc:  # the records are in the knowledge base; the session log is a convenience
            log.warning("could not write the tuning log %s: %s", path, exc)


# --------------------------------------------------------------------------------- API
def ask_terminal(proposal: Proposal) -> bool:
    """Ask on the terminal whether to train a proposal (the default is no)."""
    print(render_proposal(proposal), file=sys.stderr)
    try:
        answer = input(f"Train trial {proposal.number}? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def tune(
    text: str = "",
    *,
    dataset: str,
    trials: int = 5,
    budget_minutes: float | None = None,
    approve: Approve = "once",
    device: str | None = None,
    backbones: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    min_gain: float = DEFAULT_MIN_GAIN,
    seed: int = 0,
    llm: Any | None = None,
    judge_llm: Any | None = None,
    kb: Any | None = None,
    kb_dir: str | None = None,
    metamodel: Any | None = None,
    recommender: Recommender | None = None,
    recommendation: Recommendation | None = None,
    start_job: Callable[..., Any] | None = None,
    runs_dir: str | None = None,
    context: Context | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Tune a task trial by trial (AgentHPO), starting from the zero-shot recommendation.

    Args:
        text: the task in words (may be "" when the dataset says enough).
        dataset: the dataset to train on.
        trials: at most this many trials.
        budget_minutes: wall time of all trials together (None: the text's budget, if any).
        approve: "once" (calling this approves every trial within trials and budget),
            "each" (ask on the terminal before every trial), "none" (propose trial 1, train
            nothing), or a callable `approve(proposal) -> bool` asked before every trial; a
            refusal stops tuning and leaves the proposal in `result.pending`.
        device, backbones, modes: constraints, as for `recommend`.
        min_gain: stop when no untried option is expected to improve the best validation
            accuracy by at least this much.
        seed: seed of every training run.
        llm, judge_llm, kb, kb_dir, metamodel: parts, as for `recommend` (None: the defaults).
        recommender: a ready Recommender (its parts are used; overrides the parts above).
        recommendation: trial 1 as already recommended for this task and dataset (the graph
            is then not run again).
        start_job: the job starter (tests inject a fake).
        runs_dir: run folders of the trials.
        context: graph settings for trial 1.
        on_event: called with every event: {"type": "proposal" | "declined" | "job" | "train" |
            "trial" | "stop", "trial": n, ...}, e.g. to stream progress.

    Returns:
        The session: every trial (config, source, rationale, analysis, metrics, record id,
        seconds), the best trial by validation accuracy, and the stop reason.

    Raises:
        TuneError: bad input (a ValueError whose message says what to change).
    """
    if not (approve in ("once", "each", "none") or callable(approve)):
        raise TuneError(f"approve must be 'once', 'each', 'none' or a callable, but got {approve!r}.")
    if approve == "each" and not sys.stdin.isatty():
        raise TuneError("approve='each' asks on the terminal, but stdin is not a terminal; pass a callable or 'once'.")
    emit = on_event or (lambda _e: None)
    tuner = Tuner(
        text, dataset=dataset, trials=trials, budget_minutes=budget_minutes, device=device, backbones=backbones,
        modes=modes, min_gain=min_gain, seed=seed, recommender=recommender, llm=llm, judge_llm=judge_llm, kb=kb,
        kb_dir=kb_dir, metamodel=metamodel, start_job=start_job, runs_dir=runs_dir, context=context,
        recommendation=recommendation,
    )
    ask: Callable[[Proposal], bool]
    if approve == "once":
        ask = lambda _p: True  # noqa: E731
    elif approve == "none":
        ask = lambda _p: False  # noqa: E731
    elif approve == "each":
        ask = ask_terminal
    else:
        ask = approve  # type: ignore[assignment]
    while (proposal := tuner.propose()) is not None:
        emit({"type": "proposal", "trial": proposal.number, "proposal": proposal.model_dump(mode="json")})
        if not ask(proposal):
            tuner.decline(proposal)
            emit({"type": "declined", "trial": proposal.number})
            break
        tuner.run(proposal, on_event=emit)
    tuner.write_log()
    result = tuner.result()
    emit({"type": "stop", "reason": result.stop_reason})
    return result


# ---------------------------------------------------------------------------- rendering
def render_proposal(p: Proposal) -> str:
    head = f"Trial {p.number} ({p.source}{', option ' + p.option if p.option else ''}): {config_text(p.config)}"
    lines = [head, f"  predicted test accuracy {p.predicted.accuracy:.3f} ({p.predicted.low:.2f}-{p.predicted.high:.2f}), "
                   f"~{duration_text(p.predicted.seconds)}" + (f", expected gain {p.expected_gain:+.4f}"
                                                         if p.expected_gain is not None else "")]
    lines.append(f"  why: {p.rationale}")
    if p.fallback_reason:
        lines.append(f"  fallback reason: {p.fallback_reason}")
    return "\n".join(lines)


def render_trial(t: Trial) -> str:
    result = (f"val {t.val_accuracy:.3f}, test {t.test_accuracy:.3f}" if t.val_accuracy is not None
              and t.test_accuracy is not None else t.status)
    return (f"Trial {t.number} [{t.status}] {config_text(t.config)}: {result} in {duration_text(t.seconds)}"
            + (f" (record {t.record_id})" if t.record_id else "") + f"\n  analysis: {t.analysis.text}")


def render_result(r: TuneResult) -> str:
    lines = [f"Tuning session {r.session_id}: {len(r.trials)} trial(s), stopped: {r.stop_reason}"]
    for t in r.trials:
        lines.append(render_proposal(_as_proposal(t)))
        lines.append("  " + render_trial(t).replace("\n", "\n  "))
    if r.pending is not None:
        lines.append("Not approved (nothing trained):")
        lines.append(render_proposal(r.pending))
    if r.best is not None:
        b = r.best
        lines.append(f"Best: trial {b.number}, {config_text(b.config)}: val {b.val_accuracy:.3f}, "
                     f"test {b.test_accuracy if b.test_accuracy is not None else float('nan'):.3f}")
        if r.best_reason:
            lines.append(f"  kept because {r.best_reason}")
    budget = f" of {duration_text(r.budget_seconds)}" if r.budget_seconds else ""
    lines.append(f"Time: trials {duration_text(r.train_seconds)}{budget}, LLM {r.llm_seconds:.1f} s, total {duration_text(r.seconds)}"
                 + (f"; log {r.log_path}" if r.log_path else ""))
    return "\n".join(lines)


def _as_proposal(t: Trial) -> Proposal:
    return Proposal(number=t.number, config=t.config, source=t.source, rationale=t.rationale,
                    fallback_reason=t.fallback_reason, option=t.option, predicted=t.predicted,
                    expected_gain=t.expected_gain)


__all__ = [
    "Analysis", "DEFAULT_MIN_GAIN", "Option", "Prediction", "Proposal", "Trial", "TuneError", "TuneResult", "Tuner",
    "analyze", "expected_improvement", "pick", "render_proposal", "render_result", "render_trial", "tune", "tune_schema",
    "validation_se", "variants",
]
