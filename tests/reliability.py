"""Shared parts of the reliability tests (tests/test_reliability_*.py): a real knowledge base
on a temporary folder, a real meta-model, and the counts that docs/RELIABILITY.md reports.

The knowledge base is the real `KnowledgeBase` (JSONL + Chroma) filled with a seeded sample
of the seed records; only its embedding function is a cheap deterministic hash of the words
(MiniLM would cost seconds per test on 2 cores, and retrieval quality is not under test
here). The meta-model is the real `MetaModel`, fitted once per process on the same sample.

`COUNTS` collects what the tests tried (cases, faults injected, records checked/lost);
tests/conftest.py prints it at the end of a run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

from knowledge.schema import ExperimentRecord
from knowledge.store import KnowledgeBase, read_seed

COUNTS: Counter[str] = Counter()
_COUNTS_LOCK = threading.Lock()


def count(name: str, n: int = 1) -> None:
    """Add `n` to a reported count (thread-safe: the load test counts from 8 threads)."""
    with _COUNTS_LOCK:
        COUNTS[name] += n


class HashEmbedder(EmbeddingFunction[Documents]):
    """Words hashed into 64 buckets, L2-normalised: deterministic, offline, microseconds."""

    DIM = 64

    def __init__(self) -> None:
        pass

    @staticmethod
    def name() -> str:
        return "metallmix-test-hash"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashEmbedder:
        return HashEmbedder()

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's protocol name
        out = []
        for text in input:
            v = np.zeros(self.DIM, dtype=np.float32)
            for word in re.findall(r"[a-z0-9_.-]+", text.lower()):
                v[int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % self.DIM] += 1.0
            v[0] += 1e-3  # never the zero vector (cosine distance of an empty text)
            out.append(v / np.linalg.norm(v))
        return out


@functools.cache
def seed_sample(n: int = 240) -> tuple[ExperimentRecord, ...]:
    """A seeded sample of the seed records, every dataset and status represented."""
    recs = read_seed()
    return tuple(random.Random(0).sample(recs, min(n, len(recs))))


def real_kb(root: Path, n: int = 240) -> KnowledgeBase:
    """The real store on `root`, holding `seed_sample(n)` and indexed with the hash embedder."""
    kb = KnowledgeBase(root, embedder=HashEmbedder())
    kb.append(list(seed_sample(n)))
    return kb


@functools.cache
def real_metamodel(n: int = 240) -> Any:
    """The real XGBoost meta-model fitted on `seed_sample(n)` (once per process, ~1 s)."""
    from tools.metamodel import MetaModel

    return MetaModel.fit(list(seed_sample(n)), seed=0, cross_validate=False)


def jsonl_ids(kb_root: Path) -> list[str]:
    """The record ids in a knowledge base's JSONL, checking that every line is whole JSON."""
    path = Path(kb_root) / "records.jsonl"
    if not path.exists():
        return []
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "the JSONL ends in a partial line"
    return [json.loads(line)["id"] for line in data.splitlines() if line.strip()]


__all__ = ["COUNTS", "HashEmbedder", "count", "jsonl_ids", "real_kb", "real_metamodel", "seed_sample"]
