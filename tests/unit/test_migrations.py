from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from daemon.config import Config
from daemon.db import make_engine, upgrade
from daemon.models import Base


def test_migrations_at_head_match_models(config: Config) -> None:
    engine = make_engine(config.database.url)
    upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_sets_sqlite_pragmas(config: Config) -> None:
    engine = make_engine(config.database.url)
    assert upgrade(engine) == upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= {"jobs", "step_results", "alembic_version"}
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_processes_starting_together_on_a_new_database_all_succeed(tmp_path: Path) -> None:
    """The daemon and ``transcribd status`` started at once on a database that does not exist
    yet: both migrate, one after the other, and neither fails with "table already exists"."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = (
        "import sys; from daemon.db import make_engine, upgrade; "
        "print(upgrade(make_engine(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _out, err in results]
    assert len({out for out, _err in results}) == 1
