"""A job's spool (its decoded audio in the work folder) goes when the job is cancelled or stops
at a graceful stop, whole or half-written, not at the daemon's next start; the stopped job
resumes from its cached steps, decoding its file again.  Real files, a real SQLite store, the
real pipeline (a tone needs no model)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.config import Config
from daemon.executor import Executor
from daemon.jobs import JobStatus
from daemon.store import Store, open_store, utcnow
from daemon.warm import WarmModels
from tests.conftest import need_eval, write_wav


def spools(config: Config) -> list[str]:
    return sorted(p.name for p in config.daemon.work_dir.glob("*.pcm*"))


def claimed(store: Store, path: Path, sha: str) -> None:
    store.enqueue(str(path), sha, path.stat().st_size, utcnow())
    assert len(store.claim("t:1", 1, utcnow(), 60)) == 1


def executor(config: Config, store: Store, should_stop: Callable[[], bool]) -> Executor:
    models = WarmModels.of(config)
    return Executor(config, store, models, owner="t:1", should_stop=should_stop)


def test_a_job_cancelled_mid_decode_leaves_no_spool(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config(diarization={"enabled": False})
    store = open_store(config)
    wav = write_wav(tmp_path / "inbox" / "gone.wav", 70.0)  # three decode blocks
    claimed(store, wav, "c" * 64)

    def deleted_once_decoding_began() -> bool:  # asked at every block
        if any(name.endswith(".part") for name in spools(config)):
            wav.unlink(missing_ok=True)
        return False

    [job] = store.jobs()
    assert executor(config, store, deleted_once_decoding_began).execute(job) is False
    [job] = store.jobs()
    assert job.status is JobStatus.CANCELLED and "input removed" in (job.error or "")
    assert spools(config) == []  # was: the half-written gone.wav's .pcm.part


def test_a_job_stopped_mid_decode_leaves_no_spool_and_resumes(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config(diarization={"enabled": False})
    store = open_store(config)
    wav = write_wav(tmp_path / "inbox" / "tone.wav", 70.0)
    claimed(store, wav, "d" * 64)
    [job] = store.jobs()

    def stop_once_decoding_began() -> bool:  # a graceful stop of the daemon
        return any(name.endswith(".part") for name in spools(config))

    assert executor(config, store, stop_once_decoding_began).execute(job) is False
    [job] = store.jobs()
    assert job.status is JobStatus.QUEUED and job.attempts == 0  # released, not failed
    assert spools(config) == []
    [job] = store.claim("t:1", 1, utcnow(), 60)
    assert executor(config, store, lambda: False).execute(job) is True
    assert store.jobs()[0].status is JobStatus.DONE and spools(config) == []


@pytest.mark.model
@pytest.mark.eval
def test_a_job_stopped_after_decoding_leaves_no_spool_and_resumes_from_its_steps(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config(diarization={"enabled": False})
    store = open_store(config)
    clip = shutil.copy(need_eval("asr_en", "jfk.flac"), tmp_path / "jfk.flac")
    claimed(store, Path(clip), "e" * 64)
    [job] = store.jobs()

    def stop_once_decoded() -> bool:  # asked again before the language step
        return any(name.endswith(".pcm") for name in spools(config))

    assert executor(config, store, stop_once_decoded).execute(job) is False
    [job] = store.jobs()
    assert job.status is JobStatus.QUEUED and spools(config) == []  # was: the whole .pcm
    [job] = store.claim("t:1", 1, utcnow(), 60)
    resumed = executor(config, store, lambda: False)
    assert resumed.execute(job) is True
    [job] = store.jobs()
    assert job.status is JobStatus.DONE and spools(config) == []
    assert job.metrics["steps"]["cached"]["vad"] == 1  # decoded again, not re-measured
    assert "ask not what your country" in Path(job.outputs[0]).with_suffix(".txt").read_text()
