"""One failure, one page: a failure that newer content may still supersede waits before it is
announced, and an announcement whose job is superseded before it is delivered is dropped.  On
SQLite and PostgreSQL, with a real hook program and a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import stat
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.config import Config, HooksConfig
from daemon.delivery import Deliverer
from daemon.errors import DecodeError, WorkerDied
from daemon.executor import settle
from daemon.hooks import DeliveryStatus
from daemon.jobs import JobRecord, Lease
from daemon.store import Store, open_store
from tests.webhook_server import Receiver, serve

T0 = datetime(2026, 12, 1, 12, 0, 0)
HOLD = 60.0
TRUNCATED = DecodeError(
    "truncated or damaged: 2.0 s of audio decoded, but the header declares 6.0 s"
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def hook_program(folder: Path) -> Path:
    """A real hook: each call leaves its argv (the event and the job) in ``calls``; it waits
    while a file ``hold`` exists (a try under way, for as long as the test wants)."""
    path = folder / "hook.sh"
    path.write_text(
        "#!/bin/sh\n"
        f'd="{folder}"\n'
        'touch "$d/started"\n'
        'while [ -e "$d/hold" ]; do sleep 0.05; done\n'
        'echo "$1 $2" >> "$d/calls"\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def calls(folder: Path) -> list[str]:
    f = folder / "calls"
    return f.read_text().splitlines() if f.exists() else []


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    r = Receiver()
    server = serve(r)
    yield r, next(server)
    server.close()


@pytest.fixture
def setup(
    make_config: Callable[..., Config],
    db_url: str,
    tmp_path: Path,
    receiver: tuple[Receiver, str],
) -> Iterator[tuple[Config, Store]]:
    program = str(hook_program(tmp_path))
    config = make_config(
        database={"url": db_url},
        hooks={
            "on_done": [program, "{status}", "{job}"],
            "on_failed": [program, "{status}", "{job}"],
            "webhook": receiver[1],
            "failure_hold_seconds": HOLD,
        },
    )
    store = open_store(config, migrate=True)
    yield config, store
    store.close()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run(store: Store, path: str, content: str, at: datetime) -> tuple[JobRecord, Lease]:
    """A job for ``content`` at ``path``, claimed by a worker."""
    job_id = store.enqueue(path, sha(content), 10, at).job_id
    [job] = store.claim("w1", 1, at, 600.0, job_id=job_id)
    return job, Lease(job.id, "w1", job.attempts)


def states(store: Store, job_id: int) -> list[tuple[str, DeliveryStatus]]:
    return [(d.kind, d.status) for d in store.outbox.of_jobs(job_id).get(job_id, [])]


def test_a_slow_writers_pieces_page_nobody_and_its_whole_file_is_announced_once(
    setup: tuple[Config, Store], receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    config, store = setup
    r, _url = receiver
    clock = Clock()
    deliverer = Deliverer(config.hooks, store.outbox, "n1:hooks", clock)
    pieces = []
    for i in range(3):  # each piece is found truncated, then superseded by the next
        job, lease = run(store, "/in/slow.wav", f"piece {i}", clock.now)
        assert not settle(config, store, job, lease, clock.now, TRUNCATED)
        pieces.append(job.id)
        assert deliverer.run_due() == 0  # held: the file may still be growing
        clock.advance(HOLD / 2)
    job, lease = run(store, "/in/slow.wav", "the whole file", clock.now)
    assert store.finish(lease, clock.now, ["/out/slow.txt"], {})
    assert deliverer.run_due() == 2  # the done job: at once
    clock.advance(3 * HOLD)
    assert deliverer.run_due() == 0  # the pieces' failures: never

    assert calls(tmp_path) == [f"done {job.id}"]
    assert [x.json["event"] for x in r.delivered] == ["done"]
    for piece in pieces:
        assert states(store, piece) == [
            ("on_failed", DeliveryStatus.DROPPED),
            ("webhook", DeliveryStatus.DROPPED),
        ]
    dropped = store.outbox.of_jobs(pieces[0])[pieces[0]][0]
    assert dropped.tries == 0 and f"superseded by #{pieces[1]}" in (dropped.result or "")


def test_a_file_that_stays_broken_pages_once_when_the_hold_has_passed(
    setup: tuple[Config, Store], receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    config, store = setup
    r, _url = receiver
    clock = Clock()
    deliverer = Deliverer(config.hooks, store.outbox, "n1:hooks", clock)
    broken, lease = run(store, "/in/broken.wav", "half a file", clock.now)
    assert not settle(config, store, broken, lease, clock.now, TRUNCATED)
    clock.advance(HOLD - 1)
    assert deliverer.run_due() == 0
    clock.advance(1)
    assert deliverer.run_due() == 2
    clock.advance(3600)
    assert deliverer.run_due() == 0
    assert calls(tmp_path) == [f"failed {broken.id}"]
    assert [x.json["job"]["id"] for x in r.delivered] == [broken.id]

    # a failure that newer content cannot undo (not the file's content) is announced at once
    other, lease = run(store, "/in/other.wav", "fine audio", clock.now)
    for attempt in range(config.daemon.max_attempts):
        if attempt:
            [other] = store.claim("w1", 1, clock.now + timedelta(hours=1), 600.0)
            lease = Lease(other.id, "w1", other.attempts)
        settle(config, store, other, lease, clock.now, WorkerDied(-9))
    assert states(store, other.id) == [
        ("on_failed", DeliveryStatus.PENDING),
        ("webhook", DeliveryStatus.PENDING),
    ]
    assert deliverer.run_due() == 2
    assert calls(tmp_path) == [f"failed {broken.id}", f"failed {other.id}"]


def test_what_was_delivered_stays_and_what_was_not_is_dropped(
    setup: tuple[Config, Store], receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    config, store = setup
    r, _url = receiver
    clock = Clock()
    deliverer = Deliverer(config.hooks, store.outbox, "n1:hooks", clock)
    first, lease = run(store, "/in/talk.wav", "take 1", clock.now)
    assert store.finish(lease, clock.now, ["/out/talk.txt"], {})
    assert deliverer.run_due() == 2
    r.answers = [503]  # the receiver fails the next one: it stays pending, due again later
    second, lease = run(store, "/in/talk.wav", "take 2", clock.now)
    assert store.finish(lease, clock.now, ["/out/talk.txt"], {})
    assert deliverer.run_due() == 2
    assert states(store, second.id) == [
        ("on_done", DeliveryStatus.DELIVERED),
        ("webhook", DeliveryStatus.PENDING),
    ]
    run(store, "/in/talk.wav", "take 3", clock.now)  # supersedes both
    assert states(store, first.id) == [
        ("on_done", DeliveryStatus.DELIVERED),  # never taken back
        ("webhook", DeliveryStatus.DELIVERED),
    ]
    assert states(store, second.id) == [
        ("on_done", DeliveryStatus.DELIVERED),
        ("webhook", DeliveryStatus.DROPPED),
    ]
    clock.advance(3600)
    assert deliverer.run_due() == 0
    assert [x.answered for x in r.received] == [200, 503]
    assert calls(tmp_path) == [f"done {first.id}", f"done {second.id}"]


def test_a_try_under_way_when_its_job_is_superseded_is_not_recorded_delivered(
    setup: tuple[Config, Store], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, store = setup
    clock = Clock()
    only_the_hook = HooksConfig(on_done=config.hooks.on_done)  # this node runs the program only
    deliverer = Deliverer(only_the_hook, store.outbox, "n1:hooks", clock)
    job, lease = run(store, "/in/talk.wav", "take 1", clock.now)
    assert store.finish(lease, clock.now, ["/out/talk.txt"], {})
    (tmp_path / "hold").touch()
    trying = threading.Thread(target=deliverer.run_due)
    with caplog.at_level(logging.INFO, logger="daemon.delivery"):
        trying.start()
        deadline = time.monotonic() + 10
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / "started").exists()
        run(store, "/in/talk.wav", "take 2", clock.now)  # supersedes it mid-try
        (tmp_path / "hold").unlink()
        trying.join(10)
    assert not trying.is_alive()
    assert calls(tmp_path) == [f"done {job.id}"]  # the hook did run
    assert states(store, job.id) == [
        ("on_done", DeliveryStatus.DROPPED),
        ("webhook", DeliveryStatus.DROPPED),
    ]
    assert "not recorded" in caplog.text and "delivered (exit 0)" not in caplog.text
