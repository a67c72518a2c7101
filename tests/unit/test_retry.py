from __future__ import annotations

import errno
import signal
from datetime import datetime, timedelta

import pytest

from daemon import retry
from daemon.errors import DecodeError, DiarizationError, ModelError, WorkerDied
from daemon.jobs import JobOptions
from daemon.retry import decide, describe

NOW = datetime(2026, 1, 1)


@pytest.mark.parametrize(
    "exc",
    [
        DecodeError("no audio stream in file"),
        FileNotFoundError("file no longer exists: /x"),
        ModelError("model 'x' is neither bundled nor a local folder"),
    ],
)
def test_permanent_errors_fail_at_once(exc: Exception) -> None:
    d = decide(exc, attempts=1, max_attempts=5, now=NOW)
    assert not d.retry and d.message == str(exc)


@pytest.mark.parametrize(("attempts", "delay"), [(1, 5), (2, 10), (3, 20), (4, 40)])
def test_transient_errors_back_off(attempts: int, delay: int) -> None:
    d = decide(RuntimeError("database is locked"), attempts, max_attempts=10, now=NOW)
    assert d.retry and d.run_after == NOW + timedelta(seconds=delay)


def test_backoff_is_capped() -> None:
    d = decide(RuntimeError("x"), 30, max_attempts=99, now=NOW)
    assert d.run_after == NOW + timedelta(seconds=600)


def test_last_attempt_fails() -> None:
    assert not decide(RuntimeError("x"), 3, max_attempts=3, now=NOW).retry


def test_describe_is_one_line() -> None:
    assert describe(RuntimeError("a\nb")) == "RuntimeError: a b"
    assert describe(PermissionError(13, "Permission denied", "/x")).startswith(
        "Permission denied: /x"
    )


@pytest.mark.parametrize(
    ("exc", "profile", "lighter"),
    [
        (MemoryError(), "quality", "balanced"),
        (MemoryError(), "balanced", "fast"),
        (MemoryError(), "fast", None),  # nothing lighter: same profile, later
        (WorkerDied(-9), "quality", "balanced"),
        (WorkerDied(-11), "quality", None),  # a crash, not memory
        (RuntimeError("std::bad_alloc"), "balanced", "fast"),
        (OSError(28, "No space left on device", "/out/a.txt"), "balanced", None),
    ],
)
def test_out_of_memory_retries_lighter(exc: Exception, profile: str, lighter: str | None) -> None:
    d = decide(exc, attempts=1, max_attempts=3, now=NOW, profile=profile)
    assert d.retry and d.profile == lighter
    assert "\n" not in d.message


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (OSError(28, "No space left on device", "/out/a.txt"), "free some space"),
        (OSError(30, "Read-only file system", "/out/a.txt"), "must be writable"),
        (PermissionError(13, "Permission denied", "/out/a.txt"), "must be writable"),
        (WorkerDied(-9), "killed by SIGKILL (out of memory?)"),
        (WorkerDied(1), "exit code 1"),
        (MemoryError(), "out of memory"),
    ],
)
def test_transient_messages_say_what_to_do(exc: Exception, words: str) -> None:
    d = decide(exc, attempts=1, max_attempts=3, now=NOW)
    assert d.retry and words in d.message


@pytest.mark.parametrize(
    ("exc", "profile", "before", "after"),
    [
        # a retry after running out of memory carries the lighter profile in the job's options
        (
            MemoryError(),
            "quality",
            JobOptions(language="de"),
            JobOptions(language="de", oom_profile="balanced"),
        ),
        (
            WorkerDied(-9),
            "balanced",
            JobOptions(oom_profile="balanced"),
            JobOptions(oom_profile="fast"),
        ),
        # anything else keeps the options as they are
        (MemoryError(), "fast", JobOptions(profile="fast"), None),
        (RuntimeError("database is locked"), "quality", JobOptions(), None),
        (WorkerDied(-11), "quality", JobOptions(num_speakers=2), None),
    ],
)
def test_options_for_retry(
    exc: Exception, profile: str, before: JobOptions, after: JobOptions | None
) -> None:
    d = decide(exc, attempts=1, max_attempts=3, now=NOW, profile=profile)
    assert d.options_for_retry(before) == after


@pytest.mark.parametrize(
    ("exc", "attempts", "delay"),
    [
        (OSError(28, "No space left on device", "/out/a.txt"), 1, 300),  # a person must act
        (OSError(28, "No space left on device", "/out/a.txt"), 2, 600),
        (OSError(122, "Disk quota exceeded", "/out/a.txt"), 1, 300),
        (PermissionError(13, "Permission denied", "/out/a.txt"), 3, 1200),
        (OSError(30, "Read-only file system", "/out/a.txt"), 9, 3600),  # capped at an hour
        (RuntimeError("database is locked"), 1, 5),  # others: seconds
    ],
)
def test_backoff_fits_the_error(exc: Exception, attempts: int, delay: int) -> None:
    d = decide(exc, attempts, max_attempts=10, now=NOW)
    assert d.retry and d.run_after == NOW + timedelta(seconds=delay)


def test_configured_backoffs() -> None:
    full = OSError(28, "No space left on device", "/out/a.txt")
    d = decide(full, 1, 3, NOW, backoff=1.0, resource_backoff=60.0)
    assert d.run_after == NOW + timedelta(seconds=60) and "retries in 60 s" in d.message
    d = decide(RuntimeError("x"), 2, 3, NOW, backoff=1.0, resource_backoff=60.0)
    assert d.run_after == NOW + timedelta(seconds=2)


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (
            OSError(28, "No space left on device", "/o/a"),
            "free some space, then run: ",
        ),
        (
            OSError(30, "Read-only file system", "/o/a"),
            "must be writable, then run: ",
        ),
    ],
)
def test_a_job_out_of_attempts_says_what_to_do_now(exc: Exception, words: str) -> None:
    d = decide(exc, attempts=3, max_attempts=3, now=NOW)
    assert not d.retry and words + "transcribd requeue --failed" in d.message
    assert "retries" not in d.message


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (DecodeError("no audio stream"), "bad_input"),
        (FileNotFoundError(2, "No such file", "/in/a.wav"), "input_missing"),
        (IsADirectoryError(21, "Is a directory", "/in/a.wav"), "input_missing"),
        (ModelError("model.bin is corrupt"), "model"),
        (DiarizationError("segmentation checkpoint missing"), "diarization"),
        (MemoryError(), "out_of_memory"),
        (RuntimeError("std::bad_alloc"), "out_of_memory"),
        (WorkerDied(-signal.SIGKILL), "out_of_memory"),
        (WorkerDied(-signal.SIGSEGV), "worker_died"),
        (OSError(errno.ENOSPC, "No space left on device", "/out/a.txt"), "resource"),
        (PermissionError(errno.EACCES, "Permission denied", "/out/a.txt"), "resource"),
        (ValueError("something else"), "other"),
    ],
)
def test_failure_classes(exc: BaseException, reason: str) -> None:
    assert retry.failure_class(exc) == reason
    assert reason in retry.FAILURE_CLASSES
