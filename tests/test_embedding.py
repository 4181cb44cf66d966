"""The MiniLM embedder: queries on ONNX Runtime give PyTorch's vectors; the export is cached,
checked, re-made when damaged, and PyTorch takes over when that path fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import knowledge.embedding as E

TEXTS = [
    "chest x-ray pneumonia binary classification, 2 classes, 5,856 images, 224px grey, imbalance 2.9.",
    "dermoscopy skin multiclass classification, 7 classes, 10,015 images, 64px RGB. best accuracy in 15 minutes",
    "x",
]


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return np.asarray(E.MiniLMEmbedder(onnx=False)(TEXTS), dtype=np.float32)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one export, made once for the module."""
    folder = tmp_path_factory.mktemp("onnx")
    E.MiniLMEmbedder(onnx_dir=folder)(["warm up"])
    return folder


def test_queries_on_onnx_runtime_give_pytorchs_vectors(onnx_dir: Path, torch_vectors: np.ndarray,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    emb = E.MiniLMEmbedder(onnx_dir=onnx_dir)
    monkeypatch.setattr(emb, "_embed_torch", _forbidden("PyTorch"))
    monkeypatch.setattr(emb, "_export", _forbidden("a second export"))  # the cached file is reused
    got = np.asarray(emb(TEXTS), dtype=np.float32)
    assert got.shape == (3, 384)
    np.testing.assert_allclose(got, torch_vectors, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert len(list(onnx_dir.glob("*.onnx"))) == 1 and len(list(onnx_dir.glob("*.json"))) == 1


def test_batches_stay_on_pytorch(onnx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emb = E.MiniLMEmbedder(onnx_dir=onnx_dir)
    monkeypatch.setattr(emb, "_run_onnx", _forbidden("ONNX Runtime"))
    assert len(emb(TEXTS * E.QUERY_TEXTS)) == 3 * E.QUERY_TEXTS


def test_a_damaged_export_is_made_again(onnx_dir: Path, torch_vectors: np.ndarray, tmp_path: Path) -> None:
    for f in onnx_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    model = next(tmp_path.glob("*.onnx"))
    model.write_bytes(b"not a model" * 100)
    got = np.asarray(E.MiniLMEmbedder(onnx_dir=tmp_path)(TEXTS), dtype=np.float32)
    np.testing.assert_allclose(got, torch_vectors, atol=1e-5)
    assert model.stat().st_size > 10_000_000  # re-exported in place


def test_pytorch_takes_over_when_onnx_fails(onnx_dir: Path, torch_vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    emb = E.MiniLMEmbedder(onnx_dir=onnx_dir)

    def no_onnx(*args: Any, **kwargs: Any) -> Any:
        raise ModuleNotFoundError("No module named 'onnx'")

    monkeypatch.setattr(emb, "_open_onnx", no_onnx)
    got = np.asarray(emb(TEXTS[:1]), dtype=np.float32)
    np.testing.assert_allclose(got, torch_vectors[:1], atol=1e-6)
    assert "queries are embedded with PyTorch" in caplog.text
    emb(TEXTS[:1])  # tried once, not on every query
    assert caplog.text.count("queries are embedded with PyTorch") == 1


def _forbidden(what: str) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{what} was used")

    return fail
