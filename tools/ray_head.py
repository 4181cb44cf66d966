"""A throwaway Ray head on 127.0.0.1, for the tests and benchmarks (and for trying `--ray` locally).

    with local_head(num_cpus=2) as address:       # "127.0.0.1:<port>"
        run_sweep_ray(items, kb, address=address)

It is `ray start --head` with its own temp dir and free ports, so it never meets another
cluster on the machine. `ray start` runs in a session of its own (start_new_session), and every
process of the head inherits that session: the GCS, the raylet, its DashboardAgent and
RuntimeEnvAgent, the workers (which take process groups of their own, not sessions). On exit it
kills that whole session, plus any process whose command line names its temp dir or port (and
their children), until none is left; never `ray stop`, which stops every cluster of the user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes() -> dict[int, tuple[bytes, int]]:
    """Every process: pid -> (command line, parent pid)."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes()
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            out[int(d)] = (cmd, ppid)
    return out


def workers_running(function: str) -> set[int]:
    """Pids of the Ray workers running a task of this function now (a worker's title is ray::<function>)."""
    return {p for p, (cmd, _) in processes().items() if cmd.startswith(b"ray::" + function.encode())}


# The session of each head started here, by address: kept after the head stops, for `head_processes`.
_sessions: dict[str, int] = {}


def _live_in_session(sid: int) -> set[int]:
    """Pids of the processes in session `sid`, zombies (dead, waiting to be reaped) left out."""
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[3]) == sid:
                out.add(int(d))
    return out


def head_processes(address: str) -> set[int]:
    """Pids of the live processes of the head `local_head` started at `address` (empty once it stopped)."""
    sid = _sessions.get(address)
    return set() if sid is None else _live_in_session(sid)


def _marked(marks: list[bytes]) -> set[int]:
    """Processes whose command line names the head's temp dir or port, and their children."""
    procs = processes()
    mine = {p for p, (cmd, _) in procs.items() if p != os.getpid() and any(m in cmd for m in marks)}
    grown = True
    while grown:
        kids = {p for p, (_, ppid) in procs.items() if ppid in mine and p not in mine}
        mine |= kids
        grown = bool(kids)
    return mine


def _stop(sid: int, marks: list[bytes], timeout: float = 30.0) -> None:
    """SIGKILL the head's session and marked processes, again until none is left (a dying raylet's
    agents may start one more process) or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        mine = (_live_in_session(sid) | _marked(marks)) - {os.getpid()}
        if not mine or time.monotonic() > deadline:
            return
        for pid in mine:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


@contextmanager
def local_head(num_cpus: int = 2, num_gpus: int = 0) -> Iterator[str]:
    """Start a Ray head on 127.0.0.1 with `num_cpus` CPUs and `num_gpus` GPUs; yields its address; stops it on exit.

    Raises:
        RuntimeError: `ray start` failed (its output says why).
    """
    port = free_port()
    temp = tempfile.mkdtemp(prefix="rayh", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("METALLMIX_RAY", None)
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
           f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}", "--include-dashboard=false", "--disable-usage-stats",
           f"--temp-dir={temp}", f"--ray-client-server-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-port={free_port()}"]
    marks = [temp.encode(), f":{port}\x00".encode()]
    address = f"127.0.0.1:{port}"
    # A session of its own: every daemon `ray start` leaves behind is in it, whatever its parent.
    start = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    _sessions[address] = start.pid
    try:
        try:
            _, err = start.communicate(timeout=180)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError("`ray start --head` did not finish in 180 s") from exc
        if start.returncode != 0:
            raise RuntimeError(f"`ray start --head` failed (exit {start.returncode}): {err[-2000:]}")
        yield address
    finally:
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()  # this process's connection, if it made one
        _stop(start.pid, marks)
        start.wait()  # reaped (killed above if it was still running)
        shutil.rmtree(temp, ignore_errors=True)


__all__ = ["free_port", "head_processes", "local_head", "processes", "workers_running"]
