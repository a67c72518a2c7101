"""Reading never writes: ``status``, ``nodes``, ``config`` and ``doctor`` against a database
that does not exist create nothing (no folder, no ``jobs.db``, no migrate lock) and say so in
one line; an existing database at an older schema is left as it is, with what to do.  Real
processes on real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def transcribd(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(cfg), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def config_at(tmp_path: Path, database: Path, model_cache: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{database}"\n'
        f'[watch]\nfolders = ["{tmp_path / "inbox"}"]\n'
        f'[output]\ndir = "{tmp_path / "out"}"\n'
        f'[models]\ncache_dir = "{model_cache}"\n'
        f'[daemon]\nwork_dir = "{tmp_path / "work"}"\n'
    )
    return cfg


def test_reading_commands_never_create_a_database(tmp_path: Path, model_cache: Path) -> None:
    state = tmp_path / "state" / "deeper"
    cfg = config_at(tmp_path, state / "jobs.db", model_cache)
    for args in (
        ("status",),
        ("status", "--json"),
        ("status", "7"),
        ("nodes",),
        ("nodes", "--json"),
    ):
        res = transcribd(cfg, *args)
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        assert res.stdout == "", args
        [line] = res.stderr.splitlines()
        assert line == (
            f"transcribd: no database at {state / 'jobs.db'} yet: the daemon creates it when "
            "it first starts (transcribd run), or run 'transcribd db upgrade'"
        ), args
    assert transcribd(cfg, "config").returncode == 0
    doctor = transcribd(cfg, "doctor")
    assert "Traceback" not in doctor.stderr
    [found] = [ln for ln in doctor.stdout.splitlines() if " database:" in ln]
    assert found.startswith("WARN") and "does not exist yet" in found, doctor.stdout
    assert not (tmp_path / "state").exists()  # no folder, no jobs.db, no jobs.db.migrate-lock
    assert transcribd(cfg, "db", "upgrade").returncode == 0  # what the one line says to do
    assert transcribd(cfg, "status").stdout.splitlines()[-1] == "no jobs yet"


def test_a_database_at_an_older_schema_is_read_never_migrated(
    tmp_path: Path, model_cache: Path
) -> None:
    from alembic import command

    from daemon import db

    database = tmp_path / "jobs.db"
    engine = db.make_engine(f"sqlite:///{database}")
    alembic = db.alembic_config(str(engine.url))
    with engine.begin() as conn:
        alembic.attributes["connection"] = conn
        command.upgrade(alembic, "0001")
    head = db.revisions(engine)[1]
    cfg = config_at(tmp_path, database, model_cache)
    for args in (("status",), ("nodes",)):
        res = transcribd(cfg, *args)
        assert res.returncode == 1, res.stderr
        assert res.stderr.splitlines() == [
            f"transcribd: the database is at schema revision 0001, this version needs {head}: "
            "run 'transcribd db upgrade' (or start the daemon) first"
        ]
    doctor = transcribd(cfg, "doctor")
    assert f"at revision 0001, this version needs {head}" in doctor.stdout
    assert db.revisions(engine)[0] == "0001"  # left as it was
    assert not database.with_name("jobs.db.migrate-lock").exists()
    engine.dispose()
