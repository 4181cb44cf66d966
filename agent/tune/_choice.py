"""The LLM's choice of the next trial: its schema, its prompt, and the checks of its answer.

The LLM picks one option under a JSON schema whose enum holds only the untried options' ids,
and writes a one-sentence rationale from the trial history, the analysis and SHAP (prompts
`tune_system`/`tune_user`). `check_choice` rejects an answer that names no option, a repeat, a
config outside the search space or the constraints, one that does not fit the remaining
budget, or a rationale that is too short or states what the prompt did not show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from agent.formatting import config_text, data_text, duration_text
from agent.judge import (
    Facts,
    Stated,
    dropped,
    one_sentence,
    stated_of,
    tidy_text,
    trimmed,
    unsupported,
    validate_config,
)
from agent.prompts import prompt
from agent.tune._models import Option, Trial

log = logging.getLogger(__name__)

# The tuning rationale's length (`one_sentence`); the recommendation's is agent.judge.DRAFT_RATIONALE_MAX.
PROPOSAL_RATIONALE_MAX = 200


def tune_schema(options: Sequence[Option]) -> dict[str, Any]:
    """The LLM's JSON schema: one option id (the enum is the untried options) and a one-sentence rationale."""
    return {
        "title": "NextTrial",
        "type": "object",
        "properties": {
            "option": {"type": "string", "enum": [o.id for o in options]},
            "rationale": one_sentence(PROPOSAL_RATIONALE_MAX),
        },
        "required": ["option", "rationale"],
        "additionalProperties": False,
    }


def tune_messages(
    opts: Sequence[Option],
    *,
    text: str,
    profile: dict[str, Any],
    trials: Sequence[Trial],
    best: Trial | None,
    shap: str,
    remaining: float | None,
    budget_seconds: float | None,
    max_trials: int,
) -> list[Any]:
    """The LLM's prompt: the task, the trial history with analyses (the kept trial starred), SHAP
    of the best config, the time left and the options."""
    from langchain_core.messages import HumanMessage, SystemMessage

    lines = []
    for t in trials:
        mark = "*" if best is not None and t.number == best.number else " "
        result = f"val {t.val_accuracy:.3f}" if t.val_accuracy is not None else t.status
        lines.append(f"{mark}t{t.number} {config_text(t.config)}: {result}, {duration_text(t.seconds)} "
                     f"[{', '.join(t.analysis.labels)}]")
    last = trials[-1]
    option_lines = [f"{o.id} {config_text(o.config)}: expected val {o.expected:.3f}, gain {o.expected_gain:+.4f}, "
                    f"{duration_text(o.predicted.seconds)}; {o.origin}" for o in opts]
    budget = (f"{duration_text(remaining)} of {duration_text(budget_seconds or 0)} left" if remaining is not None
              else "no time budget") + f"; trial {len(trials) + 1} of at most {max_trials}"
    user = prompt("tune_user").format(
        task=(text.strip() or "(none)")[:300], data=data_text(profile), budget=budget,
        history="\n".join(lines), last=last.number, analysis=last.analysis.text, shap=shap,
        options="\n".join(option_lines),
    )
    return [SystemMessage(prompt("tune_system").strip()), HumanMessage(user)]


def check_choice(
    out: Any,
    opts: Sequence[Option],
    *,
    tried: set[str],
    profile: dict[str, Any],
    weights_available: Callable[[str], bool],
    remaining: float | None,
    trials: Sequence[Trial],
    budget_seconds: float | None = None,
    kept: Trial | None = None,
) -> tuple[Option | None, str, str | None]:
    """(chosen option, rationale, None) or (None, "", why the LLM's answer `out` is not used).

    Args:
        out: the LLM's parsed answer.
        opts: the options it was offered.
        tried: the config keys tried or pending.
        profile: the task's profile (its `backbones` and `modes` constraints).
        weights_available: whether a backbone's pretrained weights exist here.
        remaining: what is left of the budget (None: no budget).
        trials: the trials so far (the rationale may speak of them as "t1", ...).
        budget_seconds: the tuning budget, all trials together (None: none was stated); a rationale
            may speak of it and of `remaining`, and of no other budget or limit the user did not state.
        kept: the trial the prompt stars as the best kept so far (the rationale may call it best).
    """
    if not isinstance(out, dict) or not isinstance(out.get("option"), str) or not isinstance(out.get("rationale"), str):
        return None, "", f"the LLM's answer is not the JSON object asked for: {str(out)[:160]}"
    by_id = {o.id: o for o in opts}
    chosen = by_id.get(out["option"])
    rationale = tidy_text(out["rationale"], PROPOSAL_RATIONALE_MAX)
    if chosen is None:
        return None, "", (f"option must be one of {', '.join(by_id)}, but got {out['option']!r}")
    if chosen.config.key() in tried:
        return None, "", f"{chosen.id} repeats a tried configuration"
    _, problems = validate_config(chosen.config.model_dump(), backbones=profile.get("backbones"),
                                  modes=profile.get("modes"),
                                  weights_available=weights_available)
    if problems:
        return None, "", " ".join(problems)
    if remaining is not None and chosen.predicted.seconds > remaining:
        return None, "", f"{chosen.id} is predicted to need {duration_text(chosen.predicted.seconds)}, more than is left"
    if len(rationale) < 20:
        return None, "", "the rationale is empty or too short"
    stated = stated_of(profile, budgets=(budget_seconds, remaining))
    false = ungrounded_choice(rationale, chosen, opts, trials, stated=stated, kept=kept)
    # Only a clause it cannot back up is wrong: the head before it, when that says a why that holds (agent.judge.trim).
    head = trimmed(rationale, lambda r: not ungrounded_choice(r, chosen, opts, trials, stated=stated, kept=kept)) \
        if false else None
    if head is not None:
        log.info("tune: rationale cut before %r: %s", dropped(rationale, head), "; ".join(false))
        return chosen, head, None
    if false:
        return None, "", "the rationale states what the evidence does not: " + "; ".join(false)
    return chosen, rationale, None


def ungrounded_choice(rationale: str, chosen: Option, opts: Sequence[Option], trials: Sequence[Trial], *,
                      stated: Stated | None = None, kept: Trial | None = None) -> list[str]:
    """The judge's grounding check on a tuning rationale (`agent.judge.unsupported`): the options ("o2")
    and trials ("t1") it names exist, and what it says of them is what the prompt showed: accuracies,
    gains (in sign and size), comparisons and differences, hyperparameter values, which trial is best
    and a trial's best epoch. `stated`: the budget and limits the user stated
    (`agent.judge.stated_of(profile, budgets=(budget_seconds, remaining))`); None leaves them unchecked.
    `kept`: the trial the prompt stars (`pick`), which the rationale may call best as well.
    """
    options = [{"id": o.id, "accuracy": o.expected, "low": o.predicted.low, "high": o.predicted.high,
                "seconds": o.predicted.seconds, "config": o.config.model_dump(mode="json"),
                "predicted": o.predicted.accuracy, "gain": o.expected_gain} for o in opts]
    shown_trials = {f"t{t.number}": {"alias": f"t{t.number}", "test_accuracy": t.val_accuracy,
                                     "config": t.config.model_dump(mode="json"), "best_epoch": t.best_epoch,
                                     "analysis": t.analysis.text} for t in trials}
    shown = [v for o in options for v in (o["accuracy"], o["predicted"], o["low"], o["high"])]
    shown += [t["test_accuracy"] for t in shown_trials.values() if t["test_accuracy"] is not None]
    facts = Facts(known=frozenset([o["id"] for o in options] + list(shown_trials)), shown=tuple(shown),
                  runs={o["id"]: o for o in options} | shown_trials, candidates=options, about=(chosen.id,),
                  prefixes="ot", decimals=3, trials=tuple(shown_trials), stated=stated,
                  kept=None if kept is None else f"t{kept.number}")
    return unsupported(rationale, facts)
