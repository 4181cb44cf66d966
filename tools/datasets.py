"""Load image-classification datasets and compute their meta-features.

Three sources, one result (`ImageDataset`: uint8 images and int64 labels per split):
- a MedMNIST-layout .npz (`train_images`, `train_labels`, optional `val_*`/`test_*`),
- an image folder (one subfolder per class, optionally under train/val/test),
- a MedMNIST name whose file is already in the medmnist cache (downloading is opt-in).

Every problem with the data is a `DatasetError` whose message names the problem and
the way out; loading never writes anything.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.schema import MetaFeatures

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}
# Val/test carved from train when a source has none: seeded, stratified, 10 % / 20 %.
CARVE_SEED = 20250601
MAX_FOLDER_SIDE = 256


class DatasetError(ValueError):
    """The dataset cannot be used; the message says what is wrong and what to do."""


@dataclass
class Split:
    images: np.ndarray  # (N, H, W) grey or (N, H, W, 3) RGB, uint8
    labels: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class ImageDataset:
    name: str
    splits: dict[str, Split]
    class_names: list[str]
    modality: str | None = None
    body_part: str | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return 3 if self.splits["train"].images.ndim == 4 else 1

    @property
    def resolution(self) -> int:
        h, w = self.splits["train"].images.shape[1:3]
        return int(min(h, w))

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the arrays (not the path), so the same data has the same identity anywhere."""
        h = hashlib.sha256()
        for name in SPLITS:
            s = self.splits[name]
            h.update(name.encode())
            h.update(str(s.images.shape).encode())
            h.update(np.ascontiguousarray(s.images).data)
            h.update(np.ascontiguousarray(s.labels).data)
        return h.hexdigest()[:16]


# --------------------------------------------------------------------------- loading
def load_dataset(
    source: str | os.PathLike[str],
    *,
    modality: str | None = None,
    body_part: str | None = None,
    name: str | None = None,
    download: bool = False,
) -> ImageDataset:
    """Load a dataset from a .npz file, an image folder, or a cached MedMNIST name.

    Args:
        source: path to a .npz or a folder, or a MedMNIST name such as "pneumoniamnist".
        modality: imaging modality; overrides what the dataset's metadata says.
        body_part: body part; overrides the metadata.
        name: display name; defaults to the file or folder name.
        download: allow fetching a MedMNIST file that is not cached (needs internet).
    """
    text = os.fspath(source)
    if not text.strip():
        raise DatasetError("the dataset path is empty: pass a .npz file, an image folder, or a MedMNIST name.")
    path = Path(text).expanduser()
    if path.is_dir():
        ds = _load_folder(path)
    elif path.is_file():
        _check_is_archive(path)
        ds = _load_npz(path)
    elif re.fullmatch(r"[a-z0-9_]+mnist(3d)?(_\d+)?", text.strip().lower()):
        ds = _load_medmnist(text.strip().lower(), download=download)
    else:
        raise DatasetError(
            f"no dataset at {text!r}: the path does not exist. Pass an existing .npz file, a folder with "
            "one subfolder per class, or a MedMNIST name (e.g. 'pneumoniamnist') that is in the medmnist cache."
        )
    if name:
        ds.name = name
    if modality:
        ds.modality = modality.strip().lower()
    if body_part:
        ds.body_part = body_part.strip().lower()
    for key in ("modality", "body_part"):  # as the records hold them (knowledge.schema.MetaFeatures)
        value = getattr(ds, key)
        if value is not None and len(value) > MAX_WORDS_CHARS:
            raise DatasetError(
                f"{text}: its {key} is {len(value)} characters ({value[:40]!r}...); a {key.replace('_', ' ')} is a "
                f"short name of at most {MAX_WORDS_CHARS} (e.g. {'x-ray' if key == 'modality' else 'chest'!r}): "
                "shorten it in the dataset's "
                f"metadata or pass {key}= to override it.")
    _ensure_splits(ds)
    return ds


MAX_WORDS_CHARS = 64  # the longest modality or body part a record holds (knowledge.schema.MetaFeatures)


# File kinds a user may give by mistake, by their first bytes, and what to do instead.
_NOT_A_DATASET = (
    (b"\x89PNG", "a single PNG image"),
    (b"\xff\xd8\xff", "a single JPEG image"),
    (b"\x93NUMPY", "a single .npy array"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip file"),
)


def _check_is_archive(path: Path) -> None:
    """Refuse a file that is not a zip archive (.npz is one) by naming what it is instead.

    numpy would read a text file as a pickle and fail with advice about allow_pickle, which
    tells the user nothing about their mistake.
    """
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}.") from exc
    if not head or head.startswith(b"PK"):
        return  # an empty file or a zip: _load_npz says the rest
    what = next((name for magic, name in _NOT_A_DATASET if head.startswith(magic)), None)
    if what is None:
        try:
            text = head.decode("utf-8")
            printable = not any(ord(c) < 32 and c not in "\t\n\r" for c in text)
        except UnicodeDecodeError:
            printable = False
        what = "a text file" if printable else "not a .npz archive (it has no zip header)"
    raise DatasetError(
        f"{path} is not a dataset: it is {what}. Pass a .npz file in MedMNIST layout (train_images, "
        "train_labels, ...) or a folder with one subfolder of images per class."
    )


def max_dataset_bytes() -> int:
    """The most bytes of arrays one dataset may declare: $METALLMIX_MAX_DATASET_BYTES, else half the RAM."""
    env = os.environ.get("METALLMIX_MAX_DATASET_BYTES")
    if env:
        return int(float(env))
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _declared_bytes(z: Any) -> tuple[int, str]:
    """Bytes the .npy members of an open .npz declare in their headers (numpy allocates that
    much before reading a byte of data), and the largest member, without reading the data."""
    total, largest, largest_size = 0, "", -1
    for member in z.zip.namelist():
        if not member.endswith(".npy"):
            continue
        with z.zip.open(member) as f:
            version = np.lib.format.read_magic(f)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            shape, _, dtype = (reader[version](f) if version in reader
                               else np.lib.format._read_array_header(f, version))  # (3, 0): no public reader
        size = math.prod(shape) * dtype.itemsize
        total += size
        if size > largest_size:
            largest, largest_size = f"{member[:-4]} {tuple(shape)} {dtype}", size
    return total, largest


def _load_npz(path: Path) -> ImageDataset:
    if path.stat().st_size == 0:
        raise DatasetError(f"{path} is empty (0 bytes): the file was not written completely; copy it again.")
    try:
        with np.load(path, allow_pickle=False) as z:
            # A compressed .npz can declare terabytes in a few hundred bytes (a zip bomb):
            # check the headers before numpy allocates what they say.
            declared, largest = _declared_bytes(z)
            limit = max_dataset_bytes()
            if declared > limit:
                raise DatasetError(
                    f"{path} declares {declared / 2**30:,.1f} GiB of arrays (largest: {largest}), more than the "
                    f"{limit / 2**30:,.1f} GiB a dataset may hold in memory here; use a smaller or downscaled dataset "
                    "(or raise METALLMIX_MAX_DATASET_BYTES if this machine has the memory)."
                )
            arrays = {k: z[k] for k in z.files}
    except MemoryError as exc:
        raise DatasetError(f"{path} does not fit in memory ({exc}); use a smaller or downscaled dataset.") from exc
    # zipfile raises NotImplementedError (a version or compression it lacks) and RuntimeError (an encrypted member)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, NotImplementedError,
            RuntimeError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(
            f"{path} is not a readable .npz archive (corrupt or truncated: {exc}). Re-create or re-download it."
        ) from exc
    if "train_images" not in arrays or "train_labels" not in arrays:
        raise DatasetError(
            f"{path} has keys {sorted(arrays)}, but a MedMNIST-layout .npz needs 'train_images' and "
            "'train_labels' (and optionally 'val_images'/'val_labels', 'test_images'/'test_labels')."
        )
    splits: dict[str, Split] = {}
    for split in SPLITS:
        has_x, has_y = f"{split}_images" in arrays, f"{split}_labels" in arrays
        if has_x != has_y:
            missing = f"{split}_labels" if has_x else f"{split}_images"
            raise DatasetError(f"{path} has {split} data but no {missing!r}; both arrays of a split are needed.")
        if has_x:
            splits[split] = _check_split(str(path), split, arrays[f"{split}_images"], arrays[f"{split}_labels"])
    meta = _card_metadata(path)
    n_classes = _n_classes(splits, meta.get("class_names"))
    names = meta.get("class_names") or _npz_class_names(arrays, n_classes) or [str(i) for i in range(n_classes)]
    ds = ImageDataset(
        name=path.stem,
        splits=splits,
        class_names=list(names),
        modality=_str_key(arrays, "modality") or meta.get("modality"),
        body_part=_str_key(arrays, "body_part") or meta.get("body_part"),
        source=str(path),
    )
    _check_labels(ds)
    return ds


def _str_key(arrays: dict[str, np.ndarray], key: str) -> str | None:
    value = arrays.get(key)
    return str(value.item()).strip().lower() if value is not None and value.size == 1 else None


def _npz_class_names(arrays: dict[str, np.ndarray], n: int) -> list[str] | None:
    value = arrays.get("class_names")
    if value is not None and value.ndim == 1 and len(value) == n:
        return [str(v) for v in value]
    return None


def _card_metadata(path: Path) -> dict[str, Any]:
    """Modality, body part and class names from metadata stored beside the file.

    Looks for `<stem>.json` ({"modality": ..., "body_part": ..., "class_names": [...]}), then
    for a markdown table in SOURCES.md / README.md of the same folder whose header has
    'file' and 'modality' columns and a row naming this file.
    """
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            data = json.loads(sidecar.read_text())
            out = {k: str(data[k]).strip().lower() for k in ("modality", "body_part") if data.get(k)}
            if isinstance(data.get("class_names"), list):
                out["class_names"] = [str(c) for c in data["class_names"]]
            return out
        except (json.JSONDecodeError, OSError):
            pass
    for card in ("SOURCES.md", "README.md"):
        f = path.parent / card
        if not f.is_file():
            continue
        header: list[str] | None = None
        for line in f.read_text(errors="replace").splitlines():
            if not line.startswith("|"):
                header = None
                continue
            cells = [c.strip().lower() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
                continue
            if "file" in header and "modality" in header and cells and cells[0] == path.name.lower():
                row = dict(zip(header, [c.strip() for c in line.strip().strip("|").split("|")], strict=False))
                out: dict[str, Any] = {"modality": row["modality"].strip().lower()}
                if row.get("body part"):
                    out["body_part"] = row["body part"].strip().lower()
                if row.get("classes"):
                    names = [c.strip() for c in row["classes"].split(",") if c.strip()]
                    if len(names) >= 2:
                        out["class_names"] = names
                return out
    return {}


def _load_folder(root: Path) -> ImageDataset:
    from PIL import Image, UnidentifiedImageError

    split_dirs = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if "train" not in split_dirs and split_dirs:
        raise DatasetError(f"{root} has {sorted(split_dirs)} folders but no 'train' folder.")
    layout = split_dirs or {"train": root}
    class_names = sorted(
        d.name for d in layout["train"].iterdir() if d.is_dir() and not d.name.startswith(".")
    )
    if not class_names:
        raise DatasetError(
            f"{layout['train']} has no class subfolders. An image folder dataset needs one subfolder per "
            "class (e.g. normal/, pneumonia/), optionally inside train/, val/ and test/."
        )
    files: dict[str, list[tuple[Path, int]]] = {}
    for split, base in layout.items():
        files[split] = []
        for idx, cls in enumerate(class_names):
            d = base / cls
            if d.is_dir():
                files[split] += [
                    (p, idx)
                    for p in sorted(d.rglob("*"))
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                ]
        extra = {d.name for d in base.iterdir() if d.is_dir()} - set(class_names) - {".ipynb_checkpoints"}
        if split != "train" and extra:
            raise DatasetError(f"{base} has class folders {sorted(extra)} that train/ does not have.")
    if not files["train"]:
        raise DatasetError(
            f"found no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders of {layout['train']}."
        )
    # One common size: the median smaller side, capped, so the arrays stack.
    sizes: list[tuple[int, int]] = []
    for p, _ in files["train"][:: max(1, len(files["train"]) // 200)]:
        try:
            with Image.open(p) as im:
                sizes.append(im.size)
        except (UnidentifiedImageError, OSError):
            continue
    if not sizes:
        raise DatasetError(f"none of the files in {layout['train']} could be read as an image.")
    side = int(min(MAX_FOLDER_SIDE, np.median([min(s) for s in sizes])))
    rgb = False
    for p, _ in files["train"][:50]:
        try:
            with Image.open(p) as im:
                rgb |= im.mode not in ("L", "I;16", "I", "1", "LA")
        except (UnidentifiedImageError, OSError):
            continue
    splits: dict[str, Split] = {}
    skipped = 0
    for split, items in files.items():
        images, labels = [], []
        for p, label in items:
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB" if rgb else "L").resize((side, side), Image.Resampling.LANCZOS)
                    images.append(np.asarray(im, dtype=np.uint8))
                    labels.append(label)
            except (UnidentifiedImageError, OSError):
                skipped += 1
        if images:
            splits[split] = Split(np.stack(images), np.asarray(labels, dtype=np.int64))
    if "train" not in splits:
        raise DatasetError(f"none of the files in {layout['train']} could be read as an image.")
    ds = ImageDataset(name=root.name, splits=splits, class_names=class_names, source=str(root))
    meta = _card_metadata(root.with_suffix(".npz"))  # a <folder>.json beside the folder
    ds.modality, ds.body_part = meta.get("modality"), meta.get("body_part")
    if skipped:
        ds.notes.append(f"skipped {skipped} unreadable image files")
    _check_labels(ds)
    return ds


def _load_medmnist(name: str, download: bool) -> ImageDataset:
    base, _, size = name.partition("_")
    root = Path(os.environ.get("MEDMNIST_ROOT", Path.home() / ".medmnist"))
    candidates = [root / f"{name}.npz"] + ([root / f"{base}_{size}.npz"] if size else [root / f"{base}.npz"])
    for path in candidates:
        if path.is_file():
            ds = _load_npz(path)
            ds.name = name
            ds.modality = ds.modality or _medmnist_modality(base)
            return ds
    if not download:
        raise DatasetError(
            f"MedMNIST dataset {name!r} is not in the medmnist cache ({root}). Download it once with internet "
            "access (`--download`), or pass the path of its .npz file."
        )
    try:  # the only network path in the project, and only on explicit request
        import medmnist  # noqa: F401
        from medmnist import INFO

        info = INFO[base]
        cls = getattr(__import__("medmnist"), info["python_class"])
        cls(split="train", download=True, root=str(root), size=int(size) if size else None)
    except Exception as exc:
        raise DatasetError(f"could not download MedMNIST {name!r}: {exc}") from exc
    return _load_medmnist(name, download=False)


def _medmnist_modality(base: str) -> str | None:
    try:
        from medmnist import INFO
    except Exception:
        return None
    desc = INFO.get(base, {}).get("description", "").lower()
    for key in ("x-ray", "ct", "mri", "ultrasound", "dermatoscop", "pathology", "microscop", "fundus", "oct"):
        if key in desc:
            return key
    return None


# ------------------------------------------------------------------------ validation
def _check_split(where: str, split: str, images: np.ndarray, labels: np.ndarray) -> Split:
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 4 and images.shape[-1] == 4:
        images = images[..., :3]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise DatasetError(
            f"{where}: {split}_images has shape {images.shape}; expected (N, H, W) grey or (N, H, W, 3) RGB."
        )
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DatasetError(
            f"{where}: {split}_labels has shape {labels.shape}; expected one integer class label per image "
            "((N,) or (N, 1)); multi-label tasks are not supported."
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"{where}: {split} has {len(images)} images but {len(labels)} labels; every image needs one label."
        )
    if len(labels) == 0:
        raise DatasetError(f"{where}: the {split} split is empty.")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number) or np.iscomplexobj(images):
            raise DatasetError(f"{where}: {split}_images has dtype {images.dtype}; expected real numbers.")
        x = images.astype(np.float32)
        if not np.isfinite(x).all():
            raise DatasetError(f"{where}: {split}_images contains NaN or infinite pixels; clean them first.")
        if x.min() < 0 or x.max() > 255:
            raise DatasetError(f"{where}: {split}_images has values in [{x.min():g}, {x.max():g}]; expected [0, 255] or [0, 1].")
        images = np.round(x * 255 if x.max() <= 1.0 else x).astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.number) or not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise DatasetError(f"{where}: {split}_labels must be whole numbers (class indices), but are {labels.dtype}.")
    return Split(np.ascontiguousarray(images), labels.astype(np.int64))


def _n_classes(splits: dict[str, Split], names: list[str] | None) -> int:
    top = max(int(s.labels.max()) for s in splits.values()) + 1
    return max(top, len(names)) if names else top


def _check_labels(ds: ImageDataset) -> None:
    shapes = {s.images.shape[1:] for s in ds.splits.values()}
    if len(shapes) > 1:
        raise DatasetError(f"{ds.source}: the splits have different image shapes {sorted(shapes)}; resize them to one size.")
    for split, s in ds.splits.items():
        lo, hi = int(s.labels.min()), int(s.labels.max())
        if lo < 0 or hi >= ds.n_classes:
            raise DatasetError(
                f"{ds.source}: {split}_labels range from {lo} to {hi}, but labels must lie in 0..{ds.n_classes - 1} "
                f"(one per class: {', '.join(ds.class_names[:10])})."
            )
    present = np.unique(np.concatenate([s.labels for s in ds.splits.values()]))
    if len(present) < 2:
        raise DatasetError(
            f"{ds.source}: every image has label {int(present[0])}; classification needs at least 2 classes."
        )
    empty = sorted(set(range(ds.n_classes)) - {int(x) for x in present})
    if empty:  # e.g. labels 3..5 with no 0..2: a class without images can be neither learnt nor tested
        raise DatasetError(
            f"{ds.source}: classes {', '.join(map(str, empty[:10]))} have no images (labels present: "
            f"{', '.join(map(str, present[:10].tolist()))}); labels must be 0..K-1 with every class present; "
            "renumber them."
        )


def _ensure_splits(ds: ImageDataset) -> None:
    """Carve val (10 %) and test (20 %) from train, stratified and seeded, when missing."""
    missing = [s for s in ("val", "test") if s not in ds.splits]
    if not missing:
        return
    train = ds.splits["train"]
    rng = np.random.default_rng(CARVE_SEED)
    share = {"val": 0.1, "test": 0.2}
    keep = np.ones(len(train), dtype=bool)
    taken: dict[str, list[int]] = {s: [] for s in missing}
    for c in np.unique(train.labels):
        idx = rng.permutation(np.flatnonzero(train.labels == c))
        start = 0
        for s in missing:
            n = int(round(len(idx) * share[s])) if len(idx) >= 3 else 0
            taken[s] += idx[start : start + n].tolist()
            start += n
        keep[idx[:start]] = False
    for s in missing:
        sel = np.sort(np.asarray(taken[s], dtype=np.int64))
        if len(sel) == 0:
            raise DatasetError(f"{ds.source}: too few images to carve a {s} split; provide one or add images.")
        ds.splits[s] = Split(train.images[sel], train.labels[sel])
    ds.splits["train"] = Split(train.images[keep], train.labels[keep])
    ds.notes.append(f"carved {', '.join(missing)} from train (stratified, seed {CARVE_SEED})")


# ------------------------------------------------------------------------ profiling
def profile_dataset(
    dataset: ImageDataset | str | os.PathLike[str], *, modality: str | None = None, body_part: str | None = None,
    probe: bool = True,
) -> MetaFeatures:
    """MetaLLMiX's meta-features of a dataset (class statistics over all splits, and the probe).

    Args:
        dataset: a loaded dataset, or anything `load_dataset` accepts.
        modality: overrides the dataset's modality; "unknown" when neither says.
        body_part: overrides the dataset's body part.
        probe: measure `probe_accuracy` (tools.probe: a few seconds the first time, then cached
            per dataset fingerprint); False leaves it None.
    """
    ds = dataset if isinstance(dataset, ImageDataset) else load_dataset(dataset)
    labels = np.concatenate([ds.splits[s].labels for s in SPLITS])
    counts = np.bincount(labels, minlength=ds.n_classes).astype(float)
    nonzero = counts[counts > 0]
    p = nonzero / nonzero.sum()
    entropy = float(-(p * np.log(p)).sum() / math.log(ds.n_classes))
    return MetaFeatures(
        n_instances=int(len(labels)),
        n_classes=ds.n_classes,
        imbalance_ratio=float(counts.max() / max(nonzero.min(), 1.0)) if counts.min() > 0 else float(counts.max()),
        class_entropy=round(min(max(entropy, 0.0), 1.0), 6),
        resolution=ds.resolution,
        channels=ds.channels,
        class_size_mean=float(counts.mean()),
        class_size_std=float(counts.std()),
        class_size_min=int(counts.min()),
        class_size_max=int(counts.max()),
        modality=(modality or ds.modality or "unknown"),
        body_part=body_part or ds.body_part,
        task_type="binary" if ds.n_classes == 2 else "multiclass",
        split_sizes={s: len(ds.splits[s]) for s in SPLITS},
        probe_accuracy=_probe(ds) if probe else None,
    )


def _probe(ds: ImageDataset) -> float | None:
    from tools.probe import probe_accuracy

    return probe_accuracy(ds)
