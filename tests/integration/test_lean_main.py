"""The daemon's main process stays lean (issue 35): what it imports to run (the CLI, the
scheduler, the pool, the intake with its VAD, the HTTP face) brings no worker's runtime.
CTranslate2, faster-whisper, torch and pyannote are the workers' alone; the slow test
tests/e2e/test_idle.py checks a running daemon's memory maps as well."""

from __future__ import annotations

import subprocess
import sys

import pytest

WORKER_ONLY = ("ctranslate2", "faster_whisper", "torch", "torchaudio", "pyannote", "lightning")

MAIN_PROCESS = (
    "daemon.cli.root",
    "daemon.app.running",
    "daemon.app.serving",
    "daemon.scheduler",
    "daemon.pool",
    "daemon.intake",
    "daemon.pipeline.facts",
    "daemon.http.server",
)


def loaded_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\n"
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(WORKER_ONLY)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.split()


def test_the_main_process_imports_no_workers_runtime() -> None:
    """Its modules, and what it runs: the device probed, the intake's VAD on a second of
    audio."""
    run = (
        "import numpy as np\n"
        "from daemon import devices\n"
        "from daemon.pipeline import facts, silero\n"
        "devices.resolve('auto')\n"
        "facts.warm()\n"
        "silero.speech_timestamps(np.zeros(16000, np.float32), facts.VAD)"
    )
    assert loaded_after("\n".join(f"import {m}" for m in MAIN_PROCESS) + "\n" + run) == []


@pytest.mark.parametrize(
    ("code", "runtimes"),
    [
        ("from daemon.pipeline import pyannote_env\npyannote_env.load()", {"torch", "pyannote"}),
        ("import faster_whisper", {"ctranslate2", "faster_whisper"}),
    ],
)
def test_the_probe_sees_a_runtime_where_one_is_loaded(code: str, runtimes: set[str]) -> None:
    """The check above can fail: what a worker loads is seen."""
    assert runtimes <= set(loaded_after(code))
