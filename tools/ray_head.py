"""A throwaway Ray head on 127.0.0.1, for the tests and benchmarks (and for trying `--ray` locally).

    with local_head(num_cpus=2) as address:       # "127.0.0.1:<port>"
        run_sweep_ray(items, kb, address=address)

It is `ray start --head` with its own temp dir and free ports, so it never meets another
cluster on the machine; on exit it stops only its own processes (those whose command line
names its temp dir or port, and their children), never `ray stop`, which stops every
cluster of the user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


def _stop(marks: list[bytes]) -> None:
    procs = processes()
    mine = {p for p, (cmd, _) in procs.items() if p != os.getpid() and any(m in cmd for m in marks)}
    grown = True
    while grown:
        kids = {p for p, (_, ppid) in procs.items() if ppid in mine and p not in mine}
        mine |= kids
        grown = bool(kids)
    for pid in mine:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


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
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"`ray start --head` failed (exit {done.returncode}): {done.stderr[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()  # this process's connection, if it made one
        _stop(marks)
        shutil.rmtree(temp, ignore_errors=True)


__all__ = ["free_port", "local_head", "processes", "workers_running"]
