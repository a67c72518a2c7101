"""A transient failure (the output folder cannot be written) retries later and then succeeds;
the job is never lost.  The pipeline is real: a tone has no speech, so no model is needed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.config import Config
from daemon.executor import Executor
from daemon.jobs import JobStatus
from daemon.store import open_store, utcnow
from daemon.warm import WarmModels
from tests.conftest import write_wav


def test_unwritable_output_folder_retries_then_succeeds(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    config = make_config(
        output={"dir": str(blocker / "out")},
        diarization={"enabled": False},
        daemon={"max_attempts": 3},
    )
    store = open_store(config)
    wav = write_wav(tmp_path / "inbox" / "tone.wav", 2.0)
    store.enqueue(str(wav), "b" * 64, wav.stat().st_size, utcnow())
    executor = Executor(config=config, store=store, models=WarmModels.of(config), owner="t:1")
    now = utcnow()
    (job,) = store.claim("t:1", 1, now, 60)
    assert executor.execute(job) is False
    (job,) = store.jobs()
    assert job.status is JobStatus.QUEUED and job.error and "Not a directory" in job.error
    assert job.run_after is not None and job.run_after > now
    assert store.claim("t:1", 1, now, 60) == []  # backing off

    blocker.unlink()  # the user fixes it
    later = job.run_after + timedelta(seconds=1)
    (job,) = store.claim("t:1", 1, later, 60)
    assert job.attempts == 2
    assert executor.execute(job) is True
    (job,) = store.jobs()
    assert job.status is JobStatus.DONE and job.error is None
    assert all(Path(p).exists() for p in job.outputs) and len(job.outputs) == 5


def test_a_job_whose_input_was_removed_is_cancelled(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config(diarization={"enabled": False})
    store = open_store(config)
    wav = write_wav(tmp_path / "inbox" / "gone.wav", 2.0)
    store.enqueue(str(wav), "c" * 64, wav.stat().st_size, utcnow())
    (job,) = store.claim("t:1", 1, utcnow(), 60)
    wav.unlink()  # deleted (or moved away) while the job waited
    executor = Executor(config=config, store=store, models=WarmModels.of(config), owner="t:1")
    assert executor.execute(job) is False
    (job,) = store.jobs()
    assert job.status is JobStatus.CANCELLED and "input removed" in (job.error or "")
    assert not list((tmp_path / "work").glob("*.pcm"))


def test_a_file_deleted_while_it_is_decoded_cancels_the_job(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """The decode step checks its input at every block (a checkpoint): a file removed half way
    ends the job as cancelled, not failed, whatever the decoder could still read."""
    from daemon.errors import InputRemoved
    from daemon.jobrun import run_pipeline
    from daemon.jobs import JobOptions

    config = make_config(diarization={"enabled": False})
    wav = write_wav(tmp_path / "long.wav", 70.0)  # three decode blocks
    checkpoints = [0]

    def remove_at_the_first_block() -> bool:
        checkpoints[0] += 1
        if checkpoints[0] == 3:  # probe, vad, then the first block
            wav.unlink()
        return False

    with pytest.raises(InputRemoved, match=r"long\.wav no longer exists"):
        run_pipeline(
            config,
            WarmModels.of(config),
            open_store(config),
            wav,
            "d" * 64,
            JobOptions(),
            should_stop=remove_at_the_first_block,
        )
    assert checkpoints[0] == 3
