"""The daemon notices when its SQLite file is deleted or replaced under it."""

from __future__ import annotations

from pathlib import Path

from daemon.db import DatabaseWatch, sqlite_file


def test_sqlite_file() -> None:
    assert sqlite_file("sqlite:////var/lib/t/jobs.db") == Path("/var/lib/t/jobs.db")
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("postgresql+psycopg://u@h/db") is None


def test_deleted_and_replaced_files_are_noticed(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    db.write_bytes(b"x")
    watch = DatabaseWatch(f"sqlite:///{db}")
    assert watch.problem() is None
    db.write_bytes(b"written in place: the same file")
    assert watch.problem() is None
    db.unlink()
    assert "was deleted" in (watch.problem() or "")
    (tmp_path / "restored.db").write_bytes(b"y")
    (tmp_path / "restored.db").rename(db)
    assert "replaced" in (watch.problem() or "")
    assert DatabaseWatch("sqlite://").problem() is None
