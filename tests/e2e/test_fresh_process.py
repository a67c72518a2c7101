"""The daemon's code in a fresh process, whatever it imports first.

torchaudio's C extension cannot load beside the CPU build of torch; only
:mod:`daemon.pipeline.pyannote_env` makes its import safe.  A module that reached torchaudio (or
pyannote, which imports it) without going through it crashed, or not, by the luck of which
module a process happened to import first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EVAL, REPO, write_wav

pytestmark = pytest.mark.model

FIRST_CAMPPLUS = (
    "import sys\n"
    "import daemon.pipeline.campplus_model\n"  # the first diarization import of this process
    "assert 'pyannote.audio' in sys.modules\n"
    "from daemon.cli import main\n"
    "main()\n"
)


def test_transcribe_in_a_fresh_process_whose_first_diarization_import_is_campplus(
    config_file: Path, tmp_path: Path
) -> None:
    """``transcribd transcribe`` on a short clip (real speech where the evaluation data is
    beside the clone, else a tone: diarization is loaded either way), in a new interpreter
    that imports ``campplus_model`` before anything else of the diarization code."""
    speech = EVAL / "asr_en" / "jfk.flac"
    clip = speech if speech.is_file() else write_wav(tmp_path / "tone.wav", 3.0)
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", FIRST_CAMPPLUS, "--config", str(config_file)]
    done = subprocess.run(
        [*command, "transcribe", str(clip), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    txt = out / f"{clip.stem}.txt"
    assert txt.is_file() and (out / f"{clip.stem}.rttm").is_file()
    if clip == speech:
        assert "ask not what your country" in txt.read_text().lower()
