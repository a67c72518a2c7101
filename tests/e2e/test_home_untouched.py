"""Nothing written outside the configured folders: a real job in the daemon's spawned worker
and a ``transcribe`` in the main process, diarization on (pyannote brings matplotlib, the
networks run on ONNX Runtime), with ``$HOME`` an empty folder and no XDG variables: ``$HOME``
stays empty (matplotlib's font list goes under the model cache, ONNX Runtime's telemetry is
off)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon import libdirs
from tests.conftest import need_eval, write_config

pytestmark = [pytest.mark.model, pytest.mark.eval]

ASIDE = (
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "CACHE_DIRECTORY",
    "STATE_DIRECTORY",
    *libdirs.settings(Path()),
)
"""What could send the libraries elsewhere than ``$HOME`` on its own: left out."""


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_a_job_and_transcribe_write_nothing_in_home(tmp_path: Path, model_cache: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ASIDE} | {"HOME": str(home)}
    cfg = write_config(tmp_path, model_cache)
    (tmp_path / "inbox").mkdir()
    shutil.copy(need_eval("asr_en", "jfk.flac"), tmp_path / "inbox" / "jfk.flac")
    base = [sys.executable, "-m", "daemon", "--config", str(cfg)]
    out = subprocess.run(
        [*base, "run", "--once"], env=env, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0 and "1 done" in out.stdout, out.stderr[-3000:]
    assert everything_under(home) == []
    clip = need_eval("asr_en", "LJ001-0001.wav")
    out = subprocess.run(
        [*base, "transcribe", str(clip), "-o", str(tmp_path / "o")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "o" / "LJ001-0001.txt").read_text().strip()
    assert everything_under(home) == []
    assert list((model_cache / libdirs.MATPLOTLIB_FOLDER).glob("fontlist-*.json"))
