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


class Limits(TypedDict, total=False):
    """What the user allows (a request's `constraints`); each key overrides what the task text says.

    Keys:
        budget_minutes: training time budget in minutes.
        device: "cpu" or "cuda" ("gpu"), or as records write it: "cpu:8 cores", "cuda:NVIDIA H200"
            (the time model reads the core count and the GPU model).
        backbones: allowed backbones (names from knowledge.space.BACKBONES).
        modes: allowed modes ("frozen", "finetune", "scratch").
        max_params: the most parameters the backbone may have.
        max_model_mb: the largest model file (float32 weights) in MB.
        max_memory_gb: the most memory a run may need, in GB (RAM on a CPU, GPU memory on CUDA).

    Not to be confused with tools.metamodel.Constraints, the filter the meta-model's candidates
    pass, which the explain node builds from the profile these limits shaped.
    """

    budget_minutes: float | None
    device: str | None
    backbones: list[str] | None
    modes: list[str] | None
    max_params: float | None
    max_model_mb: float | None
    max_memory_gb: float | None


# ------------------------------------------------------------------ what the nodes write
# JSON shapes of the state's values (the typed objects live elsewhere: MetaFeatures and
# TrainConfig in knowledge.schema, Recommendation in agent.recommendation).
class ProfileData(TypedDict):
    """The task profile (profile node).

    Keys:
        meta: MetaFeatures as a dict.
        source: "dataset" (computed from the data) or "text" (read from the task text).
        dataset: the dataset path, or None.
        dataset_name: the dataset's name, or None for a text-only task.
        assumed: fields the text did not say, as "field=value used".
        notes: what the profile noticed (a text that contradicts the data, ...).
        budget_seconds: the time budget, or None.
        budget_words: the words it came from ("budget_minutes" when the request set it), or None.
        device: the device times are predicted for (canonical form, tools.metamodel.parse_device).
        backbones / modes: the allowed ones, or None for all (backbones already within the
            size limits).
        read: each field read from the task text, with the words it came from.
        limits: one sentence per stated limit: what it is, its words, what it left out.
        max_memory_bytes: the memory limit that applies on the device (agent.limits.memory_limit).
        scope: what the text asks for (tools.scope kinds), or "dataset" for a dataset without words.
        goals: the objective, worries and comparison the text states (agent.goals.Goals.as_json).
        task_text: the task text as the LLM sees it: an instruction to the assistant inside it blanked out.
    """

    meta: dict[str, Any]
    source: str
    dataset: str | None
    dataset_name: str | None
    assumed: list[str]
    notes: list[str]
    budget_seconds: float | None
    budget_words: str | None
    device: str
    backbones: list[str] | None
    modes: list[str] | None
    read: dict[str, str]
    limits: list[str]
    max_memory_bytes: float | None
    scope: str
    goals: dict[str, Any]
    task_text: str


class PastRunData(TypedDict):
    """A retrieved past run (retrieve node): `alias` is the id the LLM sees ("r1", ...)."""

    alias: str
    id: str
    dataset: str
    config: dict[str, Any]
    weights: str
    status: str
    test_accuracy: float | None
    val_accuracy: float | None
    seconds: float
    distance: float
    near: NotRequired[bool]
    """Among the plain k nearest runs, or the nearest dataset's best run (what "similar" meant before
    diversity): the optimism warning compares against these. Missing in older threads: all were near."""


class CandidateData(TypedDict):
    """One of the meta-model's ranked candidates (explain node): `id` is "c1", "c2", ...; the
    accuracy with its interval (`low`, `high`) and the predicted `seconds` on the user's device."""

    id: str
    config: dict[str, Any]
    accuracy: float
    low: float
    high: float
    seconds: float
    origin: str
    support: int
    over_budget: bool
    spread: float  # the dataset-bootstrap models' standard deviation (tools.metamodel.BAGS)
    # a config a past run used as is: {"id", "dataset", "test_accuracy"} of that run (MetaModel.measured_run), or None
    measured: dict[str, Any] | None


class CheckData(TypedDict):
    """One deterministic check of a draft (agent.judge.Check as a dict)."""

    name: str
    ok: bool
    message: str


class VerdictData(TypedDict):
    """The judge's verdict on one draft (judge node).

    Keys:
        passed: whether the draft goes to respond.
        attempt: which draft (1, 2, ...).
        checks: the deterministic checks.
        scores: the LLM judge's answer, or None when it was not asked or failed.
        critique: what reason is asked to fix (or the judge's remark on a passed draft).
        judged_by: "checks+llm" or "checks".
        judge_error: why the LLM judge gave no answer, or None.
        prediction: the meta-model's prediction for the drafted config, or None.
        assumed: the profile's assumed fields.
        draft_key: the draft as compact JSON (a repeated draft is not judged twice).
        repeats: the attempt this draft repeats, or None.
        overruled: an LLM-judge objection the checks proved false, or None.
        trimmed: what was cut from the end of the rationale the grounding check refused, and why, or None.
        min_score: what each LLM-judge score had to reach (Context.min_judge_score).
    """

    passed: bool
    attempt: int
    checks: list[CheckData]
    scores: dict[str, Any] | None
    critique: str | None
    judged_by: str
    judge_error: str | None
    prediction: dict[str, Any] | None
    assumed: list[str]
    draft_key: str | None
    repeats: int | None
    overruled: str | None
    trimmed: NotRequired[str | None]
    min_score: NotRequired[float]


class _OfferCore(TypedDict):
    config: dict[str, Any]
    key: str
    dataset: str | None
    prediction: dict[str, Any]
    warnings: list[str]
    error: str | None


class OfferData(_OfferCore, total=False):
    """The configuration offered for approval (respond and approve nodes).

    Keys:
        config: the TrainConfig as a dict; key: its run key (what an approval must match).
        dataset: where it would train, or None until the user names one.
        prediction: accuracy, low, high, seconds (and device_note when extrapolated).
        warnings: what the user should know before approving.
        error: why the last answer to the offer was refused, or None.
        note: set on an edited offer.
        said: the words the user typed as the last answer (the chat shows them), or None.
    """

    note: str
    said: str | None


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
    constraints: NotRequired[Limits]


class State(InputState, total=False):
    """Everything the nodes produce, in the order they produce it.

    Attributes:
        profile: (profile) the task profile (ProfileData).
        evidence: (retrieve) similar past runs shown to people and the LLM: near the task and unlike
            each other (tools.evidence, MMR), the nearest dataset's runs first, best first (PastRunData).
        neighbours: (retrieve) ids of the plain k nearest runs: the meta-model's retrieved configs
            (absent in older threads, where `evidence` was the k nearest).
        candidates: (explain) the meta-model's ranked candidates (CandidateData).
        explanation: (explain) SHAP of the top candidate: `text` (for the LLM), `base_value`,
            `contributions` [[feature, value, shap], ...].
        draft: (reason) the LLM's latest answer, parsed (None when the call failed).
        draft_text: (reason) the LLM's answer as it wrote it (the judge's prompt repeats it, so
            llama.cpp reuses its cached tokens), or None when it was tidied or unusable.
        draft_error: (reason) why the latest LLM call gave no usable answer, or None.
        attempts: (reason) how many times reason has run in this thread.
        critique: (judge) what the judge asked reason to fix, or None.
        verdict: (judge) the latest verdict (VerdictData).
        verdicts: (judge) every verdict of this thread, oldest first.
        fallback: (judge) set when retries ran out: {`reason`}; respond then recommends the
            meta-model's top candidate and labels it.
        recommendation: (respond) the Recommendation as JSON (see agent.recommend).
        offer: (respond, approve) the configuration offered for approval (OfferData).
        approval: (approve) set only by an explicit approval of the offered config:
            `config`, `key`, `dataset`.
        decision: (approve) "approved" or "rejected", with `reason` for a rejection.
        training: (train) `job_id`, `run_dir`, `status`, `record_id`, `test_accuracy`,
            `val_accuracy`, `seconds`, `error`.
        recorded: (record) `record_id` and `index` (the index sync counts) of the new run.
        timings: seconds spent per node (summed over re-runs).
        llm_seconds: seconds spent inside LLM calls per node (a part of `timings`).
    """

    profile: ProfileData
    evidence: list[PastRunData]
    neighbours: list[str]
    candidates: list[CandidateData]
    explanation: dict[str, Any]
    draft: dict[str, Any] | None
    draft_text: str | None
    draft_error: str | None
    attempts: int
    critique: str | None
    verdict: VerdictData
    verdicts: Annotated[list[VerdictData], append]
    fallback: dict[str, Any] | None
    recommendation: dict[str, Any]
    offer: OfferData
    approval: dict[str, Any] | None
    decision: dict[str, Any]
    training: dict[str, Any]
    recorded: dict[str, Any]
    timings: Annotated[dict[str, float], add_seconds]
    llm_seconds: Annotated[dict[str, float], add_seconds]


__all__ = [
    "CandidateData", "CheckData", "InputState", "Limits", "OfferData", "PastRunData", "ProfileData", "State",
    "VerdictData", "add_seconds", "append",
]
