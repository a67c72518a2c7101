from __future__ import annotations

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
