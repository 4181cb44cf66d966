"""The terminal's view of a tuning session: a proposal, a trial, the whole result."""

from __future__ import annotations

from typing import Any

from agent.formatting import config_text, duration_text, run_time_text
from agent.tune._models import Plan, Trial, TuneResult


def render_proposal(p: Plan) -> str:
    """A proposal (or the plan of a trial): its config, prediction, expected gain and rationale."""
    head = f"Trial {p.number} ({p.source}{', option ' + p.option if p.option else ''}): {config_text(p.config)}"
    lines = [head, f"  predicted test accuracy {p.predicted.accuracy:.3f} ({p.predicted.low:.2f}-{p.predicted.high:.2f}), "
                   f"~{duration_text(p.predicted.seconds)}" + (f", expected gain {p.expected_gain:+.4f}"
                                                         if p.expected_gain is not None else "")]
    lines.append(f"  why: {p.rationale}")
    if p.fallback_reason:
        lines.append(f"  fallback reason: {p.fallback_reason}")
    return "\n".join(lines)


def trial_timing(t: Trial) -> dict[str, Any]:
    """A trial's timings in the shape `agent.formatting.run_time_text` reads (the train node's), so the
    terminal and the chat's trial cards word its own time and the cached features as a single run's
    final message does."""
    return {"seconds": t.seconds, "train_seconds": t.train_seconds, "feature_seconds": t.feature_seconds,
            "features_cached": t.features_cached}


def render_trial(t: Trial) -> str:
    """A trial's outcome: status, config, accuracies, time, record and analysis."""
    result = (f"val {t.val_accuracy:.3f}, test {t.test_accuracy:.3f}" if t.val_accuracy is not None
              and t.test_accuracy is not None else t.status)
    return (f"Trial {t.number} [{t.status}] {config_text(t.config)}: {result} {run_time_text(trial_timing(t))}"
            + (f" (record {t.record_id})" if t.record_id else "") + f"\n  analysis: {t.analysis.text}")


def render_result(r: TuneResult) -> str:
    """A session: every trial as proposed and as it ran, what was not approved, the best, the time."""
    lines = [f"Tuning session {r.session_id}: {len(r.trials)} trial(s), stopped: {r.stop_reason}"]
    for t in r.trials:
        lines.append(render_proposal(t))
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
