"""A landmark meta-feature: how well a cheap linear probe on pretrained features separates the classes.

    acc = probe_accuracy(ds)   # validation accuracy of a logistic regression on frozen Lite0 features

The other meta-features say how big and how balanced a dataset is, not how hard: two
datasets alike in size, classes and modality can differ by 30 points in what any model
reaches, and that per-dataset offset was most of the meta-model's held-out error (bench/
calibration.py). A landmarker (Pfahringer et al., "Meta-learning by landmarking various
learning algorithms", ICML 2000) measures it directly with a fast learner. Here: EfficientNet-
Lite0's ImageNet features at 64 px for at most PROBE_TRAIN training and PROBE_VAL validation
images (a seeded, stratified sample), and scikit-learn's LogisticRegression on them; a few
seconds on a 2-core CPU, cached per dataset fingerprint.

A task described only in words has no probe (None): the meta-model treats it as missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from knowledge import cache_root

PROBE_BACKBONE = "efficientnet_lite0"
PROBE_SIZE = 64
PROBE_TRAIN = 800
PROBE_VAL = 400
PROBE_SEED = 0
PROBE_VERSION = 1


def _sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most `n` indices, every class kept in its share (at least one image of each class)."""
    if len(labels) <= n:
        return np.arange(len(labels))
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        take = max(1, round(n * len(idx) / len(labels)))
        out.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(out))


def _cache_file(fingerprint: str) -> Path:
    return cache_root() / "probe" / f"v{PROBE_VERSION}_{fingerprint}.json"


def probe_accuracy(ds: object) -> float | None:
    """Validation accuracy of the linear probe on `ds` (a tools.datasets.ImageDataset), or None
    when the probe backbone's weights are not installed here or a split is too small for it."""
    from tools.weights import weights_available

    if not weights_available(PROBE_BACKBONE):
        return None
    fingerprint = getattr(ds, "fingerprint", None)
    path = _cache_file(fingerprint) if fingerprint else None
    if path is not None and path.exists():
        return json.loads(path.read_text())["accuracy"]
    acc = _measure(ds)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"accuracy": acc, "backbone": PROBE_BACKBONE, "size": PROBE_SIZE}))
        tmp.replace(path)
    return acc


def _features(net: object, images: np.ndarray) -> np.ndarray:
    """The backbone's features of `images`, as tools.train extracts frozen features on a CPU
    (the same resizing and normalisation, float32, batches of 256)."""
    import torch

    from tools.backbones import images_to_tensor, normalise

    mean = torch.tensor(net.mean).view(1, 3, 1, 1)  # type: ignore[attr-defined]
    std = torch.tensor(net.std).view(1, 3, 1, 1)  # type: ignore[attr-defined]
    x = images_to_tensor(images, PROBE_SIZE)
    with torch.inference_mode():
        parts = [net.features(normalise(x[i : i + 256], mean, std)) for i in range(0, len(x), 256)]  # type: ignore[attr-defined]
    return torch.cat(parts).numpy()


def _measure(ds: object) -> float | None:
    """The probe's validation accuracy; None when a split is too small to fit or score it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from tools.backbones import build_backbone

    rng = np.random.default_rng(PROBE_SEED)
    splits = ds.splits  # type: ignore[attr-defined]
    tr = _sample(splits["train"].labels, PROBE_TRAIN, rng)
    va = _sample(splits["val"].labels, PROBE_VAL, rng)
    y_tr, y_va = splits["train"].labels[tr], splits["val"].labels[va]
    if len(np.unique(y_tr)) < 2 or len(y_va) == 0:
        return None
    net = build_backbone(PROBE_BACKBONE, pretrained=True, input_size=PROBE_SIZE)
    net.features.eval()
    x_tr, x_va = _features(net, splits["train"].images[tr]), _features(net, splits["val"].images[va])
    scaler = StandardScaler().fit(x_tr)
    clf = LogisticRegression(C=0.1, max_iter=300).fit(scaler.transform(x_tr), y_tr)
    return round(float((clf.predict(scaler.transform(x_va)) == y_va).mean()), 4)
