"""Library functions behind the CLI: one per command, no click in here."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import db, devices, fsnames, hooks, logs, modelstore, voices
from daemon import doctor as doctor_mod
from daemon.config import Config, ConfigError, explain, read_raw, with_device
from daemon.config import find as find_config
from daemon.config import load as load_config
from daemon.config import reload as config_reload
from daemon.doctor import Finding
from daemon.errors import CacheMiss, DiarizationError, ModelError, NodeInUse, SetupError, UserError
from daemon.executor import run_metrics
from daemon.hooks import DeliveryRecord
from daemon.intake import Intake, hash_file
from daemon.jobrun import run_pipeline, speakers_of_file, spool_path
from daemon.jobs import Enqueued, JobOptions, JobRecord, JobStatus, Requeued, iso
from daemon.nodes import DAEMON_KEY, HOST, PLAN_KEY, heartbeat_limit, node_clash
from daemon.pipeline import facts, spool
from daemon.pipeline.diarize import WEIGHTS_ID
from daemon.pipeline.outputs import remove_stale_temps, rename_speakers, write_outputs
from daemon.pool import WorkerPool
from daemon.profiles import models_in_use
from daemon.publish import (
    cue_rules,
    matches_of,
    matches_record,
    output_place,
    voice_matches,
    write_job_outputs,
)
from daemon.rows import TERMINAL
from daemon.scheduler import Scheduler, Summary
from daemon.signals import Notifier, StopSignals
from daemon.store import Store, open_store, utcnow
from daemon.voices import MainSpeaker, Voice
from daemon.warm import WarmModels

if TYPE_CHECKING:
    from daemon.metrics import Metrics
from daemon.workers import owner_id

log = logging.getLogger(__name__)


def db_upgrade(config: Config) -> str | None:
    engine = db.make_engine(config.database.url)
    try:
        return db.upgrade(engine)
    finally:
        engine.dispose()


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
    pool = WorkerPool(config=config, owner_prefix=owner_id(config.daemon.node))
    sched = Scheduler(config, store, _intake(config, store), pool, device=device)
    if any(store.announce.kinds(event) for event in hooks.EVENTS):
        from daemon.delivery import Deliverer

        sched.deliverer = Deliverer(
            config.hooks, store.outbox, f"{owner_id(config.daemon.node)}:hooks", store.now
        )
    return sched


def run_once(config: Config) -> Summary:
    """Burst mode: rescan the watched folders, process everything pending, return."""
    device = devices.select(config.compute.device, config.models.diarization_runtime)
    store = open_store(config, migrate=True)
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


def run_forever(config: Config, notifier: Notifier | None = None) -> None:
    """The daemon in the foreground until SIGTERM, SIGINT or SIGQUIT (a second one: stop at
    once); SIGHUP reloads the config.  Ends with :class:`UserError` when its database file was
    deleted or replaced under it (systemd then restarts it).

    Under systemd (Type=notify) it reports READY=1 once the database is migrated and the models
    are verified, STATUS= with the queue and plan, and WATCHDOG=1 while the scheduler ticks.
    """
    notify = notifier or Notifier()
    with StopSignals() as stop:
        store = _open_when_reachable(config, stop, notify)
        if store is None:
            return
        _check_node_free(config, store)
        watch = db.DatabaseWatch(config.database.url)
        device = devices.select(config.compute.device, config.models.diarization_runtime)
        models = prepare_models(config)
        # the intake measures each new file (facts.measure): its VAD loads now, not in the
        # first file's scheduler tick (not in a thread: an early exit while its native code
        # loads would abort the process)
        facts.warm()
        sched = _scheduler(config, store, device)
        try:
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
                    "node": config.daemon.node,
                    "found_at_start": seen,
                    "models": models,
                },
            )
            print(
                f"transcribd: watching {', '.join(map(str, config.watch.folders))}; "
                f"transcripts go to {config.output.dir}",
                flush=True,
            )
            notify.ready(sched.describe())
            problem = _serve(sched, watch, stop, notify)
        finally:
            notify.stopping(f"stopping: running jobs get {config.daemon.stop_seconds:g} s")
            sched.intake.stop()
            clean = sched.stop(config.daemon.stop_seconds, urgent=stop.urgent.is_set)
            log.info(
                "stopped" if clean else "stopped; unfinished jobs were released and resume later",
                extra={"clean": clean},
            )
            notify.close()
            if sched.metrics is not None:
                sched.metrics.close()
            store.close()
    if problem is not None:
        raise UserError(f"{problem}; stopped (a restart begins on a fresh database)")


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


def _open_when_reachable(config: Config, stop: StopSignals, notify: Notifier) -> Store | None:
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


def _check_node_free(config: Config, store: Store) -> None:
    """Refuse to start under a node name that a daemon on another machine uses now (their
    jobs would be judged by each other's process tables)."""
    since = store.now() - timedelta(seconds=heartbeat_limit(config))
    clash = node_clash(config.daemon.node, store.results.get_state(DAEMON_KEY), since, HOST)
    if clash is not None:
        raise NodeInUse(clash)


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


@dataclass(frozen=True)
class JobView:
    job: JobRecord
    elapsed: float | None
    eta: float | None
    hooks: list[DeliveryRecord] = dataclasses.field(default_factory=list)
    """The announcements of the job's ends (hook commands, webhook) and how they went."""

    def as_dict(self) -> dict[str, Any]:
        extra = {"elapsed": self.elapsed, "eta": self.eta}
        return {**self.job.as_dict(), **extra, "hooks": [d.as_dict() for d in self.hooks]}


def view(job: JobRecord, now: datetime) -> JobView:
    """Elapsed and ETA (pure): ETA extrapolates the running job's progress rate."""
    if job.started_at is None:
        return JobView(job, None, None)
    end = job.finished_at if job.status in TERMINAL else now
    elapsed = max(0.0, ((end or now) - job.started_at).total_seconds())
    eta = None
    if job.status is JobStatus.RUNNING and job.progress >= 0.02:
        eta = elapsed * (1 - job.progress) / job.progress
    return JobView(job, round(elapsed, 1), None if eta is None else round(eta, 1))


@dataclass(frozen=True)
class NodeView:
    """A daemon that has used this database, from its heartbeat and published plan."""

    node: str
    alive: bool
    heartbeat_at: datetime
    host: str | None
    pid: int | None
    plan: dict[str, Any] | None
    plan_at: datetime | None
    missing_folders: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "alive": self.alive,
            "heartbeat_at": iso(self.heartbeat_at),
            "host": self.host,
            "pid": self.pid,
            "plan": self.plan,
            "plan_at": iso(self.plan_at),
            "missing_folders": self.missing_folders,
        }


def node_views(
    beats: dict[str, tuple[Any, datetime]],
    plans: dict[str, tuple[Any, datetime]],
    now: datetime,
    config: Config,
) -> list[NodeView]:
    """Each node's state from the heartbeats and plans the nodes published (pure)."""
    out = []
    for node, (beat, at) in sorted(beats.items()):
        plan, plan_at = plans.get(node, (None, None))
        alive = (now - at).total_seconds() <= heartbeat_limit(config)
        out.append(
            NodeView(
                node=node,
                alive=alive,
                heartbeat_at=at,
                host=beat.get("host"),
                pid=beat.get("pid"),
                plan=plan,
                plan_at=plan_at,
                missing_folders=list(beat.get("missing_folders", [])) if alive else [],
            )
        )
    return out


@dataclass(frozen=True)
class StatusReport:
    jobs: list[JobView]
    plan: dict[str, Any] | None
    """The plan this node's daemon last published (profile, workers, threads, reason)."""
    plan_at: datetime | None
    daemon: str
    """Whether this node's daemon uses this database: one line."""
    missing_folders: list[str]
    """Watched folders this node's running daemon cannot find."""
    nodes: list[NodeView] = dataclasses.field(default_factory=list)
    """Every node that has used this database."""
    node: str = ""
    """This machine's node name."""

    @property
    def fleet(self) -> bool:
        """Whether nodes other than this one use the database (then each is shown)."""
        return any(n.node != self.node for n in self.nodes)


def daemon_line(nodes: list[NodeView], config: Config) -> str:
    """Whether this node's daemon uses this database, from the nodes' heartbeats, in one
    line (pure)."""
    where = db.printable_url(config.database.url)
    here = next((n for n in nodes if n.node == config.daemon.node), None)
    if here is None and nodes:  # an admin's machine looking at a fleet's database
        others = f"{len(nodes)} other node(s) use this database"
        return f"daemon: none on this node ({config.daemon.node}); {others}"
    if here is None:
        return f"daemon: none has used this database yet ({where})"
    who = f"pid {here.pid} on {here.host}"
    if here.alive:
        return f"daemon: running ({who})"
    return (
        f"daemon: not running on this database ({where}); last seen "
        f"{here.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC ({who})"
    )


def status(config: Config, job_id: int | None = None) -> StatusReport:
    with closing(open_store(config)) as store:
        now = store.now()
        nodes = _nodes(store, now, config)
        line = daemon_line(nodes, config)
        here = next((n for n in nodes if n.node == config.daemon.node), None)
        plan, plan_at = (here.plan, here.plan_at) if here else (None, None)
        missing = here.missing_folders if here else []
        if job_id is not None:
            job = store.get(job_id)
            if job is None:
                raise UserError(f"no job #{job_id}")
            records = [job]
        else:
            records = store.jobs()
        announced = store.outbox.of_jobs(job_id)
        jobs = [dataclasses.replace(view(j, now), hooks=announced.get(j.id, [])) for j in records]
        return StatusReport(jobs, plan, plan_at, line, missing, nodes, config.daemon.node)


def nodes(config: Config) -> list[NodeView]:
    """Every node that has used the database: alive or when last seen, host, pid, plan."""
    with closing(open_store(config)) as store:
        return _nodes(store, store.now(), config)


def _nodes(store: Store, now: datetime, config: Config) -> list[NodeView]:
    results = store.results
    return node_views(results.states(DAEMON_KEY), results.states(PLAN_KEY), now, config)


def add(config: Config, paths: list[Path], options: JobOptions) -> list[tuple[Path, Enqueued]]:
    """Enqueue files (folders are walked) now, without waiting for them to settle."""
    with closing(open_store(config)) as store:
        intake = _intake(config, store)
        files: list[Path] = []
        for p in paths:
            if p.is_dir():
                files.extend(sorted(f for f in p.rglob("*") if f.is_file() and intake.accepts(f)))
            elif p.is_file():
                files.append(p)
            else:
                raise UserError(f"not a file or folder: {p}")
        out = []
        now = store.now()
        for f in files:
            try:
                sha, size = hash_file(f)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise UserError(f"cannot read {fsnames.printable(f)}: {reason}") from None
            measured = facts.measure(f)
            out.append(
                (
                    f,
                    store.enqueue(
                        str(f.absolute()),
                        sha,
                        size,
                        now,
                        options=options,
                        duration=measured.duration,
                        facts=measured,
                    ),
                )
            )
        return out


def requeue(config: Config, job_ids: list[int], failed: bool) -> Requeued:
    with closing(open_store(config)) as store:
        return store.requeue(job_ids, failed=failed, now=store.now())


@dataclass(frozen=True)
class Transcribed:
    """What ``transcribd transcribe`` wrote, and where its time went."""

    outputs: list[str]
    metrics: dict[str, Any]
    """As a job's (``status --json``): wall, CPU and audio seconds, and the steps."""


def transcribe(
    config: Config,
    path: Path,
    out_dir: Path | None,
    options: JobOptions,
    on_progress: Callable[[float], None] = lambda _f: None,
) -> Transcribed:
    """One file through the same pipeline and cache, no daemon and no job row; ``on_progress``
    gets the fraction done."""
    if not path.is_file():
        raise UserError(f"not a file: {path}")
    started, cpu = time.perf_counter(), time.process_time()
    if options.device is not None:
        config = with_device(config, options.device)
    with closing(open_store(config)) as store:
        sha, _size = hash_file(path)
        models = WarmModels.of(config)
        result = run_pipeline(config, models, store, path, sha, options, on_progress=on_progress)
        on_progress(1.0)
        spool.drop(spool_path(config, sha))
        folder, name = output_place(config, path)
        matches = voice_matches(config, store, path, result.voiceprints)
        with result.stats.timed("outputs"):
            written = write_outputs(
                rename_speakers(result.transcript, voices.names(matches, {})),
                out_dir or folder,
                path.stem,
                config.output.formats,
                others=store.outputs_in_use(),
                timestamps_in_txt=config.output.timestamps_in_txt,
                cues=cue_rules(config),
                name=name,
            )
    return Transcribed(written, run_metrics(result, started, cpu, models.device.name))


@dataclass(frozen=True)
class SpeakersReport:
    """A done job's speakers after ``transcribd speakers``."""

    speakers: list[tuple[str, str, float | None]]
    """(diarized label, name in the outputs, distance to the enrolled voice that named it)."""
    written: list[str]
    """The outputs rewritten (none when nothing changed)."""


def speakers(
    config: Config, job_id: int, renames: dict[str, str], relabel: bool = False
) -> SpeakersReport:
    """A done job's speakers; with ``renames`` (users may name a speaker by its diarized
    label or its current name) or ``relabel`` (match its voices against the enrolled ones
    again), its outputs are rewritten from the cache (no model runs)."""
    with closing(open_store(config)) as store:
        job = store.get(job_id)
        if job is None:
            raise UserError(f"no job #{job_id}")
        if job.status is not JobStatus.DONE:
            raise UserError(f"job #{job_id} is {job.status.value}; only a done job has speakers")
        try:
            result = run_pipeline(
                config,
                WarmModels.of(config),
                store,
                Path(job.path),
                job.sha256,
                job.options,
                previous_profile=job.profile,
                cache_only=True,
            )
        except CacheMiss as exc:
            raise UserError(f"job #{job_id}: {exc}; requeue it instead") from None
        manual = job.options.names
        matches = matches_of(job.metrics)
        if relabel:
            matches = voice_matches(config, store, Path(job.path), result.voiceprints)
        names = voices.names(matches, manual)
        current = {names.get(label, label): label for label in result.transcript.speakers}
        for old, new in renames.items():
            label = current.get(old) or (old if old in result.transcript.speakers else None)
            if label is None:
                known = ", ".join(sorted(current)) or "none"
                raise UserError(f"job #{job_id} has no speaker '{old}' (speakers: {known})")
            manual[label] = new
        names = voices.names(matches, manual)
        distances = {m.speaker: m.distance for m in matches if names.get(m.speaker) == m.name}
        listed = [
            (label, names.get(label, label), distances.get(label))
            for label in result.transcript.speakers
        ]
        if not renames and not relabel:
            return SpeakersReport(listed, [])
        written = write_job_outputs(config, store, job, result.transcript, names)
        options = dataclasses.replace(job.options, speaker_names=tuple(manual.items()))
        metrics = {**job.metrics, "voices": matches_record(matches)}
        store.rewrite_done(job_id, store.now(), options, written, metrics)
        return SpeakersReport(listed, written)


@dataclass(frozen=True)
class Enrolled:
    voice: Voice
    files: list[tuple[str, MainSpeaker]]
    """Each recording enrolled now, with its main speaker."""


ENROLL_LEAST_SECONDS = 3.0
"""Less speech than this gives no usable voice print."""


def enroll(
    config: Config,
    name: str,
    paths: list[Path],
    on_file: Callable[[Path], None] = lambda _p: None,
) -> Enrolled:
    """Enroll ``name``'s voice from recordings of them speaking (alone, or at least most of
    the time): each recording's main speaker's voice print, averaged by speech time (with the
    voice's earlier enrollment, if any).  Diarization goes through the step cache."""
    problem = voices.name_problem(name)
    if problem:
        raise UserError(problem)
    for path in paths:
        if not path.is_file():
            raise UserError(f"not a file: {fsnames.printable(path)}")
    models = WarmModels.of(config)
    with closing(open_store(config)) as store:
        prints: list[tuple[tuple[float, ...], float, str]] = []
        mains: list[tuple[str, MainSpeaker]] = []
        for path in paths:
            on_file(path)
            shown = fsnames.printable(path)
            sha, _size = hash_file(path)
            found = speakers_of_file(config, models, store, path, sha)
            speech: dict[str, float] = {}
            for t in found.turns:
                speech[t.speaker] = speech.get(t.speaker, 0.0) + (t.end - t.start)
            main = voices.main_speaker(speech, found.centroids)
            if main is None or main.seconds < ENROLL_LEAST_SECONDS:
                had = 0.0 if main is None else main.seconds
                raise UserError(
                    f"{shown}: too little speech to enroll a voice ({had:.1f} s; at least "
                    f"{ENROLL_LEAST_SECONDS:.0f} s, better 30 s or more)"
                )
            if main.share < voices.ENROLL_SHARE:
                raise UserError(
                    f"{shown}: {main.others + 1} voices speak about equally (the main one has "
                    f"{main.share:.0%} of the speech); give a recording of {name} alone"
                )
            prints.append((found.centroids[main.label], main.seconds, shown))
            mains.append((shown, main))
        voice = voices.enrolled(name, prints, WEIGHTS_ID, store.voices.get(name))
        store.voices.put(voice, store.now())
    return Enrolled(voice, mains)


def list_voices(config: Config) -> list[tuple[Voice, bool]]:
    """The enrolled voices, each with whether it can name speakers (made with the weights in
    use)."""
    with closing(open_store(config)) as store:
        return [(v, v.weights == WEIGHTS_ID) for v in store.voices.all()]


def remove_voice(config: Config, name: str) -> None:
    with closing(open_store(config)) as store:
        if not store.voices.remove(name):
            known = ", ".join(v.name for v in store.voices.all()) or "none"
            raise UserError(f"no voice '{name}' (enrolled: {known})")


@dataclass(frozen=True)
class ConfigReport:
    source: str
    """Which file was read and why, or why none was."""
    values: list[tuple[str, Any, str]]
    """(section.key, effective value, "file" or "default")."""


def show_config(config: Config, given: Path | None) -> ConfigReport:
    """The effective configuration and where each value came from (``transcribd config``)."""
    path, why = find_config(given)
    raw = read_raw(path) if path is not None else {}
    source = f"{path} ({why})" if path is not None else why
    return ConfigReport(source, explain(config, raw))


def doctor(config: Config) -> list[Finding]:
    return doctor_mod.run(config)
