from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from daemon.config import Config
from daemon.db import MIGRATION_LOCK, make_engine, upgrade
from daemon.errors import SchemaTooNew
from daemon.models import Base, search_index_object


def test_migrations_at_head_match_models(db_url: str) -> None:
    """On SQLite and on PostgreSQL: the migrated schema is the models' (types included)."""
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        opts = {
            "compare_type": True,
            "include_object": lambda _o, name, *_: not search_index_object(name),
        }
        ctx = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    engine.dispose()


def test_timestamps_keep_their_time_zone_on_postgresql(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("jobs")}
    moments = ("created_at", "updated_at", "started_at", "finished_at", "lease_expires_at")
    assert all(getattr(columns[m], "timezone", False) for m in moments)
    engine.dispose()


def test_a_database_migrated_by_a_newer_version_is_refused(db_url: str) -> None:
    """A node whose code is older than the database's schema does not start on it."""
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaTooNew, match=r"9999.*upgrade transcribd on this machine"):
        upgrade(engine)
    engine.dispose()


def test_nodes_starting_together_on_postgresql_migrate_once(pg_url: str) -> None:
    """Six processes upgrade one new PostgreSQL database at once: the advisory lock makes
    one migrate and the others find it done (no "relation already exists").  The test holds
    the lock until all six wait for it, so that they do meet."""
    engine = make_engine(pg_url)
    with engine.connect() as gate:
        gate.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"

        def all_waiting() -> None:
            deadline = time.monotonic() + 60
            while gate.execute(text(waiting)).scalar_one() < 6:
                assert time.monotonic() < deadline, "the processes never waited for the lock"
                time.sleep(0.1)
            gate.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})

        results = _upgrade_at_once(pg_url, 6, started=all_waiting)
    engine.dispose()
    assert len(results) == 1, results


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
    assert len(_upgrade_at_once(url, 6)) == 1


def _upgrade_at_once(url: str, n: int, started: Callable[[], None] = lambda: None) -> set[str]:
    """The revisions ``n`` processes report after upgrading ``url`` at once (all must
    succeed); ``started()`` runs once they are under way."""
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
        for _ in range(n)
    ]
    started()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * n, [err for _out, err in results]
    return {out for out, _err in results}
