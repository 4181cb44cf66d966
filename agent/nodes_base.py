"""What every node of the recommendation graph shares: its parts and the offer's numbers.

`NodeBase` holds the parts a request needs (chat models, knowledge base, meta-model, job
starter: agent.parts.Parts) and the per-process cache of dataset profiles; `_predict` states
the meta-model's numbers for one config and `_offer` wraps a config and its numbers into
what the approval shows. The explain, judge, respond and approve steps all use them, so they
live here rather than with any one step (agent.nodes puts the steps together).
"""

from __future__ import annotations

import math
from typing import Any

from agent.formatting import duration_text, prediction_values
from agent.parts import Parts
from agent.profiling import open_fields
from knowledge.schema import MetaFeatures, TrainConfig


class NodeBase:
    """The parts and shared helpers of the graph's nodes (the steps are its subclasses)."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.store = parts.kb
        self._profiles: dict[tuple[str, int, int], dict[str, Any]] = {}

    @property
    def metamodel(self) -> Any:
        return self.parts.get_metamodel()

    def weights_available(self, backbone: str) -> bool:
        return self.parts.has_weights(backbone)

    def _predict(self, profile: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
        """The meta-model's accuracy and time for `config` on the profiled task, with its notes."""
        meta = MetaFeatures.model_validate(profile["meta"])
        # the number stated for this config on this profile, as the candidates state theirs
        p = self.metamodel.stated(meta, [config], device=profile["device"], open_fields=open_fields(profile))[0]
        out: dict[str, Any] = prediction_values(p)
        note = getattr(p, "device_note", None)
        if note:  # no run from the user's device backs the time: the user is told (recommend.build_recommendation)
            out["device_note"] = note
        if getattr(p, "evidence_note", None):  # the task is far from every dataset in the knowledge base
            out["evidence_note"] = p.evidence_note
        return out

    def _offer(self, profile: dict[str, Any], config: TrainConfig, prediction: dict[str, float], *,
               warnings: list[str] | None = None, dataset: str | None = None) -> dict[str, Any]:
        """What the approval shows: the config, its key, the dataset, the prediction and warnings."""
        warnings = list(warnings or [])
        budget = profile.get("budget_seconds")
        if budget and prediction["seconds"] > budget and not any("budget" in w for w in warnings):
            warnings.append(f"predicted {duration_text(prediction['seconds'])} exceeds the budget of {duration_text(budget)}")
        return {
            "config": config.model_dump(mode="json"), "key": config.key(),
            "dataset": dataset or profile.get("dataset"), "prediction": prediction, "warnings": warnings,
            "error": None,
        }



def jsonable(value: Any) -> Any:
    """A SHAP feature value as JSON: numbers rounded (NaN and inf as None), anything else as text."""
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
