"""Done jobs' transcripts in the database (the only code that reads or writes the
``transcripts`` and ``transcript_lines`` rows), reached as ``Store.transcripts``: what the HTTP
face answers with and the pages show, on any node of a fleet, whatever became of the output
files; and full-text search over all of them (SQLite's FTS5, PostgreSQL's text search, both
over the lines: a hit has its time and its speaker).

The lines follow the transcript: written with it when a job ends done (replacing a previous
run's), renamed with its speakers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, text, update

from daemon import db
from daemon.models import TranscriptLine, TranscriptRow

MARK = ("\x02", "\x03")
"""Around the matching words of a hit's snippet (the pages turn them into <mark> after
escaping the rest)."""
SNIPPET_WORDS = 16


@dataclass(frozen=True)
class StoredTranscript:
    job_id: int
    record: dict[str, Any]
    """:func:`daemon.pipeline.outputs.to_record`'s form (diarized labels, not names)."""
    names: dict[str, str]
    """Diarized label -> the name it goes by."""


@dataclass(frozen=True)
class Hit:
    job_id: int
    path: str
    upload_name: str | None
    start: float
    end: float
    speaker: str | None
    snippet: str
    """The line's words around the match, the matching ones between :data:`MARK`."""


def lines_of(record: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """A transcript's rows of ``transcript_lines`` (pure)."""
    return [
        {
            "start": float(s["start"]),
            "end": float(s["end"]),
            "label": s.get("speaker"),
            "speaker": names.get(s.get("speaker") or "", s.get("speaker")),
            "text": str(s.get("text", "")),
        }
        for s in record.get("segments", [])
        if str(s.get("text", "")).strip()
    ]


def fts_query(words: str) -> str:
    """A person's search as an FTS5 query (pure): every word must be there, "quoted phrases"
    as phrases; FTS5's own syntax is never let through (each word is a quoted string)."""
    parts = re.findall(r'"([^"]*)"|(\S+)', words)
    terms = []
    for phrase, word in parts:
        chunk = (phrase or word).replace('"', " ").strip()
        if chunk:
            terms.append('"' + chunk.replace('"', '""') + '"')
    return " ".join(terms)


class Transcripts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, job_id: int) -> StoredTranscript | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(TranscriptRow.record, TranscriptRow.names).where(
                    TranscriptRow.job_id == job_id
                )
            ).first()
        if row is None:
            return None
        names = {str(k): str(v) for k, v in row.names.items()}
        return StoredTranscript(job_id, dict(row.record), names)

    @staticmethod
    def put(
        conn: Connection, job_id: int, record: dict[str, Any], names: dict[str, str], now: datetime
    ) -> None:
        """Keep a job's transcript and its lines (replacing a previous run's), in the
        caller's transaction (the job's own change)."""
        values = {"record": record, "names": names, "updated_at": now}
        stmt = db.insert(conn)(TranscriptRow).values(job_id=job_id, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["job_id"], set_=values))
        conn.execute(delete(TranscriptLine).where(TranscriptLine.job_id == job_id))
        rows = lines_of(record, names)
        if rows:
            conn.execute(insert(TranscriptLine), [{"job_id": job_id, **r} for r in rows])

    def rename(self, job_id: int, names: dict[str, str], now: datetime) -> bool:
        """New names for a job's speakers: its transcript's and its lines'."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(TranscriptRow)
                .where(TranscriptRow.job_id == job_id)
                .values(names=names, updated_at=now)
            )
            if done.rowcount != 1:
                return False
            labels = conn.execute(
                select(TranscriptLine.label).where(TranscriptLine.job_id == job_id).distinct()
            ).scalars()
            for label in [x for x in labels if x]:
                conn.execute(
                    update(TranscriptLine)
                    .where(TranscriptLine.job_id == job_id, TranscriptLine.label == label)
                    .values(speaker=names.get(label, label))
                )
        return True

    def search(self, words: str, limit: int = 50) -> list[Hit]:
        """Lines matching every word (and "phrase") of ``words``, best first."""
        if not words.strip():
            return []
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                rows = conn.execute(_POSTGRES, {"q": words, "n": limit}).all()
            else:
                query = fts_query(words)
                if not query:
                    return []
                rows = conn.execute(_SQLITE, {"q": query, "n": limit}).all()
        return [Hit(*row) for row in rows]


_SQLITE = text(
    "SELECT l.job_id, j.path, json_extract(j.options, '$.upload_name'), l.start, l.\"end\", "
    "l.speaker, snippet(transcript_lines_fts, 0, char(2), char(3), '…', :words) "
    "FROM transcript_lines_fts "
    "JOIN transcript_lines l ON l.id = transcript_lines_fts.rowid "
    "JOIN jobs j ON j.id = l.job_id "
    "WHERE transcript_lines_fts MATCH :q AND j.status = 'done' "
    "ORDER BY transcript_lines_fts.rank LIMIT :n"
).bindparams(words=SNIPPET_WORDS)
_POSTGRES = text(
    "SELECT l.job_id, j.path, j.options ->> 'upload_name', l.start, l.\"end\", l.speaker, "
    "ts_headline('simple', l.text, q, "
    "'StartSel=\x02,StopSel=\x03,MaxWords=24,MinWords=8,MaxFragments=1') "
    "FROM transcript_lines l JOIN jobs j ON j.id = l.job_id, "
    "websearch_to_tsquery('simple', :q) q "
    "WHERE to_tsvector('simple', coalesce(l.speaker, '') || ' ' || l.text) @@ q "
    "AND j.status = 'done' "
    "ORDER BY ts_rank(to_tsvector('simple', coalesce(l.speaker, '') || ' ' || l.text), q) "
    "DESC, l.job_id DESC, l.start LIMIT :n"
)
