"""The planner (pure): which profile a job runs with, and how many workers of how many threads.

:func:`requested_profile` is what a job itself asks for; :func:`choose` decides the rest from a
load snapshot, the queue and the next file.  Both are functions of their inputs, time included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from daemon.devices import fits
from daemon.jobs import JobOptions
from daemon.sysload import LoadSnapshot

RAM_PER_WORKER = 1_500_000_000
"""Bytes one worker needs with its models loaded (the measured peak, rounded up)."""

GPU_MEMORY_PER_WORKER = 2_000_000_000
"""Bytes of GPU memory a GPU worker needs free before it is started (Whisper base or small in
float16 with a batch of windows, and the diarization networks; an estimate: no GPU has run
here, see README "Using a GPU")."""

GPU_WORKER_THREADS = 1
"""CPU threads of a GPU worker (decoding, VAD, fbank; the networks run on the GPU): taken
from the granted cores, so CPU and GPU workers together never exceed them."""

DEFAULT_PROFILE = "balanced"
"""What "auto" means where no planner runs (``transcribe``, a job run outside the scheduler)."""


def requested_profile(
    options: JobOptions, previous: str | None = None, original: str | None = None
) -> str | None:
    """The profile a job must run with, or None to leave it to the planner.

    In order: the lighter profile after running out of memory; one the job asks for (CLI or
    folder); its original's, for a duplicate (so it is served from the original's cached steps);
    the one it ran with before, for a requeued or resumed job.  "auto" asks for nothing.
    """
    for name in (options.oom_profile, options.profile, original, previous):
        if name and name != "auto":
            return name
    return None


def profile_to_run(requested: str | None, configured: str) -> str:
    """The profile name a job runs with outside the planner: its request, else the configured
    one, with "auto" meaning :data:`DEFAULT_PROFILE`."""
    name = requested or configured
    return DEFAULT_PROFILE if name == "auto" else name


@dataclass(frozen=True)
class QueueFacts:
    queued: int
    """Jobs waiting (this one included)."""
    queued_audio_seconds: float
    """Their audio, as far as known."""
    running: int = 0


@dataclass(frozen=True)
class FileFacts:
    duration: float
    """Seconds of audio (measured at intake, else estimated from the file's size)."""
    speech_share: float | None = None
    """Share of it that is speech (None: not measured)."""
    snr_db: float | None = None
    """Speech over noise, dB (None: not measured, or no speech heard)."""

    @property
    def speech_seconds(self) -> float:
        """Seconds of speech: what the pipeline's cost follows (all of it when unknown)."""
        share = 1.0 if self.speech_share is None else self.speech_share
        return self.duration * share


@dataclass(frozen=True)
class PlannerSettings:
    profile: str = "auto"
    """"auto" lets the planner choose; a profile name fixes it."""
    max_workers: int = 0
    """0: as many as the granted cores allow."""
    ram_per_worker: int = RAM_PER_WORKER
    backlog_fast_seconds: float = 3600.0
    """Queued speech beyond which everything goes through the fast profile."""
    quality_max_seconds: float = 1800.0
    """Most speech in a file the quality profile is chosen for automatically (its length where
    the speech share is unknown)."""
    gpu_memory_per_worker: int = GPU_MEMORY_PER_WORKER
    idle_other_cores: float = 0.3
    """Other programs using less CPU than this count as an idle machine."""
    quality_pays: bool = False
    """Whether an idle machine should spend its time on the quality profile: only when it runs
    another Whisper model than balanced (a larger one, given by the user).  With the bundled
    models it buys nothing measurable (bench/RESULTS.md, "Auto by file"): diarization DER
    -0.1 points [-1.2, +1.0] over 82 files, clean and noisy, at 2.5x balanced's diarization
    time."""


@dataclass(frozen=True)
class Plan:
    profile: str
    workers: int
    """CPU workers."""
    threads: int
    """Threads per CPU worker; workers x threads plus the GPU workers' threads never exceeds
    the granted cores."""
    reason: str
    gpus: tuple[int, ...] = ()
    """The GPUs that get a worker each (beside the CPU workers)."""
    gpu_threads: int = GPU_WORKER_THREADS


def gpu_slots(
    snapshot: LoadSnapshot, usable: Sequence[int], held: Sequence[int], need: int
) -> tuple[tuple[int, ...], list[str]]:
    """The usable GPUs that get a worker, and why any do not (pure).  A GPU keeps a worker it
    already has (its own models fill part of the memory); a new one needs ``need`` bytes
    free where NVML tells (a GPU NVML does not report is given its worker)."""
    seen = {g.index: g for g in snapshot.gpus}
    slots, notes = [], []
    for index in usable:
        gpu = seen.get(index)
        if index in held or gpu is None or gpu.memory_free >= need:
            slots.append(index)
        else:  # no figure in the text: a plan that changes with each tick would be logged
            notes.append(f"cuda:{index} has less than the {need / 1e9:.1f} GB free a worker needs")
    return tuple(slots), notes


def choose(
    snapshot: LoadSnapshot,
    queue: QueueFacts,
    file: FileFacts | None,
    settings: PlannerSettings,
    now: datetime,
    requested: str | None = None,
    usable_gpus: Sequence[int] = (),
    held_gpus: Sequence[int] = (),
    cpu_needed: bool = False,
) -> Plan:
    """Profile, worker count and threads for the next job, from load, queue and file (pure).

    Cores granted are those other programs leave free.  Each usable GPU with the memory for
    it (see :func:`gpu_slots`) gets a worker of :data:`GPU_WORKER_THREADS` thread(s), taken
    from the granted cores; the CPU workers share the rest: several only when several files
    wait, each with the remaining cores as threads.  Without a GPU worker there is always one
    CPU worker; with one, a CPU worker only when a core and the memory for it are left, or
    when a job must run on the CPU (``cpu_needed``: it asked for it, or ran out of GPU
    memory), which a GPU worker then makes room for.  ``max_workers`` caps them all.
    Profile: an explicit request always wins; short memory, a long backlog or a file with no
    speech heard -> fast; where quality pays (its own model), an idle machine, a short queue
    and a file of reasonable length (in speech: a long recording that is mostly silence costs
    what its speech costs) -> quality; otherwise balanced.  A snapshot older than a minute is
    treated as a loaded machine (the planner does not trust stale numbers).
    """
    stale = (now - snapshot.taken_at).total_seconds() > 60
    other = float(snapshot.cores) / 2 if stale else snapshot.other_cores
    grant = _grant(snapshot, queue, settings, other, usable_gpus, held_gpus, cpu_needed)
    idle = not stale and other < settings.idle_other_cores
    profile, reason = _profile(snapshot, queue, file, settings, requested, idle)
    if other >= 0.5:
        reason += f"; other programs use {other:.1f} cores"
    reason += f"; {grant.workers}x{grant.threads} threads on {grant.cores} free cores"
    if grant.gpus:
        reason += f", GPU worker(s) on {', '.join(f'cuda:{i}' for i in grant.gpus)}"
    if grant.gpu_notes:
        reason += "; no GPU worker: " + "; ".join(grant.gpu_notes)
    return Plan(
        profile=profile,
        workers=grant.workers,
        threads=grant.threads,
        reason=reason,
        gpus=grant.gpus,
    )


@dataclass(frozen=True)
class _Grant:
    """What the machine gives the next plan (see :func:`choose`)."""

    cores: int
    """Cores other programs leave free."""
    gpus: tuple[int, ...]
    """The GPUs that get a worker."""
    gpu_notes: tuple[str, ...]
    """Why a usable GPU gets none."""
    workers: int
    """CPU workers."""
    threads: int
    """Threads per CPU worker."""


def _grant(
    snapshot: LoadSnapshot,
    queue: QueueFacts,
    settings: PlannerSettings,
    other: float,
    usable_gpus: Sequence[int],
    held_gpus: Sequence[int],
    cpu_needed: bool,
) -> _Grant:
    """Cores, GPU workers and CPU workers of threads while other programs use ``other`` cores
    (pure; the rules are :func:`choose`'s)."""
    granted = max(1, min(snapshot.cores, int(snapshot.cores - other + 0.25)))
    by_ram = max(1, snapshot.available_ram // max(1, settings.ram_per_worker))
    gpus, gpu_notes = gpu_slots(snapshot, usable_gpus, held_gpus, settings.gpu_memory_per_worker)
    most = settings.max_workers or granted  # worker processes in all, GPU workers included
    room = min(granted // GPU_WORKER_THREADS, by_ram, most)
    if cpu_needed:  # leave a core, the memory and a process for one CPU worker
        room = min(room, (granted - 1) // GPU_WORKER_THREADS, by_ram - 1, most - 1)
    gpus = gpus[: max(0, room)]
    cpu_cores = granted - len(gpus) * GPU_WORKER_THREADS
    parallel_files = max(1, queue.queued + queue.running - len(gpus))
    # with no GPU worker, or a job that must run on the CPU: one CPU worker whatever the memory
    least = 1 if cpu_needed or not gpus else 0
    workers = min(cpu_cores, by_ram - len(gpus), most - len(gpus), parallel_files)
    workers = max(least, workers) if cpu_cores else 0
    threads = max(1, cpu_cores // workers) if workers else 1
    return _Grant(granted, gpus, tuple(gpu_notes), workers, threads)


def _profile(
    snapshot: LoadSnapshot,
    queue: QueueFacts,
    file: FileFacts | None,
    settings: PlannerSettings,
    requested: str | None,
    idle: bool,
) -> tuple[str, str]:
    """The profile and why (pure; the rules are :func:`choose`'s).  ``idle``: a fresh snapshot
    in which other programs use less than ``settings.idle_other_cores``."""
    speech = queue.queued_audio_seconds
    if requested and requested != "auto":
        return requested, "requested"
    if settings.profile != "auto":
        return settings.profile, "configured"
    if snapshot.available_ram < settings.ram_per_worker:
        return "fast", "low memory"
    if speech > settings.backlog_fast_seconds:
        return "fast", f"backlog of {speech / 60:.0f} min"
    if file is not None and file.speech_share == 0.0:
        return "fast", "no speech heard in the file"
    if (
        settings.quality_pays
        and idle
        and queue.queued <= 1
        and (file is None or file.speech_seconds <= settings.quality_max_seconds)
    ):
        return "quality", "idle machine, short queue"
    return "balanced", "default"


@dataclass(frozen=True)
class Waiting:
    """A job ready to run, as :func:`assign` sees it."""

    job_id: int
    seconds: float
    """Its audio (estimated where unknown)."""
    device: str | None = None
    """Where it asks to run (:attr:`daemon.jobs.JobOptions.device_request`)."""


def assign(waiting: Sequence[Waiting], idle: Sequence[tuple[int, str]]) -> list[tuple[int, int]]:
    """Which waiting job each idle worker slot takes: (job id, slot) pairs (pure).

    ``waiting`` is in queue order; ``idle`` holds (slot, device) pairs, device "cpu" or
    "cuda:N".  GPU slots go first and take the longest job that may run there (the GPU's
    speed pays most on long files); CPU slots then take the rest in queue order.  A job only
    ever goes where its device request fits (:func:`daemon.devices.fits`); one that fits no
    idle slot waits."""
    taken: set[int] = set()
    pairs: list[tuple[int, int]] = []
    gpu_first = sorted(idle, key=lambda slot: slot[1] == "cpu")
    for slot, device in gpu_first:
        fitting = [w for w in waiting if w.job_id not in taken and fits(w.device, device)]
        if not fitting:
            continue
        pick = fitting[0] if device == "cpu" else max(fitting, key=lambda w: w.seconds)
        taken.add(pick.job_id)
        pairs.append((pick.job_id, slot))
    return pairs
