"""How many CPU threads the embedded model generates with: the cores other processes leave free.

llama.cpp's OpenMP threads wait for each other between the ops of every token; a thread
sharing its core with a busy process (a training job, the sweep) stalls all the others.
So before every call ``_use_threads`` reads how busy this process's CPUs were, from
``/proc/stat``, since the previous call (``other_busy_cpus``) and leaves a core to each busy
one (``generation_threads``). bench/llm_threads.py measures the effect.

Used by the chat model in ``agent.llm_embedded``; ``agent.llm`` re-exports the public names.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

__all__ = ["generation_threads", "other_busy_cpus"]


_CpuReading = tuple[float, float, float]  # (wall s, busy s of our CPUs, this process's CPU s)
_LAST_CPU: _CpuReading | None = None
_CPU_LOCK = threading.Lock()


def _usable_cpus() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def _cpu_reading() -> _CpuReading | None:
    """A reading of /proc/stat for the CPUs this process may run on, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    cpus, busy = _usable_cpus(), 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        ticks = [int(x) for x in rest.split()]
        busy += sum(ticks[:8]) - ticks[3] - ticks[4]  # all but idle and iowait
    own = os.times()
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def other_busy_cpus() -> float | None:
    """CPUs' worth of work that other processes did since the previous call; None on the
    first call (it starts the interval: `_load_llama` makes it) or without /proc/stat."""
    global _LAST_CPU
    with _CPU_LOCK:
        now = _cpu_reading()
        last, _LAST_CPU = _LAST_CPU, now
    if now is None or last is None or now[0] <= last[0]:
        return None
    wall = now[0] - last[0]
    return max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / wall)


def generation_threads(n_max: int, other_busy: float | None, n_cpus: int) -> int:
    """Threads to generate with: at most ``n_max``, leaving a core to each busy one.

    A core counts as taken when other processes kept it at least 40% busy: a spinning
    thread that shares its core with a training job stalls the others at every op
    (bench/llm_threads.py, "short spin, all cores" beside a busy core).
    """
    if other_busy is None:
        return n_max
    return max(1, min(n_max, n_cpus - int(other_busy + 0.6)))


def _use_threads(llama: Any, n_threads: int | None) -> None:
    """Set the threads of ``llama``'s next call (hold its lock); ``n_threads`` as configured."""
    import llama_cpp

    n_max = n_threads or os.cpu_count() or 1
    n = generation_threads(n_max, other_busy_cpus(), len(_usable_cpus()))
    # The prompt is evaluated in batches, where waits are few: it keeps every thread.
    llama_cpp.llama_set_n_threads(llama.ctx, n, n_max)
