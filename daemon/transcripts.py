"""Done jobs' transcripts in the database (the only code that reads or writes ``transcripts``
rows), reached as ``Store.transcripts``: what the HTTP face answers with and the pages show, on
any node of a fleet, whatever became of the output files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from daemon import db
from daemon.models import TranscriptRow


@dataclass(frozen=True)
class StoredTranscript:
    job_id: int
    record: dict[str, Any]
    """:func:`daemon.pipeline.outputs.to_record`'s form (diarized labels, not names)."""
    names: dict[str, str]
    """Diarized label -> the name it goes by."""


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
        return StoredTranscript(
            job_id, dict(row.record), {str(k): str(v) for k, v in row.names.items()}
        )

    @staticmethod
    def put(
        conn: Connection,
        job_id: int,
        record: dict[str, Any] | None,
        names: dict[str, str],
        now: datetime,
    ) -> None:
        """Keep a job's transcript (``record`` None: only its names change), in the caller's
        transaction (the job's own change)."""
        values: dict[str, Any] = {"names": names, "updated_at": now}
        if record is not None:
            values["record"] = record
        stmt = db.insert(conn)(TranscriptRow).values(
            job_id=job_id, record=record or {}, names=names, updated_at=now
        )
        conn.execute(stmt.on_conflict_do_update(index_elements=["job_id"], set_=values))
