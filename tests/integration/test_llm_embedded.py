"""The real embedded default model: verified weights, schema-constrained JSON (slow tier)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent import llm

pytestmark = pytest.mark.integration

BACKBONES = ["resnet18", "efficientnet_lite0", "vit_tiny"]
SCHEMA = {
    "type": "object",
    "properties": {
        "backbone": {"type": "string", "enum": BACKBONES},
        "batch_size": {"type": "integer"},
        "reason": {"type": "string", "maxLength": 120},
    },
    "required": ["backbone", "batch_size", "reason"],
}


@pytest.fixture(scope="module")
def chat() -> llm.ChatEmbeddedLlamaCpp:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OLLAMA_HOST", raising=False)
        mp.delenv("METALLMIX_LLM", raising=False)
        model = llm.get_chat_model(max_tokens=160, seed=0)
    assert isinstance(model, llm.ChatEmbeddedLlamaCpp)
    return model


def test_default_weights_were_verified(chat: llm.ChatEmbeddedLlamaCpp) -> None:
    pinned = llm.EMBEDDED_MODELS[llm.DEFAULT_EMBEDDED_MODEL].sha256
    assert chat.model_name == llm.DEFAULT_EMBEDDED_MODEL
    assert llm.verified_sha256(chat.model_path) == pinned
    digest = hashlib.sha256()  # and independently: the file about to be loaded is the pinned one
    with Path(chat.model_path).open("rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    assert digest.hexdigest() == pinned


def test_structured_answer_is_valid_json_inside_the_enum(chat: llm.ChatEmbeddedLlamaCpp) -> None:
    question = (
        "Dataset: dermoscopy, 8 classes, 2000 images, 64px RGB. The meta-model predicts test accuracy "
        "efficientnet_lite0 (frozen) 0.74 in 45 s, resnet18 (from scratch) 0.62 in 900 s, vit_tiny 0.55 in 1200 s. "
        "Which backbone and batch size should I use?"
    )

    out = chat.with_structured_output(SCHEMA).invoke(question)

    assert isinstance(out, dict)
    assert out["backbone"] in BACKBONES
    assert isinstance(out["batch_size"], int) and isinstance(out["reason"], str)
    assert len(out["reason"]) <= 120


def test_plain_answer_reports_token_usage(chat: llm.ChatEmbeddedLlamaCpp) -> None:
    msg = chat.invoke("Name one CNN backbone for image classification, in one word.")

    assert isinstance(msg.content, str) and msg.content.strip()
    assert msg.usage_metadata is not None and msg.usage_metadata["input_tokens"] > 5
    assert msg.response_metadata["model_sha256"] == chat.model_sha256

    chunks = list(chat.stream("Say hello."))
    whole = sum(chunks[1:], chunks[0])  # chunks merge: content concatenates, usage adds up
    assert str(whole.content).strip()
    usage = whole.usage_metadata
    assert usage is not None and usage["output_tokens"] >= 1 and usage["input_tokens"] > 5


def test_greedy_grammar_sampler_gives_the_library_samplers_tokens(chat: llm.ChatEmbeddedLlamaCpp) -> None:
    """agent.llama_greedy asks the grammar about the chosen token only; the answers must not change."""
    from agent.judge import judge_schema

    llama, lock = llm._load_llama(chat.model_path, chat.n_ctx, chat.n_threads)
    question = (
        "Candidates: c1 efficientnet_lite0/frozen: 0.74, 45 s; c2 resnet18/scratch: 0.62, 15 min. "
        "Answer: c1 because it is more accurate than c2 (0.74 against 0.62) and faster. Is this answer right?"
    )
    answers = {}
    with lock:
        try:
            for fast in (True, False):
                llama.greedy_grammar = fast
                for name, schema in (("tool", SCHEMA), ("judge", judge_schema())):
                    llama.reset()  # each answer from a cold context, as the other path's
                    out = llama.create_chat_completion(
                        messages=[{"role": "user", "content": question}], temperature=0.0, max_tokens=80,
                        response_format={"type": "json_object", "schema": schema})
                    answers[fast, name] = out["choices"][0]["message"]["content"]
        finally:
            llama.greedy_grammar = True
    assert type(llama).__name__ == "GreedyGrammarLlama"
    for name in ("tool", "judge"):
        assert answers[True, name] == answers[False, name]
