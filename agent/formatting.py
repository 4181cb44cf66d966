"""Text shared by the prompts and the renderings: durations and the one-line task data.

A leaf module (it imports nothing of the project), so the nodes, the recommendation's
rendering and the tuner write these the same way without importing one another.
"""

from __future__ import annotations

from typing import Any


def duration_text(seconds: float) -> str:
    """A duration the way people read it: "45 s", "12 min", "1.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def data_text(profile: dict[str, Any]) -> str:
    """One line describing the task's data, for prompts and renderings."""
    m = profile["meta"]
    body = f" {m['body_part']}" if m.get("body_part") else ""
    colour = "RGB" if m["channels"] == 3 else "grey"
    return (f"{m['modality']}{body}, {m['n_classes']} classes, {m['n_instances']} images, {m['resolution']}px {colour}, "
            f"imbalance {m['imbalance_ratio']:.1f}")


__all__ = ["data_text", "duration_text"]
