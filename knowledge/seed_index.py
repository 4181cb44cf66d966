"""The seed's Chroma index, built once (at setup) and copied into each new knowledge base.

Indexing the ~2,000 seed records takes about a minute on 2 cores: without this, every new
knowledge base (the first `metallmix recommend` after an install, a fresh `--kb-dir`) paid it
before its first answer. `build_seed_index` embeds the seed once into
`cache_root()/seed-index/<key>/chroma`; `open_default` copies that folder into a knowledge base
it has just filled from the same seed.

The key hashes the seed files' bytes (the gzip shards `records-*.jsonl.gz`, whose bytes depend on
the records alone, and a plain records file if one is there), the embedder's code and the Chroma
version, so a changed seed (new runs, or new contents of the same runs), embedder or on-disk
format finds no prebuilt index (the new knowledge base then indexes as before) and is never
handed a stale one; a knowledge base whose records differ from the seed's (even by one appended
run) keeps indexing its own. A prebuilt index is complete only with
its `manifest.json` (holding the records file's sha256), written last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

from knowledge import cache_root

MANIFEST = "manifest.json"
SEED_DIR = Path(__file__).parent / "seed"  # knowledge.store.SEED_DIR, without importing the store


def seed_key(seed_dir: str | Path | None = None) -> str:
    """A hash of the seed's files (names and bytes), the embedder's code and chromadb's version.

    The embedder is keyed by its module's bytes rather than by importing it (Chroma's import
    alone takes seconds, and `make setup` asks this on every run).
    """
    folder = Path(seed_dir) if seed_dir is not None else SEED_DIR
    h = hashlib.sha256(f"chromadb {version('chromadb')}|".encode())
    h.update((Path(__file__).with_name("embedding.py")).read_bytes())
    # Every file of the seed folder (a superset of `knowledge.store.seed_files`, whose import
    # pulls in pydantic): any change there gives a new key.
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        h.update(path.name.encode() + b"\n")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def index_root() -> Path:
    """`knowledge.cache_root()`/seed-index: one folder per seed key."""
    return cache_root() / "seed-index"


def prebuilt(seed_dir: str | Path | None = None, key: str | None = None) -> Path | None:
    """The complete prebuilt index folder (holding `chroma/`) for this seed, or None."""
    folder = index_root() / (key or seed_key(seed_dir))
    return folder if (folder / MANIFEST).is_file() and (folder / "chroma").is_dir() else None


def build_seed_index(seed_dir: str | Path | None = None) -> tuple[Path, bool]:
    """Embed the seed into a prebuilt index unless one for this seed exists.

    Returns:
        The prebuilt folder and whether it was built now (False: it was there already).
    """
    from chromadb.api.client import SharedSystemClient

    from knowledge.store import open_default

    key = seed_key(seed_dir)
    done = prebuilt(key=key)
    if done is not None:
        return done, False
    root = index_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{key}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    # A knowledge base of exactly the seed, indexed the way `open_default` would index it
    # (chroma_url="" forces the embedded index even when $METALLMIX_CHROMA names a server).
    kb = open_default(tmp, seed_dir=seed_dir, chroma_url="")
    counts = kb.sync_index()
    records_file = kb.path  # the plain records.jsonl open_default wrote from the seed's shards
    del kb
    SharedSystemClient.clear_system_cache()  # close the client: the folder is complete on disk
    manifest = {"key": key, "records": counts["total"], "records_sha256": _sha256(records_file)}
    (tmp / MANIFEST).write_text(json.dumps(manifest))
    final = root / key
    try:
        os.replace(tmp, final)
    except OSError:  # another process finished the same build first
        shutil.rmtree(tmp, ignore_errors=True)
    for old in root.iterdir():  # only the current seed's index is worth its disk space
        if old.name != key and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return final, True


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install_seed_index(kb: Any, seed_dir: str | Path | None = None) -> bool:
    """Copy the prebuilt index of this seed into `kb.root/chroma` when one exists, the knowledge
    base (`knowledge.store.KnowledgeBase`, default embedder) has no index yet, no Chroma server
    holds it, and its records file is exactly the seed's.

    Returns:
        Whether it copied (False: the knowledge base indexes on its first search, as before).
    """
    target = Path(kb.root) / "chroma"
    if kb.chroma_url or target.exists() or not kb.path.is_file():
        return False
    source = prebuilt(seed_dir)
    if source is None:
        return False
    try:
        manifest = json.loads((source / MANIFEST).read_text())
        if manifest.get("records_sha256") != _sha256(kb.path):
            return False
    except (OSError, ValueError):
        return False
    tmp = target.with_name(f".chroma.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(source / "chroma", tmp)
        os.replace(tmp, target)
    except OSError:  # a copy that failed or lost a race costs only the indexing it would have saved
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    return True


__all__ = ["build_seed_index", "index_root", "install_seed_index", "prebuilt", "seed_key"]
