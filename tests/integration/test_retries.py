"""A transient failure (the output folder cannot be written) retries later and then succeeds;
the job is never lost.  The pipeline is real: a tone has no speech, so no model is needed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from daemon.config import Config
from daemon.models import JobStatus
from daemon.store import open_store, utcnow
from daemon.warm import WarmModels
from daemon.workers import Executor
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
