from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from daemon.db import make_engine, upgrade
from daemon.jobs import JobStatus, Lease
from daemon.store import Store

T0 = datetime(2026, 1, 1, 12, 0, 0)
LEASE = 60.0


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """The store on SQLite, then on a real PostgreSQL server (the whole module runs on both)."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield Store(engine, node="n1")
    engine.dispose()


def lease(job_id: int, owner: str, attempt: int = 1) -> Lease:
    return Lease(job_id, owner, attempt)


def new_job(store: Store, path: str = "/in/a.wav", sha: str = "a" * 64) -> int:
    res = store.enqueue(path, sha, 10, T0)
    assert res.created
    return res.job_id


def running(store: Store, owner: str = "w1") -> int:
    job_id = new_job(store)
    [job] = store.claim(owner, 1, T0, LEASE)
    assert job.id == job_id and job.status is JobStatus.RUNNING
    return job_id


def status(store: Store, job_id: int) -> JobStatus:
    job = store.get(job_id)
    assert job is not None
    return job.status


def test_enqueue_creates_queued_job(store: Store) -> None:
    job_id = new_job(store)
    job = store.get(job_id)
    assert job is not None
    assert job.status is JobStatus.QUEUED and job.attempts == 0 and job.progress == 0.0


def test_same_path_same_content_is_not_new_work(store: Store) -> None:
    first = new_job(store)
    again = store.enqueue("/in/a.wav", "a" * 64, 10, T0)
    assert not again.created and again.job_id == first
    assert len(store.jobs()) == 1


def test_same_content_other_name_is_duplicate_of_first(store: Store) -> None:
    first = new_job(store)
    dup = store.enqueue("/in/b.wav", "a" * 64, 10, T0)
    dup2 = store.enqueue("/in/c.wav", "a" * 64, 10, T0)
    assert dup.created and dup.duplicate_of == first
    assert dup2.duplicate_of == first


def test_duplicate_waits_for_its_original(store: Store) -> None:
    first = new_job(store)
    dup = store.enqueue("/in/b.wav", "a" * 64, 10, T0).job_id
    claimed = store.claim("w1", 5, T0, LEASE)
    assert [j.id for j in claimed] == [first]
    assert store.claim("w2", 5, T0, LEASE) == []
    assert store.finish(lease(first, "w1"), T0, ["/out/a.txt"])
    assert [j.id for j in store.claim("w2", 5, T0, LEASE)] == [dup]


def test_claim_sets_lease_and_counts_attempt(store: Store) -> None:
    job_id = running(store)
    job = store.get(job_id)
    assert job is not None
    assert job.lease_owner == "w1" and job.attempts == 1
    assert job.lease_expires_at == T0 + timedelta(seconds=LEASE)


def test_claim_is_exclusive(store: Store) -> None:
    new_job(store)
    assert len(store.claim("w1", 1, T0, LEASE)) == 1
    assert store.claim("w2", 1, T0, LEASE) == []


def test_claim_respects_limit_and_order(store: Store) -> None:
    ids = [new_job(store, f"/in/{i}.wav", str(i) * 64) for i in range(4)]
    got = store.claim("w1", 2, T0, LEASE)
    assert [j.id for j in got] == ids[:2]


def test_heartbeat_renews_lease_and_progress(store: Store) -> None:
    job_id = running(store)
    later = T0 + timedelta(seconds=30)
    assert store.heartbeat(lease(job_id, "w1"), later, LEASE, progress=0.5)
    job = store.get(job_id)
    assert job is not None and job.progress == 0.5
    assert job.lease_expires_at == later + timedelta(seconds=LEASE)


def test_heartbeat_by_other_owner_refused(store: Store) -> None:
    job_id = running(store)
    assert not store.heartbeat(lease(job_id, "w2"), T0, LEASE)


def test_finish(store: Store) -> None:
    job_id = running(store)
    assert store.finish(lease(job_id, "w1"), T0, ["/out/a.txt"], {"wall_seconds": 1.0})
    job = store.get(job_id)
    assert job is not None
    assert job.status is JobStatus.DONE and job.outputs == ["/out/a.txt"]
    assert job.progress == 1.0 and job.lease_owner is None
    assert job.metrics == {"wall_seconds": 1.0}


def test_fail_keeps_error(store: Store) -> None:
    job_id = running(store)
    assert store.fail(lease(job_id, "w1"), T0, "not decodable audio")
    job = store.get(job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.error == "not decodable audio"


def test_retry_waits_for_run_after(store: Store) -> None:
    job_id = running(store)
    assert store.retry(lease(job_id, "w1"), T0, "database is locked", T0 + timedelta(seconds=10))
    assert status(store, job_id) is JobStatus.QUEUED
    assert store.claim("w1", 1, T0 + timedelta(seconds=5), LEASE) == []
    [again] = store.claim("w1", 1, T0 + timedelta(seconds=10), LEASE)
    assert again.id == job_id and again.attempts == 2


def test_release_does_not_count_attempt(store: Store) -> None:
    job_id = running(store)
    assert store.release(lease(job_id, "w1"), T0)
    job = store.get(job_id)
    assert job is not None and job.status is JobStatus.QUEUED and job.attempts == 0


def test_recover_expired_leases(store: Store) -> None:
    job_id = running(store)
    assert store.recover_expired(T0 + timedelta(seconds=LEASE - 1)) == []
    assert store.recover_expired(T0 + timedelta(seconds=LEASE + 1)) == [job_id]
    assert status(store, job_id) is JobStatus.QUEUED
    # the dead worker can no longer finish it
    assert not store.finish(lease(job_id, "w1"), T0, [])


@pytest.mark.parametrize("end", ["finish", "fail"])
def test_requeue_terminal_jobs(store: Store, end: str) -> None:
    job_id = running(store)
    if end == "finish":
        store.finish(lease(job_id, "w1"), T0, [])
    else:
        store.fail(lease(job_id, "w1"), T0, "boom")
    res = store.requeue([job_id], now=T0)
    assert res.requeued == [job_id]
    job = store.get(job_id)
    assert job is not None
    assert job.status is JobStatus.QUEUED and job.attempts == 0 and job.error is None


def test_requeue_failed_flag(store: Store) -> None:
    a = running(store)
    store.fail(lease(a, "w1"), T0, "boom")
    b = new_job(store, "/in/b.wav", "b" * 64)
    res = store.requeue(failed=True, now=T0)
    assert res.requeued == [a]
    assert status(store, b) is JobStatus.QUEUED


def test_requeue_refuses_queued_running_and_unknown(store: Store) -> None:
    run = running(store)
    queued = new_job(store, "/in/q.wav", "q" * 64)
    res = store.requeue([queued, run, 999], now=T0)
    assert res.requeued == []
    assert res.skipped == {queued: "job is queued", run: "job is running", 999: "no such job"}


# Illegal transitions: each guarded UPDATE matches no row and changes nothing.
def test_illegal_transitions_refused(store: Store) -> None:
    done = running(store)
    queued = new_job(store, "/in/q.wav", "q" * 64)
    assert not store.finish(lease(queued, "w1"), T0, [])
    assert not store.fail(lease(queued, "w1"), T0, "x")
    assert not store.retry(lease(queued, "w1"), T0, "x", T0)
    assert not store.release(lease(queued, "w1"), T0)
    assert not store.heartbeat(lease(queued, "w1"), T0, LEASE)
    assert status(store, queued) is JobStatus.QUEUED

    assert store.finish(lease(done, "w1"), T0, [])
    assert not store.fail(lease(done, "w1"), T0, "x")
    assert not store.finish(lease(done, "w1"), T0, [])
    assert not store.retry(lease(done, "w1"), T0, "x", T0)
    assert status(store, done) is JobStatus.DONE
    assert [j.id for j in store.claim("w1", 5, T0, LEASE)] == [queued]  # done is not claimable


def test_other_owner_cannot_finish(store: Store) -> None:
    job_id = running(store)
    assert not store.finish(lease(job_id, "w2"), T0, [])
    assert not store.fail(lease(job_id, "w2"), T0, "x")
    assert status(store, job_id) is JobStatus.RUNNING


def test_step_cache_roundtrip(store: Store) -> None:
    assert store.results.cache_get("a" * 64, "asr", "p1") is None
    store.results.cache_put("a" * 64, "asr", "p1", {"x": [1, 2]}, T0)
    store.results.cache_put("a" * 64, "asr", "p1", {"x": [1, 2]}, T0)  # a second put is harmless
    assert store.results.cache_get("a" * 64, "asr", "p1") == {"x": [1, 2]}
    assert store.results.cache_get("a" * 64, "asr", "p2") is None


def test_new_content_at_a_path_supersedes_its_older_jobs(store: Store) -> None:
    done = running(store)
    assert store.finish(lease(done, "w1"), T0, ["/out/a.txt"])
    failed = store.enqueue("/in/a.wav", "b" * 64, 10, T0).job_id  # a partial copy, say
    [job] = store.claim("w1", 1, T0, LEASE)
    assert job.id == failed
    assert store.fail(lease(failed, "w1"), T0, "truncated")
    newest = store.enqueue("/in/a.wav", "c" * 64, 10, T0)
    assert newest.created and sorted(newest.superseded) == [failed]
    assert status(store, done) is JobStatus.SUPERSEDED  # superseded by the second already
    assert status(store, failed) is JobStatus.SUPERSEDED
    assert store.superseded_outputs("/in/a.wav", newest.job_id) == {"/out/a.txt"}
    res = store.requeue([done], failed=True, now=T0)  # --failed skips superseded jobs
    assert res.requeued == [] and "superseded by" in res.skipped[done]


def test_content_back_at_its_path_is_a_new_job(store: Store) -> None:
    first = new_job(store, sha="a" * 64)
    store.enqueue("/in/a.wav", "b" * 64, 10, T0)
    again = store.enqueue("/in/a.wav", "a" * 64, 10, T0)
    assert again.created and again.job_id != first
    assert not store.enqueue("/in/a.wav", "a" * 64, 10, T0).created


def test_a_superseded_running_job_loses_its_lease(store: Store) -> None:
    job_id = running(store)
    assert store.owns(lease(job_id, "w1"))
    store.enqueue("/in/a.wav", "b" * 64, 10, T0)
    assert not store.owns(lease(job_id, "w1"))
    assert not store.heartbeat(lease(job_id, "w1"), T0, LEASE)
    assert not store.finish(lease(job_id, "w1"), T0, ["/out/a.txt"])  # fenced: nothing published


def test_cancel_ends_a_running_job(store: Store) -> None:
    job_id = running(store)
    assert store.cancel(lease(job_id, "w1"), T0, "input removed: /in/a.wav no longer exists")
    job = store.get(job_id)
    assert job is not None and job.status is JobStatus.CANCELLED and job.finished_at == T0
    assert store.requeue([job_id], now=T0).requeued == [job_id]  # the file may be back


def test_a_lease_is_its_owner_and_attempt(store: Store) -> None:
    """A worker whose lease expired (and whose job was claimed again, even by the same owner
    name) changes nothing with its old lease."""
    job_id = running(store)
    store.recover_expired(T0 + timedelta(seconds=LEASE + 1))
    [again] = store.claim("w1", 1, T0 + timedelta(seconds=LEASE + 2), LEASE)
    assert again.lease == lease(job_id, "w1", 2) and again.node == "n1"
    assert not store.owns(lease(job_id, "w1", 1))
    assert not store.finish(lease(job_id, "w1", 1), T0, ["/out/stale.txt"])
    assert store.finish(again.lease, T0, ["/out/a.txt"])


def test_claims_take_whole_batches_without_doubles(store: Store) -> None:
    ids = [new_job(store, f"/in/{i}.wav", f"{i:064d}") for i in range(7)]
    first = store.claim("w1", 3, T0, LEASE)
    second = store.claim("w2", 3, T0, LEASE)
    third = store.claim("w3", 3, T0, LEASE)
    got = [j.id for j in first + second + third]
    assert got == ids and [len(first), len(second), len(third)] == [3, 3, 1]
    assert {j.lease_owner for j in second} == {"w2"}


def test_each_node_publishes_its_own_state(store: Store) -> None:
    other = Store(store.engine, node="n2")
    store.results.set_state("plan", {"profile": "fast"}, T0)
    other.results.set_state("plan", {"profile": "quality"}, T0)
    store.results.set_state("plan", {"profile": "balanced"}, T0 + timedelta(seconds=1))
    assert store.results.get_state("plan") == ({"profile": "balanced"}, T0 + timedelta(seconds=1))
    assert other.results.get_state("plan") == ({"profile": "quality"}, T0)
    assert sorted(store.results.states("plan")) == ["n1", "n2"]


def test_moments_come_back_as_stored(store: Store) -> None:
    """Naive UTC in, naive UTC out, whatever the backend stores (timestamptz on PostgreSQL)."""
    job_id = running(store)
    job = store.get(job_id)
    assert job is not None and job.started_at == T0 and job.started_at.tzinfo is None


def test_the_clock_of_a_shared_database_is_the_servers(store: Store) -> None:
    """A node whose clock is a minute fast (or slow) reckons leases in the database's time on
    PostgreSQL: it neither recovers another node's live lease early nor loses its own."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serves one machine: its own clock is the only one")
    fast = Store(store.engine, node="fast", local_clock=lambda: _utcnow() + timedelta(minutes=1))
    slow = Store(store.engine, node="slow", local_clock=lambda: _utcnow() - timedelta(minutes=1))
    assert abs((fast.now() - slow.now()).total_seconds()) < 5
    a = store.enqueue("/in/a.wav", "a" * 64, 10, slow.now()).job_id
    b = store.enqueue("/in/b.wav", "b" * 64, 10, slow.now()).job_id
    [ja] = slow.claim("slow-w", 1, slow.now(), 30.0)
    [jb] = fast.claim("fast-w", 1, fast.now(), 30.0)
    assert (ja.id, jb.id) == (a, b)
    assert fast.recover_expired(fast.now()) == []  # the slow node's lease is not taken early
    assert slow.recover_expired(slow.now()) == []
    assert slow.heartbeat(ja.lease, slow.now(), 30.0)
    assert fast.finish(jb.lease, fast.now(), [])


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_a_job_whose_lease_keeps_expiring_fails_after_max_attempts(store: Store) -> None:
    job_id = running(store)
    later = T0 + timedelta(seconds=LEASE + 1)
    assert store.recover_expired(later, max_attempts=2) == [job_id]  # attempt 1 of 2
    [again] = store.claim("w1", 1, later, LEASE)
    assert again.attempts == 2
    end = later + timedelta(seconds=LEASE + 1)
    assert store.recover_expired(end, max_attempts=2) == []
    job = store.get(job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.finished_at == end
    assert "stopped answering in 2 attempts" in (job.error or "")


def test_a_claim_skips_rows_another_claimer_holds_instead_of_waiting(store: Store) -> None:
    """PostgreSQL: while another transaction holds job 1's row, a claim takes job 2 at once
    (SKIP LOCKED); a claim that waited for the lock would block until the 30-s statement
    timeout and fail."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: there is no row lock to skip")
    first = new_job(store, "/in/1.wav", "1" * 64)
    second = new_job(store, "/in/2.wav", "2" * 64)
    with store.engine.connect() as other:
        other.execute(text("BEGIN"))
        other.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": first})
        [job] = store.claim("w2", 1, T0, LEASE)
        assert job.id == second
        other.execute(text("ROLLBACK"))
    [job] = store.claim("w1", 1, T0, LEASE)
    assert job.id == first


def test_claim_one_job_by_id_on_a_device(store: Store) -> None:
    first = store.enqueue("/in/a.wav", "a" * 64, 10, T0, duration=60.0).job_id
    second = store.enqueue("/in/b.wav", "b" * 64, 10, T0, duration=3600.0).job_id
    [job] = store.claim("gpu", 1, T0, LEASE, profile="fast", job_id=second, device="cuda:0")
    assert job.id == second and job.device == "cuda:0" and job.profile == "fast"
    assert job.as_dict()["device"] == "cuda:0"
    assert store.claim("other", 1, T0, LEASE, job_id=second) == []  # taken: not twice
    [cpu] = store.claim("cpu", 1, T0, LEASE, device="cpu")
    assert cpu.id == first and cpu.device == "cpu"
    assert store.get(first).as_dict()["device"] == "cpu"  # type: ignore[union-attr]


def test_ready_in_line_and_longest_first(store: Store) -> None:
    short = store.enqueue("/in/a.wav", "a" * 64, 10, T0, duration=60.0).job_id
    unknown = store.enqueue("/in/b.wav", "b" * 64, 32_000_000, T0).job_id  # ~2000 s by size
    long = store.enqueue("/in/c.wav", "c" * 64, 10, T0, duration=3600.0).job_id
    later = store.enqueue("/in/d.wav", "d" * 64, 10, T0, duration=7200.0).job_id
    store.retry(lease(later, "x", 0), T0, "", T0 + timedelta(hours=1))  # not queued: no-op
    assert [j.id for j in store.ready(T0, 10)] == [short, unknown, long, later]
    assert [j.id for j in store.ready(T0, 10, longest=True)] == [later, long, unknown, short]
    assert [j.id for j in store.ready(T0, 2, longest=True)] == [later, long]
    store.claim("w", 1, T0, LEASE, job_id=later)
    assert [j.id for j in store.ready(T0, 10, longest=True)] == [long, unknown, short]


def test_ready_leaves_out_what_it_is_told_to(store: Store) -> None:
    ids = [store.enqueue(f"/in/{i}.wav", f"{i}" * 64, 10, T0).job_id for i in range(4)]
    assert [j.id for j in store.ready(T0, 2, exclude=ids[:2])] == ids[2:]
    assert store.ready(T0, 2, exclude=ids) == []


def test_requeue_forgets_a_move_to_the_cpu(store: Store) -> None:
    from daemon.jobs import JobOptions

    options = JobOptions(language="de", device="cuda", oom_device="cpu")
    job_id = store.enqueue("/in/a.wav", "a" * 64, 10, T0, options=options).job_id
    [job] = store.claim("w", 1, T0, LEASE, device="cpu")
    assert store.fail(job.lease, T0, "broken")
    assert store.requeue([job_id], now=T0).requeued == [job_id]
    again = store.get(job_id)
    assert again is not None and again.options == JobOptions(language="de", device="cuda")
