"""One set of outputs, even when the disk fills mid-write: on a real tiny file system (a 64 KB
tmpfs the test mounts) left with 4 KB free, a job's files are all staged before any takes its
name, so the full disk leaves nothing visible and no temp file, the error names the folder,
and once space is back the retry publishes one set under the first free name (``clip.*``, not
``clip-1.*`` beside an orphan ``clip.txt``).  An attempt killed after publishing leaves its
names to the next one, which writes over them; a job superseded before or as it publishes
leaves nothing."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from daemon import retry
from daemon.config import Config
from daemon.executor import Executor, settle
from daemon.jobs import JobRecord, JobStatus, Lease
from daemon.pipeline.asr import Segment, Word
from daemon.pipeline.merge import Turn
from daemon.pipeline.outputs import Transcript
from daemon.publish import write_job_outputs
from daemon.store import Store, open_store, utcnow
from daemon.warm import WarmModels
from tests.conftest import need_eval, write_wav

FORMATS = ["txt", "srt", "vtt", "json", "rttm"]
CLIP = sorted(f"clip.{fmt}" for fmt in FORMATS)


@pytest.fixture
def tiny_out(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/out`` as a 64 KB tmpfs (root and a working ``mount`` needed, else skip)."""
    out = tmp_path / "out"
    out.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs as a full disk needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mounting a tiny tmpfs as a full disk needs mount(8) and umount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(out)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield out
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


def leave_free(folder: Path, free: int = 4096) -> Path:
    """Fill ``folder``'s file system but ``free`` bytes; the filler file (delete it to free
    the space again)."""
    filler = folder / "filler.bin"
    with pytest.raises(OSError) as full, filler.open("wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    os.truncate(filler, filler.stat().st_size - free)
    st = os.statvfs(folder)
    assert st.f_bavail * st.f_frsize == free
    return filler


def real_transcript() -> Transcript:
    """The pyannote sample's two-person conversation as its ground truth has it (words spread
    over each turn of the STM, turns from the RTTM): about 19 KB of outputs."""
    stm = need_eval("diarization", "sample.stm").read_text().splitlines()
    rttm = need_eval("diarization", "sample.rttm").read_text().splitlines()
    segments = []
    for line in stm:
        _file, _channel, speaker, a, b, *tokens = line.split()
        start, end = float(a), float(b)
        step = (end - start) / len(tokens)
        words = tuple(
            Word(start + i * step, start + (i + 1) * step, f" {w}", 0.9)
            for i, w in enumerate(tokens)
        )
        segments.append(Segment(start, end, " ".join(tokens), words, speaker))
    turns = tuple(Turn(float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in map(str.split, rttm))
    return Transcript(
        "/in/clip.wav", "a" * 64, 30.0, "en", "balanced", "base", tuple(segments),
        ("Diane", "Sheila"), turns,
    )  # fmt: skip


def claimed(store: Store, now_offset: float = 0.0) -> tuple[JobRecord, Lease]:
    """The one ready job, claimed ``now_offset`` seconds from now, and its lease."""
    (job,) = store.claim("t:1", 1, utcnow() + timedelta(seconds=now_offset), 60)
    return job, Lease(job.id, "t:1", job.attempts)


def test_a_full_disk_leaves_nothing_and_the_retry_publishes_one_set(
    tiny_out: Path, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config(daemon={"resource_backoff_seconds": 1.0})
    store = open_store(config)
    source = tmp_path / "inbox" / "clip.wav"
    store.enqueue(str(source), "a" * 64, 1000, utcnow())
    transcript = real_transcript()

    filler = leave_free(tiny_out)
    job, lease = claimed(store)
    with pytest.raises(OSError) as full:
        write_job_outputs(config, store, job, transcript, {}, lease=lease)
    assert full.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tiny_out.iterdir()) == ["filler.bin"]  # no clip.txt, no temp
    assert settle(config, store, job, lease, utcnow(), full.value) is True
    (job,) = store.jobs()
    assert job.status is JobStatus.QUEUED and job.outputs == []  # nothing held, nothing seen
    assert (
        job.error
        == f"No space left on device: {tiny_out} (free some space; the job retries in 1 s)"
    )

    filler.unlink()  # the user frees space
    job, lease = claimed(store, now_offset=2.0)
    written = write_job_outputs(config, store, job, transcript, {"speaker90": "Diane"}, lease=lease)
    assert store.finish(lease, utcnow(), written)
    assert sorted(p.name for p in tiny_out.iterdir()) == CLIP  # one set, first name, no orphan
    assert sorted(Path(p).name for p in store.jobs()[0].outputs) == CLIP
    assert "Diane" in (tiny_out / "clip.rttm").read_text()
    assert "SPEAKER_" not in (tiny_out / "clip.srt").read_text()


def test_the_error_names_the_folder_whatever_file_filled_it(
    tiny_out: Path, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """With room for the txt alone (the first file) or for all but the json (the largest),
    the disk fills at a different file: the same message, and nothing visible either way."""
    config = make_config()
    store = open_store(config)
    store.enqueue(str(tmp_path / "inbox" / "clip.wav"), "a" * 64, 1000, utcnow())
    job, lease = claimed(store)
    for free in (4096, 12288):
        filler = leave_free(tiny_out, free)
        with pytest.raises(OSError) as full:
            write_job_outputs(config, store, job, real_transcript(), {}, lease=lease)
        message = retry.decide(full.value, 1, 3, utcnow()).message
        assert message.startswith(f"No space left on device: {tiny_out} (free some space;")
        assert sorted(p.name for p in tiny_out.iterdir()) == ["filler.bin"]
        filler.unlink()


KILLED_AFTER_PUBLISHING = """
import os, signal, sys
from pathlib import Path
from tests.integration.test_disk_full import claimed, real_transcript
from daemon import config as config_mod
from daemon.publish import write_job_outputs
from daemon.store import open_store
config = config_mod.load(Path(sys.argv[1]))
store = open_store(config)
job, lease = claimed(store)
write_job_outputs(config, store, job, real_transcript(), {}, lease=lease)
os.kill(os.getpid(), signal.SIGKILL)  # killed before the job is recorded done
"""


def test_an_attempt_killed_after_publishing_leaves_its_names_to_the_next(
    config_file: Path, tmp_path: Path
) -> None:
    """A worker killed between its files appearing and the job being recorded done: the next
    attempt writes over the same names instead of publishing ``clip-1.*`` beside them."""
    from daemon import config as config_mod

    real_transcript()  # skips here, not in the child, without the evaluation data
    config = config_mod.load(config_file)
    store = open_store(config)
    store.enqueue(str(tmp_path / "inbox" / "clip.wav"), "a" * 64, 1000, utcnow())
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_PUBLISHING, str(config_file)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == CLIP
    (job,) = store.jobs()
    assert job.status is JobStatus.RUNNING  # its files are there, the job is not done

    assert store.recover_expired(utcnow() + timedelta(seconds=120)) == [job.id]
    job, lease = claimed(store, now_offset=120)
    written = write_job_outputs(config, store, job, real_transcript(), {}, lease=lease)
    assert store.finish(lease, utcnow(), written)
    assert sorted(p.name for p in out.iterdir()) == CLIP  # not clip-1.* beside them
    assert sorted(Path(p).name for p in store.jobs()[0].outputs) == CLIP


def test_the_executor_retries_a_full_disk_into_one_set(
    tiny_out: Path, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """End to end through the executor: the real pipeline (a tone: no speech, so no model)
    with 4 KB free fails its first attempt with the folder named and nothing visible; the
    retry, with space back, ends done with one set under the first name."""
    config = make_config(
        diarization={"enabled": False},
        daemon={"max_attempts": 3, "resource_backoff_seconds": 1.0},
    )
    store = open_store(config)
    wav = write_wav(tmp_path / "inbox" / "clip.wav", 2.0)
    store.enqueue(str(wav), "b" * 64, wav.stat().st_size, utcnow())
    executor = Executor(config=config, store=store, models=WarmModels.of(config), owner="t:1")

    filler = leave_free(tiny_out)
    job, _lease = claimed(store)
    assert executor.execute(job) is False
    assert sorted(p.name for p in tiny_out.iterdir()) == ["filler.bin"]  # no clip.txt, no temp
    (job,) = store.jobs()
    assert job.status is JobStatus.QUEUED and job.error is not None
    assert job.error.startswith(f"No space left on device: {tiny_out} (free some space;"), job.error

    filler.unlink()
    job, _lease = claimed(store, now_offset=2.0)
    assert executor.execute(job) is True
    (job,) = store.jobs()
    assert job.status is JobStatus.DONE and job.attempts == 2
    assert sorted(p.name for p in tiny_out.iterdir()) == CLIP
    assert sorted(Path(p).name for p in job.outputs) == CLIP
    assert (tiny_out / "clip.vtt").read_text().startswith("WEBVTT")


def test_a_job_superseded_before_it_publishes_publishes_nothing(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """The lease is checked as the names are held: new content at the job's path between its
    last check and its publishing leaves no file and no temp file (fenced)."""
    from daemon.errors import Cancelled

    config = make_config()
    store = open_store(config)
    source = str(tmp_path / "inbox" / "clip.wav")
    store.enqueue(source, "a" * 64, 1000, utcnow())
    job, lease = claimed(store)
    store.enqueue(source, "c" * 64, 1000, utcnow())  # the file changed: a new job takes over
    with pytest.raises(Cancelled):
        write_job_outputs(config, store, job, real_transcript(), {}, lease=lease)
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []


def test_a_job_superseded_as_it_finishes_takes_its_files_back(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """Its names were held in its row, but its row is superseded: the files go (the job that
    superseded it writes its own), as they did before names were held."""
    config = make_config(diarization={"enabled": False})
    store = open_store(config)
    wav = write_wav(tmp_path / "inbox" / "clip.wav", 2.0)
    store.enqueue(str(wav), "b" * 64, wav.stat().st_size, utcnow())
    finish = store.finish

    def superseded_first(lease: Lease, *args: object, **kwargs: object) -> bool:
        store.enqueue(str(wav), "c" * 64, wav.stat().st_size, utcnow())  # new content lands
        return finish(lease, *args, **kwargs)  # type: ignore[arg-type]

    store.finish = superseded_first  # type: ignore[method-assign]
    executor = Executor(config=config, store=store, models=WarmModels.of(config), owner="t:1")
    job, _lease = claimed(store)
    assert executor.execute(job) is False
    assert [j.status for j in store.jobs()] == [JobStatus.SUPERSEDED, JobStatus.QUEUED]
    assert list((tmp_path / "out").iterdir()) == []
