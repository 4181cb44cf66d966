"""Helpers shared by the quality and scale benchmarks (bench/lodo.py, bench/scale.py).

- where the data, the seed records and the results live;
- what machine and commit a table comes from (every table in docs/BENCHMARKS.md says it);
- `PrecomputedEmbedder`: a Chroma embedding function that returns stored MiniLM vectors for
  texts embedded before and runs the real MiniLM on anything else, so a benchmark can build
  several temporary knowledge bases (or a 100k one) without re-embedding the same texts;
- `write_section`: replace one marked section of docs/BENCHMARKS.md, keeping the others.

Nothing here writes to the seed or to the user's knowledge base.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("METALLMIX_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"
DOCS = REPO / "docs" / "BENCHMARKS.md"


def cache_root() -> Path:
    """`knowledge.cache_root()`/bench: derived data, safe to delete."""
    from knowledge import cache_root as root

    return root() / "bench"


# ------------------------------------------------------------------------- provenance
def commit() -> str:
    """Short commit of this checkout, '+dirty' when tracked files under bench/, agent/, tools/, knowledge/ or
    prompts/ changed; not bench/results/, which the benchmarks themselves write (the LODO agent sessions)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "agent", "tools",
                                "knowledge", "bench", "prompts", ":(exclude)bench/results"], cwd=REPO, capture_output=True, text=True,
                               timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_line() -> str:
    """'<CPU>, N cores, M GiB, no GPU, Python x.y' for a table header."""
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f"GPU {torch.cuda.get_device_name(0)}"
    except Exception:  # torch missing or broken: the line is for people, not a check
        pass
    mem = memory_gib()
    return (f"{cpu_model()}, {os.cpu_count()} cores, {mem:g} GiB, {gpu}, Python {platform.python_version()}"
            if mem else f"{cpu_model()}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}")


def header(title: str, extra: str = "") -> str:
    """The provenance lines every table starts with."""
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    load = os.getloadavg()[0]
    lines = [f"Run {now} on {machine_line()}; commit {commit()}; load average at the end {load:.1f}."]
    if extra:
        lines.append(extra)
    return "\n".join(lines)


# --------------------------------------------------------------------------- tables
def table(rows: Sequence[Sequence[Any]], head: Sequence[str], align: str | None = None) -> str:
    """A markdown table; `align` is one character per column ('l' or 'r')."""
    align = align or "l" + "r" * (len(head) - 1)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    for row in rows:
        out.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return "\n".join(out)


def write_section(name: str, text: str, path: Path = DOCS) -> Path:
    """Replace the section between `<!-- name:start -->` and `<!-- name:end -->` (append it when missing)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.strip()}\n{end}"
    old = path.read_text() if path.exists() else _DOC_HEAD
    if start in old and end in old:
        new = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(path)
    return path


_DOC_HEAD = """# Benchmarks

Written by the benchmark scripts (`make bench`; `make bench-quick` prints a smaller run and
writes nothing here). Every number below comes from a run of this repository's code, on the
machine and at the commit named above each table.
"""


# ------------------------------------------------------------------------ embeddings
class PrecomputedEmbedder(EmbeddingFunction[Documents]):
    """A Chroma embedding function over stored vectors, with the real MiniLM as fallback.

    Chroma calls it with a list of texts; texts in `vectors` get their stored vector (the
    MiniLM vector of that exact text, or, in the scale benchmark, a documented stand-in),
    other texts (queries) are embedded by MiniLM now, so a search is timed end to end.
    """

    def __init__(self, vectors: dict[str, np.ndarray] | None = None, remember: bool = True) -> None:
        from knowledge.embedding import default_embedder

        self.vectors: dict[str, np.ndarray] = vectors if vectors is not None else {}
        self.fallback = default_embedder()
        self.remember = remember  # False: a query is embedded every time (timings stay honest)
        self.misses = 0

    @staticmethod
    def name() -> str:
        from knowledge.embedding import NAME

        return NAME  # the same space as the product's embedder, so a collection opens with either

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> PrecomputedEmbedder:
        return PrecomputedEmbedder()

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def __call__(self, input: Documents) -> list[np.ndarray]:  # type: ignore[override]  # noqa: A002
        missing = [t for t in dict.fromkeys(input) if t not in self.vectors]
        fresh: dict[str, np.ndarray] = {}
        if missing:
            self.misses += len(missing)
            fresh = {t: np.asarray(v, dtype=np.float32) for t, v in zip(missing, self.fallback(missing), strict=True)}
            if self.remember:
                self.vectors.update(fresh)
        return [fresh[t] if t in fresh else self.vectors[t] for t in input]



def seed_vectors(texts: Iterable[str]) -> dict[str, np.ndarray]:
    """MiniLM vectors of `texts`, cached on disk by text hash (computed once per machine)."""
    import hashlib

    from knowledge.embedding import default_embedder

    texts = list(dict.fromkeys(texts))
    key = hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()[:16]
    path = cache_root() / f"minilm-{key}.npy"
    if path.is_file():
        arr = np.load(path)
        if arr.shape[0] == len(texts):
            return dict(zip(sorted(texts), arr, strict=True))
    ordered = sorted(texts)
    arr = np.asarray(default_embedder()(ordered), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, arr)
    tmp.replace(path)
    return dict(zip(ordered, arr, strict=True))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in 0..100."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]
