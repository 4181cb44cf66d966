"""Loading and profiling: every shared dataset, the three source kinds, and bad data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DATASETS
from tools.datasets import DatasetError, load_dataset, profile_dataset

# Counts, classes and modality as documented in shared/data/SOURCES.md.
EXPECTED = {
    "pneumoniamnist_merged.npz": (5856, 2, "x-ray", 1),
    "alzheimer_mri.npz": (6400, 4, "mri", 1),
    "brain_tumor_mri.npz": (6593, 4, "mri", 1),
    "busi_ultrasound.npz": (778, 3, "ultrasound", 1),
    "knee_oa_xray.npz": (6204, 5, "x-ray", 1),
    "skin_lesion_isic.npz": (2043, 8, "dermoscopy", 3),
    "blood_cells_pbc.npz": (2753, 8, "light microscopy", 3),
    "lung_histo_lc25000.npz": (2167, 3, "histopathology", 3),
    "retinamnist.npz": (1600, 5, "fundus photography", 3),
    "mednist.npz": (5978, 6, "ct / mri / x-ray (mixed)", 1),
    "mini_mias_mammo.npz": (322, 3, "mammography", 1),
    "lung_ct_iqothnccd.npz": (1055, 3, "ct", 1),
    "head_ct_hemorrhage.npz": (199, 2, "ct", 1),
}
NATIVE_SIDE = {"retinamnist.npz": 28}  # kept at its native resolution; the others are 64x64


@pytest.mark.parametrize("name", DATASETS)
def test_profile_every_shared_dataset(shared_data: Path, name: str) -> None:
    meta = profile_dataset(shared_data / name)
    n, k, modality, channels = EXPECTED[name]
    assert (meta.n_instances, meta.n_classes, meta.modality, meta.channels) == (n, k, modality, channels)
    assert meta.resolution == NATIVE_SIDE.get(name, 64)
    assert sum(meta.split_sizes.values()) == n
    assert meta.class_size_min <= meta.class_size_mean <= meta.class_size_max
    assert meta.imbalance_ratio == pytest.approx(meta.class_size_max / meta.class_size_min)
    assert 0 < meta.class_entropy <= 1
    assert meta.task_type == ("binary" if k == 2 else "multiclass")


def test_known_values_of_one_dataset(shared_data: Path) -> None:
    # alzheimer: 3200/2240/896/64 images per class (SOURCES.md)
    meta = profile_dataset(shared_data / "alzheimer_mri.npz")
    assert meta.imbalance_ratio == pytest.approx(3200 / 64)
    assert (meta.class_size_min, meta.class_size_max) == (64, 3200)
    p = np.array([3200, 2240, 896, 64]) / 6400
    assert meta.class_entropy == pytest.approx(-(p * np.log(p)).sum() / np.log(4), abs=1e-5)
    assert meta.body_part == "brain"


def test_modality_given_overrides_metadata(shared_data: Path) -> None:
    assert profile_dataset(shared_data / "busi_ultrasound.npz", modality="CT").modality == "ct"


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _good(n: int = 30, k: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % k
    return {"train_images": rng.integers(0, 255, (n, 16, 16), dtype=np.uint8), "train_labels": y.reshape(-1, 1)}


def test_npz_without_val_test_gets_carved_splits(tmp_path: Path) -> None:
    ds = load_dataset(_npz(tmp_path / "x.npz", **_good(60)))
    assert {s: len(ds.splits[s]) for s in ("train", "val", "test")} == {"train": 42, "val": 6, "test": 12}
    assert any("carved" in n for n in ds.notes)
    assert profile_dataset(ds).modality == "unknown"


def test_npz_sidecar_metadata(tmp_path: Path) -> None:
    path = _npz(tmp_path / "y.npz", **_good())
    (tmp_path / "y.json").write_text('{"modality": "OCT", "body_part": "retina", "class_names": ["a", "b", "c"]}')
    ds = load_dataset(path)
    assert (ds.modality, ds.body_part, ds.class_names) == ("oct", "retina", ["a", "b", "c"])


def test_a_modality_or_body_part_too_long_for_a_record_is_a_dataset_error(tmp_path: Path) -> None:
    """Found by the fuzz test: a 70-character modality in the .npz crashed profiling with pydantic's error."""
    path = _npz(tmp_path / "m.npz", **_good(), modality=np.array("x" * 70))
    with pytest.raises(DatasetError, match=r"its modality is 70 characters .* at most 64 \(e.g. 'x-ray'\).*modality="):
        load_dataset(path)
    assert profile_dataset(load_dataset(path, modality="ct"), probe=False).modality == "ct"  # the override's way out
    (tmp_path / "b.json").write_text('{"body_part": "' + "y" * 65 + '"}')
    with pytest.raises(DatasetError, match=r"its body_part is 65 characters .*\(e.g. 'chest'\)"):
        load_dataset(_npz(tmp_path / "b.npz", **_good()))


def test_float_images_in_unit_range_are_converted(tmp_path: Path) -> None:
    arrays = _good()
    arrays["train_images"] = arrays["train_images"].astype(np.float32) / 255
    ds = load_dataset(_npz(tmp_path / "f.npz", **arrays))
    assert ds.splits["train"].images.dtype == np.uint8


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.pop("train_labels"), "needs 'train_images' and 'train_labels'"),
        (lambda a: a.update(train_labels=np.zeros((30, 1), dtype=np.int64)), "at least 2 classes"),
        (lambda a: a.update(train_labels=np.arange(30).reshape(-1, 1) % 3 - 1), "labels range from -1"),
        (lambda a: a.update(train_labels=np.arange(29) % 3), "30 images but 29 labels"),
        (lambda a: a.update(train_images=np.full((30, 16, 16), np.nan, dtype=np.float32)), "NaN"),
        (lambda a: a.update(train_images=np.zeros((30, 16), dtype=np.uint8)), "expected (N, H, W)"),
        (lambda a: a.update(train_labels=np.ones((30, 3))), "multi-label"),
        (lambda a: a.update(val_images=np.zeros((5, 16, 16), dtype=np.uint8)), "no 'val_labels'"),
        (lambda a: a.update(train_labels=(np.arange(30) % 3) + 0.5), "whole numbers"),
        (lambda a: a.update(val_images=np.zeros((4, 8, 8), dtype=np.uint8), val_labels=np.arange(4) % 3), "different image shapes"),
    ],
)
def test_bad_npz_gives_a_clear_error(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    arrays = _good()
    mutate(arrays)
    path = _npz(tmp_path / "bad.npz", **arrays)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(path)
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_missing_empty_and_corrupt_files(tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope.npz")
    with pytest.raises(DatasetError, match="path is empty"):
        load_dataset("  ")
    (tmp_path / "zero.npz").write_bytes(b"")
    with pytest.raises(DatasetError, match="0 bytes"):
        load_dataset(tmp_path / "zero.npz")
    data = (shared_data / "busi_ultrasound.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        load_dataset(tmp_path / "cut.npz")
    (tmp_path / "junk.npz").write_bytes(b"\x00\x01not a zip" * 100)
    with pytest.raises(DatasetError, match="not a .npz archive"):
        load_dataset(tmp_path / "junk.npz")
    with pytest.raises(DatasetError, match="medmnist cache"):
        load_dataset("dermamnist")


@pytest.mark.parametrize(("name", "content", "what"), [
    ("notes.txt", b"chest x-ray, 2 classes\n", "a text file"),
    ("data.npz", b"train_images,train_labels\n1,2\n", "a text file"),
    ("scan.png", b"\x89PNG\r\n\x1a\n" + bytes(64), "a single PNG image"),
    ("scan.npy", b"\x93NUMPY\x01\x00" + bytes(64), "a single .npy array"),
])
def test_a_file_that_is_not_a_dataset_is_named_for_what_it_is(tmp_path: Path, name: str, content: bytes,
                                                               what: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path / name)
    assert f"is not a dataset: it is {what}" in str(err.value)
    assert "pickle" not in str(err.value) and "folder with one subfolder of images per class" in str(err.value)


def _png(path: Path, value: int, mode: str = "L", size: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), value if mode == "L" else (value, 0, 0)).save(path)


def test_image_folder_with_splits(tmp_path: Path) -> None:
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for cls, value in (("benign", 10), ("malignant", 200)):
            for i in range(n):
                _png(tmp_path / "us" / split / cls / f"{i}.png", value + i)
    (tmp_path / "us" / "train" / "benign" / "notes.txt").write_text("not an image")
    ds = load_dataset(tmp_path / "us", modality="ultrasound")
    assert ds.class_names == ["benign", "malignant"]
    assert [len(ds.splits[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    assert ds.splits["train"].images.shape[1:] == (20, 20)
    meta = profile_dataset(ds)
    assert (meta.n_instances, meta.channels, meta.modality) == (20, 1, "ultrasound")


def test_image_folder_without_splits_is_carved_and_rgb_kept(tmp_path: Path) -> None:
    for cls in ("a", "b", "c"):
        for i in range(10):
            _png(tmp_path / "derm" / cls / f"{i}.png", i * 20, mode="RGB")
    ds = load_dataset(tmp_path / "derm")
    assert ds.channels == 3
    assert sum(len(s) for s in ds.splits.values()) == 30


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class subfolders"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "texts" / "a").mkdir(parents=True)
    (tmp_path / "texts" / "b").mkdir(parents=True)
    (tmp_path / "texts" / "a" / "x.txt").write_text("hello")
    with pytest.raises(DatasetError, match="found no images"):
        load_dataset(tmp_path / "texts")
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "b").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="could be read as an image"):
        load_dataset(tmp_path / "broken")


def test_medmnist_name_from_cache(tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path))
    shutil.copy(shared_data / "busi_ultrasound.npz", tmp_path / "breastmnist_64.npz")
    ds = load_dataset("breastmnist_64")
    assert ds.name == "breastmnist_64" and len(ds.splits["train"]) == 545


def test_fingerprint_depends_on_content_not_path(tmp_path: Path) -> None:
    a = load_dataset(_npz(tmp_path / "a.npz", **_good()))
    b = load_dataset(_npz(tmp_path / "b.npz", **_good()))
    arrays = _good()
    arrays["train_images"][0, 0, 0] ^= 1
    c = load_dataset(_npz(tmp_path / "c.npz", **arrays))
    assert a.fingerprint == b.fingerprint != c.fingerprint
