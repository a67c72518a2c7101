"""The daemon itself: ``transcribd run`` (in the foreground until a signal, reloading on
SIGHUP, under systemd's watchdog) and burst mode (``run --once``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from daemon import db, devices, hooks, logs, modelstore
from daemon.config import Config, ConfigError
from daemon.config import load as load_config
from daemon.config import reload as config_reload
from daemon.errors import DiarizationError, ModelError, NodeInUse, SetupError, UserError
from daemon.intake import Intake
from daemon.jobs import JobStatus
from daemon.nodes import (
    DAEMON_KEY,
    HOST,
    candidate_names,
    heartbeat,
    heartbeat_limit,
    holder,
    node_clash,
)
from daemon.pipeline import facts, spool
from daemon.pipeline.outputs import remove_stale_temps
from daemon.pool import WorkerPool
from daemon.profiles import models_in_use
from daemon.scheduler import Scheduler, Summary
from daemon.signals import Notifier, StopSignals
from daemon.store import Store, open_store, utcnow
from daemon.sysload import pid_alive
from daemon.workers import owner_id

if TYPE_CHECKING:
    from daemon.metrics import Metrics

log = logging.getLogger(__name__)


class Service(Protocol):
    """Something the daemon runs beside its work (a face: the HTTP server)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


Face = Callable[[Config, Store], Service]
"""Makes a :class:`Service` on the daemon's config and store."""


def _intake(config: Config, store: Store) -> Intake:
    return Intake(config, store, measure=facts.measure)


def _scheduler(config: Config, store: Store, device: devices.Device) -> Scheduler:
    for folder in (*config.watch.folders, config.output.dir, config.daemon.work_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    # what a killed daemon left half-written: temp outputs, spools of jobs no longer running
    live = {  # a running attempt's spool, or the one a queued job's next attempt resumes with
        spool.job_key(j.id, j.attempts + (j.status is JobStatus.QUEUED))
        for j in store.jobs([JobStatus.QUEUED, JobStatus.RUNNING])
    }
    removed = remove_stale_temps(config.output.dir)
    removed += spool.remove_stale(config.daemon.work_dir, live)
    if removed:
        log.info("removed %d unfinished temporary file(s)", removed, extra={"removed": removed})
    pool = WorkerPool(config=config, owner_prefix=owner_id(store.node), parent_device=device)
    sched = Scheduler(config, store, _intake(config, store), pool, device=device)
    if any(store.announce.kinds(event) for event in hooks.EVENTS):
        from daemon.delivery import Deliverer

        sched.deliverer = Deliverer(
            config.hooks, store.outbox, f"{owner_id(store.node)}:hooks", store.now
        )
    return sched


def run_once(config: Config) -> Summary:
    """Burst mode: rescan the watched folders, process everything pending, return."""
    device = devices.select(config.compute.device, config.models.diarization_runtime)
    store = open_store(config, migrate=True)
    claim_node(config, store)
    sched = _scheduler(config, store, device)
    with StopSignals() as stop:
        try:
            return sched.run_once(stop.graceful.is_set)
        finally:
            sched.stop(config.daemon.stop_seconds, urgent=stop.urgent.is_set)
            store.close()


def prepare_models(config: Config) -> list[str]:
    """Find, join and verify every model the daemon may need, before it says it is ready
    (a missing or corrupt model is a start-up error, not a failed job per file)."""
    ready = [
        modelstore.resolve(n, config.models.cache_dir, config.models.allow_download).name
        for n in models_in_use(config)
    ]
    if config.diarization.enabled:
        from daemon.pipeline.diarize import verify_weights

        try:
            verify_weights()
        except DiarizationError as exc:
            raise ModelError(str(exc)) from None
        ready.append("diarization")
    return ready


def run_forever(
    config: Config, notifier: Notifier | None = None, faces: Sequence[Face] = ()
) -> None:
    """The daemon in the foreground until SIGTERM, SIGINT or SIGQUIT (a second one: stop at
    once); SIGHUP reloads the config.  Ends with :class:`UserError` when its database file was
    deleted or replaced under it (systemd then restarts it).  ``faces`` (the HTTP server, when
    ``[http] listen`` is set) start once the scheduler runs and stop before it does.

    Under systemd (Type=notify) it reports READY=1 once the database is migrated and the models
    are verified, STATUS= with the queue and plan, and WATCHDOG=1 while the scheduler ticks.
    """
    notify = notifier or Notifier()
    with StopSignals() as stop:
        # a setup error (no such device, a missing model) is decided before the database is
        # touched: one line, and nothing created or migrated
        device = devices.select(config.compute.device, config.models.diarization_runtime)
        models = prepare_models(config)
        store = open_when_reachable(config, stop, notify)
        if store is None:
            return
        claim_node(config, store)
        watch = db.DatabaseWatch(config.database.url)
        # the intake measures each new file (facts.measure): its VAD loads now, not in the
        # first file's scheduler tick (not in a thread: an early exit while its native code
        # loads would abort the process)
        facts.warm()
        sched = _scheduler(config, store, device)
        started: list[Service] = []
        try:
            _start(sched, models)
            for face in faces:
                started.append(face(config, store))
                started[-1].start()
            notify.ready(sched.describe())
            problem = _serve(sched, watch, stop, notify)
        finally:
            for service in reversed(started):
                service.stop()
            _stop(sched, stop, notify)
            store.close()
    if problem is not None:
        raise UserError(f"{problem}; stopped (a restart begins on a fresh database)")


def _start(sched: Scheduler, models: list[str]) -> None:
    """Metrics, the watched folders (and the files already in them), then the ticks."""
    config, store = sched.config, sched.store
    if config.metrics.listen:
        sched.metrics = _metrics(config, store, sched)
        if sched.deliverer is not None:
            sched.deliverer.on_outcome = sched.metrics.hook_outcome
    sched.intake.start()
    seen = sched.intake.rescan(utcnow())
    sched.start()
    log.info(
        "transcribd running",
        extra={
            "inbox": [str(f) for f in config.watch.folders],
            "outputs": str(config.output.dir),
            "database": db.printable_url(config.database.url),
            "node": store.node,
            "found_at_start": seen,
            "models": models,
        },
    )
    print(
        f"transcribd: watching {', '.join(map(str, config.watch.folders))}; "
        f"transcripts go to {config.output.dir}",
        flush=True,
    )


def _stop(sched: Scheduler, stop: StopSignals, notify: Notifier) -> None:
    """Intake first, then the running jobs get ``stop_seconds`` to reach a checkpoint."""
    seconds = sched.config.daemon.stop_seconds
    notify.stopping(f"stopping: running jobs get {seconds:g} s")
    sched.intake.stop()
    clean = sched.stop(seconds, urgent=stop.urgent.is_set)
    log.info(
        "stopped" if clean else "stopped; unfinished jobs were released and resume later",
        extra={"clean": clean},
    )
    notify.close()
    if sched.metrics is not None:
        sched.metrics.close()


def _metrics(config: Config, store: Store, sched: Scheduler) -> Metrics:
    """Prometheus metrics on ``[metrics] listen`` (a port that cannot be bound stops the start
    with one line: a service whose metrics silently vanish is worse)."""
    from daemon.metrics import Metrics, PoolView

    metrics = Metrics(store, store.now, PoolView(sched.pool.size, sched.pool.threads))
    try:
        metrics.serve(config.metrics.listen)
    except OSError as exc:
        raise SetupError(f"metrics.listen {config.metrics.listen}: {exc.strerror or exc}") from None
    return metrics


RETRY_MAX_SECONDS = 60.0


def open_when_reachable(config: Config, stop: StopSignals, notify: Notifier) -> Store | None:
    """The store, once its database can be reached: a server that is down at start (a
    reboot of the whole fleet) is waited for, with growing pauses, instead of failing and
    being restarted in a loop.  None when asked to stop meanwhile."""
    pause = 1.0
    while True:
        try:
            return open_store(config, migrate=True)
        except Exception as exc:
            if not db.unreachable(exc):
                raise
            reason = db.reason(exc)
            log.error(
                "cannot reach the database (%s); trying again in %.0f s",
                reason,
                pause,
                extra={"database": db.printable_url(config.database.url)},
            )
            # tell systemd that start-up goes on (its start timeout would kill us otherwise)
            notify.send(
                f"EXTEND_TIMEOUT_USEC={int((pause + 30) * 1e6)}\n"
                f"STATUS=waiting for the database: {reason}"
            )
        if stop.graceful.wait(pause):
            return None
        pause = min(RETRY_MAX_SECONDS, pause * 2)


NODE_TAKING_TRIES = 5
"""Looks at the nodes' heartbeats before giving up on taking a name (each lost race looks
again: other daemons starting at the same moment took the names seen free)."""


def claim_node(config: Config, store: Store) -> str:
    """Take the node name this daemon runs as, and make ``store`` that node's: ``[daemon]
    node`` (default: the host name) when no running daemon holds it, else the first of
    ``node-2``, ``node-3`` … that none holds (a second daemon on this host is a node of its
    own in ``status`` and ``nodes``).  The name is taken with the daemon's first heartbeat,
    by a statement that changes nothing if another daemon took it meanwhile (the names are
    then looked at again).  :class:`NodeInUse` when a running daemon on another machine
    holds the configured name itself (their jobs would be judged by each other's process
    tables)."""
    base, limit = config.daemon.node, heartbeat_limit(config)
    beat = heartbeat(os.getpid())
    for _ in range(NODE_TAKING_TRIES):
        now, beats = store.now(), store.results.states(DAEMON_KEY)
        for name in candidate_names(base):
            stored = beats.get(name)
            held_by = holder(stored, now, limit, pid_alive)
            if held_by is None:
                seen = stored[1] if stored is not None else None
                if not store.results.take_state(name, DAEMON_KEY, beat, now, seen):
                    break  # another daemon took it first: look again
                store.node = store.results.node = name
                if name != base:
                    log.warning(
                        "node '%s' is in use by a running daemon on this machine; this one "
                        "runs as '%s'",
                        base,
                        name,
                        extra={"node": name},
                    )
                return name
            if name == base and held_by != HOST:
                since = now - timedelta(seconds=limit)
                raise NodeInUse(node_clash(base, stored, since, HOST) or f"node '{base}' in use")
        else:
            raise SetupError(f"node '{base}': every name up to '{name}' is in use")
    raise SetupError(f"node '{base}': other daemons kept taking the free names; start again")


def _serve(
    sched: Scheduler, watch: db.DatabaseWatch, stop: StopSignals, notify: Notifier
) -> str | None:
    """The main loop (systemd's watchdog and status, reloads); returns why the daemon must
    stop, or None when it was asked to."""
    # a hung tick must show: ping only while ticks keep completing
    stale = max(60.0, 10 * sched.config.daemon.tick_seconds)
    every = min(1.0, notify.watchdog_seconds / 3) if notify.watchdog_seconds else 1.0
    while not stop.graceful.wait(every):
        problem = watch.problem()
        if problem is not None:
            log.error("%s; stopping", problem, extra={"database": str(watch.path)})
            return problem
        if sched.clash is not None:
            raise NodeInUse(sched.clash)
        if stop.reload.is_set():
            stop.reload.clear()
            reload_config(sched)
        if sched.tick_age() < stale:
            notify.watchdog()
        notify.status(sched.describe())
    return None


def reload_config(sched: Scheduler) -> None:
    """SIGHUP: read the config file again and apply what can change while running (watched
    folders, per-folder options, the log level); name in one line what needs a restart."""
    current = sched.config
    if current.source is None:
        log.info("reload: no config file (built-in defaults); nothing to reload")
        return
    try:
        new = load_config(current.source)
    except ConfigError as exc:
        log.error("reload: config not reloaded, the running one stays: %s", exc)
        return
    change = config_reload(current, new)
    try:
        sched.reconfigure(change.config)
    except Exception as exc:  # a new folder that cannot be watched: keep what ran
        log.error("reload: not applied, the running config stays: %s", exc)
        sched.reconfigure(current)
        return
    if change.config.daemon.log_level != current.daemon.log_level:
        logs.set_level(change.config.daemon.log_level or "INFO")
        sched.pool.set_log_level(change.config.daemon.log_level)  # the workers too
    log.info(
        "reload: %s",
        ", ".join(change.applied) or "nothing that can change while running changed",
        extra={"applied": list(change.applied)},
    )
    if change.need_restart:
        log.warning(
            "reload: changed, but applied only after a restart: %s",
            ", ".join(change.need_restart),
            extra={"need_restart": list(change.need_restart)},
        )
