"""What a rationale is judged against: the runs it may speak of, and what the user stated.

`Facts` gathers, for one rationale, the ids it may name and what each shows (an accuracy, a
configuration, and for tuning a trial's best epoch or an option's expected gain), the choice
it is about, and `Stated`: the time budget and the limits the user said. The recommendation's
judge builds it from a `DraftCase`, the tuner from its options and trials; the rules
(`agent.judge._grounding.GROUNDING`) read only this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The limit kinds a rationale may speak of only when the user stated them.
LIMIT_KINDS = ("params", "model_size", "memory", "device")
# ProfileData.read keys (tools.task_text) and the kind each states.
_READ_KINDS = {"max_params": "params", "max_model_bytes": "model_size", "gpu_memory_bytes": "memory",
               "ram_bytes": "memory", "device": "device"}
# The start of each sentence of ProfileData.limits (agent.limits.backbones_within) and the kind it states.
_LIMIT_SENTENCES = {"parameters": "params", "model size": "model_size", "gpu memory": "memory", "memory": "memory"}


@dataclass(frozen=True)
class Stated:
    """What the user stated: the time budgets a rationale may cite, the limit kinds, the device.

    Attributes:
        budgets: seconds; the budget the user gave (and for tuning, what is left of it). Empty:
            no budget was stated, so a rationale may not mention one.
        limits: the kinds of limit stated (`LIMIT_KINDS`).
        device: the device the user named ("cpu", "cuda:..."), or None when it was assumed.
    """

    budgets: tuple[float, ...] = ()
    limits: frozenset[str] = frozenset()
    device: str | None = None


def stated_of(profile: Mapping[str, Any], budgets: Sequence[float | None] | None = None) -> Stated:
    """What a task profile (agent.state.ProfileData) says the user stated.

    Args:
        profile: the profile; `budget_seconds`, `read`, `limits`, `device` and `assumed` are read
            where present (a key it lacks states nothing).
        budgets: the budgets in force instead of the profile's (the tuner's: total and left).
    """
    given = [profile.get("budget_seconds")] if budgets is None else list(budgets)
    read = profile.get("read") or {}
    kinds = {_READ_KINDS[k] for k in read if k in _READ_KINDS}
    for sentence in profile.get("limits") or []:
        kinds |= {kind for start, kind in _LIMIT_SENTENCES.items() if str(sentence).lower().startswith(start)}
    assumed = any(str(a).startswith("device=") for a in profile.get("assumed") or [])
    device = profile.get("device") if ("device" in read or ("device" in profile and not assumed)) else None
    if device:
        kinds.add("device")
    return Stated(budgets=tuple(float(b) for b in given if b), limits=frozenset(kinds), device=device)


@dataclass(frozen=True)
class Facts:
    """One rationale's evidence.

    Attributes:
        known: the ids it may name.
        shown: every accuracy the prompt showed (a quoted one must be among them).
        runs: by id, what the prompt showed of it: `accuracy` or `test_accuracy`, `low`/`high`,
            `seconds`, `config` (a dict of TrainConfig fields), and for a trial `best_epoch` and
            `analysis` (its text), for an option `gain`.
        candidates: the runs the choice was made among (candidates, or tuning options).
        about: the choice the rationale is about (a claim naming no id is held to it).
        prefixes: the id letters, the choices' first ("cr", or "ot" when tuning).
        decimals: how many decimals the prompt showed accuracies with.
        trials: the trial ids, in order (tuning only).
        kept: the trial the prompt marked as kept (`agent.tune.pick`: within one standard error of
            the highest validation accuracy, the one predicted best), which may be called best too.
        stated: what the user stated; None when it is not known (the limit rule does not run).
        image_size: the task's image size the prompt's data line showed ("64px"), which a rationale
            may say of the images ("50k images at 64 px") without claiming it for a run's input size.
    """

    known: frozenset[str]
    shown: tuple[float, ...]
    runs: Mapping[str, Mapping[str, Any]]
    candidates: Sequence[Mapping[str, Any]] = ()
    about: tuple[str, ...] = ()
    prefixes: str = "cr"
    decimals: int = 2
    trials: tuple[str, ...] = field(default=())
    kept: str | None = None
    stated: Stated | None = None
    image_size: int | None = None

    def accuracy(self, ident: str) -> float | None:
        """The accuracy the prompt showed for an id (a candidate's or option's predicted one, a run's result)."""
        run = self.runs.get(ident) or {}
        value = run.get("accuracy", run.get("test_accuracy"))
        return None if value is None else float(value)

    def config(self, ident: str) -> Mapping[str, Any] | None:
        """The configuration of an id, where the prompt showed one."""
        return (self.runs.get(ident) or {}).get("config")
