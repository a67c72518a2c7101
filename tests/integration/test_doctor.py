"""``transcribd doctor`` on healthy and broken set-ups (real folders, real SQLite, real models)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from daemon.cli import cli
from tests.conftest import write_config


def doctor(cfg: Path) -> Result:
    return CliRunner().invoke(cli, ["--config", str(cfg), "doctor"])


def test_healthy_setup_passes(tmp_path: Path, model_cache: Path) -> None:
    cfg = write_config(tmp_path, model_cache, '[hooks]\non_done = ["true", "{json}"]\n')
    (tmp_path / "inbox").mkdir()
    assert CliRunner().invoke(cli, ["--config", str(cfg), "db", "upgrade"]).exit_code == 0
    res = doctor(cfg)
    assert res.exit_code == 0, res.output
    assert "FAIL" not in res.output and "0 problem(s), 0 warning(s)" in res.output
    for check in (
        "config",
        "database",
        "watch",
        "output",
        "model base",
        "diarization",
        "decoder",
        "hooks.on_done",
        "disk",
        "machine",
    ):
        assert f"ok    {check}" in res.output, check


def test_broken_setup_fails_with_a_fix_for_each_problem(tmp_path: Path, model_cache: Path) -> None:
    cfg = write_config(
        tmp_path,
        model_cache,
        '[profiles.balanced]\nmodel = "/nowhere/whisper-small"\n'
        '[hooks]\non_failed = ["/nowhere/page-me", "{job}"]\n',
    )
    (tmp_path / "inbox").write_text("a file where the watched folder should be")
    (tmp_path / "out").write_text("and one where the output folder should be")
    # a database left at an older schema
    from alembic import command

    from daemon import db

    engine = db.make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    alembic = db.alembic_config(str(engine.url))
    with engine.begin() as conn:
        alembic.attributes["connection"] = conn
        command.upgrade(alembic, "0001")
    res = doctor(cfg)
    assert res.exit_code == 1, res.output
    lines = res.output.splitlines()

    def problem(check: str, words: str) -> None:
        at = next(i for i, line in enumerate(lines) if line.startswith(f"FAIL  {check}"))
        assert words in lines[at], lines[at]
        assert lines[at + 1].strip().startswith("fix: "), lines[at + 1]

    head = db.revisions(engine)[1]
    problem("database", f"at revision 0001, this version needs {head}")
    problem("watch", "is not a folder")
    problem("output", "is not a folder")
    problem("model /nowhere/whisper-small", "neither bundled")
    problem("hooks.on_failed", "/nowhere/page-me is not an executable program")
    assert "5 problem(s)" in lines[-1]
