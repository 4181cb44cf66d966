"""The knowledge base: experiment records, their JSONL store and Chroma index, embeddings."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$METALLMIX_CACHE, else ~/.cache/metallmix: derived files (features, fitted models,
    exported embedders, benchmark caches), safe to delete. Each user of it takes a subfolder."""
    root = os.environ.get("METALLMIX_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "metallmix"
