"""A setup error is the one line the README promises, decided before the database is touched:
``transcribd run`` (a real process) with ``device = "cuda"`` on a machine without a GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.devices import probe
from tests.conftest import REPO, write_config


def test_a_missing_gpu_is_one_line_before_the_database_is_touched(
    tmp_path: Path, model_cache: Path
) -> None:
    if probe().cuda_devices:
        pytest.skip("this machine has a CUDA device: device = 'cuda' is no error here")
    cfg = write_config(tmp_path, model_cache, '[compute]\ndevice = "cuda"\n')
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(cfg), "run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()  # no INFO lines before it
    assert line.startswith("transcribd: device 'cuda': CTranslate2 sees no CUDA device"), line
    # nothing created: no database, no migrate lock, no folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]
