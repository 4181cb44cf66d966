"""Which similar past runs to show: near the task, but not a dozen near-copies of one run.

The nearest runs of a knowledge base are often all of one dataset and one backbone, at
near-equal distances (the seed holds hundreds of frozen-feature heads per dataset that
differ only in learning rate). Shown as evidence, they say one thing twelve times. So the
runs shown are picked by maximal marginal relevance (langchain_core's
`maximal_marginal_relevance`) from a larger pool of the nearest: each next run is the one
most similar to the task and least similar to the runs already picked. Similarity between
two runs counts both their description embeddings and what a practitioner compares —
dataset, backbone, mode, input size and learning rate (to half a decade) — so two runs
differing only in a learning rate of 2.8e-5 vs 2.9e-5 count as near-copies. The best run
of the nearest dataset is always among them: it is the strongest evidence of what works
on a task like this one.

    picked = diverse_runs(kb, "chest x-ray, 2 classes, 5,000 images", k=12)
    [(record, distance, nearest_k), ...]

The meta-model keeps its own neighbours (the plain k nearest, `nearest`): they feed its
candidates and its calibration, and diversity is for people and for the prompt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from knowledge.schema import ExperimentRecord

# How many of the nearest runs MMR chooses from, per run shown (k=12 -> the 384 nearest: ~30 ms).
POOL_PER_RUN = 32
# MMR's trade-off: 1 = by relevance alone (the plain nearest), 0 = by diversity alone.
LAMBDA = 0.5
# The share of a run's similarity to another that its description embedding carries; the rest
# is the share of the five compared fields (dataset, backbone, mode, input size, lr) they share.
TEXT_WEIGHT = 0.3


@dataclass(frozen=True)
class Picked:
    """The runs to show, and the plain nearest (ids) the meta-model uses."""

    runs: list[tuple[ExperimentRecord, float]]
    nearest: list[str]
    best_of_nearest_dataset: str | None


def compared_fields(record: ExperimentRecord) -> tuple[str, ...]:
    """What makes two runs different to a practitioner: dataset, backbone, mode, input size, lr."""
    c = record.config
    lr = f"lr~1e{round(math.log10(c.learning_rate) * 2) / 2:g}" if c.learning_rate > 0 else "lr0"
    return (f"dataset={record.dataset.name}", f"backbone={c.backbone}", f"mode={c.mode}", f"size={c.input_size}", lr)


def _vectors(query: list[float], embeddings: list[list[float]], records: list[ExperimentRecord]
             ) -> tuple[np.ndarray, np.ndarray]:
    """The query and the runs in one space: [text part, compared-fields part].

    The query has no fields (its part is zero), so a run's cosine similarity to it is its
    text similarity times a constant: relevance keeps the search's order. Between two runs,
    the cosine is TEXT_WEIGHT x their text similarity + (1 - TEXT_WEIGHT) x the share of
    compared fields they have in common.
    """
    vocab: dict[str, int] = {}
    fields = [compared_fields(r) for r in records]
    for fs in fields:
        for f in fs:
            vocab.setdefault(f, len(vocab))
    text = np.asarray(embeddings, dtype=float)
    text /= np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    onehot = np.zeros((len(records), len(vocab)))
    for i, fs in enumerate(fields):
        onehot[i, [vocab[f] for f in fs]] = 1.0 / math.sqrt(len(fs))
    runs = np.hstack([math.sqrt(TEXT_WEIGHT) * text, math.sqrt(1 - TEXT_WEIGHT) * onehot])
    q = np.asarray(query, dtype=float)
    q = np.concatenate([q / max(float(np.linalg.norm(q)), 1e-12), np.zeros(len(vocab))])
    return q, runs


def _best_run(store: Any, dataset: str) -> ExperimentRecord | None:
    ok = [r for r in store.records() if r.dataset.name == dataset and r.outcome.status == "ok"
          and r.outcome.test_accuracy is not None]
    return max(ok, key=lambda r: (r.outcome.test_accuracy, -r.outcome.total_seconds), default=None)


def diverse_runs(store: Any, text: str, k: int, *, lambda_mult: float = LAMBDA) -> Picked:
    """k past runs near `text` and unlike each other (MMR), with the nearest dataset's best run.

    Args:
        store: a knowledge base with `search_vectors` (knowledge.store.KnowledgeBase).
        text: the retrieval query (the task described the way records describe themselves).
        k: how many runs to show.
        lambda_mult: MMR's trade-off between relevance (1) and diversity (0).

    Returns:
        the runs in MMR order (the nearest first) with their cosine distances, the ids of the
        plain k nearest, and the id of the nearest dataset's best run.
    """
    from langchain_core.vectorstores.utils import maximal_marginal_relevance

    if k <= 0:
        return Picked([], [], None)
    pool = store.search_vectors(text, k=max(k, POOL_PER_RUN * k))
    hits = list(pool.hits)
    if not hits:
        return Picked([], [], None)
    embeddings = list(pool.embeddings)
    nearest = [r.id for r, _ in hits[:k]]
    best = _best_run(store, hits[0][0].dataset.name)
    if best is not None and all(r.id != best.id for r, _ in hits):  # its distance, from the index itself
        extra = store.search_vectors(text, k=1, ids=[best.id], vector=pool.query)
        hits += extra.hits
        embeddings += extra.embeddings
    records = [r for r, _ in hits]
    query, runs = _vectors(pool.query, embeddings, records)
    # An array, not a list of rows: the function converts its input on each of its k steps.
    order = maximal_marginal_relevance(query, runs, lambda_mult=lambda_mult, k=min(k, len(hits)))  # type: ignore[arg-type]
    chosen = [hits[i] for i in order]
    if best is not None and all(r.id != best.id for r, _ in chosen):
        chosen = chosen[:-1] + [next(h for h in hits if h[0].id == best.id)] if len(chosen) >= k else \
            chosen + [next(h for h in hits if h[0].id == best.id)]
    return Picked(chosen, nearest, best.id if best is not None else None)


__all__ = ["LAMBDA", "POOL_PER_RUN", "Picked", "compared_fields", "diverse_runs"]
