"""Announcing a job's end for real: the outbox on SQLite and on PostgreSQL, a real HTTP server
on 127.0.0.1 that fails the first deliveries, and a real script."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon import hooks
from daemon.config import HooksConfig
from daemon.db import make_engine, upgrade
from daemon.delivery import Deliverer
from daemon.hooks import DeliveryStatus
from daemon.jobs import JobStatus, Lease
from daemon.store import Store
from tests.webhook_server import Receiver, serve

T0 = datetime(2026, 12, 1, 12, 0, 0)
EVERYTHING = hooks.Announce(on_done=True, on_failed=True, webhook=True)


class Clock:
    """Time the test moves by hand (the deliverer's retries are due by it)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield Store(engine, node="n1", announce=EVERYTHING)
    engine.dispose()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    r = Receiver(answers=[503, 500])  # the first two deliveries fail
    server = serve(r)
    yield r, next(server)
    server.close()


def script(tmp_path: Path) -> Path:
    """A real hook program: records its argv and stdin, and its exit code is in a file."""
    path = tmp_path / "hook.sh"
    path.write_text(
        "#!/bin/sh\n"
        f'd="{tmp_path}"\n'
        'n=$(ls "$d"/call-*.json 2>/dev/null | wc -l)\n'
        'for a in "$@"; do printf "%s\\n" "$a"; done > "$d/call-$n.argv"\n'
        'cat > "$d/call-$n.json"\n'
        'echo "$TRANSCRIBD_IDEMPOTENCY_KEY" > "$d/call-$n.key"\n'
        'exit "$(cat "$d/exit-code" 2>/dev/null || echo 0)"\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def end_job(store: Store, event: str, path: str = "/in/a b.wav", owner: str = "w1") -> int:
    job_id = store.enqueue(path, hashlib.sha256(path.encode()).hexdigest(), 10, T0).job_id
    [job] = store.claim(owner, 1, T0, 60.0)
    lease = Lease(job.id, owner, job.attempts)
    if event == "done":
        assert store.finish(lease, T0, ["/out/a b.txt", "/out/a b.json"], {"rtf": 0.1})
    else:
        assert store.fail(lease, T0, "no audio stream")
    return job_id


def test_a_jobs_end_and_its_announcements_are_one_transaction(store: Store) -> None:
    done, failed = end_job(store, "done"), end_job(store, "failed", "/in/c.wav")
    found = store.outbox.of_jobs()
    assert [(d.kind, d.event, d.run) for d in found[done]] == [
        ("on_done", "done", 1),
        ("webhook", "done", 1),
    ]
    assert [(d.kind, d.event) for d in found[failed]] == [
        ("on_failed", "failed"),
        ("webhook", "failed"),
    ]
    payload = found[done][0].payload
    assert payload["idempotency_key"] == f"{done}-1" and payload["job"]["status"] == "done"
    assert payload["files"]["json"] == "/out/a b.json"
    # a finish that is not the lease holder's changes nothing and announces nothing
    assert not store.finish(Lease(done, "w1", 1), T0, [], {})
    assert len(store.outbox.of_jobs(done)[done]) == 2


def test_a_job_failed_by_lease_recovery_is_announced(store: Store) -> None:
    job_id = store.enqueue("/in/x.wav", "c" * 64, 10, T0).job_id
    store.claim("w1", 1, T0, 60.0)
    store.recover_expired(T0 + timedelta(seconds=61), max_attempts=1)
    assert store.get(job_id).status is JobStatus.FAILED  # type: ignore[union-attr]
    assert [d.kind for d in store.outbox.of_jobs(job_id)[job_id]] == ["on_failed", "webhook"]


def test_a_requeued_job_announces_its_next_end_under_a_new_key(store: Store) -> None:
    job_id = end_job(store, "done")
    assert store.requeue([job_id], now=T0).requeued == [job_id]
    [job] = store.claim("w1", 1, T0, 60.0)
    assert job.attempts == 1 and job.runs == 2  # attempts start again; runs do not
    assert store.finish(Lease(job_id, "w1", 1), T0, [], {})
    keys = [d.payload["idempotency_key"] for d in store.outbox.of_jobs(job_id)[job_id]]
    assert keys == [f"{job_id}-1", f"{job_id}-1", f"{job_id}-2", f"{job_id}-2"]


def test_webhook_retried_with_backoff_signed_and_delivered_once(
    store: Store, receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    r, url = receiver
    config = HooksConfig(
        on_done=(str(script(tmp_path)), "{json}", "{source}", "{status}"),
        webhook=url,
        webhook_secret="s3cret",
        backoff_seconds=10.0,
    )
    clock = Clock()
    job_id = end_job(store, "done")
    deliverer = Deliverer(config, store.outbox, "n1:1:hooks", clock)
    assert deliverer.run_due() == 2  # the hook ran; the webhook got a 503
    assert [x.answered for x in r.received] == [503]
    assert deliverer.run_due() == 0  # not due again for 10 s
    clock.advance(10)
    assert deliverer.run_due() == 1 and [x.answered for x in r.received] == [503, 500]
    clock.advance(10)
    assert deliverer.run_due() == 0  # the second pause is twice the first
    clock.advance(10)
    assert deliverer.run_due() == 1 and [x.answered for x in r.received] == [503, 500, 200]
    clock.advance(3600)
    assert deliverer.run_due() == 0  # delivered: never again

    bodies = {x.body for x in r.received}
    assert len(bodies) == 1  # every try sends the same bytes
    for x in r.received:
        mac = hmac.new(b"s3cret", x.body, hashlib.sha256).hexdigest()
        assert x.headers[hooks.SIGNATURE_HEADER] == f"sha256={mac}"
        assert x.headers["Idempotency-Key"] == f"{job_id}-1"
        assert x.headers["Content-Type"] == "application/json"
    assert r.received[0].json["job"]["id"] == job_id
    webhook = next(d for d in store.outbox.of_jobs(job_id)[job_id] if d.kind == "webhook")
    assert (webhook.status, webhook.tries, webhook.result) == (
        DeliveryStatus.DELIVERED,
        3,
        "HTTP 200",
    )

    # the script: one call, argv filled in (one argument per file name), the record on stdin
    assert (tmp_path / "call-0.argv").read_text().splitlines() == [
        "/out/a b.json",
        "/in/a b.wav",
        "done",
    ]
    assert json.loads((tmp_path / "call-0.json").read_text())["job"]["id"] == job_id
    assert (tmp_path / "call-0.key").read_text().strip() == f"{job_id}-1"
    assert not (tmp_path / "call-1.json").exists()
    assert store.get(job_id).status is JobStatus.DONE  # type: ignore[union-attr]


def test_a_failing_hook_is_tried_again_then_given_up_and_the_job_stays_done(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "exit-code").write_text("3")
    config = HooksConfig(on_done=(str(script(tmp_path)),), attempts=2, backoff_seconds=1.0)
    clock = Clock()
    job_id = end_job(store, "done")
    deliverer = Deliverer(config, store.outbox, "n1:1:hooks", clock)
    assert deliverer.run_due() == 1  # the hook (the webhook is not this config's to deliver)
    clock.advance(1)
    assert deliverer.run_due() == 1
    clock.advance(3600)
    assert deliverer.run_due() == 0
    d = next(d for d in store.outbox.of_jobs(job_id)[job_id] if d.kind == "on_done")
    assert (d.status, d.tries, d.result) == (DeliveryStatus.FAILED, 2, "exit 3")
    assert store.get(job_id).status is JobStatus.DONE  # type: ignore[union-attr]


def test_a_hook_past_its_time_limit_is_killed_and_a_missing_program_is_said(
    store: Store, tmp_path: Path
) -> None:
    slow = tmp_path / "slow.sh"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    config = HooksConfig(
        on_done=(str(slow),), on_failed=(str(tmp_path / "nope"),), timeout_seconds=0.5
    )
    done, failed = end_job(store, "done"), end_job(store, "failed", "/in/c.wav")
    Deliverer(config, store.outbox, "n1:1:hooks", Clock()).run_due()
    found = store.outbox.of_jobs()
    assert found[done][0].result == "timed out after 0.5 s"
    assert found[failed][0].result.startswith(f"cannot run {tmp_path / 'nope'}: No such file")  # type: ignore[union-attr]


def test_a_receiver_that_refuses_for_good_is_not_asked_again(store: Store) -> None:
    r = Receiver(answers=[], then=410)
    server = serve(r)
    url = next(server)
    try:
        job_id = end_job(store, "done")
        clock = Clock()
        deliverer = Deliverer(HooksConfig(webhook=url), store.outbox, "n1:1:hooks", clock)
        deliverer.run_due()
        clock.advance(3600)
        deliverer.run_due()
    finally:
        server.close()
    assert len(r.received) == 1
    webhook = next(d for d in store.outbox.of_jobs(job_id)[job_id] if d.kind == "webhook")
    assert webhook.status is DeliveryStatus.FAILED and webhook.result == "HTTP 410: Gone"


def test_a_try_cut_off_by_a_dead_node_is_taken_over_after_its_lease(store: Store) -> None:
    end_job(store, "done")
    [first] = store.outbox.claim("n1:hooks", T0, 30.0)
    assert store.outbox.claim("n2:hooks", T0 + timedelta(seconds=29), 30.0)[0].id != first.id
    [again] = [
        d
        for d in store.outbox.claim("n2:hooks", T0 + timedelta(seconds=31), 30.0, limit=5)
        if d.id == first.id
    ]
    assert again.tries == 2
    # the first owner's late outcome is not recorded over the second's try
    assert not store.outbox.delivered(first, "n1:hooks", T0, "HTTP 200")
    assert store.outbox.delivered(again, "n2:hooks", T0, "HTTP 200")


def test_a_redirect_is_not_followed_and_a_broken_try_is_a_failed_try(store: Store) -> None:
    r = Receiver(answers=[], then=302)
    server = serve(r)
    url = next(server)
    try:
        job_id = end_job(store, "done")
        Deliverer(HooksConfig(webhook=url), store.outbox, "n1:hooks", Clock()).run_due()
    finally:
        server.close()
    assert [x.path for x in r.received] == ["/hook"]  # the POST, never a GET elsewhere
    d = store.outbox.of_jobs(job_id)[job_id][-1]
    assert d.status is DeliveryStatus.FAILED and d.result == "HTTP 302: Found"

    # a URL urllib cannot even send to (the config check refuses it; a test may not)
    other = end_job(store, "done", "/in/z.wav")
    clock = Clock()
    broken = Deliverer(HooksConfig(webhook="http://127.0.0.1:99999/x"), store.outbox, "n1", clock)
    assert broken.run_due() == 1
    d = store.outbox.of_jobs(other)[other][-1]
    assert d.status is DeliveryStatus.PENDING and d.tries == 1 and d.result, d  # not stuck
    clock.advance(5)
    assert broken.run_due() == 1


def test_a_hook_that_leaves_a_child_behind_is_done_when_it_exits(
    store: Store, tmp_path: Path
) -> None:
    spawner = tmp_path / "spawner.sh"
    spawner.write_text("#!/bin/sh\nsleep 30 &\nexit 0\n")
    spawner.chmod(0o755)
    job_id = end_job(store, "done")
    config = HooksConfig(on_done=(str(spawner),), timeout_seconds=10.0)
    started = time.monotonic()
    Deliverer(config, store.outbox, "n1:hooks", Clock()).run_due()
    assert time.monotonic() - started < 5.0
    [d] = store.outbox.of_jobs(job_id)[job_id][:1]
    assert d.status is DeliveryStatus.DELIVERED and d.result == "exit 0"


def test_a_file_refused_at_intake_is_announced_as_failed(store: Store) -> None:
    refused = store.reject("/in/link.wav", 0, "symlink to /etc, outside the watched folders", T0)
    again = store.reject("/in/link.wav", 0, "symlink to /etc, outside the watched folders", T0)
    assert refused.created and not again.created
    found = store.outbox.of_jobs(refused.job_id)[refused.job_id]
    assert [(d.kind, d.event) for d in found] == [("on_failed", "failed"), ("webhook", "failed")]
    assert found[0].payload["job"]["error"].startswith("symlink to /etc")
