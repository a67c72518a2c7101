"""Retry policy (pure): which errors are permanent, and when and how a transient one runs again.

Permanent (the content or the setup is wrong; retrying cannot help): undecodable or empty audio,
no audio stream, a vanished file, a missing or corrupt model.  Everything else is transient and
backs off exponentially (database locked, disk full, an output folder made read-only, a worker
killed); out of memory retries with the next lighter profile.
"""

from __future__ import annotations

import dataclasses
import errno
import signal
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.errors import DecodeError, DiarizationError, ModelError, WorkerDied
from daemon.jobs import JobOptions

BASE_DELAY_SECONDS = 5.0
MAX_DELAY_SECONDS = 600.0
RESOURCE_DELAY_SECONDS = 300.0
RESOURCE_MAX_SECONDS = 3600.0

PERMANENT: tuple[type[BaseException], ...] = (
    DecodeError,
    DiarizationError,
    FileNotFoundError,
    IsADirectoryError,
    ModelError,
)

LIGHTER = {"quality": "balanced", "balanced": "fast"}
"""The profile an out-of-memory retry runs with."""


@dataclass(frozen=True)
class Decision:
    retry: bool
    run_after: datetime | None
    message: str
    profile: str | None = None
    """The profile the retry must run with, when it must change (after running out of memory)."""
    device: str | None = None
    """The device the retry must run on, when it must change (after running out of GPU
    memory: the CPU)."""

    def options_for_retry(self, options: JobOptions) -> JobOptions | None:
        """The job's options for its retry: None keeps them; after running out of memory they
        carry the lighter profile (:attr:`JobOptions.oom_profile`), after running out of GPU
        memory the CPU (:attr:`JobOptions.oom_device`)."""
        if self.profile is None and self.device is None:
            return None
        if self.device is not None:
            return dataclasses.replace(options, oom_device=self.device)
        return dataclasses.replace(options, oom_profile=self.profile)


GPU_OUT_OF_MEMORY = (
    "cuda out of memory",  # torch
    "cuda failed with error out of memory",  # CTranslate2
    "cublas_status_alloc_failed",  # cuBLAS, through CTranslate2
    "cudnn_status_alloc_failed",
    "cuda failure 2:",  # ONNX Runtime's CUDA calls: 2 is cudaErrorMemoryAllocation
    "cudaerrormemoryallocation",
)
"""What the runtimes say when a GPU's memory runs out, lower-cased."""

ON_A_GPU = ("out of memory", "failed to allocate memory")
"""What any allocator says (ONNX Runtime's arena: "Failed to allocate memory for requested
buffer"): the GPU's, when the attempt ran on a GPU."""


def gpu_out_of_memory(exc: BaseException, device: str | None = None) -> bool:
    """The GPU's memory ran out (not the machine's): the job can run on the CPU.  Known CUDA
    messages anywhere; on a GPU (``device`` "cuda:N") any allocator's out-of-memory as well,
    whatever the exception's class (ONNX Runtime's are not RuntimeErrors)."""
    if isinstance(exc, MemoryError | WorkerDied):
        return False
    text = str(exc).lower()
    if any(sign in text for sign in GPU_OUT_OF_MEMORY):
        return True
    return device is not None and device != "cpu" and any(s in text for s in ON_A_GPU)


def out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, WorkerDied):
        return exc.exitcode == -signal.SIGKILL  # the kernel's OOM killer sends SIGKILL
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("bad_alloc" in text or "out of memory" in text)


FIXES = {
    errno.ENOSPC: "free some space",
    errno.EDQUOT: "free some space",
    errno.EROFS: "the output folder must be writable",
    errno.EACCES: "the output folder must be writable",
    errno.EPERM: "the output folder must be writable",
}
"""Errors a person has to fix (a full disk, an unwritable folder): what to do."""


def needs_a_person(exc: BaseException) -> str | None:
    """What a person must do before a retry can succeed, or None."""
    return FIXES.get(exc.errno) if isinstance(exc, OSError) and exc.errno else None


FAILURE_CLASSES = (
    "bad_input",
    "input_missing",
    "model",
    "diarization",
    "out_of_memory",
    "gpu_out_of_memory",
    "worker_died",
    "resource",
    "database",
    "other",
)
"""The reason classes of failed attempts (the metrics' ``reason`` label)."""


def failure_class(exc: BaseException) -> str:
    """Which of :data:`FAILURE_CLASSES` an attempt's error belongs to (pure; the database's
    own errors are told apart by the caller, which knows the driver)."""
    if gpu_out_of_memory(exc):
        return "gpu_out_of_memory"
    if out_of_memory(exc):
        return "out_of_memory"
    if isinstance(exc, WorkerDied):
        return "worker_died"
    if isinstance(exc, DecodeError):
        return "bad_input"
    if isinstance(exc, FileNotFoundError | IsADirectoryError):
        return "input_missing"
    if isinstance(exc, ModelError):
        return "model"
    if isinstance(exc, DiarizationError):
        return "diarization"
    if needs_a_person(exc) is not None:
        return "resource"
    return "other"


def describe(exc: BaseException) -> str:
    """One line for ``status``: the error's kind and message, no traceback."""
    if isinstance(exc, DecodeError | ModelError | DiarizationError | WorkerDied) or (
        isinstance(exc, FileNotFoundError) and not exc.filename
    ):
        text = str(exc)
    elif isinstance(exc, MemoryError):
        text = "out of memory"
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}".rstrip(": ")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def decide(
    exc: BaseException,
    attempts: int,
    max_attempts: int,
    now: datetime,
    profile: str | None = None,
    backoff: float = BASE_DELAY_SECONDS,
    resource_backoff: float = RESOURCE_DELAY_SECONDS,
    device: str | None = None,
) -> Decision:
    """Permanent errors fail at once; transient ones back off exponentially, then fail.

    ``profile``: the one the failed attempt ran with; out of memory retries with a lighter one.
    ``device``: the one it ran on; out of GPU memory retries on the CPU at once, same profile
    (whatever attempts are left: it moves to the CPU once, and the CPU's attempts count).
    A full disk or an unwritable folder waits ``resource_backoff`` (a person has to act), other
    transient errors ``backoff``, doubling each attempt.  The message says what to do: for a
    job that has used its attempts, fix it and requeue.
    """
    message = describe(exc)
    fix = needs_a_person(exc)
    if device is not None and device != "cpu" and gpu_out_of_memory(exc, device):
        return Decision(
            retry=True,
            run_after=now,
            message=f"{message}; out of memory on {device}: retrying on the CPU",
            device="cpu",
        )
    if isinstance(exc, PERMANENT) or attempts >= max_attempts:
        if fix is not None:
            message += f" ({fix}, then run: transcribd requeue --failed)"
        return Decision(retry=False, run_after=None, message=message)
    first, most = (resource_backoff, RESOURCE_MAX_SECONDS) if fix else (backoff, MAX_DELAY_SECONDS)
    delay = min(most, first * 2 ** max(0, attempts - 1))
    if fix is not None:
        message += f" ({fix}; the job retries in {_wait(delay)})"
    lighter = LIGHTER.get(profile or "") if out_of_memory(exc) else None
    if lighter is not None:
        message += f"; retrying with the {lighter} profile"
    return Decision(
        retry=True, run_after=now + timedelta(seconds=delay), message=message, profile=lighter
    )


def _wait(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
