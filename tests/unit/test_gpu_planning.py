"""GPU-aware planning (pure): which GPUs get a worker, how the cores are shared with the CPU
workers, which job goes where, and what a job running out of GPU memory does next."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from daemon import retry
from daemon.devices import GpuLoad, fits, on_gpu
from daemon.errors import WorkerDied
from daemon.jobs import JobOptions
from daemon.planner import (
    GPU_MEMORY_PER_WORKER,
    FileFacts,
    Plan,
    PlannerSettings,
    QueueFacts,
    Waiting,
    assign,
    choose,
)
from daemon.pool import keep_or_retire
from daemon.sysload import LoadSnapshot

NOW = datetime(2026, 1, 1, 12)
GB = 1_000_000_000
AUTO = PlannerSettings()


def gpu(index: int, free: float, total: float = 16) -> GpuLoad:
    return GpuLoad(index, f"GPU {index}", int(total * GB), int(free * GB), 0.0)


def snap(cores: int = 2, gpus: tuple[GpuLoad, ...] = (), ram: float = 16) -> LoadSnapshot:
    return LoadSnapshot(NOW, cores, 0.0, int(ram * GB), 24 * GB, gpus)


def plan(
    snapshot: LoadSnapshot,
    usable: tuple[int, ...],
    held: tuple[int, ...] = (),
    n: int = 4,
    cpu_needed: bool = False,
    settings: PlannerSettings = AUTO,
) -> Plan:
    return choose(
        snapshot,
        QueueFacts(n, n * 300),
        FileFacts(300),
        settings,
        NOW,
        usable_gpus=usable,
        held_gpus=held,
        cpu_needed=cpu_needed,
    )


CASES = [
    # (cores, gpus seen by NVML, usable, held, queued) -> (gpu workers, cpu workers, threads)
    (2, (), (), (), 4, ((), 2, 1)),  # no GPU: as before
    (2, (gpu(0, 12),), (0,), (), 4, ((0,), 1, 1)),  # one GPU: 1 core for it, 1 CPU worker
    (8, (gpu(0, 12),), (0,), (), 4, ((0,), 3, 2)),  # 7 cores for 3 more files
    (8, (gpu(0, 12), gpu(1, 12)), (0, 1), (), 8, ((0, 1), 6, 1)),  # two GPUs
    (8, (gpu(0, 12), gpu(1, 12)), (1,), (), 8, ((1,), 7, 1)),  # device = "cuda:1"
    (8, (gpu(0, 1), gpu(1, 12)), (0, 1), (), 8, ((1,), 7, 1)),  # cuda:0 low on memory
    (8, (gpu(0, 1),), (0,), (0,), 8, ((0,), 7, 1)),  # our own worker fills it: kept
    (8, (), (0,), (), 8, ((0,), 7, 1)),  # no NVML: CTranslate2's word is taken
    (1, (gpu(0, 12),), (0,), (), 4, ((0,), 0, 1)),  # one core: the GPU worker only
    (8, (gpu(0, 12),), (0,), (), 1, ((0,), 1, 7)),  # one file: a CPU worker stays warm
    (2, (gpu(0, 12), gpu(1, 12), gpu(2, 12)), (0, 1, 2), (), 4, ((0, 1), 0, 1)),  # cores cap
]


@pytest.mark.parametrize(("cores", "seen", "usable", "held", "queued", "expected"), CASES)
def test_gpu_slots_and_cores(
    cores: int,
    seen: tuple[GpuLoad, ...],
    usable: tuple[int, ...],
    held: tuple[int, ...],
    queued: int,
    expected: tuple[tuple[int, ...], int, int],
) -> None:
    p = plan(snap(cores, seen), usable, held, queued)
    assert (p.gpus, p.workers, p.threads) == expected, p.reason
    # never more threads than cores: the GPU workers' own and the CPU workers'
    assert p.workers * p.threads + len(p.gpus) * p.gpu_threads <= cores


def test_a_gpu_low_on_memory_is_named_in_the_reason() -> None:
    p = plan(snap(8, (gpu(0, 0.5),)), (0,))
    assert p.gpus == ()
    assert f"cuda:0 has less than the {GPU_MEMORY_PER_WORKER / GB:.1f} GB free" in p.reason
    # the same plan however little is free: the daemon logs a plan only when it changes
    assert plan(snap(8, (gpu(0, 0.7),)), (0,)) == p


@pytest.mark.parametrize(
    ("cores", "ram", "gpus", "expected"),
    [
        (1, 16, 1, ((), 1)),  # one core: the GPU worker gives way to the CPU worker
        (2, 16, 1, ((0,), 1)),
        (2, 16, 2, ((0,), 1)),  # two GPUs, two cores: one GPU worker and the CPU worker
        (8, 3.2, 2, ((0,), 1)),  # memory for two workers: the CPU worker is one of them
    ],
)
def test_a_job_that_must_run_on_the_cpu_gets_a_cpu_worker(
    cores: int, ram: float, gpus: int, expected: tuple[tuple[int, ...], int]
) -> None:
    seen = tuple(gpu(i, 12) for i in range(gpus))
    usable = tuple(range(gpus))
    p = plan(snap(cores, seen, ram), usable, cpu_needed=True)
    assert (p.gpus, p.workers) == expected, p.reason
    assert p.workers * p.threads + len(p.gpus) * p.gpu_threads <= cores


@pytest.mark.parametrize(("most", "expected"), [(1, ((0,), 0)), (2, ((0,), 1)), (3, ((0,), 2))])
def test_max_workers_counts_the_gpu_workers(
    most: int, expected: tuple[tuple[int, ...], int]
) -> None:
    p = plan(snap(8, (gpu(0, 12),)), (0,), n=8, settings=PlannerSettings(max_workers=most))
    assert (p.gpus, p.workers) == expected
    with_cpu_job = plan(
        snap(8, (gpu(0, 12),)), (0,), n=8, cpu_needed=True, settings=PlannerSettings(max_workers=1)
    )
    assert (with_cpu_job.gpus, with_cpu_job.workers) == ((), 1)


def test_gpu_workers_count_against_memory() -> None:
    # RAM for two workers: the GPU's and one CPU worker
    p = plan(snap(8, (gpu(0, 12), gpu(1, 12)), ram=3.2), (0, 1))
    assert len(p.gpus) + p.workers <= 2


CPU, G0, G1 = "cpu", "cuda:0", "cuda:1"
W = [Waiting(1, 60), Waiting(2, 3600), Waiting(3, 600), Waiting(4, 7200, "cpu")]

ASSIGN = [
    # (waiting, idle slots) -> (job, slot) pairs
    (W, [(0, CPU)], [(1, 0)]),  # CPU only: queue order
    (W, [(0, G0)], [(2, 0)]),  # the GPU: the longest it may take (not 4: it asks for the CPU)
    (W, [(0, CPU), (1, G0)], [(2, 1), (1, 0)]),  # the GPU picks first
    (W, [(0, CPU), (1, CPU), (2, G0)], [(2, 2), (1, 0), (3, 1)]),
    (W, [(0, G0), (1, G1)], [(2, 0), (3, 1)]),
    ([Waiting(1, 60, "cuda:1"), Waiting(2, 90)], [(0, G0), (1, G1)], [(2, 0), (1, 1)]),
    ([Waiting(1, 60, "cuda")], [(0, CPU)], []),  # asks for a GPU: waits for one
    ([Waiting(1, 60, "cpu")], [(0, G0)], []),  # after a GPU OOM: never back on a GPU
    ([Waiting(1, 60, "auto"), Waiting(2, 60)], [(0, G0)], [(1, 0)]),  # a tie: first in line
    ([], [(0, CPU), (1, G0)], []),
]


@pytest.mark.parametrize(("waiting", "idle", "expected"), ASSIGN)
def test_assign(
    waiting: list[Waiting], idle: list[tuple[int, str]], expected: list[tuple[int, int]]
) -> None:
    assert assign(waiting, idle) == expected


@pytest.mark.parametrize(
    ("request_", "slot", "ok"),
    [
        (None, CPU, True),
        (None, G1, True),
        ("auto", G0, True),
        ("cpu", CPU, True),
        ("cpu", G0, False),
        ("cuda", G1, True),
        ("cuda", CPU, False),
        ("cuda:1", G1, True),
        ("cuda:1", G0, False),
        ("CUDA:0", G0, True),
    ],
)
def test_fits(request_: str | None, slot: str, ok: bool) -> None:
    assert fits(request_, slot) is ok


def test_on_gpu() -> None:
    assert [on_gpu(r) for r in (None, "auto", "cpu", "cuda", "cuda:2")] == [
        None,
        None,
        False,
        True,
        True,
    ]


@pytest.mark.parametrize(
    "message",
    [
        "CUDA failed with error out of memory",
        "CUDA out of memory. Tried to allocate 20.00 MiB",
        "cuBLAS failed with status CUBLAS_STATUS_ALLOC_FAILED",
        "CUDA failure 2: out of memory ; GPU=0 ; hostname=x ; file=cuda_call.cc ; line=123",
    ],
)
def test_gpu_out_of_memory_retries_on_the_cpu_at_once(message: str) -> None:
    exc = RuntimeError(message)
    # even on its last attempt: the CPU gets its own
    d = retry.decide(exc, 3, 3, NOW, "balanced", device="cuda:0")
    assert d.retry and d.run_after == NOW and d.device == "cpu" and d.profile is None
    assert "retrying on the CPU" in d.message
    options = d.options_for_retry(JobOptions(language="de", device="cuda"))
    assert options == JobOptions(language="de", device="cuda", oom_device="cpu")
    assert options.device_request == "cpu"
    assert retry.failure_class(exc) == "gpu_out_of_memory"


def test_gpu_out_of_memory_on_the_cpu_is_not_retried_on_the_cpu_again() -> None:
    exc = RuntimeError("CUDA failed with error out of memory")
    d = retry.decide(exc, 1, 3, NOW, "balanced", device="cpu")
    assert d.device is None and d.run_after == NOW + timedelta(seconds=retry.BASE_DELAY_SECONDS)
    assert retry.decide(exc, 3, 3, NOW, "balanced", device="cpu").retry is False


@pytest.mark.parametrize(
    "exc",
    [MemoryError(), WorkerDied(-9), RuntimeError("std::bad_alloc")],
)
def test_the_machines_memory_is_not_the_gpus(exc: BaseException) -> None:
    d = retry.decide(exc, 1, 3, NOW, "balanced", device="cuda:0")
    assert d.device is None and d.profile == "fast"  # lighter, as on the CPU


class OrtFail(Exception):
    """ONNX Runtime's exceptions derive from Exception, not RuntimeError."""


@pytest.mark.parametrize(
    "exc",
    [
        OrtFail(
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while "
            "running Conv node. Failed to allocate memory for requested buffer of size 8"
        ),
        RuntimeError("out of memory"),
    ],
)
def test_an_allocator_out_of_memory_on_a_gpu_is_the_gpus(exc: BaseException) -> None:
    on_gpu = retry.decide(exc, 1, 3, NOW, "balanced", device="cuda:0")
    assert on_gpu.device == "cpu" and on_gpu.run_after == NOW
    on_cpu = retry.decide(exc, 1, 3, NOW, "balanced", device="cpu")
    assert on_cpu.device is None


def test_other_cuda_errors_are_not_out_of_memory() -> None:
    exc = RuntimeError("CUDA failed with error an illegal memory access was encountered")
    assert retry.decide(exc, 1, 3, NOW, "balanced", device="cuda:0").device is None
    assert not retry.gpu_out_of_memory(RuntimeError("CUDA error 20: no device"), "cuda:0")


def test_a_device_request_this_version_cannot_read_fits_nowhere() -> None:
    assert not fits("tpu:0", CPU) and not fits("tpu:0", G0)
    assert on_gpu("tpu:0") is None


@pytest.mark.parametrize(
    ("fits", "since", "now", "expected"),
    [
        (True, None, 100.0, (False, None)),
        (True, 40.0, 100.0, (False, None)),  # wanted again: the clock starts over
        (False, None, 100.0, (False, 100.0)),  # unwanted from now: kept warm
        (False, 50.0, 100.0, (False, 50.0)),
        (False, 40.0, 100.0, (True, 40.0)),  # a minute unwanted: stopped
    ],
)
def test_an_unwanted_idle_worker_stays_warm_for_a_minute(
    fits: bool, since: float | None, now: float, expected: tuple[bool, float | None]
) -> None:
    assert keep_or_retire(fits, since, now, grace=60.0) == expected
