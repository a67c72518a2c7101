"""Intake with real watchdog events on temporary folders and a real SQLite file."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.config import Config
from daemon.intake import Intake, observer_for
from daemon.store import Enqueued, Store, open_store, utcnow
from tests.conftest import write_wav


@pytest.fixture
def intake(config: Config, store: Store) -> Iterator[Intake]:
    it = Intake(config, store)
    it.start()
    yield it
    it.stop()


def poll_until(
    intake: Intake, done: Callable[[list[Enqueued]], bool], timeout: float = 10.0
) -> list[Enqueued]:
    """Drive the intake like the scheduler tick does, until ``done`` or the deadline."""
    got: list[Enqueued] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += intake.poll(utcnow())
        if done(got):
            return got
        time.sleep(0.05)
    return got


def test_slowly_written_file_enqueued_once_after_it_stops_growing(
    config: Config, store: Store, intake: Intake, tmp_path: Path
) -> None:
    src = write_wav(tmp_path / "src.wav", 2.0)
    data = src.read_bytes()
    target = config.watch.folders[0] / "slow.wav"
    pieces = 6
    step = len(data) // pieces + 1
    with target.open("wb") as f:
        for i in range(pieces):
            f.write(data[i * step : (i + 1) * step])
            f.flush()
            os.fsync(f.fileno())
            # the file is growing: nothing may be enqueued yet
            assert intake.poll(utcnow()) == []
            time.sleep(config.watch.stable_seconds / 2)
    finished = time.monotonic()
    got = poll_until(intake, lambda g: len(g) >= 1)
    assert time.monotonic() - finished >= config.watch.stable_seconds * 0.5
    assert len(got) == 1 and got[0].created
    # more polling does not enqueue it again
    assert poll_until(intake, lambda g: False, timeout=1.0) == []
    [job] = store.jobs()
    assert job.size == len(data) and job.path == str(target)


def test_renamed_copy_is_a_duplicate_and_touch_is_nothing_new(
    config: Config, store: Store, intake: Intake, tmp_path: Path
) -> None:
    inbox = config.watch.folders[0]
    src = write_wav(tmp_path / "src.wav", 1.0)
    shutil.copy(src, inbox / "a.wav")
    [first] = poll_until(intake, lambda g: len(g) >= 1)
    shutil.copy(src, tmp_path / "tmpcopy.wav")
    os.rename(tmp_path / "tmpcopy.wav", inbox / "b.wav")  # a move into the folder
    [dup] = poll_until(intake, lambda g: len(g) >= 1)
    assert dup.created and dup.duplicate_of == first.job_id
    (inbox / "a.wav").touch()
    again = poll_until(intake, lambda g: len(g) >= 1)
    assert [(e.job_id, e.created) for e in again] == [(first.job_id, False)]
    assert len(store.jobs()) == 2


def test_files_present_at_start_are_found(config: Config, store: Store) -> None:
    inbox = config.watch.folders[0]
    write_wav(inbox / "early.wav", 0.5)
    write_wav(inbox / "sub" / "deeper.flac.wav", 0.5, freq=300)
    old = time.time() - 60
    for p in inbox.rglob("*.wav"):
        os.utime(p, (old, old))
    intake = Intake(config, store)
    assert intake.rescan(utcnow()) == 2
    got = intake.poll(utcnow())  # old enough to be stable at once
    assert sorted(Path(store.get(e.job_id).path).name for e in got) == [  # type: ignore[union-attr]
        "deeper.flac.wav",
        "early.wav",
    ]


def test_outputs_hidden_partial_and_foreign_files_are_ignored(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    config = make_config(
        output={"dir": str(inbox / "transcripts")}, daemon={"work_dir": str(inbox / ".work")}
    )
    from daemon.store import open_store

    store = open_store(config)
    intake = Intake(config, store)
    for name in (
        "transcripts/a.wav",
        ".hidden.wav",
        "x.wav.part",
        "notes.txt",
        "a.mp3.tmp",
        ".work/abc.wav",
    ):
        write_wav(inbox / name, 0.2)
    write_wav(inbox / "real.wav", 0.2)
    old = time.time() - 60
    for p in inbox.rglob("*"):
        os.utime(p, (old, old))
    intake.rescan(utcnow())
    got = intake.poll(utcnow())
    assert [Path(store.get(e.job_id).path).name for e in got] == ["real.wav"]  # type: ignore[union-attr]


def test_non_recursive_ignores_subfolders(make_config: Callable[..., Config]) -> None:
    config = make_config(watch={"recursive": False})
    from daemon.store import open_store

    intake = Intake(config, open_store(config))
    write_wav(config.watch.folders[0] / "top.wav", 0.2)
    write_wav(config.watch.folders[0] / "sub" / "deep.wav", 0.2)
    assert intake.rescan(utcnow()) == 1


@pytest.mark.parametrize("allowed", [False, True])
def test_symlink_leading_outside_is_refused_unless_allowed(
    make_config: Callable[..., Config], tmp_path: Path, allowed: bool
) -> None:
    config = make_config(watch={"allow_symlinks_outside": allowed})
    store = open_store(config)
    inbox = config.watch.folders[0]
    inbox.mkdir(parents=True)
    target = write_wav(tmp_path / "elsewhere" / "x.wav", 1.0)
    (inbox / "link.wav").symlink_to(target)
    write_wav(inbox / "real.wav", 1.0, freq=300)
    (inbox / "inner.wav").symlink_to(inbox / "real.wav")  # stays inside: fine
    intake = Intake(config, store)
    intake.rescan(utcnow())
    time.sleep(config.watch.stable_seconds)
    intake.poll(utcnow())
    jobs = {Path(j.path).name: j for j in store.jobs()}
    assert set(jobs) == {"link.wav", "real.wav", "inner.wav"}
    assert jobs["real.wav"].status.value == "queued"
    link = jobs["link.wav"]
    if allowed:
        assert link.status.value == "queued" and link.sha256
    else:
        assert link.status.value == "failed" and "outside the watched folders" in (link.error or "")


def test_polling_observer_sees_new_files(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """What network shares get: no kernel events, a folder rescan every poll_seconds."""
    config = make_config(watch={"observer": "polling", "poll_seconds": 0.2})
    store = open_store(config)
    intake = Intake(config, store)
    intake.start()
    try:
        assert [type(o).__name__ for o in intake._observers.values()] == ["PollingObserver"]
        write_wav(config.watch.folders[0] / "share" / "call.wav", 1.0)
        got = poll_until(intake, lambda g: len(g) >= 1)
    finally:
        intake.stop()
    assert len(got) == 1 and Path(store.jobs()[0].path).name == "call.wav"


def test_auto_observer_uses_kernel_events_on_a_local_disk(config: Config, store: Store) -> None:
    from daemon.sysload import fs_type

    assert fs_type(config.watch.folders[0].parent) != ""
    intake = Intake(config, store)
    intake.start()
    try:
        assert "Polling" not in type(next(iter(intake._observers.values()))).__name__
    finally:
        intake.stop()


@pytest.mark.parametrize(
    ("setting", "fstype", "kind"),
    [
        ("auto", "ext4", "inotify"),
        ("auto", "xfs", "inotify"),
        ("auto", "overlay", "inotify"),
        ("auto", "tmpfs", "inotify"),
        ("auto", "nfs4", "polling"),
        ("auto", "cifs", "polling"),
        ("auto", "fuse.sshfs", "polling"),
        ("auto", "fuse.rclone", "polling"),
        ("auto", "9p", "polling"),
        ("auto", "", "inotify"),
        ("polling", "ext4", "polling"),
        ("inotify", "nfs4", "inotify"),
    ],
)
def test_observer_for(setting: str, fstype: str, kind: str) -> None:
    assert observer_for(setting, fstype) == kind


@pytest.mark.parametrize("observer", ["inotify", "polling"])
def test_a_watched_folder_deleted_and_recreated_is_watched_again(
    make_config: Callable[..., Config], tmp_path: Path, observer: str
) -> None:
    config = make_config(watch={"observer": observer, "poll_seconds": 0.2})
    store = open_store(config)
    intake = Intake(config, store)
    inbox = config.watch.folders[0]
    intake.start()
    try:
        shutil.rmtree(inbox)
        intake.poll(utcnow())
        assert intake.missing == {inbox}
        inbox.mkdir()
        write_wav(inbox / "before-the-next-tick.wav", 1.0)  # there when it is noticed: rescan
        got = poll_until(intake, lambda g: len(g) >= 1)
        assert intake.missing == set()
        write_wav(inbox / "after.wav", 1.0)  # dropped later: seen by the new watch
        got += poll_until(intake, lambda g: len(g) >= 1)
    finally:
        intake.stop()
    assert sorted(Path(j.path).name for j in store.jobs()) == [
        "after.wav",
        "before-the-next-tick.wav",
    ]


def test_reconfigure_watches_a_new_folder_with_its_options(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config()
    store = open_store(config)
    intake = Intake(config, store)
    intake.start()
    calls = tmp_path / "calls"
    try:
        calls.mkdir()
        write_wav(calls / "early.wav", 1.0)  # not watched yet
        assert poll_until(intake, lambda g: len(g) >= 1, timeout=1.0) == []
        reloaded = make_config(
            watch={"folders": [str(config.watch.folders[0]), str(calls)]},
            folders={str(calls): {"num_speakers": 2}},
        )
        intake.reconfigure(reloaded, utcnow())
        got = poll_until(intake, lambda g: len(g) >= 1)  # found by the rescan
        write_wav(calls / "late.wav", 1.0)
        got += poll_until(intake, lambda g: len(g) >= 1)
    finally:
        intake.stop()
    jobs = store.jobs()
    assert sorted(Path(j.path).name for j in jobs) == ["early.wav", "late.wav"]
    assert all(j.options.num_speakers == 2 for j in jobs)


def test_a_folder_that_cannot_be_watched_again_does_not_stop_the_tick(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of inotify watches, or the folder came back unreadable: the tick goes on and the
    intake tries again at the next one."""
    import errno

    intake = Intake(config, store)
    inbox = config.watch.folders[0]
    intake.start()
    try:
        shutil.rmtree(inbox)
        intake.poll(utcnow())
        inbox.mkdir()
        attach = intake._attach

        def refused(folder: Path) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached", str(folder))

        monkeypatch.setattr(intake, "_attach", refused)
        assert intake.poll(utcnow()) == []  # no exception out of the tick
        monkeypatch.setattr(intake, "_attach", attach)
        write_wav(inbox / "late.wav", 1.0)
        got = poll_until(intake, lambda g: len(g) >= 1)
    finally:
        intake.stop()
    assert len(got) == 1 and intake.missing == set()
