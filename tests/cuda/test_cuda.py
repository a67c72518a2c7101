"""The real models on an NVIDIA GPU, end to end.  Skipped, saying why, where CTranslate2 sees
no CUDA device; on a GPU machine they must pass (and they fail if the job ran on the CPU).

Never run yet: the project's machines have no GPU (README, "Using a GPU")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.metrics import der, load_rttm
from daemon.devices import gpu_loads, probe
from tests.conftest import need_eval, write_config
from tests.e2e.test_diarization import make_invoke

SEEN = probe()
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.model,
    pytest.mark.eval,
    pytest.mark.skipif(
        SEEN.cuda_devices == 0,
        reason=f"needs an NVIDIA GPU with CUDA: {SEEN.why_none or 'none seen'}",
    ),
]


def test_english_clip_on_the_gpu(tmp_path: Path, model_cache: Path) -> None:
    invoke = make_invoke(tmp_path, model_cache, '[compute]\ndevice = "cuda"\n')
    invoke("add", "--device", "cuda", str(need_eval("asr_en", "jfk.flac")))
    invoke("run", "--once")
    text = (tmp_path / "out" / "jfk.txt").read_text().lower()
    assert "ask not what your country can do for you" in text
    [job] = json.loads(invoke("status", "--json").stdout)
    assert job["metrics"]["device"] == "cuda:0"


def test_two_speakers_on_the_gpu(tmp_path: Path, model_cache: Path) -> None:
    invoke = make_invoke(tmp_path, model_cache, '[compute]\ndevice = "cuda"\n')
    sample = need_eval("diarization", "sample.wav")
    invoke("add", "--device", "cuda", str(sample))
    invoke("run", "--once")
    data = json.loads((tmp_path / "out" / "sample.json").read_text())
    assert data["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    ref = load_rttm(str(sample.with_suffix(".rttm")))
    assert der(ref, load_rttm(str(tmp_path / "out" / "sample.rttm"))) < 0.2
    [job] = json.loads(invoke("status", "--json").stdout)
    assert job["metrics"]["device"] == "cuda:0"


def test_diarization_networks_run_on_the_cuda_provider(tmp_path: Path) -> None:
    if not SEEN.onnx_cuda:
        pytest.skip("ONNX Runtime has no CUDA provider here (onnxruntime-gpu not installed)")
    import numpy as np

    from daemon.pipeline.diarize import DiarizeParams, Diarizer

    diarizer = Diarizer(DiarizeParams(), onnx_cache=tmp_path / "models", gpu=0)
    assert diarizer._onnx is not None
    session = diarizer._onnx.segmentation.session(1)
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    found = diarizer(np.zeros(16000 * 5, np.float32))
    assert found.turns == ()


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores: a GPU worker and a CPU worker"
)
def test_the_longest_file_goes_to_the_gpu(tmp_path: Path, model_cache: Path) -> None:
    # cuda:0 only: with "auto" a second GPU would take the short file
    invoke = make_invoke(tmp_path, model_cache, '[compute]\ndevice = "cuda:0"\n')
    short, long = need_eval("asr_en", "jfk.flac"), need_eval("diarization", "sample.wav")
    invoke("add", str(short), str(long))
    invoke("run", "--once")
    jobs = {Path(j["path"]).name: j for j in json.loads(invoke("status", "--json").stdout)}
    assert {j["status"] for j in jobs.values()} == {"done"}
    assert jobs[long.name]["device"] == jobs[long.name]["metrics"]["device"] == "cuda:0"
    assert jobs[short.name]["device"] == "cpu"


def fill_gpu(leave: int, cache: Path) -> list[object]:
    """Hold the GPU's memory from this process until about ``leave`` bytes are free (Whisper
    models loaded over and over: CTranslate2 is what the test has on every GPU machine)."""
    import ctranslate2

    from daemon import modelstore

    folder = modelstore.resolve("base", cache).path
    held: list[object] = []
    while gpu_loads()[0].memory_free > leave:
        try:
            held.append(ctranslate2.models.Whisper(str(folder), device="cuda", device_index=0))
        except RuntimeError:
            break
    return held


def wait_for(cfg: Path, count: int, timeout: float = 600) -> list[dict[str, object]]:
    """The jobs once ``count`` of them have ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run(
            [sys.executable, "-m", "daemon", "--config", str(cfg), "status", "--json"],
            capture_output=True,
            text=True,
        )
        jobs: list[dict[str, object]] = json.loads(status.stdout or "[]")
        if sum(j["status"] in ("done", "failed") for j in jobs) >= count:
            return jobs
        time.sleep(2)
    raise AssertionError(f"{count} job(s) did not end in {timeout} s")


def test_out_of_gpu_memory_finishes_on_the_cpu(tmp_path: Path, model_cache: Path) -> None:
    if not gpu_loads():
        pytest.skip("NVML (nvidia-ml-py, the cuda extra) does not answer: cannot fill the GPU")
    cfg = write_config(tmp_path, model_cache, '[compute]\ndevice = "cuda:0"\n')
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--config", str(cfg), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # a first file starts the GPU worker and loads its models there
        (inbox / "jfk.flac").write_bytes(need_eval("asr_en", "jfk.flac").read_bytes())
        [first] = wait_for(cfg, 1)
        assert first["device"] == "cuda:0", first
        held = fill_gpu(32 * 2**20, model_cache)  # then nothing is left for its next job
        assert held, "could not take the GPU's memory"
        sample = need_eval("diarization", "sample.wav")
        (inbox / "sample.wav").write_bytes(sample.read_bytes())
        jobs = {Path(str(j["path"])).name: j for j in wait_for(cfg, 2)}
        job = jobs["sample.wav"]
        assert job["status"] == "done", job
        assert job["device"] == "cpu" and job["options"] == {"oom_device": "cpu"}, job
        assert daemon.poll() is None  # the daemon lives on
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()
