"""The graph's state: what a request brings (`InputState`) and what the nodes add (`State`).

Every value is plain JSON (dicts, lists, strings, numbers), so a thread checkpoints to SQLite
and back without custom types, interrupt payloads are JSON, and the chat app or a LangGraph
server can show any field as it is. The typed objects (`TrainConfig`, `MetaFeatures`,
`Recommendation`) are rebuilt from these dicts where they are used.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, TypedDict


def add_seconds(left: dict[str, float] | None, right: dict[str, float] | None) -> dict[str, float]:
    """Reducer for timings: a node that runs twice (a judge retry) adds up its seconds."""
    out = dict(left or {})
    for name, seconds in (right or {}).items():
        out[name] = round(out.get(name, 0.0) + float(seconds), 6)
    return out


def append(left: list[Any] | None, right: list[Any] | None) -> list[Any]:
    """Reducer for histories: new items are appended."""
    return [*(left or []), *(right or [])]


class Constraints(TypedDict, total=False):
    """What the user allows; each key overrides what the task text says.

    Keys:
        budget_minutes: training time budget in minutes.
        device: "cpu" or "cuda" ("gpu"), or as records write it: "cpu:8 cores", "cuda:NVIDIA H200"
            (the time model reads the core count and the GPU model).
        backbones: allowed backbones (names from knowledge.space.BACKBONES).
        modes: allowed modes ("frozen", "finetune", "scratch").
    """

    budget_minutes: float | None
    device: str | None
    backbones: list[str] | None
    modes: list[str] | None


class InputState(TypedDict):
    """What one request brings.

    Attributes:
        task: free-text description of the task, e.g. "skin lesion dermoscopy, 8 classes,
            2,000 images, I have 15 minutes on a laptop CPU". May be empty when `dataset` is given.
        dataset: path of a dataset (.npz in MedMNIST layout or an image folder); when given,
            the meta-features are computed from the data instead of read from the text.
        constraints: explicit constraints; they override what the text says.
    """

    task: str
    dataset: NotRequired[str | None]
    constraints: NotRequired[Constraints]


class State(InputState, total=False):
    """Everything the nodes produce, in the order they produce it.

    Attributes:
        profile: (profile) the task profile: `meta` (MetaFeatures as a dict), `source`
            ("dataset" or "text"), `assumed` (fields the text did not say, with the value
            used), `notes`, `budget_seconds`, `device`, `backbones`, `modes`, `dataset_name`.
        evidence: (retrieve) similar past runs, nearest first: `alias` ("r1"...), `id` (the
            record id), `dataset`, `config`, `status`, `test_accuracy`, `seconds`, `distance`.
        candidates: (explain) the meta-model's ranked candidates: `id` ("c1"...), `config`,
            `accuracy`, `low`, `high`, `seconds`, `origin`, `support`, `over_budget`.
        explanation: (explain) SHAP of the top candidate: `text` (for the LLM), `base_value`,
            `contributions` [[feature, value, shap], ...].
        draft: (reason) the LLM's latest answer, parsed (None when the call failed).
        draft_text: (reason) the LLM's answer as it wrote it (the judge's prompt repeats it, so
            llama.cpp reuses its cached tokens), or None when it was tidied or unusable.
        draft_error: (reason) why the latest LLM call gave no usable answer, or None.
        attempts: (reason) how many times reason has run in this thread.
        critique: (judge) what the judge asked reason to fix, or None.
        verdict: (judge) the latest verdict: `passed`, `attempt`, `checks`
            [{name, ok, message}], `scores` {format, accuracy, completeness} or None,
            `critique`, `judged_by`.
        verdicts: (judge) every verdict of this thread, oldest first.
        fallback: (judge) set when retries ran out: {`reason`}; respond then recommends the
            meta-model's top candidate and labels it.
        recommendation: (respond) the Recommendation as JSON (see agent.recommend).
        offer: (respond, approve) the configuration offered for approval: `config`, `key`,
            `dataset`, `prediction`, `warnings`, `error`.
        approval: (approve) set only by an explicit approval of the offered config:
            `config`, `key`, `dataset`.
        decision: (approve) "approved" or "rejected", with `reason` for a rejection.
        training: (train) `job_id`, `run_dir`, `status`, `record_id`, `test_accuracy`,
            `val_accuracy`, `seconds`, `error`.
        recorded: (record) `record_id` and `index` (the index sync counts) of the new run.
        timings: seconds spent per node (summed over re-runs).
        llm_seconds: seconds spent inside LLM calls per node (a part of `timings`).
    """

    profile: dict[str, Any]
    evidence: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    explanation: dict[str, Any]
    draft: dict[str, Any] | None
    draft_text: str | None
    draft_error: str | None
    attempts: int
    critique: str | None
    verdict: dict[str, Any]
    verdicts: Annotated[list[dict[str, Any]], append]
    fallback: dict[str, Any] | None
    recommendation: dict[str, Any]
    offer: dict[str, Any]
    approval: dict[str, Any] | None
    decision: dict[str, Any]
    training: dict[str, Any]
    recorded: dict[str, Any]
    timings: Annotated[dict[str, float], add_seconds]
    llm_seconds: Annotated[dict[str, float], add_seconds]


__all__ = ["Constraints", "InputState", "State", "add_seconds", "append"]
