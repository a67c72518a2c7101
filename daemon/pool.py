"""Warm worker processes (spawn): each loads its models once and keeps them between jobs.

The scheduler claims a job in the database and hands the row to an idle worker; each worker is
started with the number of threads the plan grants it (a worker whose grant no longer fits is
replaced when idle), so workers x threads never exceeds the cores granted.  The worker runs the
whole job (:func:`daemon.workers.worker_main`) and reports back.  A worker that dies is replaced,
and the scheduler is told of the job it held.  A worker idle for ``[daemon] model_idle_seconds``
exits (:meth:`WorkerPool.retire_idle`): an emptied interpreter still holds torch, lightning and
the runtimes (0.7-0.9 GB), so an idle daemon keeps only its main process; the next job starts a
worker again and loads its models once.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable, Collection
from contextlib import suppress
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import RawValue
from pathlib import Path
from typing import Any

from daemon import devices, logs
from daemon.config import Config, with_device
from daemon.jobs import JobRecord, Lease
from daemon.workers import Report, Task, worker_main

log = logging.getLogger(__name__)


def owner_gone(owner: str, nodes: str | Collection[str], alive: Callable[[int], bool]) -> bool:
    """True when a lease owner is a worker of one of ``nodes`` (this machine's: a name, or the
    names its daemons run as) whose process no longer exists.

    Owners look like ``node:daemon-pid:thread:wN:worker-pid``; any other shape, or another
    machine's worker, is not judged here (its lease expires instead).
    """
    here = {nodes} if isinstance(nodes, str) else set(nodes)
    parts = owner.rsplit(":", 4)
    if len(parts) != 5 or parts[0] not in here or not parts[3].startswith("w"):
        return False
    try:
        return not alive(int(parts[4]))
    except ValueError:
        return False


@dataclass
class _Slot:
    process: BaseProcess
    tasks: Any
    threads: int
    device: str = "cpu"
    """Where its models run: "cpu" or "cuda:N"."""
    busy: int | None = None
    """The id of the job it runs."""
    attempt: int = 0
    """The attempt of that job it runs."""
    owner: str = ""
    """The lease owner that job was claimed under."""
    misfit_since: float | None = None
    """When (monotonic) the plan stopped wanting this worker as it is (None: it fits)."""
    idle_since: float = field(default_factory=time.monotonic)
    """When (monotonic) it last ended a job, or was started."""


def worker_device(parent: devices.Device, slot: str) -> devices.Device:
    """The device of a worker on ``slot`` ("cpu", "cuda:N") of a daemon whose models run on
    ``parent`` (pure): the CPU for a CPU worker; for a GPU worker, the parent's GPU facts (the
    diarization networks there too, or not) with that GPU's index.  The runtimes were asked
    once, by the daemon: a worker never probes them again."""
    kind, index = devices.parse(slot)
    if kind == "cpu":
        return devices.Device("cpu", reason="a CPU worker")
    gpu = index or 0
    if parent.kind != "cuda" or gpu not in parent.usable:
        raise ValueError(f"no worker on {slot}: the daemon's models run on {parent.name}")
    return replace(parent, index=gpu, usable=(gpu,))


RETIRE_AFTER_SECONDS = 60.0
"""How long an idle worker the plan no longer wants stays warm before it is stopped: a short
burst of load elsewhere must not cost a model reload (about 5 s) when it passes."""


def keep_or_retire(
    fits: bool, misfit_since: float | None, now: float, grace: float = RETIRE_AFTER_SECONDS
) -> tuple[bool, float | None]:
    """(retire it now?, its new ``misfit_since``) for an idle worker (pure): one that fits is
    kept; one that does not is retired once it has not fitted for ``grace`` seconds."""
    if fits:
        return False, None
    since = now if misfit_since is None else misfit_since
    return now - since >= grace, since


def idle_expired(idle_since: float, now: float, idle_seconds: float) -> bool:
    """Whether an idle worker has waited ``idle_seconds`` (``[daemon] model_idle_seconds``)
    for a job and exits (pure)."""
    return now - idle_since >= idle_seconds


LEAVE_SECONDS = 30.0
"""How long a worker told to exit may take before it is killed."""


@dataclass
class WorkerPool:
    config: Config
    owner_prefix: str
    parent_device: devices.Device = devices.CPU
    """The daemon's resolved device (:func:`daemon.devices.select`, as the daemon resolved it):
    each worker's own is derived from it (:func:`worker_device`)."""
    _ctx: Any = field(default_factory=lambda: mp.get_context("spawn"))
    _slots: list[_Slot] = field(default_factory=list)
    _reports: Any = None
    _cancel: Any = None
    _inbox: queue.Queue[Report] = field(default_factory=queue.Queue)
    _pump: threading.Thread | None = None
    _pumping: threading.Event = field(default_factory=threading.Event)
    _allowed: tuple[int, set[str]] = (1 << 30, set())
    """(CPU workers, GPU devices) the plan in force lets work (see :meth:`resize`)."""
    _log_level: Any = field(default_factory=lambda: RawValue("i", 0))
    """The level every worker logs at once set (0: the one each started with), shared with
    them (:func:`daemon.logs.follow_level`)."""
    _leaving: list[tuple[BaseProcess, float]] = field(default_factory=list)
    """Workers told to exit after their idle time, and when (monotonic), until they have."""

    def __post_init__(self) -> None:
        self._reports = self._ctx.Queue()
        self._cancel = self._ctx.Event()

    def start_pump(self, on_report: Callable[[], object]) -> None:
        """Daemon mode: move reports from the workers as they arrive and call ``on_report()``
        after each, so that the next job is dispatched at once rather than at the next tick.
        :meth:`collect` then reads what the pump moved."""
        if self._pump is not None:
            return

        def pump() -> None:
            while self._pumping.is_set():
                try:
                    report = self._reports.get(timeout=0.5)
                except queue.Empty:
                    continue
                except (EOFError, OSError):  # the queue was closed under us
                    return
                self._inbox.put(report)
                try:
                    on_report()
                except Exception:
                    log.exception("dispatch after a worker's report failed")

        self._pumping.set()
        self._pump = threading.Thread(target=pump, name="reports", daemon=True)
        self._pump.start()

    def stop_pump(self) -> None:
        if self._pump is not None:
            self._pumping.clear()
            self._pump.join()
            self._pump = None

    def set_log_level(self, level: str) -> None:
        """Make every worker, running or started later, log at ``level`` (a reloaded
        ``daemon.log_level``; "" is INFO); each takes it up within a second, mid-job too."""
        self._log_level.value = logs.level_number(level)

    # ------------------------------------------------------------------ sizing
    def resize(
        self,
        workers: int,
        threads: int,
        gpus: tuple[int, ...] = (),
        gpu_threads: int = 1,
        now: float | None = None,
    ) -> None:
        """Aim for ``workers`` CPU processes of ``threads`` threads, and one process of
        ``gpu_threads`` on each GPU of ``gpus``.  Idle workers the plan no longer wants are
        replaced once it has not wanted them for a while (:func:`keep_or_retire`); meanwhile
        :meth:`idle_slots` gives no more of them work than the plan allows."""
        now = time.monotonic() if now is None else now
        wanted = {f"cuda:{i}" for i in gpus}
        surplus = self._count("cpu") - workers
        for slot in list(self._slots):
            if slot.busy is not None:
                continue
            if slot.device == "cpu":
                fits = slot.threads == threads and surplus <= 0
            else:
                fits = slot.device in wanted and slot.threads == gpu_threads
            retire, slot.misfit_since = keep_or_retire(fits, slot.misfit_since, now)
            if retire:
                self._retire(slot, now)
                surplus -= slot.device == "cpu"
        while self._count("cpu") < workers:
            self._spawn(threads, "cpu")
        for device in sorted(wanted - {s.device for s in self._slots}):
            self._spawn(gpu_threads, device)
        self._allowed = (workers, wanted)

    def _count(self, device: str) -> int:
        return sum(1 for s in self._slots if s.device == device)

    def _spawn(self, threads: int, device: str) -> None:
        self._slots.append(self._new_slot(len(self._slots), threads, device))

    def _new_slot(self, index: int, threads: int, device: str = "cpu") -> _Slot:
        tasks = self._ctx.Queue()
        config = with_device(self.config, device)
        models_device = worker_device(self.parent_device, device)
        proc = self._ctx.Process(
            target=worker_main,
            args=(
                index,
                config,
                models_device,
                threads,
                tasks,
                self._reports,
                self._cancel,
                os.getpid(),
                self._log_level,
            ),
            name=f"transcribd-worker-{index}",
            daemon=True,
        )
        proc.start()
        log.info(
            "started worker %d with %d thread(s) on %s",
            index,
            threads,
            device,
            extra={"worker": index, "pid": proc.pid, "threads": threads, "device": device},
        )
        return _Slot(process=proc, tasks=tasks, threads=threads, device=device)

    def _retire(self, slot: _Slot, now: float) -> None:
        """Tell an idle worker to exit and let it go: reaped by :meth:`_reap` at a later tick
        (killed if it overstays), never waited for under the tick."""
        slot.tasks.put(None)
        self._slots.remove(slot)
        self._leaving.append((slot.process, now))

    def retire_idle(self, idle_seconds: float, now: float | None = None) -> int:
        """Tell the workers idle for ``idle_seconds`` to exit, their memory given back to the
        system (a job waiting later starts a worker again, see :meth:`resize`); returns how
        many.  Workers told before are reaped, or killed after :data:`LEAVE_SECONDS`."""
        now = time.monotonic() if now is None else now
        self._reap(now)
        leaving = [
            s
            for s in self._slots
            if s.busy is None and idle_expired(s.idle_since, now, idle_seconds)
        ]
        for slot in leaving:
            index = self._slots.index(slot)
            self._retire(slot, now)
            log.info(
                "worker %d exits after %.0f s idle",
                index,
                now - slot.idle_since,
                extra={"worker": index, "pid": slot.process.pid, "device": slot.device},
            )
        return len(leaving)

    def _reap(self, now: float, until: float | None = None) -> None:
        """Reap the workers that exited (``is_alive`` waits for them: no zombie); kill those
        that overstayed :data:`LEAVE_SECONDS` (a worker's SIGTERM handler only raises its
        flag), or, when the pool stops, those still there at ``until`` (monotonic).  One
        that outlives even SIGKILL's short wait is kept, to be reaped at a later tick."""
        still = []
        for process, told in self._leaving:
            if until is not None:
                process.join(timeout=max(0.0, until - time.monotonic()))
            if not process.is_alive():
                continue
            if until is not None or now - told >= LEAVE_SECONDS:
                process.kill()
                process.join(timeout=1.0)
                if not process.is_alive():
                    continue
            still.append((process, told))
        self._leaving = still

    # ------------------------------------------------------------------ work
    def idle_slots(self) -> list[int]:
        """Idle workers that may take a job under the plan in force (see :meth:`resize`): no
        more CPU workers busy than it allows, the workers that fit it first, GPU workers
        only on its GPUs."""
        workers, wanted = self._allowed
        idle = [i for i, s in enumerate(self._slots) if s.busy is None and s.process.is_alive()]
        idle.sort(key=lambda i: self._slots[i].misfit_since is not None)
        room = workers - sum(1 for s in self._slots if s.device == "cpu" and s.busy is not None)
        out = []
        for index in idle:
            device = self._slots[index].device
            if device != "cpu":
                if device in wanted:
                    out.append(index)
            elif room > 0:
                out.append(index)
                room -= 1
        return sorted(out)

    def size(self) -> int:
        """Worker processes."""
        return len(self._slots)

    def threads(self) -> int:
        """Threads of the newest CPU worker (the grant in force)."""
        cpu = [s for s in self._slots if s.device == "cpu"]
        return cpu[-1].threads if cpu else 0

    def device(self, index: int) -> str:
        """Where slot ``index``'s models run ("cpu", "cuda:N")."""
        return self._slots[index].device

    def gpus(self) -> tuple[int, ...]:
        """The GPUs that have a worker now."""
        on_gpus = [devices.parse(s.device)[1] for s in self._slots if s.device != "cpu"]
        return tuple(sorted(index or 0 for index in on_gpus))

    @property
    def busy(self) -> int:
        return sum(1 for s in self._slots if s.busy is not None)

    def owner(self, index: int) -> str:
        """The lease owner of slot ``index`` (claims are made in its name): the daemon's
        node:pid:thread, the slot, and the worker's pid (see :func:`owner_gone`)."""
        return f"{self.owner_prefix}:w{index}:{self._slots[index].process.pid}"

    def _lease(self, index: int) -> Lease:
        slot = self._slots[index]
        return Lease(slot.busy or 0, slot.owner or self.owner(index), slot.attempt)

    def owners(self) -> list[str]:
        """The lease owners of the workers' jobs (a slot that moved down the list when
        another was retired keeps the owner its job was claimed under)."""
        return [s.owner or self.owner(i) for i, s in enumerate(self._slots)]

    def submit(
        self,
        job: JobRecord,
        index: int,
        workers: int = 1,
        place: tuple[Path, str] | None = None,
    ) -> None:
        slot = self._slots[index]
        slot.busy, slot.attempt, slot.owner = (
            job.id,
            job.attempts,
            job.lease_owner or self.owner(index),
        )
        slot.tasks.put(Task(job=job, owner=slot.owner, workers=workers, place=place))

    def collect(
        self,
        timeout: float = 0.0,
        on_death: Callable[[Lease, int | None], None] = lambda _lease, _exit: None,
    ) -> list[Report]:
        """Reports of finished jobs (waiting up to ``timeout`` for the first).  A dead worker
        is replaced; ``on_death(lease, exitcode)`` is told of the job it held."""
        out = self._drain(timeout)
        for index, slot in enumerate(self._slots):
            if slot.process.is_alive():
                continue
            out += self._drain(0.0)  # it may have reported just before it ended
            log.error(
                "worker process %s died (exit %s); replacing it",
                slot.process.pid,
                slot.process.exitcode,
                extra={"job": slot.busy},
            )
            held = self._lease(index) if slot.busy is not None else None
            self._slots[index] = self._new_slot(index, slot.threads, slot.device)
            if held is not None:
                try:
                    on_death(held, slot.process.exitcode)
                except Exception:  # the database is down, say: its lease expires instead
                    log.exception("could not settle job %s of a dead worker", held.job_id)
        return out

    def _drain(self, timeout: float) -> list[Report]:
        out: list[Report] = []
        with suppress(queue.Empty):
            while True:
                out.append(self._inbox.get_nowait())
        # with the pump running, reports reach the inbox; else read the workers' queue
        source: Any = self._inbox if self._pump is not None else self._reports
        try:
            if not out:
                out.append(source.get(timeout=timeout) if timeout > 0 else source.get_nowait())
            while True:
                out.append(source.get_nowait())
        except queue.Empty:
            pass
        for report in out:
            for slot in self._slots:
                if slot.busy == report.job_id:
                    slot.busy, slot.owner = None, ""
                    slot.idle_since = time.monotonic()
        return out

    def stop(
        self,
        timeout: float,
        urgent: Callable[[], bool] = lambda: False,
        abandoned: Callable[[Lease], None] = lambda _lease: None,
    ) -> bool:
        """Stop every worker; True if all running jobs finished or checkpointed in time.

        Running jobs are asked to stop at their next checkpoint (a finished chunk or window
        stays cached) and release their leases; idle workers exit.  Workers still running
        after ``timeout`` seconds, or as soon as ``urgent()`` turns true (a second signal),
        are killed, and ``abandoned(lease)`` is called for each job they held so
        that its lease can be released at once.
        """
        self.stop_pump()
        self._cancel.set()
        for slot in self._slots:
            slot.tasks.put(None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not urgent():
            self._drain(0.1)
            if not any(s.process.is_alive() for s in self._slots):
                break
        self._drain(0.0)
        now = time.monotonic()
        self._reap(now, until=now if urgent() else max(now, deadline))
        clean = True
        for index, slot in enumerate(self._slots):
            if slot.process.is_alive():
                clean = False
                slot.process.kill()
                slot.process.join(timeout=10)
                if slot.busy is not None:
                    abandoned(self._lease(index))
        self._slots.clear()
        return clean
