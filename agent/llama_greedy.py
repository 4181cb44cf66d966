"""Greedy decoding under a JSON grammar, the grammar asked about one token instead of the vocabulary.

llama-cpp-python's sampler chain applies the grammar to every one of the vocabulary's tokens
(Qwen2.5: 151,936) before it picks one, at every generated token. llama.cpp's own front end
(`common_sampler_sample`) checks the unconstrained choice first and applies the grammar to the
whole vocabulary only when that choice breaks it. For greedy decoding (temperature 0, no
penalties) the result is the same token either way: the grammar only sets disallowed tokens to
-inf, so when the best token is allowed it is also the best allowed token, and ties go to the
lowest id in both. `llama_with_greedy_grammar` returns a `Llama` subclass that samples so in
exactly that case and leaves every other call (sampling at a temperature, penalties, no
grammar) to the library's own sampler chain. bench/latency.py `--baseline sampler` measures it;
tests/integration/test_llm_embedded.py checks that both give the same tokens.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

__all__ = ["GreedyGrammarSampler", "llama_with_greedy_grammar"]

_CLASS: list[type] = []


class GreedyGrammarSampler:
    """Greedy sampling with a grammar: the best token if the grammar allows it, else the best allowed one.

    Implements the one method `Llama.generate` calls on its sampler (`sample(ctx, idx)`), and
    accepts the chosen token into the grammar as the library's chain does.
    """

    def __init__(self, model: Any, grammar: Any) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._n_vocab = model.n_vocab()
        self._grammar = llama_cpp.llama_sampler_init_grammar(
            model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        if not self._grammar:
            raise ValueError("llama.cpp could not compile the grammar")
        self._one = (llama_cpp.llama_token_data * 1)()
        self._full = np.zeros(self._n_vocab, dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)],
                                                           align=True))
        self._full["id"] = np.arange(self._n_vocab, dtype=np.int32)
        self.full_applies = 0  # how often the grammar had to see the whole vocabulary
        self.samples = 0

    def _apply(self, data: Any, size: int) -> None:
        arr = self._lib.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
        self._lib.llama_sampler_apply(self._grammar, ctypes.byref(arr))

    def sample(self, ctx: Any, idx: int = -1) -> int:
        lib = self._lib
        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx.ctx, idx), shape=(self._n_vocab,))
        token = int(logits.argmax())
        one = self._one[0]
        one.id, one.logit, one.p = token, float(logits[token]), 0.0
        self._apply(self._one, 1)
        self.samples += 1
        if math.isinf(one.logit) and one.logit < 0:  # the grammar forbids it: ask about every token
            self.full_applies += 1
            full = self._full
            full["logit"] = logits
            full["p"] = 0.0
            self._apply(full.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)), self._n_vocab)
            token = int(full["logit"].argmax())
        lib.llama_sampler_accept(self._grammar, token)
        return token

    def close(self) -> None:
        if self._grammar:
            self._lib.llama_sampler_free(self._grammar)
            self._grammar = None

    def __del__(self) -> None:
        self.close()


def _greedy(temp: float, repeat_penalty: float, frequency_penalty: float, presence_penalty: float,
            logits_processor: Any, mirostat_mode: int) -> bool:
    return (temp == 0.0 and repeat_penalty == 1.0 and frequency_penalty == 0.0 and presence_penalty == 0.0
            and not logits_processor and mirostat_mode == 0)


def llama_with_greedy_grammar() -> type:
    """`llama_cpp.Llama` with `GreedyGrammarSampler` for greedy grammar-constrained calls (built once)."""
    if not _CLASS:
        from llama_cpp import Llama

        class GreedyGrammarLlama(Llama):  # type: ignore[misc]
            """A `Llama` whose greedy calls with a grammar ask the grammar about the chosen token first."""

            greedy_grammar = True  # False: the library's sampler chain for every call

            def _init_sampler(self, **kw: Any) -> Any:
                grammar = kw.get("grammar")
                if self.greedy_grammar and grammar is not None and _greedy(
                        kw.get("temp", 0.8), kw.get("repeat_penalty", 1.0), kw.get("frequency_penalty", 0.0),
                        kw.get("presence_penalty", 0.0), kw.get("logits_processor"), kw.get("mirostat_mode", 0)):
                    return GreedyGrammarSampler(self._model, grammar)
                return super()._init_sampler(**kw)

        _CLASS.append(GreedyGrammarLlama)
    return _CLASS[0]
