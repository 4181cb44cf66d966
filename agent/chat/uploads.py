"""Uploaded datasets: a .npz copied, or a .zip of an image folder unpacked, into the uploads folder.

Owns the checks an archive must pass before anything is unpacked: its file count and
unpacked size, its compression ratio (a zip bomb), and entries that point outside it.
A dataset is stored under its name and content hash, so the same upload twice is kept once.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
import zipfile
from pathlib import Path

MAX_ZIP_FILES = 200_000
MAX_ZIP_BYTES = 4 * 1024**3
# Image files are compressed already (a folder of PNG/JPEG zips at ~1:1); an archive that
# unpacks to more than this many times its packed size, beyond a few MiB, is a zip bomb.
MAX_ZIP_RATIO = 100
ZIP_RATIO_FREE_BYTES = 64 * 1024**2


def prepare_dataset(upload: str | Path, uploads_dir: str | Path) -> str:
    """Copy an uploaded .npz, or safely unpack an uploaded .zip of an image folder, into `uploads_dir`.

    Returns:
        The dataset path to give the graph (a file, or the unpacked folder).

    Raises:
        ValueError: not a .npz or .zip, an unsafe or too large archive (the message says why).
    """
    src = Path(upload)
    root = Path(uploads_dir)
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with src.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", src.stem).strip("._")[:60] or "dataset"
    name = f"{stem}-{digest.hexdigest()[:8]}"
    suffix = src.suffix.lower()
    if suffix == ".npz":
        dest = root / f"{name}.npz"
        if not dest.exists():
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
        return str(dest)
    if suffix != ".zip":
        raise ValueError(f"an upload must be a .npz file or a .zip of an image folder, but got {src.name!r}.")
    dest = root / name
    if not dest.exists():
        tmp = root / f".{name}.{uuid.uuid4().hex[:6]}"
        try:
            with zipfile.ZipFile(src) as z:
                _check_archive(z.infolist(), tmp)
                z.extractall(tmp)
        except zipfile.BadZipFile as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ValueError(f"{src.name} is not a readable zip archive ({exc}).") from exc
        except ValueError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.rename(dest)
    entries = [p for p in dest.iterdir() if not p.name.startswith(("__MACOSX", "."))]
    if len(entries) == 1 and entries[0].is_dir():
        return str(entries[0])  # a zip of one folder: the dataset is that folder
    return str(dest)


def _check_archive(infos: list[zipfile.ZipInfo], tmp: Path) -> None:
    """Refuse an archive too large, a zip bomb, or one with entries outside `tmp` (ValueError says which)."""
    unpacked = sum(i.file_size for i in infos)
    if len(infos) > MAX_ZIP_FILES or unpacked > MAX_ZIP_BYTES:
        raise ValueError(f"the zip holds more than {MAX_ZIP_FILES} files or {MAX_ZIP_BYTES >> 30} GiB; "
                         "upload a smaller dataset or put it in an allowed data folder on the server.")
    packed = sum(i.compress_size for i in infos)
    if unpacked > ZIP_RATIO_FREE_BYTES and unpacked > MAX_ZIP_RATIO * max(packed, 1):
        raise ValueError(f"the zip unpacks to {unpacked / 2**20:,.0f} MiB from {packed / 2**20:,.1f} MiB "
                         f"(more than {MAX_ZIP_RATIO}x): that is a zip bomb, not a folder of images; "
                         "refusing it.")
    for info in infos:
        target = (tmp / info.filename).resolve()
        if not target.is_relative_to(tmp.resolve()) or info.filename.startswith("/"):
            raise ValueError(f"the zip entry {info.filename!r} points outside the archive; refusing it.")


__all__ = ["MAX_ZIP_BYTES", "MAX_ZIP_FILES", "MAX_ZIP_RATIO", "ZIP_RATIO_FREE_BYTES", "prepare_dataset"]
