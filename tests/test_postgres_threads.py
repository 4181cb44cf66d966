"""Chat threads in a real PostgreSQL (Debian's package, `make postgres`) started here on 127.0.0.1:
the checkpointer and the follow-up table in Postgres, a restart of the app and of the server, and
Postgres down at the app's start.

initdb/pg_ctl refuse to run as root, and CI runs as root: then they run as the `postgres` system
user (runuser) in a temporary folder it owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import app as app_module
from agent.chat.transcript import ThreadStoreError, Transcript, is_postgres_url, open_checkpointer, redact
from tests.fakes import TASK, free_port, last, make_adapter, texts, tiny_dataset
from tests.reliability import count


def _bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:`port`, trust auth, data in a temporary folder."""

    def __init__(self, bindir: Path) -> None:
        self.bindir, self.port = bindir, free_port()
        self.root = Path(tempfile.mkdtemp(prefix="metallmix-pg-"))  # /tmp: the postgres user can reach it
        self.data = self.root / "data"
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql://postgres:not-a-secret@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        out = subprocess.run([*self.as_postgres, *args], capture_output=True, text=True, timeout=timeout)
        if out.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed ({out.returncode}): {(out.stderr or out.stdout)[-1500:]}")

    def init(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bindir = _bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make postgres` installs "
                    "Debian's package (as root)")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.skip("running as root, which PostgreSQL refuses, and there is no runuser to run it as `postgres`")
    try:
        server = Postgres(bindir)
    except (KeyError, LookupError) as exc:  # shutil.chown: no postgres user or group
        pytest.skip(f"running as root, which PostgreSQL refuses, and there is no `postgres` system user: {exc}")
    try:
        server.init()
        server.start()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        server.remove()
        pytest.skip(f"a PostgreSQL cluster could not start on 127.0.0.1: {exc}")
    yield server
    server.remove()


def test_urls_are_told_apart_and_redacted() -> None:
    assert is_postgres_url("postgresql://u@h/db") and is_postgres_url("postgres://u:p@h:5/db")
    assert not is_postgres_url(Path("postgresql://x")) and not is_postgres_url("threads.sqlite")
    assert redact("postgresql://alice:s3cret@db:5432/threads") == "postgresql://alice:***@db:5432/threads"
    assert redact("postgresql://alice@db/threads") == "postgresql://alice@db/threads"
    settings = app_module.AppSettings(db_path="postgresql://u:p@127.0.0.1:5432/x", secret="s")
    assert settings.db_path == "postgresql://u:p@127.0.0.1:5432/x"  # a URL is kept as given, not made a Path
    assert app_module.AppSettings(db_path="~/t.sqlite", secret="s").db_path == Path.home() / "t.sqlite"


def test_transcript_follows_the_checkpointer_into_postgres(postgres: Postgres) -> None:
    t = Transcript(postgres.url)
    t.add("pg-t1", "cp-1", "why frozen?", {"text": "cheap", "n": 1})
    t.add("pg-t2", None, "other", {"text": "x"})
    t.add("pg-t1", "cp-2", "and lr?", {"text": "1e-3"})
    t.close()
    again = Transcript(postgres.url)  # a new process's view: the table is there, nothing repeated
    assert [e["question"] for e in again.entries("pg-t1")] == ["why frozen?", "and lr?"]
    first = again.entries("pg-t1")[0]
    assert isinstance(first.pop("created"), float)  # when it was asked (the conversation list's time)
    assert first == {"anchor": "cp-1", "question": "why frozen?", "answer": {"text": "cheap", "n": 1}}
    again.close()


def test_history_and_pending_approval_survive_app_and_server_restarts(tmp_path: Path, postgres: Postgres) -> None:
    dataset = tiny_dataset(tmp_path / "data")
    saver, pool = open_checkpointer(postgres.url)
    first, _ = make_adapter(tmp_path, checkpointer=saver, transcript=Transcript(postgres.url))
    last(first.submit("pg-restart", TASK, dataset=dataset))
    last(first.submit("pg-restart", "epochs=3"))
    before = last(first.submit("pg-restart", "why frozen?"))
    pool.close()

    saver, pool = open_checkpointer(postgres.url)  # the app restarted
    second, jobs = make_adapter(tmp_path, checkpointer=saver, transcript=Transcript(postgres.url))
    assert texts(second.view("pg-restart")) == texts(before)
    postgres.stop()  # the server restarts under a running app: its pool reconnects
    postgres.start()
    after = second.view("pg-restart")
    assert texts(after) == texts(before)
    assert after.offer is not None and after.offer["config"]["epochs"] == 3
    last(second.approve("pg-restart"))
    assert len(jobs.calls) == 1
    pool.close()


def _checkpoints(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]


@pytest.mark.parametrize("fault", ["stopped", "wrong port", "no such database"])
def test_postgres_down_at_start_is_one_clear_message_and_nothing_is_made(
        tmp_path: Path, postgres: Postgres, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        fault: str) -> None:
    """Fault: the app starts with METALLMIX_DB on a Postgres that does not answer. It stops with one
    message (which database, why, and the ways out: start it, fix the URL, or unset METALLMIX_DB for
    SQLite), with the password hidden, before it makes any folder or loads any model; the threads
    already in Postgres are all there once it is back."""
    monkeypatch.setenv("METALLMIX_UI_SECRET", "x")
    saver, pool = open_checkpointer(postgres.url)
    pool.close()
    before = _checkpoints(postgres.url)
    url = {"stopped": postgres.url, "wrong port": postgres.url.replace(f":{postgres.port}/", f":{free_port()}/"),
           "no such database": postgres.url.rsplit("/", 1)[0] + "/no_such_db"}[fault]
    monkeypatch.setenv("METALLMIX_DB", url)
    if fault == "stopped":
        postgres.stop()
    count("faults injected: Postgres down at app start")
    try:
        code = app_module.main(["--port", str(free_port()), "--uploads", str(tmp_path / "uploads"),
                                "--plots", str(tmp_path / "plots"), "--kb-dir", str(tmp_path / "kb")])
    finally:
        if fault == "stopped":
            postgres.start()
    err = capsys.readouterr().err
    assert code == 3
    assert "ThreadStoreError" in err and redact(url) in err and "not-a-secret" not in err
    assert "Start PostgreSQL" in err and "unset METALLMIX_DB" in err
    assert not any((tmp_path / d).exists() for d in ("uploads", "plots", "kb"))  # stopped before making anything
    assert _checkpoints(postgres.url) == before
    count("checkpoints lost after Postgres down at start", before - _checkpoints(postgres.url))


def test_a_missing_driver_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_psycopg(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("psycopg"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(ThreadStoreError, match=r"\.\[postgres\]"):
        open_checkpointer("postgresql://u:pw@127.0.0.1:1/x")
    count("faults injected: Postgres driver missing")
