"""The index on a real Chroma server (`chroma run` on 127.0.0.1, started here): index, search,
rebuild, one collection per knowledge base, the CLI's `kb rebuild`, and the server stopped mid-use."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from knowledge.store import COLLECTION, KnowledgeBase, KnowledgeBaseError, chroma_server, server_collection
from tests.reliability import HashEmbedder, count
from tests.test_store import make

CHROMA = Path(sys.executable).with_name("chroma")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChromaServer:
    """`chroma run` on 127.0.0.1 with its data in `path`; stop() and start() again on the same port."""

    def __init__(self, path: Path) -> None:
        self.path, self.port = path, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = path.parent / "chroma-server.log"

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([str(CHROMA), "run", "--host", "127.0.0.1", "--port", str(self.port),
                                          "--path", str(self.path)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"chroma run did not answer on {self.url} in {timeout:.0f} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    if not CHROMA.is_file():
        pytest.skip(f"no `chroma` command beside {sys.executable}: chromadb's server CLI is not installed")
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "data")
    try:
        server.start()
    except RuntimeError as exc:
        pytest.skip(f"the Chroma server could not start on 127.0.0.1: {exc}")
    yield server
    server.stop()


def test_server_url_and_collection_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert chroma_server("http://127.0.0.1:8123") == ("127.0.0.1", 8123, False)
    assert chroma_server("https://chroma.lab.org") == ("chroma.lab.org", 443, True)
    for bad in ("127.0.0.1:8000", "ftp://x:1", "http://:80", "http://h:notaport", "http://h:1/some/path"):
        with pytest.raises(KnowledgeBaseError, match="METALLMIX_CHROMA must be"):
            chroma_server(bad)
    a, b = server_collection(tmp_path / "a"), server_collection(tmp_path / "b")
    assert a != b and a.startswith(f"{COLLECTION}-") and server_collection(tmp_path / "a") == a
    monkeypatch.setenv("METALLMIX_CHROMA_COLLECTION", "lab-kb")
    assert server_collection(tmp_path / "a") == "lab-kb"


def test_without_the_setting_the_index_stays_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METALLMIX_CHROMA", raising=False)
    kb = KnowledgeBase(tmp_path, embedder=HashEmbedder())
    assert kb.chroma_url is None and kb.collection_name == COLLECTION
    kb.append(make(2))
    assert (tmp_path / "chroma" / "chroma.sqlite3").is_file()
    monkeypatch.setenv("METALLMIX_CHROMA", "http://127.0.0.1:1")
    assert KnowledgeBase(tmp_path, chroma_url="").chroma_url is None  # "" forces the local index


def test_index_search_and_rebuild_on_the_server(tmp_path: Path, chroma: ChromaServer) -> None:
    kb = KnowledgeBase(tmp_path / "one", embedder=HashEmbedder(), chroma_url=chroma.url)
    recs = make(3)
    other = recs[2].model_copy(update={"dataset": recs[2].dataset.model_copy(
        update={"name": "skin", "meta": recs[2].dataset.meta.model_copy(update={"modality": "dermoscopy", "body_part": "skin"})})})
    assert kb.append(recs[:2] + [other]) == 3
    assert not (tmp_path / "one" / "chroma").exists()  # nothing local: the index is on the server
    assert kb.collection().count() == 3
    top, _ = kb.search("dermoscopy skin", k=1)[0]
    assert top.id == other.id
    # A second knowledge base on the same server has its own collection.
    kb2 = KnowledgeBase(tmp_path / "two", embedder=HashEmbedder(), chroma_url=chroma.url)
    kb2.append(make(5)[3:])
    assert kb2.collection_name != kb.collection_name
    assert (kb.collection().count(), kb2.collection().count()) == (3, 2)
    # Rebuild drops only this knowledge base's collection and refills it from the JSONL.
    kb.collection().upsert(ids=["orphan"], documents=["nothing"], metadatas=[{"dataset": "x"}])
    rebuilt = KnowledgeBase(tmp_path / "one", embedder=HashEmbedder(), chroma_url=chroma.url)
    assert rebuilt.rebuild_index() == 3
    assert rebuilt.collection().count() == 3 and kb2.collection().count() == 2
    # `kb` held the collection that was dropped: its next search reopens the rebuilt one.
    assert kb.search("dermoscopy skin", k=1)[0][0].id == other.id
    # Records appended by a JSONL-only writer (a sweep worker) reach the server's index on the next search.
    KnowledgeBase(tmp_path / "one", index=False).append(make(7)[5:])
    assert len(kb.search("ultrasound", k=10)) == 5


def test_cli_kb_rebuild_uses_the_server(tmp_path: Path, chroma: ChromaServer) -> None:
    kb = KnowledgeBase(tmp_path, index=False)
    kb.append(make(4))
    env = {**os.environ, "METALLMIX_CHROMA": chroma.url, "METALLMIX_CHROMA_COLLECTION": "cli-test-kb"}
    out = subprocess.run([sys.executable, "-m", "agent.cli", "--kb-dir", str(tmp_path), "kb", "rebuild"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "4 records" in out.stdout and chroma.url in out.stdout
    assert not (tmp_path / "chroma").exists()
    import chromadb

    host, port, _ = chroma_server(chroma.url)
    assert chromadb.HttpClient(host=host, port=port).get_collection("cli-test-kb").count() == 4


@pytest.mark.parametrize("when", ["open", "append", "search", "sync", "rebuild"])
def test_server_stopped_mid_use_says_what_to_do_and_loses_nothing(
        tmp_path: Path, chroma: ChromaServer, when: str) -> None:
    """Fault: the Chroma server stops while a knowledge base uses it. Each call says the server is
    down and how to go on (start it, or unset METALLMIX_CHROMA); the JSONL keeps every record,
    and once the server is back the index catches up."""
    kb = KnowledgeBase(tmp_path, embedder=HashEmbedder(), chroma_url=chroma.url)
    kb.append(make(3))
    assert len(kb.search("ultrasound", k=10)) == 3
    if when == "open":
        kb = KnowledgeBase(tmp_path, embedder=HashEmbedder(), chroma_url=chroma.url)
    chroma.stop()
    count("faults injected: Chroma server stopped mid-use")
    try:
        if when == "append":  # the record is written to the JSONL; indexing it fails with a warning
            assert kb.append(make(4)[3:]) == 1
            with pytest.raises(KnowledgeBaseError) as err:
                kb.search("ultrasound", k=10)
        else:
            call = {"open": kb.collection, "search": lambda: kb.search("ultrasound", k=10),
                    "sync": kb.sync_index, "rebuild": kb.rebuild_index}[when]
            with pytest.raises(KnowledgeBaseError) as err:
                call()
        message = str(err.value)
        assert chroma.url in message and "Start the server" in message and "unset METALLMIX_CHROMA" in message
        want = 4 if when == "append" else 3
        assert len(KnowledgeBase(tmp_path, index=False).records()) == want
    finally:
        chroma.start()
    count("records checked after a Chroma server stop", want)
    assert len(kb.search("ultrasound", k=10)) == want  # the server is back: the same object recovers
    count("records lost after a Chroma server stop", want - len(kb.records()))


def test_a_server_that_never_ran_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    kb = KnowledgeBase(tmp_path, embedder=HashEmbedder(), chroma_url=url)
    assert kb.append(make(2)) == 2  # the JSONL takes the records whatever the index does
    with pytest.raises(KnowledgeBaseError, match="Start the server"):
        kb.search("ultrasound")
    count("faults injected: Chroma server never started")
    assert len(kb.records()) == 2
    shutil.rmtree(tmp_path)
