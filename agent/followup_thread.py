"""What every follow-up answer shares: the answer, the thread's state, predictions and checks.

`FollowupAnswer` is what an answer returns; `ThreadView` reads the parts of a thread's state
(`agent.state.State` as a plain dict) that answers use. `predict` asks the meta-model for a
configuration on the thread's task the way the recommendation did, and `recheck` runs the
judge's deterministic checks (`agent.judge.run_checks`) on a changed configuration, so a
what-if is held to the same rules as the recommendation. agent.followup dispatches a question
to the answers in agent.followup_answers and agent.followup_whatif, which build on these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from agent import judge as J
from agent.formatting import accuracy_text, markdown_table, prediction_values
from agent.profiling import open_fields
from knowledge.schema import MetaFeatures, TrainConfig


@dataclass
class FollowupAnswer:
    """A plain-language answer, with the data behind it.

    Attributes:
        intent: the intent answered (one of INTENTS, or "missing" when the thread lacks the data).
        text: the answer in Markdown.
        columns: column names of `rows` (a small table), if any.
        rows: table rows, each a list of cells in `columns` order.
        plot: path of a picture that belongs to the answer (a SHAP plot), if any.
        config: the configuration a what-if is about (JSON), which the user may adopt.
        prediction: the meta-model's prediction for `config`.
        checks: the judge's deterministic checks on `config`: [{name, ok, message}].
        missing: the data the thread would need to answer fully.
        understood_as: how the question was read (shown when an LLM mapped it).
        legend: what each column of the table means (shown under it).
    """

    intent: str
    text: str
    columns: list[str] | None = None
    rows: list[list[Any]] | None = None
    plot: str | None = None
    config: dict[str, Any] | None = None
    prediction: dict[str, float] | None = None
    checks: list[dict[str, Any]] | None = None
    missing: list[str] = field(default_factory=list)
    understood_as: str | None = None
    legend: str | None = None

    def markdown(self) -> str:
        """The text with its table, ready for a chat window or a terminal."""
        parts = [self.text.strip()]
        if self.columns and self.rows:
            parts.append(markdown_table(self.columns, self.rows))
            if self.legend:
                parts.append(self.legend)
        return "\n\n".join(p for p in parts if p)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- formatting
def device_words(device: str) -> str:
    """A device string ("cuda:NVIDIA H200", "cpu:8 cores", "cuda") for a sentence: "a GPU (NVIDIA H200)"."""
    kind, _, rest = str(device).partition(":")
    if kind.lower() in ("cuda", "gpu"):
        return f"a GPU ({rest.strip()})" if rest.strip() and not rest.strip().isdigit() else "a GPU"
    return f"the CPU ({rest.strip()})" if rest.strip() else "the CPU"


def acc(p: dict[str, float]) -> str:
    """A prediction's accuracy with its interval, as answers write it."""
    return accuracy_text(p["accuracy"], p["low"], p["high"])


# --------------------------------------------------------------------------- the state
class ThreadView:
    """Typed access to the parts of a thread's state that answers use."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state or {}
        self.rec: dict[str, Any] | None = self.state.get("recommendation")
        self.offer: dict[str, Any] | None = self.state.get("offer")
        self.profile: dict[str, Any] | None = self.state.get("profile")

    def config(self) -> tuple[TrainConfig, str] | None:
        """The configuration under discussion: the offer (it reflects edits), else the recommendation."""
        if self.offer and self.offer.get("config"):
            edited = self.rec is not None and self.offer.get("key") != TrainConfig.model_validate(self.rec["config"]).key()
            return TrainConfig.model_validate(self.offer["config"]), ("the edited configuration" if edited
                                                                      else "the recommended configuration")
        if self.rec:
            return TrainConfig.model_validate(self.rec["config"]), "the recommended configuration"
        return None

    def meta(self) -> MetaFeatures | None:
        if not self.profile:
            return None
        return MetaFeatures.model_validate(self.profile["meta"])

    @property
    def device(self) -> str:
        return str((self.profile or {}).get("device") or "cpu")

    @property
    def open_fields(self) -> list[str]:
        """The fields a text-only profile assumed: its predictions are stated over their plausible values."""
        return open_fields(self.profile or {})


def no_recommendation(intent: str) -> FollowupAnswer:
    """The answer when the thread has no recommendation yet."""
    return FollowupAnswer(
        intent="missing",
        text=("There is no recommendation in this conversation yet, so there is nothing to explain or vary. "
              "Describe your task first (modality, classes, number of images, time budget) or give a dataset."),
        missing=["a recommendation (describe the task first)"],
        understood_as=intent,
    )


def no_metamodel(intent: str) -> FollowupAnswer:
    """The answer when a question needs the meta-model and none is loaded."""
    return FollowupAnswer(
        intent="missing",
        text="This needs the meta-model's predictions, and no meta-model is loaded here, so I cannot answer it "
             "without guessing.",
        missing=["the meta-model"],
        understood_as=intent,
    )


def predict(metamodel: Any, meta: MetaFeatures, configs: Sequence[TrainConfig], device: str,
             assumed: Sequence[str]) -> list[dict[str, Any]]:
    """What the meta-model states for each config on the thread's task (`MetaModel.stated`, the path
    the recommendation and its candidates take: a text-only profile's `assumed` fields averaged over)."""
    preds = metamodel.stated(meta, list(configs), device=device, open_fields=list(assumed))
    out: list[dict[str, Any]] = []
    for p in preds:
        pred: dict[str, Any] = prediction_values(p)
        if getattr(p, "device_note", None):  # no run from this device: the time is extrapolated
            pred["device_note"] = p.device_note
        out.append(pred)
    return out


# ------------------------------------------------------------------------------ checks
def recheck(
    thread_state: dict[str, Any],
    config: TrainConfig,
    prediction: dict[str, float],
    *,
    weights_available: Callable[[str], bool],
    budget_seconds: float | None = None,
    accuracy_tolerance: float = 0.05,
    max_accuracy_gap: float = 0.05,
) -> list[dict[str, Any]]:
    """The judge's deterministic checks on a what-if configuration.

    The what-if joins the thread's candidates as "w1" and is checked as a draft that starts
    from it, so the rules (search space, constraints, weights, competitive with the best
    candidate, time budget) are exactly the judge's.
    """
    profile = dict(thread_state.get("profile") or {})
    if budget_seconds is not None:
        profile["budget_seconds"] = budget_seconds
    candidates = list(thread_state.get("candidates") or [])
    mine = {"id": "w1", "config": config.model_dump(mode="json"), **prediction}
    candidates = [*candidates, mine]
    draft = J.Draft(candidate="w1", backbone=config.backbone, mode=config.mode, learning_rate=config.learning_rate,
                    batch_size=config.batch_size, epochs=config.epochs, expected_accuracy=prediction["accuracy"],
                    rationale="what-if", cite=["w1"])
    checks = J.run_checks(
        draft=draft, draft_error=None, candidates=candidates, evidence_aliases=[], config=config, config_error=None,
        prediction=prediction, profile=profile, weights_available=weights_available,
        accuracy_tolerance=accuracy_tolerance, max_accuracy_gap=max_accuracy_gap,
    )
    # Not `objective`: a what-if is the user's own question past the objective they first stated.
    return [c for c in J.checks_as_json(checks)
            if c["name"] not in ("schema", "citations", "grounded", "specific", "metric", "objective")]


def checks_text(checks: list[dict[str, Any]]) -> str:
    """The judge's checks in a sentence: all passed, or each failure with its message."""
    failed = [c for c in checks if not c["ok"]]
    names = ", ".join(c["name"].replace("_", " ") for c in checks)
    if not failed:
        return f"It passes the judge's checks ({names})."
    return "The judge's checks would refuse it: " + " ".join(f"{c['name'].replace('_', ' ')}: {c['message']}" for c in failed)
