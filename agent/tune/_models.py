"""What a tuning session is made of: predictions, analyses, options, proposals, trials, the result.

A trial is a proposal with an outcome: `Proposal` and `Trial` share `Plan` (what is to be
trained, where it came from, why, and what the meta-model predicts); a proposal adds the
options it was chosen from, a trial what its run measured and what its log says.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from knowledge.schema import TrainConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# What an option, proposal or trial keeps of a tools.metamodel.Prediction (not to be confused with it).
class PredictedOutcome(_Model):
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
    predicted: PredictedOutcome
    expected: float = Field(description="Predicted accuracy calibrated by the trials so far (validation scale).")
    expected_gain: float = Field(description="Expected improvement over the best observed validation accuracy.")


class Plan(_Model):
    """What a trial is to train and why: the part a proposal and the trial it becomes share."""

    number: int
    config: TrainConfig
    source: Literal["zero-shot", "llm", "fallback"]
    rationale: str
    fallback_reason: str | None = None
    option: str | None = None
    predicted: PredictedOutcome
    expected_gain: float | None = None

    def plan_fields(self) -> dict[str, Any]:
        """The `Plan` fields, as they are: what a trial takes over from its proposal."""
        return {name: getattr(self, name) for name in Plan.model_fields}


class Proposal(Plan):
    """The next trial, offered for approval."""

    option: str | None = Field(default=None, description="The option id chosen (None for trial 1).")
    options: list[Option] = Field(default_factory=list)
    llm_seconds: float = 0.0


class Trial(Plan):
    """One trial: what was proposed and why, what happened, and what its log says."""

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
    # Last, so a trial serializes as before with three more fields (the chat words a trial's own time from them).
    train_seconds: float | None = Field(default=None, description="The record's training-loop time (None: no record).")
    feature_seconds: float = Field(default=0.0, description="The record's feature-extraction time (frozen mode).")
    features_cached: bool = Field(default=False, description="The features came from an earlier run's cache, so "
                                                             "their extraction time was not spent in this trial.")


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
