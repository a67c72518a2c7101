"""Announcing a job's end to other programs (pure): which announcements a job's end makes,
what they carry, the argv of a hook command, the webhook's signature, and when a failed try
is tried again.  :mod:`daemon.outbox` keeps them; :mod:`daemon.delivery` delivers them.

``[hooks] on_done`` / ``on_failed``: a command (argv, no shell) run with placeholders filled in
and the job's record as JSON on stdin.  ``[hooks] webhook``: a POST of the same JSON, signed
with HMAC-SHA256 when ``webhook_secret`` is set.  Each is delivered at least once: the
idempotency key (job id and run) lets a receiver drop a repeat.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import string
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daemon import fsnames
from daemon.jobs import JobRecord, iso

EVENTS = ("done", "failed")
KINDS = ("on_done", "on_failed", "webhook")
PLACEHOLDERS = ("json", "txt", "srt", "vtt", "rttm", "source", "job", "status")
"""What a hook's arguments may hold: each output's path ("" when it was not written), the
input's path, the job's id and how it ended."""
SIGNATURE_HEADER = "X-Transcribd-Signature-256"
"""``sha256=<hex HMAC-SHA256 of the body, keyed with webhook_secret>`` (as GitHub signs)."""
MAX_BACKOFF_SECONDS = 3600.0


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    """To be delivered (again) from ``next_at``."""
    DELIVERED = "delivered"
    """The hook ran and exited 0, or the webhook answered 2xx."""
    FAILED = "failed"
    """Given up: every try failed, or the receiver refused it for good (a 4xx)."""
    DROPPED = "dropped"
    """Never to be delivered: its job was superseded (new content at its path) first."""


@dataclass(frozen=True)
class DeliveryRecord:
    """A detached copy of a delivery row."""

    id: int
    job_id: int
    run: int
    kind: str
    event: str
    payload: dict[str, Any]
    status: DeliveryStatus
    tries: int
    next_at: datetime
    result: str | None
    lease_owner: str | None
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """As ``status --json`` shows it with its job."""
        return {
            "kind": self.kind,
            "event": self.event,
            "run": self.run,
            "status": self.status.value,
            "tries": self.tries,
            "result": self.result,
            "next_at": iso(self.next_at) if self.status is DeliveryStatus.PENDING else None,
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True)
class Announce:
    """What ``[hooks]`` asks for: the kinds of announcement each event makes."""

    on_done: bool = False
    on_failed: bool = False
    webhook: bool = False

    def kinds(self, event: str) -> tuple[str, ...]:
        """The announcements a job's ``event`` ("done" or "failed") makes."""
        own = {"done": self.on_done, "failed": self.on_failed}[event]
        return tuple(k for k, on in ((f"on_{event}", own), ("webhook", self.webhook)) if on)


NOTHING = Announce()
"""No hooks, no webhook: a job's end is announced to nobody."""


def key(job_id: int, run: int) -> str:
    """The idempotency key of a job's end: the same for every try of one announcement."""
    return f"{job_id}-{run}"


def payload(job: JobRecord, event: str) -> dict[str, Any]:
    """What a job's end announces: the event, its idempotency key and the job's record, with
    its outputs by format."""
    return {
        "event": event,
        "idempotency_key": key(job.id, job.runs),
        "source": fsnames.to_db(job.path),
        "job": job.as_dict(),
        "files": outputs_by_format(job.outputs),
    }


def outputs_by_format(outputs: Sequence[str]) -> dict[str, str]:
    return {Path(p).suffix.lstrip("."): p for p in outputs}


def problem(argv: Sequence[str]) -> str | None:
    """Why ``argv`` cannot be a hook command, or None: a program, and only known
    placeholders (``{{`` and ``}}`` stand for braces)."""
    if not argv or not argv[0]:
        return "the first item must be the program to run"
    for arg in argv:
        try:
            parsed = [(f, s, c) for _t, f, s, c in string.Formatter().parse(arg) if f is not None]
        except ValueError as exc:
            return f"{arg!r}: {exc}"
        for f, spec, conversion in parsed:
            if f not in PLACEHOLDERS or spec or conversion:
                known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                return f"{arg!r}: unknown placeholder {{{f}}} (known: {known})"
    return None


def argv(template: Sequence[str], announced: Mapping[str, Any]) -> list[str]:
    """A hook's argv with the placeholders of each argument filled in from an announcement
    (:func:`payload`); file names are data: each stays one argument, whatever it holds."""
    job = announced["job"]
    files = announced.get("files", {})
    values = {fmt: files.get(fmt, "") for fmt in ("json", "txt", "srt", "vtt", "rttm")}
    source = fsnames.from_db(announced.get("source", job["path"]))  # the very bytes
    values |= {"source": source, "job": str(job["id"]), "status": announced["event"]}
    return [arg.format_map(values) for arg in template]


def printable_url(url: str) -> str:
    """The webhook's URL without what may be a secret (a password, a query's token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def signature(secret: str, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


FAILURES_HELD = ("bad_input",)
"""The failures (:func:`daemon.retry.failure_class`) that a file still being written may cause:
undecodable, truncated or empty content.  The next version of the file supersedes the job."""


def hold_seconds(failure: str, hold: float) -> float:
    """How long the announcements of a job's failure wait before they are due (pure): ``hold``
    (``[hooks] failure_hold_seconds``) for a failure of the file's content, which newer
    content at its path may still supersede (its announcements are then dropped, never
    delivered); none for any other."""
    return hold if failure in FAILURES_HELD else 0.0


def retry_at(tries: int, now: datetime, backoff: float) -> datetime:
    """When to try again after ``tries`` failed tries: ``backoff`` doubled each time, at
    most an hour."""
    delay = min(MAX_BACKOFF_SECONDS, backoff * 2 ** min(30, max(0, tries - 1)))
    return now + timedelta(seconds=delay)


def after_try(ok: bool, final: bool, tries: int, attempts: int) -> str:
    """What becomes of an announcement after a try (pure): "delivered", "retry" (due again
    at :func:`retry_at`) or "failed" (given up: a final refusal, or every try spent)."""
    if ok:
        return "delivered"
    return "failed" if final or tries >= attempts else "retry"


def permanent_http(status: int) -> bool:
    """An HTTP answer that a later try would get again: a redirect (not followed: a POST
    would turn into a GET without its body) or a 4xx other than a timeout (408), too early
    (425) or too many requests (429)."""
    return 300 <= status < 500 and status not in (408, 425, 429)
