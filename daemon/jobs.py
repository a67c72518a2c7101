"""What a job is, outside the database: its options and a read-only copy of its row.

:class:`JobOptions` is the one typed record of what a file asks for (from the CLI or its folder's
``[folders."..."]`` table) and what the daemon decided for it (a lighter profile after running out
of memory, speaker names); the store (de)serialises it at its boundary.  Unknown keys in old rows
are ignored, so a newer daemon reads an older database.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from daemon import fsnames

log = logging.getLogger(__name__)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    """Waiting to be claimed (new, requeued, retrying after backoff, or recovered from a lease)."""
    RUNNING = "running"
    """Claimed by a worker that holds a lease and renews it with heartbeats."""
    DONE = "done"
    """Outputs written; terminal until requeued."""
    FAILED = "failed"
    """Permanent error or attempts exhausted; terminal until requeued."""
    SUPERSEDED = "superseded"
    """A newer job of the same path (new content there) took over; its outputs replace this
    one's.  Terminal; ``requeue --failed`` skips it."""
    CANCELLED = "cancelled"
    """Its input was gone when it started, or went while it was decoded; cached steps are kept.
    Terminal until requeued."""


@dataclass(frozen=True)
class JobOptions:
    profile: str | None = None
    """A profile the job asks for (CLI ``--profile`` or its folder's)."""
    language: str | None = None
    """An ISO code that forces the language."""
    initial_prompt: str | None = None
    """Whisper's initial prompt (None: the folder's or ``[pipeline]``'s)."""
    hotwords: str | None = None
    """Whisper's hotwords (None: the folder's or ``[pipeline]``'s)."""
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    oom_profile: str | None = None
    """Set when the job ran out of memory: the lighter profile its retries run with."""
    device: str | None = None
    """Where the job asks to run: "cpu", "cuda", "cuda:N" (None or "auto": any worker)."""
    oom_device: str | None = None
    """Set when the job ran out of GPU memory: the device its retries run on ("cpu")."""
    speaker_names: tuple[tuple[str, str], ...] = ()
    """(diarized label, name) pairs set by ``transcribd speakers --rename``."""
    task: str | None = None
    """What Whisper does: "transcribe" (None), "translate" (into English), or "language"
    (only detect the language: whisper-asr-webservice's ``/detect-language``)."""
    known_speakers: tuple[tuple[str, str], ...] = ()
    """(name, reference clip) pairs a request gave (OpenAI's ``known_speaker_names[]`` and
    ``known_speaker_references[]``): a speaker whose voice matches a clip takes its name."""
    upload_name: str | None = None
    """The name a client gave its upload (shown instead of the stored file's)."""

    @property
    def device_request(self) -> str | None:
        """The device the job must run on (see :func:`daemon.devices.fits`): after running out
        of GPU memory the CPU, else what it asked for."""
        return self.oom_device or self.device

    @property
    def names(self) -> dict[str, str]:
        return dict(self.speaker_names)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: only what is set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "speaker_names":
                if value:
                    out[f.name] = dict(value)
            elif f.name == "known_speakers":
                if value:
                    out[f.name] = [list(pair) for pair in value]
            elif value is not None:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> JobOptions:
        """Read a stored (or CLI-given) mapping; keys this version does not know are skipped."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            log.debug("ignoring unknown job options", extra={"keys": unknown})
        values = {k: v for k, v in raw.items() if k in known and v is not None}
        names = values.pop("speaker_names", None) or {}
        refs = values.pop("known_speakers", None) or []
        return cls(
            **values,
            speaker_names=tuple((str(k), str(v)) for k, v in names.items()),
            known_speakers=tuple((str(n), str(r)) for n, r in refs),
        )

    def computing(self) -> dict[str, Any]:
        """What changes what is computed (not how the job is shown or named): two requests
        for the same audio with these equal are the same job."""
        shown = ("upload_name", "speaker_names", "oom_profile", "oom_device")
        return {k: v for k, v in self.to_dict().items() if k not in shown}


@dataclass(frozen=True)
class AudioFacts:
    """What a file sounds like, measured cheaply at intake (see :mod:`daemon.pipeline.facts`):
    what the planner may choose a profile by beside the file's length."""

    duration: float | None
    """Seconds, from the container's header (None: it cannot tell)."""
    speech_share: float | None = None
    """Share of the sampled audio the VAD calls speech."""
    speech_db: float | None = None
    """Speech level, dBFS."""
    noise_db: float | None = None
    """Noise floor, dBFS."""

    @property
    def snr_db(self) -> float | None:
        """Speech over noise, dB; None where no speech was heard."""
        if self.speech_db is None or self.noise_db is None:
            return None
        return self.speech_db - self.noise_db

    def to_dict(self) -> dict[str, float | None]:
        return {
            "duration": self.duration,
            "speech_share": _round(self.speech_share, 3),
            "speech_db": _round(self.speech_db, 1),
            "noise_db": _round(self.noise_db, 1),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> AudioFacts | None:
        """Facts as stored (None: the job has none, e.g. one registered by an older version)."""
        if not raw:
            return None
        get = {k: raw.get(k) for k in ("duration", "speech_share", "speech_db", "noise_db")}
        return cls(**{k: None if v is None else float(v) for k, v in get.items()})


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class JobRecord:
    """A detached, read-only copy of a job row."""

    id: int
    path: str
    sha256: str
    size: int
    duration: float | None
    status: JobStatus
    duplicate_of: int | None
    profile: str | None
    options: JobOptions
    attempts: int
    error: str | None
    progress: float
    outputs: list[str]
    metrics: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    node: str | None
    """The node whose worker claimed it last (``[daemon] node``)."""
    runs: int = 0
    """Attempts over the job's whole life (``attempts`` starts again at a requeue)."""
    facts: AudioFacts | None = None
    """What the file sounded like at intake (None: not measured)."""
    device: str | None = None
    """The device of the worker that claimed it last ("cpu", "cuda:0"; None: never claimed)."""
    origin: str | None = None
    """Where it came from: "folder", "cli", "http:KEYNAME" (None: made before it was kept)."""

    @property
    def name(self) -> str:
        """The file's name as people know it: an upload's own name, else the path's."""
        return self.options.upload_name or fsnames.printable(Path(self.path).name)

    def as_dict(self) -> dict[str, Any]:
        """The job as ``status --json``, hooks and the webhook show it."""
        return {
            "id": self.id,
            "path": fsnames.printable(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "status": self.status.value,
            "duplicate_of": self.duplicate_of,
            "profile": self.profile,
            "progress": round(self.progress, 4),
            "attempts": self.attempts,
            "error": self.error,
            "outputs": self.outputs,
            "node": self.node,
            "device": self.device,
            "origin": self.origin,
            "name": self.name,
            "metrics": self.metrics,
            "options": self.options.to_dict(),
            "facts": self.facts.to_dict() if self.facts is not None else None,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }

    @property
    def lease(self) -> Lease:
        """The lease this (running) job was claimed under."""
        return Lease(self.id, self.lease_owner or "", self.attempts)


def iso(t: datetime | None) -> str | None:
    """A stored moment (naive UTC) as ISO 8601 with a Z."""
    return None if t is None else t.isoformat(timespec="seconds") + "Z"


@dataclass(frozen=True)
class Lease:
    """What a worker holds while it runs a job: its changes to the job are guarded by all three
    (a worker whose lease was lost, even to a later attempt of its own, changes nothing)."""

    job_id: int
    owner: str
    attempt: int


@dataclass(frozen=True)
class Enqueued:
    job_id: int
    created: bool
    """False when the same path with the same content is already known (nothing new to do)."""
    duplicate_of: int | None = None
    superseded: list[int] = field(default_factory=list)
    """Older jobs of the same path that this one superseded (new content there)."""


@dataclass(frozen=True)
class Requeued:
    requeued: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    """Job id -> why it was not requeued."""
