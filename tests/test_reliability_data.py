"""Bad data through a whole request: a clear error, nothing trained, nothing written to the KB.

tests/test_datasets.py checks the loader's messages one by one; here each bad dataset goes
through the real request path (API and chat, with the real knowledge base and meta-model)
and through uploads, including the escapes a server must refuse: `..`, a symlinked file,
a symlinked class folder inside an allowed image folder, and zip bombs (a .zip upload that
unpacks 100x, an .npz whose header claims terabytes, a zip whose header lies).
"""

from __future__ import annotations

import io
import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image

from agent.chat import ChatAdapter, JobRegistry
from agent.chat.uploads import MAX_ZIP_RATIO, prepare_dataset
from agent.context import Context
from agent.graph import compile_graph
from agent.nodes import Nodes, TaskError
from agent.parts import Parts
from agent.recommend import Recommender
from tests.fakes import ScriptChat, last, texts
from tests.reliability import count, jsonl_ids, real_kb, real_metamodel
from tests.test_reliability_input import JobSpy
from tools.datasets import DatasetError, load_dataset


def _arrays(n: int = 30, k: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {"train_images": rng.integers(0, 255, (n, 16, 16), dtype=np.uint8),
            "train_labels": (np.arange(n) % k).reshape(-1, 1)}


def _npz(path: Path, **arrays: Any) -> str:
    np.savez(path, **arrays)
    return str(path)


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (12, 12), value).save(path)


def _folder(root: Path, classes: tuple[str, ...] = ("a", "b"), n: int = 6) -> Path:
    for c, cls in enumerate(classes):
        for i in range(n):
            _png(root / cls / f"{i}.png", 40 * c + i)
    return root


def _npz_bomb(path: Path, shape: tuple[int, ...]) -> str:
    """An .npz of a few hundred bytes whose train_images header declares `shape` (uint8)."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "|u1", "fortran_order": False, "shape": shape})
    labels = io.BytesIO()
    np.save(labels, np.arange(10) % 2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("train_images.npy", head.getvalue() + b"\0" * 4096)
        z.writestr("train_labels.npy", labels.getvalue())
    return str(path)


# ------------------------------------------------------------------------------ the cases
def _cases(data: Path, outside: Path) -> dict[str, tuple[str, str]]:
    """name -> (dataset path, regex of the message)."""
    good = _npz(outside / "good.npz", **_arrays())
    (data / "link.npz").symlink_to(good)
    escape = _folder(data / "escape_folder")
    _folder(outside / "private_images", classes=("c",))
    (escape / "c").symlink_to(outside / "private_images" / "c", target_is_directory=True)
    (data / "zero.npz").write_bytes(b"")
    whole = Path(_npz(data / "whole.npz", **_arrays()))
    (data / "truncated.npz").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    (data / "junk.npz").write_bytes(bytes(range(256)) * 40)
    one = _arrays()
    one["train_labels"] = np.zeros((30, 1), dtype=np.int64)
    nan = _arrays()
    nan["train_images"] = nan["train_images"].astype(np.float32)
    nan["train_images"][3, 4, 5] = np.nan
    high = _arrays()
    high["train_labels"] = high["train_labels"] + 3
    sidecar = _arrays()
    sidecar["train_labels"][0] = 7  # the card below names 3 classes
    (data / "named.json").write_text('{"modality": "ct", "class_names": ["a", "b", "c"]}')
    neg = _arrays()
    neg["train_labels"][0] = -1
    wrong = {"images": _arrays()["train_images"], "labels": _arrays()["train_labels"]}
    pickled = data / "pickled.npz"
    np.savez(pickled, train_images=np.array([object()] * 30, dtype=object), train_labels=_arrays()["train_labels"])
    (data / "no_classes").mkdir()
    return {
        "missing": (str(data / "nope.npz"), r"does not exist"),
        "dotdot": (str(data / ".." / "outside" / "good.npz"), r"outside the allowed folders"),
        "absolute-outside": (good, r"outside the allowed folders"),
        "symlinked-file": (str(data / "link.npz"), r"outside the allowed folders"),
        "symlinked-class-folder": (str(escape), r"outside the allowed folders"),
        "zero-bytes": (str(data / "zero.npz"), r"0 bytes"),
        "truncated": (str(data / "truncated.npz"), r"corrupt or truncated"),
        "junk": (str(data / "junk.npz"), r"not a dataset: it is not a .npz archive"),
        "wrong-keys": (_npz(data / "wrong.npz", **wrong), r"needs 'train_images' and 'train_labels'"),
        "one-class": (_npz(data / "one.npz", **one), r"at least 2 classes"),
        "nan-pixels": (_npz(data / "nan.npz", **nan), r"NaN"),
        "labels-from-3": (_npz(data / "high.npz", **high), r"classes 0, 1, 2 have no images"),
        "labels-beyond-names": (_npz(data / "named.npz", **sidecar), r"labels range from 0 to 7"),
        "negative-label": (_npz(data / "neg.npz", **neg), r"labels range from -1"),
        "pickled-objects": (str(pickled), r"not a readable .npz"),
        "npz-bomb": (_npz_bomb(data / "bomb.npz", (10**6, 4096, 4096)), r"declares [\d,.]+ GiB of arrays"),
        "folder-without-classes": (str(data / "no_classes"), r"no class subfolders"),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("reliability-data")
    data, outside = tmp / "data", tmp / "outside"
    data.mkdir()
    outside.mkdir()
    cases = _cases(data, outside)
    kb = real_kb(tmp / "kb")
    context = Context(allowed_data_dirs=(str(data), str(tmp / "uploads")), runs_dir=str(tmp / "runs"))
    return {"tmp": tmp, "data": data, "cases": cases, "kb": kb, "mm": real_metamodel(), "context": context}


CASE_NAMES = ["missing", "dotdot", "absolute-outside", "symlinked-file", "symlinked-class-folder", "zero-bytes",
              "truncated", "junk", "wrong-keys", "one-class", "nan-pixels", "labels-from-3", "labels-beyond-names",
              "negative-label", "pickled-objects", "npz-bomb", "folder-without-classes"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_dataset_in_a_request_is_a_clear_error(name: str, world: dict[str, Any]) -> None:
    path, message = world["cases"][name]
    before = jsonl_ids(world["kb"].root)
    spy, llm = JobSpy(), ScriptChat()
    r = Recommender(llm=llm, judge_llm=llm, kb=world["kb"], metamodel=world["mm"], context=world["context"],
                    start_job=spy)

    with pytest.raises(TaskError, match=message):
        r.run("breast ultrasound, 3 classes", dataset=path)
    count("bad datasets tried")

    assert llm.calls == 0  # refused before any LLM call
    assert spy.calls == [] and jsonl_ids(world["kb"].root) == before
    assert not Path(world["context"].runs_dir).exists()


def test_the_same_datasets_are_refused_in_the_chat(world: dict[str, Any]) -> None:
    spy = JobSpy()
    nodes = Nodes(Parts(
        llm=ScriptChat(), judge_llm=ScriptChat(), kb=world["kb"], metamodel=world["mm"],
        start_job=JobRegistry(spy).start
    ))
    adapter = ChatAdapter(compile_graph(nodes, checkpointer=InMemorySaver()), nodes.parts,
                          context=world["context"], jobs=JobRegistry(spy))
    before = jsonl_ids(world["kb"].root)
    for name in CASE_NAMES:
        path, message = world["cases"][name]
        view = last(adapter.submit(f"chat-{name}", "breast ultrasound, 3 classes", dataset=path))
        body = "\n".join(texts(view)) + (view.notice or "")
        count("bad datasets tried")
        assert view.offer is None and "Traceback" not in body
        assert __import__("re").search(message, body), (name, body[-500:])
    assert spy.calls == [] and jsonl_ids(world["kb"].root) == before


def test_approving_with_a_dataset_outside_the_allowed_folders_is_refused(world: dict[str, Any]) -> None:
    spy, llm = JobSpy(), ScriptChat()
    r = Recommender(llm=llm, judge_llm=llm, kb=world["kb"], metamodel=world["mm"], context=world["context"],
                    start_job=spy)
    rec, _ = r.run("chest x-ray, 2 classes, 5000 images, 10 minutes on a CPU")
    for name in ("dotdot", "absolute-outside", "symlinked-file", "symlinked-class-folder", "missing"):
        out = r.resume(rec.thread_id or "", {"action": "approve", "dataset": world["cases"][name][0]})
        count("bad datasets tried")
        (interrupt,) = out["__interrupt__"]
        assert "does not exist or lies outside the allowed folders" in interrupt.value["error"]
    assert spy.calls == []
    assert not r.graph.get_state({"configurable": {"thread_id": rec.thread_id}}).values.get("approval")


def test_an_image_folder_with_links_inside_the_allowed_folders_is_fine(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _folder(data / "real")
    (data / "linked").mkdir(parents=True)
    for cls in ("a", "b"):
        (data / "linked" / cls).symlink_to(data / "real" / cls, target_is_directory=True)
    ctx = Context(allowed_data_dirs=(str(data),))
    assert ctx.allows(data / "linked") and ctx.allows(data / "real")
    assert not Context(allowed_data_dirs=(str(data / "linked"),)).allows(data / "linked")  # links leave that one
    assert load_dataset(data / "linked").n_classes == 2


# ------------------------------------------------------------------------------- uploads
def test_zero_byte_upload_is_refused_after_the_copy_and_nothing_is_recorded(world: dict[str, Any]) -> None:
    spy = JobSpy()
    nodes = Nodes(Parts(
        llm=ScriptChat(), judge_llm=ScriptChat(), kb=world["kb"], metamodel=world["mm"],
        start_job=JobRegistry(spy).start
    ))
    adapter = ChatAdapter(compile_graph(nodes, checkpointer=InMemorySaver()), nodes.parts,
                          context=world["context"], jobs=JobRegistry(spy), uploads_dir=world["tmp"] / "uploads")
    before = jsonl_ids(world["kb"].root)
    empty = world["tmp"] / "upload-0.npz"
    empty.write_bytes(b"")

    dataset = adapter.dataset_from(str(empty), None)
    view = last(adapter.submit("upload", "breast ultrasound", dataset=dataset))
    count("bad uploads tried")

    assert view.offer is None and "0 bytes" in "\n".join(texts(view))
    assert spy.calls == [] and jsonl_ids(world["kb"].root) == before


def _zip_of_zeros(path: Path, mib: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("bomb/a/zeros.png", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(mib):
                f.write(block)
        z.writestr("bomb/b/x.png", b"\0")
    return path


def test_zip_bomb_upload_is_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = _zip_of_zeros(tmp_path / "bomb.zip", 80)  # 80 MiB of zeros packs into ~80 KiB
    uploads = tmp_path / "uploads"
    assert bomb.stat().st_size * MAX_ZIP_RATIO < 80 << 20

    with pytest.raises(ValueError, match="zip bomb"):
        prepare_dataset(bomb, uploads)
    count("bad uploads tried")

    assert list(uploads.iterdir()) == []  # nothing unpacked, no temporary folder left


def test_zip_whose_header_lies_about_its_size_is_refused(tmp_path: Path) -> None:
    """A header that declares 1 KiB for 8 MiB of data: extraction stops at 1 KiB and the CRC fails."""
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x/a/big.png", b"\0" * (8 << 20))
        z.writestr("x/b/small.png", b"\0")
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"PK\x03\x04"
    raw[22:26] = struct.pack("<I", 1024)  # the local header's uncompressed size
    central = raw.find(b"PK\x01\x02")
    raw[central + 24 : central + 28] = struct.pack("<I", 1024)  # and the central directory's
    path.write_bytes(bytes(raw))
    uploads = tmp_path / "uploads"

    with pytest.raises(ValueError, match="not a readable zip archive"):
        prepare_dataset(path, uploads)
    count("bad uploads tried")

    assert list(uploads.iterdir()) == []


def test_nested_archives_are_not_unpacked_recursively(tmp_path: Path) -> None:
    inner = _zip_of_zeros(tmp_path / "inner.zip", 1)
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as z:
        for cls in ("a", "b"):
            z.write(inner, f"ds/{cls}/inner.zip")

    folder = prepare_dataset(outer, tmp_path / "uploads")
    count("bad uploads tried")

    with pytest.raises(DatasetError, match="found no images"):
        load_dataset(folder)
    assert sorted(p.name for p in Path(folder).rglob("*") if p.is_file()) == ["inner.zip", "inner.zip"]


def test_a_normal_image_folder_zip_still_unpacks(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src" / "derm", n=10)
    archive = Path(shutil.make_archive(str(tmp_path / "derm"), "zip", src.parent))

    folder = prepare_dataset(archive, tmp_path / "uploads")

    assert load_dataset(folder).n_classes == 2
