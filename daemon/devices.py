"""Where the models run: the CPU or an NVIDIA GPU.

``[compute] device`` is "auto" (a GPU where CTranslate2 sees one, else the CPU), "cpu", "cuda"
(the first GPU) or "cuda:N".  :func:`probe` asks the installed runtimes what they see (it
never fails: a runtime without CUDA support sees no GPU); :func:`choose` is a pure function of
the request and what was seen, so every case has a table test without a GPU.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from daemon.errors import SetupError

log = logging.getLogger(__name__)

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")

CUDA_INSTALL = (
    "install the CUDA build: pip install 'transcribd[cuda]' (README: Using a GPU), "
    "with an NVIDIA driver for CUDA 12"
)


class DeviceError(SetupError):
    """The configured device cannot be used on this machine (a start-up error, exit code 2)."""


@dataclass(frozen=True)
class Seen:
    """What the installed runtimes report about GPUs (see :func:`probe`)."""

    cuda_devices: int = 0
    """GPUs CTranslate2 (Whisper) can use."""
    onnx_cuda: bool = False
    """ONNX Runtime has its CUDA execution provider (the onnxruntime-gpu build)."""
    why_none: str = ""
    """Why no GPU is usable, when none is (for the log line and doctor)."""


@dataclass(frozen=True)
class Device:
    """Where a worker's models run."""

    kind: str = "cpu"
    """"cpu" or "cuda"."""
    index: int = 0
    diarization_on_gpu: bool = False
    """The diarization networks run on the GPU too (ONNX Runtime's CUDA provider)."""
    reason: str = ""
    usable: tuple[int, ...] = ()
    """The GPUs the daemon may give a worker each: every GPU seen for "auto" and "cuda", the
    one named for "cuda:N", none on the CPU."""

    @property
    def name(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


CPU = Device("cpu", reason="configured")


def parse(text: str) -> tuple[str, int | None]:
    """``"cuda:1"`` -> ("cuda", 1); ValueError for anything not in :data:`DEVICE_CHOICES`."""
    match = DEVICE_PATTERN.match(text.strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ValueError(f"unknown device {text!r} (known: {', '.join(DEVICE_CHOICES)})")
    index = match.group(2)
    return match.group(1), None if index is None else int(index)


def choose(requested: str, seen: Seen, diarization_runtime: str = "onnxruntime") -> Device:
    """The device for ``requested`` given what the runtimes see (pure).  "auto" falls back to
    the CPU and says why; an explicit "cuda" that cannot be used is a :class:`DeviceError`."""
    kind, index = parse(requested)
    if kind == "cpu":
        return Device("cpu", reason="device = cpu in the config")
    if seen.cuda_devices == 0:
        why = seen.why_none or "CTranslate2 sees no CUDA device"
        if kind == "auto":
            return Device("cpu", reason=f"no usable GPU ({why})")
        raise DeviceError(f'device {requested!r}: {why}; {CUDA_INSTALL}, or set device = "cpu"')
    wanted = index or 0
    if wanted >= seen.cuda_devices:  # only "cuda:N" names an index
        raise DeviceError(
            f"device {requested!r}: CTranslate2 sees {seen.cuda_devices} GPU(s) "
            f"(cuda:0 to cuda:{seen.cuda_devices - 1})"
        )
    on_gpu = diarization_runtime == "onnxruntime" and seen.onnx_cuda
    if on_gpu:
        where = "diarization too"
    elif diarization_runtime != "onnxruntime":
        where = f"diarization stays on the CPU (models.diarization_runtime = {diarization_runtime})"
    else:
        where = (
            "diarization stays on the CPU (ONNX Runtime has no CUDA provider: "
            "pip install onnxruntime-gpu in place of onnxruntime)"
        )
    how = "device = auto and a GPU is there" if kind == "auto" else f"device = {requested}"
    usable = (wanted,) if index is not None else tuple(range(seen.cuda_devices))
    return Device("cuda", wanted, on_gpu, reason=f"{how}; {where}", usable=usable)


def on_gpu(request: str | None) -> bool | None:
    """Where a job's own ``device`` request lets it run: True only on a GPU ("cuda",
    "cuda:N"), False only on the CPU, None anywhere (no request, or "auto")."""
    if request is None:
        return None
    try:
        kind = parse(request)[0]
    except ValueError:
        return None
    return None if kind == "auto" else kind == "cuda"


def fits(request: str | None, slot: str) -> bool:
    """Whether a job with this ``device`` request may run on a worker of device ``slot``
    ("cpu" or "cuda:N"); "cuda" fits any GPU, "cuda:N" only that one (pure)."""
    if request is None:
        return True
    try:
        kind, index = parse(request)
    except ValueError:  # stored by another version: not for this node to guess
        return False
    if kind == "auto":
        return True
    if kind == "cpu" or slot == "cpu":
        return kind == "cpu" and slot == "cpu"
    return index is None or slot == f"cuda:{index}"


@dataclass(frozen=True)
class GpuLoad:
    """One GPU as NVML sees it (see :func:`gpu_loads`)."""

    index: int
    name: str
    memory_total: int
    """Bytes."""
    memory_free: int
    """Bytes free now (other programs' use and our own workers' included)."""
    utilization: float
    """Share of the last sample period the GPU was busy, 0-1."""


def gpu_loads() -> tuple[GpuLoad, ...]:
    """Every GPU NVML (nvidia-ml-py) sees, with its memory and use; none where NVML is not
    installed or finds no driver (never raises).

    NVML numbers GPUs by PCI bus; CUDA does too once :func:`pci_order` has run.  NVML ignores
    ``CUDA_VISIBLE_DEVICES``, so where that is set its figures would belong to other GPUs than
    CUDA's numbers: none are given (the planner then takes CTranslate2's word)."""
    nvml = _nvml()
    if nvml is None or os.environ.get("CUDA_VISIBLE_DEVICES"):
        return ()
    try:
        out = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            name = nvml.nvmlDeviceGetName(handle)
            out.append(
                GpuLoad(
                    i,
                    name.decode() if isinstance(name, bytes) else str(name),
                    int(memory.total),
                    int(memory.free),
                    float(rates.gpu) / 100,
                )
            )
        return tuple(out)
    except Exception:
        return ()


def driver_versions() -> tuple[str, str] | None:
    """(driver, CUDA driver API) versions from NVML; None where NVML does not answer."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        cuda = int(nvml.nvmlSystemGetCudaDriverVersion())
        return str(nvml.nvmlSystemGetDriverVersion()), f"{cuda // 1000}.{cuda % 1000 // 10}"
    except Exception:
        return None


@functools.cache
def _nvml() -> Any:
    """pynvml, initialised once per process; None without it or without a driver."""
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def pci_order() -> None:
    """Number CUDA devices by PCI bus, as NVML does (CUDA's default puts the fastest first),
    in this process and the workers it starts; before CUDA is first used."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


PROBE_SECONDS = 60.0
"""How long the child process asking the runtimes may take (a CUDA driver's first start)."""


@functools.cache
def probe() -> Seen:
    """Ask CTranslate2 and ONNX Runtime what they see (never raises), in a child process: the
    daemon's main process never imports them (only its workers need them).  Asked once per
    process (what the runtimes see does not change while it runs), so a page's rename, which
    resolves the device for its cache key, starts no child."""
    pci_order()
    code = "import json; from daemon.devices import ask_runtimes; print(json.dumps(ask_runtimes()))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=PROBE_SECONDS,
            check=True,
        )
        count, onnx_cuda, why = json.loads(out.stdout.strip().splitlines()[-1])
        return Seen(int(count), bool(onnx_cuda), str(why))
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit {exc.returncode}"]
        return Seen(0, False, f"CTranslate2 could not query CUDA: {last[0]}")
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        return Seen(0, False, f"CTranslate2 could not query CUDA: {exc}")


def ask_runtimes() -> tuple[int, bool, str]:
    """(CUDA devices CTranslate2 sees, ONNX Runtime has CUDA, why none) in this process: the
    body of :func:`probe`'s child."""
    try:
        import ctranslate2

        count = int(ctranslate2.get_cuda_device_count())
        why = "" if count else "CTranslate2 sees no CUDA device (no GPU, driver or CUDA runtime)"
    except Exception as exc:  # a broken CUDA install must not stop a CPU daemon
        count, why = 0, f"CTranslate2 could not query CUDA: {exc}"
    onnx_cuda = False
    if count:  # ONNX Runtime is imported only where a GPU could serve it
        try:
            import onnxruntime

            onnx_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        except Exception:
            onnx_cuda = False
    return count, onnx_cuda, why


def resolve(requested: str, diarization_runtime: str = "onnxruntime") -> Device:
    """:func:`choose` on this machine (``"cpu"`` asks no runtime)."""
    if parse(requested)[0] == "cpu":
        return choose(requested, Seen(), diarization_runtime)
    return choose(requested, probe(), diarization_runtime)


def select(requested: str, diarization_runtime: str = "onnxruntime") -> Device:
    """:func:`resolve`, with one log line saying which device and why."""
    device = resolve(requested, diarization_runtime)
    log.info(
        "models run on %s: %s",
        device.name,
        device.reason,
        extra={"device": device.name, "diarization_on_gpu": device.diarization_on_gpu},
    )
    return device
