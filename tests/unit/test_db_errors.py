"""Which database errors mean "the server cannot be reached" (transient, nobody's fault)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from daemon.db import unreachable


class DriverError(Exception):
    """Stands in for a psycopg error: the driver's class and its SQLSTATE."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def wrapped(kind: type[Exception], orig: Exception, invalidated: bool = False) -> Exception:
    return kind("SELECT 1", {}, orig, connection_invalidated=invalidated)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (wrapped(OperationalError, DriverError(None)), True),  # refused, no such socket
        (wrapped(OperationalError, DriverError("08006")), True),  # connection failure
        (wrapped(OperationalError, DriverError("57P01")), True),  # admin shutdown
        (wrapped(OperationalError, DriverError("57014")), False),  # statement timeout
        (wrapped(OperationalError, DriverError("53100")), False),  # disk full
        (wrapped(OperationalError, DriverError("40P01")), False),  # deadlock
        (wrapped(IntegrityError, DriverError("23505")), False),
        (wrapped(ProgrammingError, DriverError("42P01"), invalidated=True), True),
        (wrapped(OperationalError, sqlite3.OperationalError("database is locked")), False),
        (wrapped(OperationalError, sqlite3.OperationalError("disk I/O error")), False),
        (PoolTimeout("QueuePool limit reached"), True),
        (OSError("no space left"), False),
        (ValueError("x"), False),
    ],
)
def test_only_a_lost_server_is_unreachable(exc: Exception, expected: bool) -> None:
    assert unreachable(exc) is expected
