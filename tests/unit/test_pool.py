"""The pool's pure helpers, and its idle rule on fake processes (its real processes are
tested in tests/e2e/test_pool.py and tests/e2e/test_idle.py)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest

from daemon.config import Config
from daemon.pool import LEAVE_SECONDS, WorkerPool, idle_expired, owner_gone


@pytest.mark.parametrize(
    ("owner", "alive", "gone"),
    [
        ("h:100:7:w0:200", {100, 200}, False),
        ("h:100:7:w0:200", {100}, True),  # the worker is gone
        ("h:100:7:w0:200", {200}, False),  # orphaned worker still alive: it releases itself
        ("other:100:7:w0:200", set(), False),  # another machine: wait for the lease
        ("h:100:7", set(), False),  # not a pool owner
        ("h:100:7:w0:x", set(), False),
    ],
)
def test_owner_gone(owner: str, alive: set[int], gone: bool) -> None:
    assert owner_gone(owner, "h", lambda pid: pid in alive) is gone


@pytest.mark.parametrize(
    ("idle_since", "now", "limit", "expired"),
    [
        (100.0, 100.0, 600.0, False),
        (100.0, 699.9, 600.0, False),
        (100.0, 700.0, 600.0, True),
        (100.0, 100.0, 0.0, True),  # 0: a worker exits as soon as it has nothing to do
    ],
)
def test_idle_expired(idle_since: float, now: float, limit: float, expired: bool) -> None:
    assert idle_expired(idle_since, now, limit) is expired


class FakeProcess:
    """A worker process that exits once None is the last thing put on its tasks queue
    (worker_main's fifth argument)."""

    pids = iter(range(1000, 2000))

    def __init__(self, target: Any, args: tuple[Any, ...], name: str, daemon: bool) -> None:
        self.tasks: queue.Queue[Any] = args[4]
        self.pid = next(self.pids)
        self.exitcode: int | None = None
        self.terminated = False

    def start(self) -> None:
        pass

    def is_alive(self) -> bool:
        if self.exitcode is None and not self.tasks.empty() and self.tasks.queue[-1] is None:
            self.exitcode = 0  # it read the None and returned
        return self.exitcode is None

    def join(self, timeout: float | None = None) -> None:
        self.is_alive()

    def terminate(self) -> None:
        self.terminated, self.exitcode = True, -15

    kill = terminate


class FakeContext:
    Queue = queue.Queue
    Event = threading.Event
    Process = FakeProcess


def fake_pool(make_config: Callable[..., Config]) -> WorkerPool:
    return WorkerPool(config=make_config(), owner_prefix="h:1:2", _ctx=FakeContext())


def test_idle_workers_exit_and_busy_ones_stay(make_config: Callable[..., Config]) -> None:
    pool = fake_pool(make_config)
    pool.resize(workers=2, threads=1, now=0.0)
    busy, idle = pool._slots
    busy.busy = 7  # running a job
    started = idle.idle_since
    assert pool.retire_idle(60.0, now=started + 59.0) == 0
    assert pool.retire_idle(60.0, now=started + 60.0) == 1
    assert pool._slots == [busy]  # the running one stays, whatever its idle time was
    assert idle.tasks.queue[-1] is None  # told to go, as a stopped worker is
    assert pool.retire_idle(60.0, now=started + 61.0) == 0
    assert pool._leaving == []  # it exited and was reaped
    assert not idle.process.terminated


def test_a_worker_that_does_not_leave_is_killed(make_config: Callable[..., Config]) -> None:
    pool = fake_pool(make_config)
    pool.resize(workers=1, threads=1, now=0.0)
    slot = pool._slots[0]
    process = slot.process
    assert isinstance(process, FakeProcess)
    assert pool.retire_idle(0.0, now=slot.idle_since) == 1
    process.tasks.put("stuck")  # it never reads its None
    pool.retire_idle(0.0, now=slot.idle_since + LEAVE_SECONDS - 1)
    assert pool._leaving and not process.terminated
    pool.retire_idle(0.0, now=slot.idle_since + LEAVE_SECONDS)
    assert pool._leaving == [] and process.terminated


def test_a_job_waiting_after_the_idle_exit_starts_a_worker(
    make_config: Callable[..., Config],
) -> None:
    pool = fake_pool(make_config)
    pool.resize(workers=1, threads=1, now=0.0)
    first = pool._slots[0]
    pool.retire_idle(10.0, now=first.idle_since + 10.0)
    assert pool.size() == 0 and pool.idle_slots() == []
    pool.resize(workers=1, threads=1, now=first.idle_since + 11.0)
    assert pool.size() == 1 and pool.idle_slots() == [0]
    assert pool._slots[0].process.pid != first.process.pid
