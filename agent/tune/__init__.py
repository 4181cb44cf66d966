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

The package, by concern (each module private, everything re-exported here):
- `_models`: predictions, analyses, options, proposals and trials (a trial is a proposal's
  plan with an outcome), the session's result;
- `_analysis`: reading a trial's per-epoch log (`analyze`);
- `_gain`: calibration, expected improvement, ranking the options, the trial to keep (`pick`);
- `_variants`: variants of the best trial, and the configs to offer next;
- `_choice`: the LLM's schema, prompt and the checks of its answer;
- `_tuner`: the `Tuner`, a session one step at a time;
- `_api`: `tune()`, the loop with its approvals;
- `_render`: the terminal's text.
"""

from __future__ import annotations

from agent.tune._analysis import analyze
from agent.tune._api import Approve, ask_terminal, tune
from agent.tune._choice import PROPOSAL_RATIONALE_MAX, check_choice, tune_messages, tune_schema, ungrounded_choice
from agent.tune._gain import (
    MAX_ACCURACY_GAP,
    Z90,
    calibration,
    expected_improvement,
    pick,
    rank_options,
    sigma_of,
    validation_se,
)
from agent.tune._models import Analysis, Option, Plan, PredictedOutcome, Proposal, Trial, TuneError, TuneResult
from agent.tune._render import render_proposal, render_result, render_trial
from agent.tune._tuner import DEFAULT_MIN_GAIN, MAX_TRIALS, Tuner
from agent.tune._variants import MAX_VARIANTS, N_MODEL_OPTIONS, next_configs, variants

__all__ = [
    "Analysis", "Approve", "DEFAULT_MIN_GAIN", "MAX_ACCURACY_GAP", "MAX_TRIALS", "MAX_VARIANTS", "N_MODEL_OPTIONS",
    "Option", "PROPOSAL_RATIONALE_MAX", "Plan", "PredictedOutcome", "Proposal", "Trial", "TuneError", "TuneResult",
    "Tuner", "Z90", "analyze", "ask_terminal", "calibration", "check_choice", "expected_improvement", "next_configs",
    "pick", "rank_options", "render_proposal", "render_result", "render_trial", "sigma_of", "tune", "tune_messages",
    "tune_schema", "ungrounded_choice", "validation_se", "variants",
]
