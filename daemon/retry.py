"""Retry policy (pure): which errors are permanent, and when a transient one runs again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.modelstore import ModelError
from daemon.pipeline.audio import DecodeError

BASE_DELAY_SECONDS = 5.0
MAX_DELAY_SECONDS = 600.0

PERMANENT: tuple[type[BaseException], ...] = (
    DecodeError,
    FileNotFoundError,
    IsADirectoryError,
    ModelError,
)


@dataclass(frozen=True)
class Decision:
    retry: bool
    run_after: datetime | None
    message: str


def describe(exc: BaseException) -> str:
    """One line for ``status``: the error's kind and message, no traceback."""
    if isinstance(exc, DecodeError | ModelError) or (
        isinstance(exc, FileNotFoundError) and not exc.filename
    ):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}".rstrip(": ")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def decide(exc: BaseException, attempts: int, max_attempts: int, now: datetime) -> Decision:
    """Permanent errors fail at once; transient ones back off exponentially, then fail."""
    message = describe(exc)
    if isinstance(exc, PERMANENT) or attempts >= max_attempts:
        return Decision(retry=False, run_after=None, message=message)
    delay = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** max(0, attempts - 1))
    return Decision(retry=True, run_after=now + timedelta(seconds=delay), message=message)
