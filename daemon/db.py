"""Engine factory and schema migrations (Alembic)."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError

from daemon.errors import SchemaTooNew, UserError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000


POOL_SIZE = 2
"""Connections a process keeps open to a server database (plus as many again at a peak): a
daemon's scheduler and each worker process have their own pool (see README: connections)."""
PG_CONNECT_ARGS: dict[str, Any] = {
    "application_name": "transcribd",
    "connect_timeout": 10,
    # a server that vanishes without closing the connection (power cut, partition) is noticed
    # within about half a minute, not after the kernel's 15-minute TCP timeout
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
    # every statement is short; one that hangs is cancelled (migrations lift it)
    "options": "-c statement_timeout=30000",
}
MIGRATION_LOCK = 0x7472616E73637269
"""The PostgreSQL advisory lock taken while migrating ("transcri" in ASCII)."""


def is_server(url: str) -> bool:
    """Whether the URL names a database server shared by several machines (not SQLite)."""
    return make_url(url).get_backend_name() != "sqlite"


LOST_CONNECTION = ("08", "57P01", "57P02", "57P03")
"""SQLSTATEs (classes and codes) of a server that cannot be reached or went away."""


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says a database server could not be reached or the connection was lost
    (transient: the daemon waits and retries, and the job is not to blame), rather than a
    problem with a statement, a full disk or a lock (those go through the retry policy).
    A SQLite file is never "unreachable": a missing or replaced file is DatabaseWatch's."""
    if isinstance(exc, SATimeoutError):  # no pooled connection came free: the server stalls
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    return state is None or state.startswith(LOST_CONNECTION)


def reason(exc: BaseException) -> str:
    """The first line of what the driver said (for one-line logs and messages)."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


@contextmanager
def outage_ignored() -> Iterator[None]:
    """Let a write that can be lost (a progress report, a release that the lease's expiry
    does as well) fail while the database server is unreachable; other errors go on."""
    try:
        yield
    except Exception as exc:
        if not unreachable(exc):
            raise
        log.debug("not written, the database is unreachable: %s", reason(exc))


def printable_url(url: str) -> str:
    """The URL with any password masked (for logs and ``status``)."""
    return make_url(url).render_as_string(hide_password=True)


def absent(url: str) -> str | None:
    """Why the database cannot be read, in one line, when it is a SQLite file that does not
    exist yet; None when it exists (a server's database: :func:`check_schema` says)."""
    path = sqlite_file(url)
    if path is None or path.exists():
        return None
    return (
        f"no database at {path} yet: the daemon creates it when it first starts "
        "(transcribd run), or run 'transcribd db upgrade'"
    )


def make_engine(url: str, create: bool = True) -> Engine:
    """An engine.  SQLite: WAL, a busy timeout, foreign keys, and with ``create`` the parent
    folder created (commands that only read pass False: see :func:`absent`).  A server: a
    small pool whose connections are tested before use (a restarted server's stale
    connections are replaced instead of failing the next statement)."""
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        if create and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    else:
        kwargs |= {"pool_size": POOL_SIZE, "max_overflow": POOL_SIZE, "pool_pre_ping": True}
        kwargs |= {"pool_recycle": 1800, "pool_timeout": 30}
        if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
            kwargs["connect_args"] = PG_CONNECT_ARGS
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:  # the driver is an optional extra
        extra = " (pip install 'transcribd[postgres]')" if "psycopg" in str(exc) else ""
        missing = f"database.url needs a driver that is not installed: {exc}{extra}"
        raise UserError(missing) from None
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def insert(conn: Connection) -> Any:
    """The INSERT construct of the connection's dialect (both have ON CONFLICT)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def migrations_dir() -> Path:
    """Alembic scripts: packaged as daemon/_migrations, or the checkout's migrations/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError("alembic migrations not found (broken installation)")


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def _migration_lock(engine: Engine, conn: Connection) -> Iterator[None]:
    """Serialise migrations between processes (nodes starting together; the daemon starting
    while ``transcribd status`` runs against a new database).  PostgreSQL: an advisory lock
    held by the migrating transaction.  SQLite: a lock file beside the database (its DDL is not
    transactional through the driver, so two upgrades at once would both create the tables)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL statement_timeout = 0"))  # waiting, migrating: no limit
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        yield
        return
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock = Path(database).expanduser().with_name(Path(database).name + ".migrate-lock")
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> str | None:
    """Bring the schema to head; returns the revision now in force."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn, _migration_lock(engine, conn):
        check_not_newer(conn, cfg)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
    log.info("database at revision %s", rev, extra={"revision": rev})
    return rev


def check_schema(engine: Engine) -> None:
    """Raise when the database's schema is not the one this version runs on: newer
    (:class:`SchemaTooNew`) or older (:class:`UserError`: upgrade it first)."""
    current, head, known = revisions(engine)
    if not known:
        raise _too_new(current, head)
    if current != head:
        where = "has no schema yet" if current is None else f"is at schema revision {current}"
        raise UserError(
            f"the database {where}, this version needs {head}: run 'transcribd db upgrade' "
            "(or start the daemon) first"
        )


def check_not_newer(conn: Connection, cfg: Any) -> None:
    """Raise :class:`SchemaTooNew` when the database's revision is one this code does not know
    (a newer transcribd on another node migrated it): running on it could corrupt jobs."""
    current, head, known = _state(conn, cfg)
    if not known:
        raise _too_new(current, head)


def _too_new(current: str | None, head: str | None) -> SchemaTooNew:
    return SchemaTooNew(
        f"the database is at schema revision {current}, newer than this transcribd knows "
        f"(up to {head}): another node runs a newer version; upgrade transcribd on this machine"
    )


def revisions(engine: Engine) -> tuple[str | None, str | None, bool]:
    """(revision the database is at, newest revision this version knows, whether it knows the
    database's); no changes made."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        return _state(conn, cfg)


def _state(conn: Connection, cfg: Any) -> tuple[str | None, str | None, bool]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(cfg)
    current = MigrationContext.configure(conn).get_current_revision()
    known = current is None or current in {s.revision for s in scripts.walk_revisions()}
    return current, scripts.get_current_head(), known


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory ones)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).expanduser()


class DatabaseWatch:
    """Notices that the SQLite file a daemon opened is no longer the file at its path (deleted
    by a cleanup script, replaced by a restore): the daemon would go on writing to an unlinked
    file that nobody else can read.

    It holds the file open for the life of the process, so that its inode cannot be reused by
    a new file at the same path; it never closes it (closing any descriptor of a SQLite file
    drops the POSIX locks the process's connections hold on it).
    """

    def __init__(self, url: str) -> None:
        self.path = sqlite_file(url)
        self._fd: int | None = None
        if self.path is not None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                self._fd = None

    def problem(self) -> str | None:
        """Why the database is not the one opened, or None when it is (or is not a file)."""
        if self.path is None or self._fd is None:
            return None
        opened = os.fstat(self._fd)
        try:
            now = self.path.stat()
        except OSError:
            return f"the database {self.path} was deleted while the daemon ran"
        if (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino):
            return None
        return f"the database {self.path} was replaced by another file while the daemon ran"
