"""The only module that calls psutil: what the machine is doing, as a plain LoadSnapshot."""

from __future__ import annotations

import functools
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from daemon.devices import GpuLoad


@dataclass(frozen=True)
class LoadSnapshot:
    taken_at: datetime
    cores: int
    """Cores this process may run on (affinity), not the machine's total."""
    other_cores: float
    """Cores' worth of CPU used by other programs since the previous snapshot."""
    available_ram: int
    total_ram: int
    gpus: tuple[GpuLoad, ...] = ()
    """The GPUs NVML sees, their memory and use (none without NVML or a GPU)."""


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def tree_rss(pid: int | None = None) -> int:
    """Resident memory of a process and its children, bytes."""
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return int(total)
    except psutil.Error:
        return 0


def peak_rss() -> int:
    """Peak resident memory of this process so far, bytes.

    Linux's VmHWM belongs to this address space; ``ru_maxrss`` would also carry a parent's peak
    across fork and exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


LOAD_WINDOW_SECONDS = 5.0
"""Shortest span other programs' CPU use is measured over."""


class LoadSampler:
    """Takes snapshots; "other programs' CPU" is measured between consecutive snapshots.

    ``gpus`` reads the GPUs' load (:func:`daemon.devices.gpu_loads` where the daemon may use
    a GPU; nothing is asked otherwise)."""

    def __init__(
        self,
        gpus: Callable[[], tuple[GpuLoad, ...]] = tuple,
        window: float = LOAD_WINDOW_SECONDS,
    ) -> None:
        self._gpus = gpus
        self._window = window
        self._lock = threading.Lock()
        self._last: tuple[float, float, float] | None = None  # (wall, busy, ours) seconds
        self._other = 0.0

    def _ours(self) -> float:
        try:
            proc = psutil.Process()
            t = proc.cpu_times()
            total = t.user + t.system + t.children_user + t.children_system
            for child in proc.children(recursive=True):
                try:
                    c = child.cpu_times()
                    total += c.user + c.system
                except psutil.Error:
                    continue
            return float(total)
        except psutil.Error:
            return 0.0

    def snapshot(self, now: datetime) -> LoadSnapshot:
        """The machine now; "other programs' CPU" is averaged over at least the sampler's
        window (:data:`LOAD_WINDOW_SECONDS`; ticks come right after one another when workers report:
        over a few milliseconds, one busy moment of another program looked like a core)."""
        times = psutil.cpu_times()
        busy = float(
            times.user
            + times.system
            + getattr(times, "nice", 0.0)
            + getattr(times, "irq", 0.0)
            + getattr(times, "softirq", 0.0)
        )
        wall = time.monotonic()
        with self._lock:
            last, other = self._last, self._other
            if last is None or wall - last[0] >= self._window:
                ours = self._ours()
                if last is not None:
                    other = max(0.0, ((busy - last[1]) - (ours - last[2])) / (wall - last[0]))
                else:  # first look: the load average stands in (it counts this daemon too)
                    other = min(os.getloadavg()[0], float(usable_cores()))
                self._last, self._other = (wall, busy, ours), other
        mem = psutil.virtual_memory()
        return LoadSnapshot(
            taken_at=now,
            cores=usable_cores(),
            other_cores=round(other, 2),
            available_ram=int(mem.available),
            total_ram=int(mem.total),
            gpus=self._gpus(),
        )


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def fs_type(path: Path) -> str:
    """The file system type ("ext4", "nfs4", "fuse.sshfs", ...) holding ``path`` ("" unknown)."""
    real = os.path.realpath(path)
    best, kind = "", ""
    try:
        partitions = psutil.disk_partitions(all=True)
    except (OSError, psutil.Error):
        return ""
    for part in partitions:
        mount = part.mountpoint.rstrip("/") or "/"
        inside = real == mount or real.startswith(mount + "/") or mount == "/"
        if inside and len(mount) >= len(best):
            best, kind = mount, part.fstype
    return kind


MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter number


def bound_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process and the workers it starts.

    glibc gives each thread that allocates its own arena (up to 8 per core), and freed memory
    stays in them: with the threads of CTranslate2, torch and pyannote that raises the peak
    RSS for no speed (bench/RESULTS.md).  True when the cap was set (glibc only)."""
    os.environ.setdefault("MALLOC_ARENA_MAX", str(arenas))  # inherited by spawned workers
    libc = _libc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, int(os.environ["MALLOC_ARENA_MAX"])))


def release_free_memory() -> None:
    """Give freed heap pages back to the system (glibc's malloc_trim), after each computed
    step: with fewer arenas, ASR and diarization buffers freed in one step otherwise stay
    resident, and the peak crept up with the file's length."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc() -> Any:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None
