"""The HTTP face's keys and the pages' sessions, on SQLite and PostgreSQL, and through the
CLI: a key is shown once, only its hash is kept, a removed key (and its sessions) opens
nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from daemon.cli import cli
from daemon.db import make_engine, upgrade
from daemon.keybook import digest
from daemon.store import Store

NOW = datetime(2026, 12, 6, 12, 0)


def test_keys_and_sessions(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    assert store.keys.add("alice", "tsk_one", NOW)
    assert not store.keys.add("alice", "tsk_two", NOW)  # the name is taken
    assert store.keys.name_of("tsk_one", NOW) == "alice"
    assert store.keys.name_of("tsk_two", NOW) is None
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT key_hash FROM api_keys")).scalars().all()
    assert kept == [digest("tsk_one")]  # never the key itself
    assert store.keys.all()[0].used_at == NOW
    token, session = store.sessions.open("alice", NOW)
    assert store.sessions.get(token, NOW) == session and session.key_name == "alice"
    assert store.sessions.get(token, NOW + timedelta(days=30)) is None  # expired
    assert store.sessions.get("not-a-token", NOW) is None
    assert store.keys.remove("alice") and not store.keys.remove("alice")
    assert store.keys.name_of("tsk_one", NOW) is None
    assert store.sessions.get(token, NOW) is None  # its key is gone
    engine.dispose()


def test_the_keys_command(config_file: Path) -> None:
    invoke: Callable[..., object] = lambda *a: CliRunner().invoke(  # noqa: E731
        cli, ["--config", str(config_file), *a]
    )
    made = invoke("keys", "add", "bazarr")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("tsk_") and len(key) > 40
    again = invoke("keys", "add", "bazarr")
    assert again.exit_code == 1 and "exists" in again.stderr
    bad = invoke("keys", "add", "no spaces please")
    assert bad.exit_code == 1 and "name" in bad.stderr
    assert "bazarr" in invoke("keys", "list").stdout
    assert invoke("keys", "remove", "bazarr").exit_code == 0
    gone = invoke("keys", "remove", "bazarr")
    assert gone.exit_code == 1 and "no key 'bazarr'" in gone.stderr
