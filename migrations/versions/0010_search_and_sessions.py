"""Full-text search over every transcript, and the pages' sign-in sessions

Transcripts that exist already are indexed: a done job without a transcript in the database
(finished before 0009) gets one from its JSON output, where that file is still there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SQLITE_INDEX = [
    """CREATE VIRTUAL TABLE transcript_lines_fts USING fts5(
        text, speaker, content='transcript_lines', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER transcript_lines_fts_ai AFTER INSERT ON transcript_lines BEGIN
        INSERT INTO transcript_lines_fts(rowid, text, speaker)
        VALUES (new.id, new.text, new.speaker);
    END""",
    """CREATE TRIGGER transcript_lines_fts_ad AFTER DELETE ON transcript_lines BEGIN
        INSERT INTO transcript_lines_fts(transcript_lines_fts, rowid, text, speaker)
        VALUES ('delete', old.id, old.text, old.speaker);
    END""",
    """CREATE TRIGGER transcript_lines_fts_au AFTER UPDATE ON transcript_lines BEGIN
        INSERT INTO transcript_lines_fts(transcript_lines_fts, rowid, text, speaker)
        VALUES ('delete', old.id, old.text, old.speaker);
        INSERT INTO transcript_lines_fts(rowid, text, speaker)
        VALUES (new.id, new.text, new.speaker);
    END""",
]
POSTGRES_INDEX = [
    "CREATE INDEX transcript_lines_fts ON transcript_lines "
    "USING gin (to_tsvector('simple', coalesce(speaker, '') || ' ' || text))"
]


def upgrade() -> None:
    bind = op.get_bind()
    timezone = bind.dialect.name == "postgresql"
    op.create_table(
        "transcript_lines",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("speaker", sa.String(128), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_index("ix_transcript_lines_job", "transcript_lines", ["job_id"])
    for statement in POSTGRES_INDEX if timezone else SQLITE_INDEX:
        op.execute(statement)
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("key_name", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=timezone), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=timezone), nullable=False),
    )
    _index_what_exists(bind)


def _index_what_exists(bind: Any) -> None:
    """Transcripts for done jobs that have none (from their JSON output), then every
    transcript's lines."""
    now = datetime.now(UTC).replace(tzinfo=None)
    done = bind.execute(
        sa.text(
            "SELECT id, outputs FROM jobs WHERE status = 'done' "
            "AND id NOT IN (SELECT job_id FROM transcripts)"
        )
    ).all()
    for job_id, outputs in done:
        record = _json_output(outputs)
        if record is not None:
            bind.execute(
                sa.text(
                    "INSERT INTO transcripts (job_id, record, names, updated_at) "
                    "VALUES (:job, :record, :names, :now)"
                ),
                {"job": job_id, "record": json.dumps(record), "names": "{}", "now": now},
            )
    for job_id, record, names in bind.execute(
        sa.text("SELECT job_id, record, names FROM transcripts")
    ).all():
        record = json.loads(record) if isinstance(record, str) else record
        names = json.loads(names) if isinstance(names, str) else names
        rows = [
            {
                "job": job_id,
                "start": float(s["start"]),
                "end": float(s["end"]),
                "label": s.get("speaker"),
                "speaker": (names or {}).get(s.get("speaker"), s.get("speaker")),
                "text": str(s.get("text", "")),
            }
            for s in record.get("segments", [])
        ]
        if rows:
            bind.execute(
                sa.text(
                    'INSERT INTO transcript_lines (job_id, start, "end", label, speaker, text) '
                    "VALUES (:job, :start, :end, :label, :speaker, :text)"
                ),
                rows,
            )


def _json_output(outputs: Any) -> dict[str, Any] | None:
    paths = json.loads(outputs) if isinstance(outputs, str) else outputs or []
    for path in paths:
        if str(path).endswith(".json") and os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    found = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(found, dict) and "segments" in found:
                return found
    return None


def downgrade() -> None:
    op.drop_table("web_sessions")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX transcript_lines_fts")
    else:
        for trigger in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER transcript_lines_fts_{trigger}")
        op.execute("DROP TABLE transcript_lines_fts")
    op.drop_index("ix_transcript_lines_job", "transcript_lines")
    op.drop_table("transcript_lines")
