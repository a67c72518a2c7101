"""Warm worker processes (spawn): each loads its models once and keeps them between jobs.

The scheduler claims a job in the database and hands the row to an idle worker with the number
of threads the plan grants it.  The worker runs the whole job (heartbeats, outputs, final state)
through :class:`daemon.workers.Executor` and reports back.  Thread pools (OpenMP, MKL, OpenBLAS,
CTranslate2, torch) are sized before any numeric library loads, so workers x threads never
exceeds the cores granted.  A worker unloads models it has not used for ``model_idle_seconds``;
a worker that dies is replaced, and its job comes back when its lease expires.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from daemon.config import Config
from daemon.store import JobRecord

log = logging.getLogger(__name__)

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class Task:
    job: JobRecord
    owner: str
    threads: int
    workers: int = 1


@dataclass(frozen=True)
class Report:
    worker: int
    job_id: int
    ok: bool
    pid: int
    model_loads: int


def _worker_main(index: int, config: Config, threads: int, tasks: Any, reports: Any) -> None:
    """Body of a worker process (spawned: nothing heavy is inherited)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    for name in THREAD_ENV:
        os.environ[name] = str(threads)
    from daemon import logs
    from daemon.app import open_store, warm_models
    from daemon.workers import Executor

    logs.setup(os.environ.get("TRANSCRIBD_LOG_LEVEL", "INFO"))
    store = open_store(config, migrate=False)
    models = warm_models(config)
    models.cpu_threads = threads
    idle_since = time.monotonic()
    while True:
        try:
            task: Task | None = tasks.get(timeout=5.0)
        except queue.Empty:
            if models.loaded and time.monotonic() - idle_since > config.daemon.model_idle_seconds:
                models.unload()
                log.info("worker %d unloaded idle models", index, extra={"worker": index})
            continue
        if task is None:
            return
        executor = Executor(config=config, store=store, models=models, owner=task.owner)
        ok = executor.execute(task.job, threads=task.threads, workers=task.workers)
        idle_since = time.monotonic()
        reports.put(
            Report(
                worker=index, job_id=task.job.id, ok=ok, pid=os.getpid(), model_loads=models.loads
            )
        )


@dataclass
class _Slot:
    process: BaseProcess
    tasks: Any
    threads: int
    busy: int | None = None


@dataclass
class WorkerPool:
    config: Config
    owner_prefix: str
    _ctx: Any = field(default_factory=lambda: mp.get_context("spawn"))
    _slots: list[_Slot] = field(default_factory=list)
    _reports: Any = None

    def __post_init__(self) -> None:
        self._reports = self._ctx.Queue()

    # ------------------------------------------------------------------ sizing
    def resize(self, workers: int, threads: int) -> None:
        """Aim for ``workers`` processes of ``threads`` threads; idle misfits are replaced."""
        for slot in list(self._slots):
            if slot.busy is None and (slot.threads != threads or len(self._slots) > workers):
                self._retire(slot)
        while len(self._slots) < workers:
            self._spawn(threads)

    def _spawn(self, threads: int) -> None:
        self._slots.append(self._new_slot(len(self._slots), threads))

    def _new_slot(self, index: int, threads: int) -> _Slot:
        tasks = self._ctx.Queue()
        proc = self._ctx.Process(
            target=_worker_main,
            args=(index, self.config, threads, tasks, self._reports),
            name=f"transcribd-worker-{index}",
            daemon=True,
        )
        proc.start()
        log.info(
            "started worker %d with %d thread(s)",
            index,
            threads,
            extra={"worker": index, "pid": proc.pid, "threads": threads},
        )
        return _Slot(process=proc, tasks=tasks, threads=threads)

    def _retire(self, slot: _Slot) -> None:
        slot.tasks.put(None)
        slot.process.join(timeout=10)
        if slot.process.is_alive():
            slot.process.terminate()
        self._slots.remove(slot)

    # ------------------------------------------------------------------ work
    def idle_slots(self) -> list[int]:
        return [i for i, s in enumerate(self._slots) if s.busy is None and s.process.is_alive()]

    @property
    def busy(self) -> int:
        return sum(1 for s in self._slots if s.busy is not None)

    def owner(self, index: int) -> str:
        """The lease owner of slot ``index`` (claims are made in its name)."""
        return f"{self.owner_prefix}:w{index}:{self._slots[index].process.pid}"

    def submit(self, job: JobRecord, index: int, workers: int = 1) -> None:
        slot = self._slots[index]
        slot.busy = job.id
        slot.tasks.put(
            Task(job=job, owner=self.owner(index), threads=slot.threads, workers=workers)
        )

    def collect(self, timeout: float = 0.0) -> list[Report]:
        """Reports of finished jobs (waiting up to ``timeout`` for the first); dead workers
        are replaced, and their jobs come back when the leases expire."""
        out: list[Report] = []
        try:
            first = (
                self._reports.get(timeout=timeout) if timeout > 0 else self._reports.get_nowait()
            )
            out.append(first)
            while True:
                out.append(self._reports.get_nowait())
        except queue.Empty:
            pass
        for report in out:
            for slot in self._slots:
                if slot.busy == report.job_id:
                    slot.busy = None
        for slot in list(self._slots):
            if not slot.process.is_alive():
                log.error(
                    "worker process %s died (exit %s); replacing it",
                    slot.process.pid,
                    slot.process.exitcode,
                    extra={"job": slot.busy},
                )
                index = self._slots.index(slot)
                self._slots[index] = self._new_slot(index, slot.threads)
        return out

    def stop(self, timeout: float) -> bool:
        """Ask every worker to finish its job and exit; True if all did within ``timeout``."""
        for slot in self._slots:
            slot.tasks.put(None)
        deadline = time.monotonic() + timeout
        for slot in self._slots:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
        clean = all(not s.process.is_alive() for s in self._slots)
        for slot in self._slots:
            if slot.process.is_alive():
                slot.process.terminate()
        self._slots.clear()
        return clean
