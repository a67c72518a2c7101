"""``transcribd ... | head`` prints no "Broken pipe": real processes writing into real pipes
whose reader has gone (after one line, or before anything was written)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import load
from daemon.store import open_store, utcnow
from tests.conftest import REPO, write_config

JOBS = 1500
"""Enough rows that ``status`` writes more than a pipe holds (64 KB)."""


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    """One database of :data:`JOBS` rows for every case (each only reads it)."""
    tmp_path = tmp_path_factory.mktemp("pipe")
    cfg = write_config(tmp_path, model_cache)
    store = open_store(load(cfg))
    now = utcnow()
    for i in range(JOBS):
        store.enqueue(f"{tmp_path}/inbox/recording-{i:05d}.wav", f"{i:064x}", 1000, now)
    store.close()
    return cfg


def head_1(args: list[str]) -> tuple[str, int, str]:
    """``transcribd ARGS | head -1``: the first line, the exit code and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # head has what it wanted and exits
    err = proc.stderr.read()
    proc.stderr.close()
    return first, proc.wait(timeout=60), err


def nobody_reads(args: list[str]) -> tuple[int, str]:
    """``transcribd ARGS`` into a pipe whose reader is gone before it writes a byte."""
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", *args],
        cwd=REPO,
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["status", "--watch", "--interval", "0.2"],
        ["nodes", "--json"],
        ["config"],
        ["--help"],
    ],
)
def test_a_closed_pipe_ends_quietly(cfg: Path, args: list[str]) -> None:
    argv = ["--config", str(cfg), *args]
    first, code, err = head_1(argv)
    assert first.strip(), first
    assert err == "" and code in (0, 1), err  # 0 where it had written everything already
    code, err = nobody_reads(argv)
    assert err == "" and code == 1, err  # no "Broken pipe", no "Exception ignored"
