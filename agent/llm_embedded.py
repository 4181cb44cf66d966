"""The embedded chat model: a verified GGUF run in-process by llama.cpp, as a LangChain chat model.

``ChatEmbeddedLlamaCpp`` loads its ``llama_cpp.Llama`` lazily (``_load_llama``: once per
process, per file and context size, only a file ``ensure_gguf`` verified) and frees it at
exit (``_close_llamas``). ``with_structured_output(schema)`` hands the JSON schema to
llama.cpp as a grammar and parses the answer strictly (``_parse_json_answer``): a truncated
answer is an error, never patched up.

Construct it through ``agent.llm.get_chat_model()``, which verifies the weights first
(``agent.llm_weights``); every call picks its threads with ``agent.llm_threads``.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Iterator
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

from agent.llm_threads import _use_threads, other_busy_cpus
from agent.llm_weights import ModelWeightsError, verified_sha256

__all__ = ["ChatEmbeddedLlamaCpp", "LlamaBuildError", "check_llama_build"]


_LLAMAS: dict[tuple[str, int], tuple[Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()
_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}
_CALL_KEYS = ("temperature", "max_tokens", "seed", "top_p", "top_k", "repeat_penalty")


NO_AMX_FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


class LlamaBuildError(RuntimeError):
    """The installed llama-cpp-python build cannot run on this CPU."""


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())


def check_llama_build(system_info: str | None = None, cpu_flags: set[str] | None = None) -> None:
    """Refuse a llama.cpp build whose AMX kernels would run on this CPU, with the way out.

    A build for the machine (-march=native) on a Sapphire Rapids-class Xeon compiles llama.cpp's
    AMX kernels, and in a VM the first decode then segfaults in them (ggml-org/llama.cpp#20824;
    seen here on 2026-12-05): the process dies with no message. `make setup` builds without
    them (the Makefile's NO_AMX); this catches a build made some other way, before the crash.
    METALLMIX_ALLOW_AMX=1 skips the check (a machine where AMX works).

    Raises:
        LlamaBuildError: the build has the AMX kernels and the CPU has AMX.
    """
    if os.environ.get("METALLMIX_ALLOW_AMX") == "1":
        return
    if system_info is None:
        import llama_cpp

        system_info = llama_cpp.llama_print_system_info().decode(errors="replace")
    flags = _cpu_flags() if cpu_flags is None else cpu_flags
    if "AMX_INT8 = 1" in system_info and "amx_int8" in flags:
        raise LlamaBuildError(
            "the installed llama-cpp-python was built with llama.cpp's AMX kernels, which crash on this CPU "
            "(ggml-org/llama.cpp#20824). Rebuild it without them: "
            f'CFLAGS="{NO_AMX_FLAGS}" CXXFLAGS="{NO_AMX_FLAGS}" CMAKE_ARGS=-DLLAVA_BUILD=OFF '
            "pip install --force-reinstall --no-deps --no-cache-dir llama-cpp-python==0.3.36 "
            "(or `make setup` in a new .venv); or use Ollama (OLLAMA_HOST); "
            "or set METALLMIX_ALLOW_AMX=1 if AMX works on this machine."
        )


def _load_llama(path: str, n_ctx: int, n_threads: int | None) -> tuple[Any, threading.Lock]:
    """Load a GGUF once per process (per path and context size); return it with its lock.

    A ``Llama`` is not thread-safe, so every call holds the returned lock.

    Raises:
        ModelWeightsError: ``path`` was not verified by ``ensure_gguf`` in this process.
        LlamaBuildError: see `check_llama_build`.
    """
    if verified_sha256(path) is None:
        raise ModelWeightsError(
            f"refusing to load {path}: its sha256 was not verified; get the model through "
            "get_chat_model() or ensure_gguf()"
        )
    key = (path, n_ctx)
    with _LOAD_LOCK:
        if key not in _LLAMAS:
            check_llama_build()
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
