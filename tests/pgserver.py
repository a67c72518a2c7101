"""A throwaway PostgreSQL server for the tests and benchmarks: Debian's ``postgresql`` package
started in a temporary folder, listening only on a Unix socket there, stopped at the end.

``initdb`` and ``pg_ctl`` refuse to run as root: as root they run as the ``postgres`` user.
``TRANSCRIBD_TEST_POSTGRES_URL`` (a server URL such as ``postgresql+psycopg://u@host/postgres``)
uses a running server instead of starting one.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

URL_ENV = "TRANSCRIBD_TEST_POSTGRES_URL"
REQUIRE_ENV = "TRANSCRIBD_REQUIRE_POSTGRES"
"""Set (to 1) by CI: a PostgreSQL test that cannot start a server fails instead of skipping."""


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here (the reason is the message)."""


def _bindir() -> Path:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    # Debian keeps the server's programs off PATH, one folder per major version
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if not found:
        raise Unavailable("PostgreSQL is not installed (apt-get install -y postgresql)")
    return Path(found[-1]).parent


def _major(path: str) -> int:
    try:
        return int(Path(path).parents[1].name)
    except ValueError:
        return 0


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) to run the server's programs with."""
    if os.geteuid() != 0:
        return [], None, None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root and there is no 'postgres' user") from None
    return ["runuser", "-u", "postgres", "--"], user.pw_uid, user.pw_gid


def _options(root: Path) -> str:
    """The server's settings: its socket in ``root``, no TCP, no durability (tests only)."""
    return (
        f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=300"
    )


class PostgresServer:
    """One server for a test session; :meth:`database` makes a fresh empty database."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.url = os.environ.get(URL_ENV, "")
        self._started = False

    def start(self) -> None:
        if self.url:
            return
        bindir = _bindir()
        prefix, uid, gid = _as_server_user()
        self.root = Path(tempfile.mkdtemp(prefix="transcribd-pg-"))
        if uid is not None and gid is not None:
            os.chown(self.root, uid, gid)
        data, log = self.root / "data", self.root / "server.log"

        def run(*args: str) -> None:
            proc = subprocess.run(
                [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
            )
            if proc.returncode != 0:
                detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise Unavailable(f"{Path(args[0]).name} failed: {' / '.join(detail)}")

        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--lc-ctype=C.UTF-8",  # text search lowercases Cyrillic as a real server's does
            "--no-sync",
        )
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            _options(self.root),
            "start",
        )
        self._started = True
        self.url = f"postgresql+psycopg://postgres@/postgres?host={self.root}"

    def stop(self) -> None:
        if self._started and self.root is not None:
            prefix, _uid, _gid = _as_server_user()
            pg_ctl = str(_bindir() / "pg_ctl")
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            self._started = False
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def pg_ctl(self, action: str) -> None:
        """Stop or start this server (``stop``/``start``), as a test of lost connections."""
        if self.root is None:
            raise Unavailable("the server was not started by the tests")
        prefix, _uid, _gid = _as_server_user()
        data = self.root / "data"
        args = [str(_bindir() / "pg_ctl"), "-D", str(data), "-w"]
        if action == "stop":
            args += ["-m", "fast", "stop"]
        else:
            args += ["-l", str(self.root / "server.log"), "-o", _options(self.root), "start"]
        subprocess.run([*prefix, *args], capture_output=True, timeout=120, check=True)

    def database(self, prefix: str = "t") -> str:
        """A new empty database on this server; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)
