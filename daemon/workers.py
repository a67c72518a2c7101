"""The worker process: its body takes claimed jobs from the pool one at a time, runs each with
its warm models (:class:`daemon.executor.Executor`) and reports back."""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import db, logs
from daemon.config import Config
from daemon.devices import Device
from daemon.executor import Executor
from daemon.jobs import JobRecord
from daemon.store import open_store
from daemon.sysload import bound_malloc_arenas
from daemon.threads import worker_env
from daemon.warm import WarmModels

log = logging.getLogger(__name__)


def owner_id(node: str) -> str:
    """The lease owner prefix of this daemon: ``node:pid:thread``."""
    return f"{node}:{os.getpid()}:{threading.get_ident()}"


@dataclass(frozen=True)
class Task:
    job: JobRecord
    owner: str
    workers: int = 1
    """How many workers the plan runs (recorded with the job's metrics)."""
    place: tuple[Path, str] | None = None
    """Where its transcripts go (:func:`daemon.publish.output_place` of the daemon's config in
    force: a reloaded one reaches the workers this way)."""


@dataclass(frozen=True)
class Report:
    worker: int
    job_id: int
    ok: bool
    pid: int
    model_loads: int
    failure: str = ""
    """The reason class of the attempt's error (:func:`daemon.retry.failure_class`), if any."""


def worker_main(
    index: int,
    config: Config,
    device: Device,
    threads: int,
    tasks: Any,
    reports: Any,
    cancel: Any,
    parent: int,
    log_level: Any = None,
) -> None:
    """Body of a worker process (spawned: nothing heavy is inherited) granted ``threads``,
    its models on ``device`` (the pool derives it from the daemon's: no worker asks the
    runtimes again).

    A running job stops at its next checkpoint (and releases its lease) when the pool's
    ``cancel`` event is set, when this process gets SIGTERM (systemd may signal the whole
    group), or when the parent has died (its replacement will claim the job).  ``parent`` is
    passed in: asking os.getppid() here would be too late if the parent died meanwhile.
    ``log_level``: the level the pool sets on a reload (:meth:`WorkerPool.set_log_level`),
    followed from here on.
    """
    terminated = threading.Event()
    # what a terminal sends the whole group (Ctrl-C, Ctrl-\, hang-up) and the user signals
    # are the parent's to handle: it stops or reloads us
    for ignored in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(ignored, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _s, _f: terminated.set())

    def should_stop() -> bool:
        return terminated.is_set() or cancel.is_set() or os.getppid() != parent

    os.environ.update(worker_env(threads))  # before CTranslate2 and torch load
    bound_malloc_arenas()
    logs.setup(os.environ.get("TRANSCRIBD_LOG_LEVEL", "INFO"), log_level)
    store = open_store(config, migrate=False)
    models = WarmModels.of(config, device)
    while True:
        try:
            task: Task | None = tasks.get(timeout=5.0)
        except queue.Empty:
            if os.getppid() != parent or terminated.is_set():
                return  # orphaned, or told to go: nothing more will come
            continue
        if task is None:  # stopped, retired, or idle for model_idle_seconds (the pool decides)
            return
        log.debug(
            "worker %d runs job %s",
            index,
            task.job.id,
            extra={"worker": index, "job": task.job.id, "pid": os.getpid()},
        )
        executor = Executor(config, store, models, task.owner, threads, should_stop=should_stop)
        ok = _execute(executor, task)
        reports.put(Report(index, task.job.id, ok, os.getpid(), models.loads, executor.failure))


def _execute(executor: Executor, task: Task) -> bool:
    """Run the task's job to its final state; True when it ended done.  The database going
    away as the job ends stops no worker: the job's lease lapses and it resumes."""
    try:
        return executor.execute(task.job, workers=task.workers, place=task.place)
    except Exception as exc:  # the database went away while the job ended
        if not db.unreachable(exc):
            raise
        log.warning(
            "job %s: the database is unreachable (%s); its lease lapses and it resumes",
            task.job.id,
            type(exc).__name__,
            extra={"job": task.job.id},
        )
        executor.failure = "database"
        return False
