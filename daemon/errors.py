"""Every error the daemon names across modules, in one place.

The CLI, the intake and the retry policy name these classes without importing the pipeline or the
model store; the modules that raise them import them from here.
"""

from __future__ import annotations

import signal


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 1."""


class SetupError(UserError):
    """A problem a restart cannot fix (exit code 2: systemd does not restart the daemon)."""


class SchemaTooNew(SetupError):
    """The database was migrated by a newer transcribd than this one (another node's)."""


class NodeInUse(SetupError):
    """Another machine's running daemon uses this daemon's ``[daemon] node`` name."""


class DecodeError(Exception):
    """The file is not decodable audio; permanent for this content."""


class ModelError(RuntimeError):
    """A model cannot be found or does not verify; the message says what to do."""


class DegenerateTranscript(ModelError):
    """Whisper's transcript of a chunk is plainly degenerate (a loop of one character or token),
    even decoded again: never published, never cached (see :mod:`daemon.pipeline.degenerate`)."""


class DiarizationError(RuntimeError):
    """The diarization weights are missing or do not verify."""


class CacheMiss(LookupError):
    """A step was needed that the cache does not hold (in cache-only mode)."""


class Cancelled(Exception):
    """The job was asked to stop (graceful shutdown); finished steps stay cached."""


class InputRemoved(Exception):
    """The job's input file is gone when the job starts, or disappears while it is decoded: the
    job is cancelled (a file that goes once it is decoded no longer matters)."""


class WorkerDied(Exception):
    """The worker process running the job ended without reporting (killed, crashed)."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        if exitcode is not None and exitcode < 0:
            try:
                name = signal.Signals(-exitcode).name
            except ValueError:
                name = f"signal {-exitcode}"
            how = f"killed by {name}"
            if exitcode == -signal.SIGKILL:
                how += " (out of memory?)"
        else:
            how = f"exit code {exitcode}"
        super().__init__(f"the worker process died while running the job: {how}")
