"""The API: `tune()` runs a Tuner in a loop, asking for approval as `approve` says.

    from agent.tune import tune
    result = tune("breast ultrasound, 3 classes", dataset="../shared/data/busi_ultrasound.npz",
                  trials=5, budget_minutes=10, approve="once")
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from agent.tune._models import Proposal, TuneError, TuneResult
from agent.tune._render import render_proposal
from agent.tune._tuner import DEFAULT_MIN_GAIN, Tuner

if TYPE_CHECKING:
    from agent.context import Context
    from agent.recommend import Recommender
    from agent.recommendation import Recommendation

Approve = Literal["once", "each", "none"] | Callable[["Proposal"], bool]


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
