"""Device choice, the per-device profile table and ONNX Runtime's providers: pure decisions,
tested for machines with 0, 1 and 2 GPUs without needing one."""

from __future__ import annotations

import re

import pytest

from daemon import config as config_mod
from daemon.devices import DeviceError, Seen, choose, parse
from daemon.pipeline.onnx import providers
from daemon.profiles import BUILTIN, gpu_batch_windows, on_device, resolve

NONE = Seen(0, False, "CTranslate2 sees no CUDA device (no GPU, driver or CUDA runtime)")
ONE = Seen(1, True)
TWO = Seen(2, True)
ONE_NO_ORT = Seen(1, False)


@pytest.mark.parametrize(
    ("requested", "seen", "name", "diarization_on_gpu", "reason"),
    [
        ("auto", NONE, "cpu", False, "no usable GPU (CTranslate2 sees no CUDA device"),
        ("cpu", TWO, "cpu", False, "device = cpu in the config"),
        ("auto", ONE, "cuda:0", True, "device = auto and a GPU is there; diarization too"),
        ("auto", TWO, "cuda:0", True, "device = auto"),
        ("cuda", ONE, "cuda:0", True, "device = cuda;"),
        ("cuda:1", TWO, "cuda:1", True, "device = cuda:1;"),
        ("CUDA:1", TWO, "cuda:1", True, "device = CUDA:1;"),
        ("auto", ONE_NO_ORT, "cuda:0", False, "diarization stays on the CPU"),
    ],
)
def test_device_choice(
    requested: str, seen: Seen, name: str, diarization_on_gpu: bool, reason: str
) -> None:
    device = choose(requested, seen)
    assert device.name == name
    assert device.diarization_on_gpu is diarization_on_gpu
    assert reason in device.reason


def test_diarization_on_torch_stays_on_the_cpu() -> None:
    device = choose("cuda", ONE, diarization_runtime="torch")
    assert device.name == "cuda:0" and not device.diarization_on_gpu
    assert "diarization stays on the CPU (models.diarization_runtime = torch)" in device.reason


@pytest.mark.parametrize(
    ("requested", "seen", "message"),
    [
        ("cuda", NONE, "device 'cuda': CTranslate2 sees no CUDA device"),
        ("cuda:0", NONE, "pip install 'transcribd[cuda]'"),
        ("cuda:2", TWO, "CTranslate2 sees 2 GPU(s) (cuda:0 to cuda:1)"),
    ],
)
def test_a_device_that_cannot_be_used_is_a_setup_error(
    requested: str, seen: Seen, message: str
) -> None:
    with pytest.raises(DeviceError, match=re.escape(message)):
        choose(requested, seen)


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cpu:0", "auto:1", "cuda:-1", "cuda:x", ""])
def test_unknown_devices(text: str) -> None:
    with pytest.raises(ValueError, match="known: auto, cpu, cuda, cuda:N"):
        parse(text)


def test_config_rejects_an_unknown_device_in_one_line() -> None:
    with pytest.raises(config_mod.ConfigError, match=r"compute\.device: unknown device 'gpu'"):
        config_mod.from_mapping({"compute": {"device": "gpu"}})
    assert config_mod.from_mapping({}).compute.device == "auto"
    assert config_mod.from_mapping({"compute": {"device": "cuda:1"}}).compute.device == "cuda:1"


@pytest.mark.parametrize(
    ("profile", "cpu", "cuda"),
    [
        ("fast", "int8", "int8_float16"),
        ("balanced", "int8", "float16"),
        ("quality", "int8", "float16"),
    ],
)
def test_each_profile_has_a_cpu_and_a_cuda_compute_type(profile: str, cpu: str, cuda: str) -> None:
    assert on_device(BUILTIN[profile], "cpu").compute_type == cpu
    on_gpu = on_device(BUILTIN[profile], "cuda")
    assert on_gpu.compute_type == cuda
    assert on_gpu.beam_size == BUILTIN[profile].beam_size  # nothing else changes


def test_the_config_overrides_either_column() -> None:
    overrides = config_mod.from_mapping(
        {
            "profiles": {
                "balanced": {"cuda_compute_type": "int8_float16", "compute_type": "int8_float32"}
            }
        }
    ).profiles
    balanced = resolve("balanced", overrides)
    assert on_device(balanced, "cpu").compute_type == "int8_float32"
    assert on_device(balanced, "cuda").compute_type == "int8_float16"


def test_onnx_runtime_providers_per_device() -> None:
    assert providers(None) == ["CPUExecutionProvider"]
    assert providers(1) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]


MB = 2**20


@pytest.mark.parametrize(
    ("total", "windows"),
    [
        (None, 8),  # NVML does not tell
        (0, 1),
        (400 * MB, 1),
        (2048 * MB, 4),
        (4096 * MB, 8),
        (24 * 1024 * MB, 16),  # a big GPU: capped
    ],
)
def test_the_gpu_batch_follows_its_memory(total: int | None, windows: int) -> None:
    assert gpu_batch_windows(total) == windows
    for name, profile in BUILTIN.items():
        on_gpu = on_device(profile, "cuda", total)
        # chunks of that many windows, never smaller than the CPU's (quality's 90 s)
        expected = max(profile.max_chunk_seconds, 30.0 * windows)
        assert on_gpu.max_chunk_seconds == on_gpu.vad.max_speech_seconds == expected, name
        assert on_device(profile, "cpu", total) == profile  # the CPU's table is untouched
