"""What every route of one server shares: the config, the store, the gate on waiting requests
and the flag a stopping server raises; and waiting for a job to end, the database being the
only channel between the node that took the request and the node that runs the job."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from daemon.config import Config
from daemon.http.errors import ApiError
from daemon.jobs import JobRecord
from daemon.rows import TERMINAL
from daemon.store import Store

POLL_SECONDS = (0.05, 0.5)
"""A waiting request reads its job this often: from the first to the second, growing (a short
clip's job ends within a second or two; a long one's need not be read ten times a second)."""
RETRY_AFTER = "5"


class Gone(Exception):
    """The client went away while its request waited (the job goes on)."""


@dataclass
class Context:
    config: Config
    store: Store
    node: str
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set when the server stops: waiting requests answer 503 (their jobs go on)."""
    waiting: int = 0
    """Requests waiting for a job now."""
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """The pages' CSRF token where nobody signs in ("none" auth): one per server process."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.asynccontextmanager
    async def gate(self) -> AsyncIterator[None]:
        """Hold one of ``[http] max_waiting`` places while a request waits (429 past them)."""
        with self._lock:
            if self.waiting >= self.config.http.max_waiting:
                raise ApiError(
                    429,
                    f"{self.waiting} requests are waiting for their jobs; ask again shortly",
                    headers={"Retry-After": RETRY_AFTER},
                )
            self.waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self.waiting -= 1

    async def until_ended(
        self,
        job_id: int,
        gone: Callable[[], object] | None = None,
        on_progress: Callable[[JobRecord], object] | None = None,
    ) -> JobRecord:
        """The job once it has ended (done, failed, cancelled, superseded).  ``gone()``
        (awaitable) says whether the client left: then :class:`Gone`.  A stopping server
        answers 503; the job goes on and asking again finds it."""
        pause = POLL_SECONDS[0]
        while True:
            job = await run_in_threadpool(self.store.get, job_id)
            if job is None:
                raise ApiError(404, f"job {job_id} no longer exists")
            if job.status in TERMINAL:
                return job
            if on_progress is not None:
                await _maybe_await(on_progress(job))
            if self.stopping.is_set():
                raise ApiError(
                    503,
                    f"the server is stopping; job {job_id} goes on: ask again later",
                    headers={"Retry-After": RETRY_AFTER},
                )
            if gone is not None and await _maybe_await(gone()):
                raise Gone(job_id)
            await asyncio.sleep(pause)
            pause = min(POLL_SECONDS[1], pause * 1.5)


async def _maybe_await(value: object) -> object:
    if asyncio.iscoroutine(value):
        return await value
    return value
