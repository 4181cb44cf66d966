"""Run settings of the graph (LangGraph's `context_schema`): limits, sizes, where things go.

Passed per run: `graph.invoke(..., context=Context(max_judge_retries=1))`, or as a dict.
Context is not checkpointed, so a resumed run takes the context it is resumed with (the
defaults when none is given).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(kw_only=True)
class Context:
    """How one run of the graph behaves.

    Attributes:
        max_judge_retries: times the judge may send a draft back to reason; after that many
            failed retries the meta-model's top candidate is recommended as a labelled fallback,
            its rationale the contrasts computed in code (agent.facts). 0 by default: with the
            embedded 1.5B model a second draft passed 1 of 12 times in bench.latency's and the
            task probes' runs (2026-12-05) and doubled the wait of every rejected answer; a larger
            model (Ollama) may be given retries.
        k_retrieve: similar past runs retrieved from the knowledge base.
        k_prompt: of those, how many are shown to the LLM, best test accuracy first (prompt
            tokens cost latency).
        n_candidates: candidate configurations asked from the meta-model.
        min_judge_score: each of the LLM judge's three scores (1-5) must reach this for a
            draft to pass.
        llm_judge: False skips the LLM-as-judge call (deterministic checks only).
        accuracy_tolerance: the draft's expected accuracy may lie this far outside the
            meta-model's interval for its config.
        max_accuracy_gap: a draft may trade at most this much predicted accuracy against the
            best candidate (e.g. for speed).
        allowed_data_dirs: datasets must lie under one of these folders; None allows any path
            (the CLI), a server or the chat app should set it.
        plot_dir: where SHAP plots (PNG) are written; None writes none (saves ~0.1 s).
        runs_dir: run folders of training jobs; None means tools.jobs.runs_dir().
        seed: seed of an approved training run.
        task_chars: the task text is cut to this many characters in prompts.
    """

    max_judge_retries: int = 0
    k_retrieve: int = 12
    k_prompt: int = 3
    n_candidates: int = 3
    min_judge_score: float = 3.0
    llm_judge: bool = True
    accuracy_tolerance: float = 0.05
    max_accuracy_gap: float = 0.05
    allowed_data_dirs: tuple[str, ...] | None = None
    plot_dir: str | None = None
    runs_dir: str | None = None
    seed: int = 0
    task_chars: int = 300

    def __post_init__(self) -> None:
        for name, low in (("max_judge_retries", 0), ("k_retrieve", 0), ("k_prompt", 0), ("n_candidates", 1),
                          ("seed", 0), ("task_chars", 20)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, but got {value!r}.")
        if not 1 <= self.min_judge_score <= 5:
            raise ValueError(f"min_judge_score must satisfy 1 <= min_judge_score <= 5, but got {self.min_judge_score!r}.")
        for name in ("accuracy_tolerance", "max_accuracy_gap"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must satisfy 0 <= {name} <= 1, but got {value!r}.")
        if self.allowed_data_dirs is not None:
            self.allowed_data_dirs = tuple(str(Path(d).expanduser().resolve()) for d in self.allowed_data_dirs)

    def allows(self, path: str | Path) -> bool:
        """Whether a dataset path lies under an allowed folder (always, when none are set).

        `..` and symlinks are resolved first; for an image folder, every symlink inside it
        must point into an allowed folder too (a class folder linked to /home/... is an escape).
        """
        if self.allowed_data_dirs is None:
            return True

        def inside(p: Path) -> bool:
            resolved = p.expanduser().resolve()
            return any(resolved.is_relative_to(d) for d in self.allowed_data_dirs or ())

        root = Path(path)
        if not inside(root):
            return False
        if root.resolve().is_dir():
            for folder, dirs, files in os.walk(root.resolve()):  # links are not followed, only checked
                for name in (*dirs, *files):
                    entry = Path(folder) / name
                    if entry.is_symlink() and not inside(entry):
                        return False
        return True


__all__ = ["Context"]
