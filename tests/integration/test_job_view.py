"""``status JOB`` shows a job's whole error; the table of all jobs may shorten it.  A real
SQLite file, a real failed job, the real CLI."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from daemon.cli import cli
from daemon.config import load
from daemon.jobs import Lease
from daemon.store import open_store, utcnow
from tests.conftest import write_config

ERROR = (
    "the output folder /srv/audio/transcripts/customer-calls/2024/november cannot be written "
    "(Permission denied): chown it to the transcribd user, or change output.dir; then run: "
    "transcribd requeue --failed"
)


def test_the_job_view_shows_the_whole_error(tmp_path: Path, model_cache: Path) -> None:
    cfg = write_config(tmp_path, model_cache)
    store = open_store(load(cfg))
    now = utcnow()
    failed = store.enqueue(str(tmp_path / "call.wav"), "a" * 64, 1000, now).job_id
    store.enqueue(str(tmp_path / "other.wav"), "b" * 64, 1000, now)
    [job] = store.claim("t:1", 1, now, 60)
    assert job.id == failed
    assert store.fail(Lease(job.id, "t:1", job.attempts), now, ERROR)
    store.close()

    def status(*args: str) -> list[str]:
        res = CliRunner().invoke(cli, ["--config", str(cfg), "status", *args])
        assert res.exit_code == 0, res.output
        return res.output.splitlines()

    view = status(str(failed))
    assert f"error: {ERROR}" in view
    table = status()
    assert not any(ERROR in line for line in table)  # the table shortens it ...
    [row] = [line for line in table if line.startswith(f"{failed} ")]
    assert row.endswith("…") and ERROR[:60] in row  # ... and says so
