"""Loading the prompt templates: one file per template in the top-level `prompts` package.

A leaf module (it imports nothing of agent/), so the nodes, the judge and the tuner read
the same templates without importing one another.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def prompt(name: str) -> str:
    """A prompt template from the `prompts` package (one file per template)."""
    return resources.files("prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")


__all__ = ["prompt"]
