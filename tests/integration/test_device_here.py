"""The device on this machine, as a user meets it: ``device = "auto"`` runs on the CPU and says
why; ``device = "cuda"`` stops the daemon at start with one line (exit code 2, no traceback)
and is a failed check in ``doctor``.  Skipped where a GPU is present (tests/cuda covers it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.devices import probe
from tests.conftest import write_config, write_wav

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_gpu() -> None:
    if probe().cuda_devices:
        pytest.skip("this machine has a CUDA device: tests/cuda checks the GPU path")


def transcribd(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(cfg), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_device_cuda_without_a_gpu_stops_at_start_in_one_line(
    tmp_path: Path, model_cache: Path
) -> None:
    cfg = write_config(tmp_path, model_cache, '[compute]\ndevice = "cuda"\n')
    (tmp_path / "inbox").mkdir()
    for args in (("run",), ("run", "--once")):
        done = transcribd(cfg, *args)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        [line] = [ln for ln in done.stderr.splitlines() if "device 'cuda'" in ln]
        assert "CTranslate2 sees no CUDA device" in line and "transcribd[cuda]" in line
    doctor = transcribd(cfg, "doctor")
    assert doctor.returncode != 0
    assert "device 'cuda'" in doctor.stdout and "Traceback" not in doctor.stderr


def test_device_auto_runs_on_the_cpu_and_says_why(tmp_path: Path, model_cache: Path) -> None:
    cfg = write_config(tmp_path, model_cache)
    (tmp_path / "inbox").mkdir()
    done = transcribd(cfg, "--log-level", "INFO", "run", "--once")
    assert done.returncode == 0, done.stderr
    assert "models run on cpu: no usable GPU (CTranslate2 sees no CUDA device" in done.stderr
    doctor = transcribd(cfg, "doctor")
    assert "models run on the CPU: no usable GPU" in doctor.stdout


def test_a_job_asking_for_a_gpu_waits_and_transcribe_on_cuda_stops(
    tmp_path: Path, model_cache: Path
) -> None:
    cfg = write_config(tmp_path, model_cache)
    (tmp_path / "inbox").mkdir()
    clip = write_wav(tmp_path / "clip.wav", 0.5)
    bad = transcribd(cfg, "add", "--device", "gpu", str(clip))
    assert bad.returncode == 2 and "unknown device 'gpu'" in bad.stderr
    assert transcribd(cfg, "add", "--device", "cuda", str(clip)).returncode == 0
    # the CPU workers leave it queued, say why once, and run --once still ends
    done = transcribd(cfg, "run", "--once")
    assert done.returncode == 0, done.stderr
    assert "job 1 asks for device cuda; this node has cpu only: it waits" in done.stderr
    [job] = json.loads(transcribd(cfg, "status", "--json").stdout)
    assert job["status"] == "queued" and job["options"] == {"device": "cuda"}
    assert job["device"] is None
    one = transcribd(cfg, "transcribe", "--device", "cuda", str(clip))
    assert one.returncode == 2 and "Traceback" not in one.stderr
    assert "device 'cuda': CTranslate2 sees no CUDA device" in one.stderr
