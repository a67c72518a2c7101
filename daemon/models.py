"""SQLAlchemy tables. Only :mod:`daemon.store` reads or writes rows of :class:`Job`.

The vocabulary the rows hold (:class:`~daemon.jobs.JobStatus`,
:class:`~daemon.hooks.DeliveryStatus`) lives beside the read-only records, in pure modules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from daemon import fsnames
from daemon.hooks import DeliveryStatus
from daemon.jobs import JobStatus


class Base(DeclarativeBase):
    pass


class FsPath(TypeDecorator[str]):
    """A file path of any bytes, stored as text (see :mod:`daemon.fsnames`)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else fsnames.to_db(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else fsnames.from_db(value)


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in UTC: ``timestamp with time zone`` on PostgreSQL, text on SQLite; Python
    sees naive UTC datetimes either way (the store's convention)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(DateTime(timezone=dialect.name == "postgresql"))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or dialect.name != "postgresql":
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)


ACTIVE_JOB_WHERE = "status != 'superseded' AND sha256 != ''"
"""Rows among which (path, sha256) is unique: one live job per path and content; superseded
jobs and files refused before they could be read (sha256 '') are not counted."""


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Seconds of audio, from the container header at intake (None if unknown)."""
    status: Mapped[JobStatus] = mapped_column(
        Enum(
            JobStatus,
            name="job_status",
            values_callable=lambda e: [m.value for m in e],
            native_enum=False,
            length=16,
        ),
        nullable=False,
        default=JobStatus.QUEUED,
    )
    duplicate_of: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    profile: Mapped[str | None] = mapped_column(String(32), nullable=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    outputs: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    run_after: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    node: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The node (``[daemon] node``) whose worker claimed the job last."""
    runs: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    """Attempts over the job's whole life (``attempts`` starts again at a requeue): with the
    job's id, the idempotency key of what its ends are announced with (hooks, webhook)."""
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """What the file sounded like at intake (:class:`daemon.jobs.AudioFacts`), if measured."""
    device: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """Where the worker that claimed it last runs its models ("cpu", "cuda:0")."""
    origin: Mapped[str | None] = mapped_column(String(80), nullable=True)
    """Where the job came from: "folder", "cli", "http:KEYNAME" (None: before it was kept)."""

    __table_args__ = (
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_sha256", "sha256"),
        Index("ix_jobs_path", "path"),
        Index(
            "uq_jobs_path_content",
            "path",
            "sha256",
            unique=True,
            sqlite_where=text(ACTIVE_JOB_WHERE),
            postgresql_where=text(ACTIVE_JOB_WHERE),
        ),
    )


class StepResult(Base):
    """Cached output of one pipeline step for one content hash and one set of parameters."""

    __tablename__ = "step_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    step: Mapped[str] = mapped_column(String(64), nullable=False)
    params_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("sha256", "step", "params_hash", name="uq_step_results_key"),
    )


class DaemonState(Base):
    """Small facts each running daemon (node) publishes for ``status``: its heartbeat, the
    plan in force."""

    __tablename__ = "daemon_state"

    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class Delivery(Base):
    """One announcement of a job's end (a hook command or the webhook), written in the same
    transaction as the job's final state: an outbox that survives restarts.  Only
    :mod:`daemon.store` (creation) and :mod:`daemon.outbox` read or write its rows."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    run: Mapped[int] = mapped_column(Integer, nullable=False)
    """The job's :attr:`Job.runs` when it ended."""
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    """"on_done", "on_failed" or "webhook"."""
    event: Mapped[str] = mapped_column(String(16), nullable=False)
    """"done" or "failed"."""
    payload: Mapped[Any] = mapped_column(JSON, nullable=False)
    """What is announced: the job's record as it ended."""
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(
            DeliveryStatus,
            name="delivery_status",
            values_callable=lambda e: [m.value for m in e],
            native_enum=False,
            length=16,
        ),
        nullable=False,
        default=DeliveryStatus.PENDING,
    )
    tries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The last try's outcome ("HTTP 200", "exit 3: ...", "timed out after 60 s")."""
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("job_id", "run", "kind", name="uq_deliveries_job_run_kind"),
        Index("ix_deliveries_due", "status", "next_at"),
    )


class VoiceRow(Base):
    """An enrolled voice (see :mod:`daemon.voices`); read and written by
    :mod:`daemon.voicebook` only."""

    __tablename__ = "voices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    embedding: Mapped[Any] = mapped_column(JSON, nullable=False)
    """The voice print: a list of floats."""
    weights: Mapped[str] = mapped_column(String(128), nullable=False)
    """Identity (with hashes) of the diarization weights that made the print."""
    seconds: Mapped[float] = mapped_column(Float, nullable=False)
    files: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (UniqueConstraint("name", name="uq_voices_name"),)


class TranscriptRow(Base):
    """A done job's transcript as the HTTP face and the pages serve it (the JSON contract with
    the diarized turns, :func:`daemon.pipeline.outputs.to_record`) and the names its speakers
    go by; read and written by :mod:`daemon.transcripts` only."""

    __tablename__ = "transcripts"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    record: Mapped[Any] = mapped_column(JSON, nullable=False)
    names: Mapped[Any] = mapped_column(JSON, nullable=False)
    """Diarized label -> the name it goes by (enrolled voice, known speaker, rename)."""
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class ApiKey(Base):
    """A key of the HTTP face (``transcribd keys``): only its sha256 is kept; read and written
    by :mod:`daemon.keybook` only."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    """When a request last gave it (written at most once a minute)."""

    __table_args__ = (
        UniqueConstraint("name", name="uq_api_keys_name"),
        UniqueConstraint("key_hash", name="uq_api_keys_hash"),
    )


class TranscriptLine(Base):
    """One segment of a done job's transcript, as full-text search finds it: its time, its
    speaker's name and its text.  Kept by :mod:`daemon.transcripts` with the transcript (a job
    that ends done again, or whose speakers are renamed, has its lines rewritten).  The
    full-text index is the database's own, made by the migrations (:data:`SEARCH_INDEX`)."""

    __tablename__ = "transcript_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    start: Mapped[float] = mapped_column(Float, nullable=False)
    end: Mapped[float] = mapped_column(Float, nullable=False)
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The diarized label ("SPEAKER_00")."""
    speaker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The name it goes by (the label when unnamed)."""
    text: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (Index("ix_transcript_lines_job", "job_id"),)


SEARCH_INDEX = "transcript_lines_fts"
"""The full-text index of :class:`TranscriptLine` (the migrations' own: an FTS5 table and its
triggers on SQLite, a GIN index of ``to_tsvector('simple', text)`` on PostgreSQL): not in these
models, so schema comparisons leave out what is named after it."""


def search_index_object(name: str | None) -> bool:
    """Whether a schema object is (part of) :data:`SEARCH_INDEX`."""
    return bool(name) and str(name).startswith(SEARCH_INDEX)


class WebSession(Base):
    """A signed-in browser (the pages): only the session token's sha256 is kept, with the key
    it signed in with and its CSRF token; read and written by :mod:`daemon.keybook` only."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_name: Mapped[str] = mapped_column(String(64), nullable=False)
    csrf: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
