"""Transcripts kept in the database and searched: SQLite's FTS5 and PostgreSQL's text search,
kept current as a job ends done again and as its speakers are renamed; transcripts that exist
before the upgrade are indexed by it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import text

from daemon.db import make_engine, upgrade
from daemon.store import Store
from daemon.transcripts import fts_query

RECORD = {
    "source": "meeting.wav",
    "duration": 30.0,
    "language": "en",
    "segments": [
        {
            "start": 0.5,
            "end": 3.0,
            "speaker": "SPEAKER_00",
            "text": "The budget is due on Friday.",
            "words": [],
        },
        {
            "start": 3.5,
            "end": 6.0,
            "speaker": "SPEAKER_01",
            "text": "Then we ship the new release.",
            "words": [],
        },
        {
            "start": 7.0,
            "end": 9.5,
            "speaker": "SPEAKER_00",
            "text": "Бюджет утвердили вчера.",
            "words": [],
        },
    ],
    "speakers": ["SPEAKER_00", "SPEAKER_01"],
}


def done_job(store: Store, path: str, record: dict[str, object]) -> int:
    now = store.now()
    job_id = store.enqueue(path, hashlib.sha256(path.encode()).hexdigest(), 1, now).job_id
    (job,) = store.claim("w", 1, now, 60, job_id=job_id)
    with store.engine.begin() as conn:
        store.transcripts.put(conn, job.id, record, {}, now)  # type: ignore[arg-type]
    assert store.finish(job.lease, now, [])
    return job_id


def test_search_finds_words_phrases_names_and_follows_renames(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    store = Store(engine)
    job = done_job(store, "/in/meeting.wav", RECORD)
    other = done_job(store, "/in/other.wav", {**RECORD, "segments": RECORD["segments"][1:2]})  # type: ignore[index]

    hits = store.transcripts.search("budget friday")
    assert [(h.job_id, h.start, h.speaker) for h in hits] == [(job, 0.5, "SPEAKER_00")]
    assert "\x02" in hits[0].snippet and "budget" in hits[0].snippet.lower()
    assert {h.job_id for h in store.transcripts.search('"new release"')} == {job, other}
    assert store.transcripts.search('"release new"') == []
    assert store.transcripts.search("бюджет")[0].start == 7.0
    # FTS5's own syntax is only words here
    assert store.transcripts.search('budget" OR "x') == []
    assert store.transcripts.search("NEAR(budget") == []

    assert store.transcripts.rename(job, {"SPEAKER_00": "Alice"}, store.now())
    assert [h.speaker for h in store.transcripts.search("budget")] == ["Alice"]
    assert [h.job_id for h in store.transcripts.search("alice budget")] == [job]
    assert store.transcripts.get(job).names == {"SPEAKER_00": "Alice"}  # type: ignore[union-attr]

    # the job ends done again with other words: its old lines go
    now = store.now()
    assert store.requeue([job], now=now).requeued == [job]
    (again,) = store.claim("w", 1, now, 60, job_id=job)
    changed = {**RECORD, "segments": [{**RECORD["segments"][0], "text": "Nothing to see."}]}  # type: ignore[index]
    with store.engine.begin() as conn:
        store.transcripts.put(conn, job, changed, {}, now)
    assert store.finish(again.lease, now, [])
    assert store.transcripts.search("budget") == []
    assert store.transcripts.search("nothing")[0].job_id == job
    engine.dispose()


def test_fts_query_quotes_every_word() -> None:
    assert fts_query("budget friday") == '"budget" "friday"'
    assert fts_query('"new release" ship') == '"new release" "ship"'
    assert fts_query('a"b OR c*') == '"a b" "OR" "c*"'  # operators are only words
    assert fts_query("   ") == ""


def test_the_upgrade_indexes_transcripts_that_exist(db_url: str, tmp_path: Path) -> None:
    """A job done before 0009 has its JSON output only: the upgrade takes it from there."""
    from alembic import command

    from daemon.db import alembic_config

    url = db_url
    engine = make_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
    output = tmp_path / "talk.json"
    output.write_text(json.dumps(RECORD))
    now = "2026-12-01 10:00:00"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (path, sha256, size, status, options, attempts, progress, "
                "outputs, metrics, created_at, updated_at, runs) VALUES ('/in/talk.wav', "
                "'ab', 1, 'done', '{}', 1, 1.0, :outputs, '{}', :now, :now, 1)"
            ),
            {"outputs": json.dumps([str(output)]), "now": now},
        )
    upgrade(engine)
    store = Store(engine)
    (hit,) = store.transcripts.search("budget")
    assert hit.path == "/in/talk.wav" and hit.start == 0.5
    assert store.transcripts.get(hit.job_id) is not None
    engine.dispose()


def test_the_search_command(config_file: Path) -> None:
    from click.testing import CliRunner

    from daemon.cli import cli
    from daemon.config import load
    from daemon.store import open_store

    store = open_store(load(config_file))
    job = done_job(store, "/in/meeting.wav", RECORD)
    store.close()
    found = CliRunner().invoke(cli, ["--config", str(config_file), "search", "new", "release"])
    assert found.exit_code == 0, found.output
    assert found.stdout.startswith(f"#{job} meeting.wav 0:03 SPEAKER_01:")
    assert "[new] [release]" in found.stdout or "[new release]" in found.stdout
    shown = CliRunner().invoke(cli, ["--config", str(config_file), "search", "--json", "budget"])
    assert json.loads(shown.stdout)[0]["start"] == 0.5
    none = CliRunner().invoke(cli, ["--config", str(config_file), "search", "zebra"])
    assert none.stdout.strip() == "nothing found"
