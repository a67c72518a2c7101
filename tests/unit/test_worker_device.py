"""A worker's models run on the device its pool derives from the daemon's: the runtimes
(CTranslate2, ONNX Runtime) are asked what they see once, by the daemon, never again by each
worker."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from daemon import devices, logs, workers
from daemon.config import Config
from daemon.pool import WorkerPool, worker_device
from daemon.threads import worker_env
from daemon.warm import WarmModels

ONE = devices.Seen(1, True)
TWO = devices.Seen(2, True)
TWO_NO_ORT = devices.Seen(2, False)


@pytest.mark.parametrize(
    ("seen", "runtime", "slot"),
    [
        (ONE, "onnxruntime", "cpu"),
        (ONE, "onnxruntime", "cuda:0"),
        (TWO, "onnxruntime", "cuda:0"),
        (TWO, "onnxruntime", "cuda:1"),
        (TWO, "torch", "cuda:1"),
        (TWO_NO_ORT, "onnxruntime", "cuda:1"),
        (TWO_NO_ORT, "onnxruntime", "cpu"),
    ],
)
def test_a_worker_gets_the_device_it_found_when_it_probed(
    seen: devices.Seen, runtime: str, slot: str
) -> None:
    """The device derived from the daemon's is the one the worker found when it asked the
    runtimes itself (``[compute] device`` set to its slot)."""
    parent = devices.choose("auto", seen, runtime)
    probed = devices.choose(slot, seen, runtime)
    derived = worker_device(parent, slot)
    assert (derived.kind, derived.index, derived.diarization_on_gpu, derived.usable) == (
        probed.kind,
        probed.index,
        probed.diarization_on_gpu,
        probed.usable,
    )
    assert derived.name == slot


@pytest.mark.parametrize(
    ("parent", "slot"),
    [(devices.CPU, "cuda:0"), (devices.choose("cuda:1", TWO), "cuda:0")],
)
def test_no_worker_on_a_gpu_the_daemon_does_not_use(parent: devices.Device, slot: str) -> None:
    with pytest.raises(ValueError, match=f"no worker on {slot}"):
        worker_device(parent, slot)


class _Process:
    """A worker process never started: its target and arguments are kept."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], **_: Any) -> None:
        self.target, self.args, self.pid, self.exitcode = target, args, 4242, None

    def start(self) -> None:
        pass

    def is_alive(self) -> bool:
        return False


class _Context:
    """A multiprocessing context whose processes are :class:`_Process`."""

    def __init__(self) -> None:
        self.processes: list[_Process] = []

    def Queue(self) -> queue.Queue[Any]:  # multiprocessing's name
        return queue.Queue()

    def Event(self) -> threading.Event:  # multiprocessing's name
        return threading.Event()

    def Process(self, **kwargs: Any) -> _Process:  # multiprocessing's name
        process = _Process(**kwargs)
        self.processes.append(process)
        return process


def test_a_worker_s_models_take_the_device_given_without_probing(
    make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool starts a GPU worker with the daemon's device for its GPU; the worker's body
    (run here, in this process) keeps its models there and never probes (``[compute] device``
    is "auto", which would)."""

    def probe() -> devices.Seen:
        raise AssertionError("a worker asked the runtimes again")

    monkeypatch.setattr(devices, "probe", probe)
    config = make_config(compute={"device": "auto"})
    context = _Context()
    pool = WorkerPool(config=config, owner_prefix="t", _ctx=context)
    pool.parent_device = devices.choose("auto", TWO)
    pool.resize(workers=0, threads=1, gpus=(1,), gpu_threads=2)
    (process,) = context.processes
    assert process.target is workers.worker_main
    assert process.args[2] == worker_device(pool.parent_device, "cuda:1")

    # the worker's body: no store, no job run, no signal handlers or logging set for pytest
    models: list[WarmModels] = []

    class Executor:
        def __init__(self, config: Config, store: Any, warm: WarmModels, *_: Any, **__: Any):
            models.append(warm)
            self.failure = ""

        def execute(self, job: Any, **_: Any) -> bool:
            return True

    monkeypatch.setattr(workers, "Executor", Executor)
    monkeypatch.setattr(workers, "open_store", lambda *_a, **_k: None)
    monkeypatch.setattr(workers, "bound_malloc_arenas", lambda: False)
    monkeypatch.setattr(workers.signal, "signal", lambda *_a: None)
    monkeypatch.setattr(logs, "setup", lambda *_a: None)
    for name in worker_env(2):  # the worker sets them: they are put back after the test
        monkeypatch.setenv(name, os.environ.get(name, ""))
    pool.submit(SimpleNamespace(id=7, attempts=1, lease_owner=None), 0)  # type: ignore[arg-type]
    pool.stop(timeout=0.0)  # asks the worker to go once its job is done
    process.target(*process.args)
    (warm,) = models
    assert warm.device.name == "cuda:1" and warm.device.diarization_on_gpu
