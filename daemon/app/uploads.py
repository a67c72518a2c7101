"""A request's audio becomes a job like any other: stored under ``[http] upload_dir`` by its
content and the options that change what is computed, hashed, measured and enqueued through the
same store as a watched folder's files.  So the same audio asked for twice, or four times at
once, is one job (one path, one content: the database's unique index), computed once; a request
cut off meanwhile loses nothing, and asking again finds the job (done: its transcript at once).

The folder's layout: ``upload_dir/ab/<sha256[:20]>-<options key>.<ext>`` (a file's first two
hex digits as a folder), its outputs beside it; clips of known speakers as
``upload_dir/ab/<sha256[:20]>.ref.<ext>``.  Uploads are removed ``[http] keep_uploads_days``
after their job ended (:func:`sweep`); their steps stay cached.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from daemon.config import Config
from daemon.errors import UserError
from daemon.intake import hash_file
from daemon.jobs import JobOptions, JobRecord, JobStatus
from daemon.pipeline import facts
from daemon.rows import TERMINAL
from daemon.store import Store

log = logging.getLogger(__name__)

SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")
PCM_RATE = 16000
"""Raw PCM (whisper-asr-webservice's ``encode=false``): 16 kHz, mono, s16le."""
DATA_URL = re.compile(r"data:(?P<type>[\w/+.-]*)(?:;[\w=.-]+)*;base64,(?P<data>.*)", re.DOTALL)
REFERENCE_MAX_BYTES = 16 << 20
"""A known speaker's clip as a data URL: a few seconds of audio; anything longer is refused."""


@dataclass(frozen=True)
class Submitted:
    job: JobRecord
    created: bool
    """False when the same audio with the same options was a job already."""


def options_key(options: JobOptions) -> str:
    """A short, stable digest of what changes what is computed (:meth:`JobOptions.computing`)."""
    blob = json.dumps(options.computing(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def suffix_of(filename: str) -> str:
    """The client's file name's extension where it is a plain one (".mp3"), else ""."""
    suffix = Path(filename.replace("\\", "/")).suffix.lower()
    return suffix if SUFFIX.fullmatch(suffix) else ""


def wav_from_pcm(raw: Path, rate: int = PCM_RATE) -> None:
    """Turn a file of raw s16le mono PCM into a WAV file in place (a header in front)."""
    size = raw.stat().st_size
    size -= size % 2
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", size)
    temp = raw.with_name(raw.name + ".wav")
    with raw.open("rb") as src, temp.open("wb") as out:
        out.write(header)
        remaining = size
        while remaining and (block := src.read(min(1 << 20, remaining))):
            out.write(block)
            remaining -= len(block)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, raw)


def _place(temp: Path, final: Path) -> None:
    """Give the uploaded file its content's name: the first copy stays, later ones (the same
    bytes) are dropped."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(temp, final)
    except FileExistsError:
        pass
    except OSError:  # no hard links on this file system: a rename (same bytes either way)
        if not final.exists():
            os.replace(temp, final)
            return
    temp.unlink(missing_ok=True)
    # a file kept for a job is touched: the sweep counts its days from its last request
    with contextlib.suppress(OSError):
        os.utime(final)


def reference(config: Config, data_url: str) -> Path:
    """A known speaker's clip given as a data URL, stored by its content; UserError when it is
    not a base64 data URL of audio."""
    match = DATA_URL.fullmatch(data_url.strip())
    if match is None:
        raise UserError(
            "known_speaker_references[]: expected a data URL (data:audio/...;base64,...)"
        )
    try:
        raw = base64.b64decode(match["data"], validate=False)
    except (binascii.Error, ValueError):
        raise UserError("known_speaker_references[]: the data URL is not valid base64") from None
    if not raw or len(raw) > REFERENCE_MAX_BYTES:
        raise UserError(
            f"known_speaker_references[]: a clip of 1 byte to {REFERENCE_MAX_BYTES >> 20} MB"
        )
    sha = hashlib.sha256(raw).hexdigest()
    kind = match["type"].split("/")[-1].lower()
    ext = f".{kind}" if SUFFIX.fullmatch(f".{kind}") else ""
    folder = Path(config.http.upload_dir) / sha[:2]
    final = folder / f"{sha[:20]}.ref{ext}"
    if not final.exists():
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{final.name}.{os.getpid()}.part"
        with temp.open("wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        _place(temp, final)
    return final


def submit(
    config: Config,
    store: Store,
    temp: Path,
    filename: str,
    options: JobOptions,
    origin: str,
    pcm: bool = False,
) -> Submitted:
    """Make the uploaded file ``temp`` (in ``upload_dir``) a job: ``pcm`` wraps raw PCM in a
    WAV header first; the file goes to its content's name, is measured as the intake measures
    a file, and is enqueued (once per content and options).  ``filename``: the client's name for
    it, kept for display only."""
    if pcm:
        wav_from_pcm(temp)
    sha, size = hash_file(temp)
    options = dataclasses.replace(options, upload_name=filename or None)
    ext = ".wav" if pcm else suffix_of(filename)
    final = Path(config.http.upload_dir) / sha[:2] / f"{sha[:20]}-{options_key(options)}{ext}"
    _place(temp, final)
    measured = facts.measure(final)
    enqueued = store.enqueue(
        str(final),
        sha,
        size,
        store.now(),
        options=options,
        duration=measured.duration,
        facts=measured,
        origin=origin,
    )
    job = store.get(enqueued.job_id)
    assert job is not None
    log.info(
        "request %s job %s",
        "made" if enqueued.created else "found",
        job.id,
        extra={"job": job.id, "origin": origin, "upload": filename, "size": size},
    )
    return Submitted(job, enqueued.created)


def sweep(config: Config, store: Store, now: float | None = None) -> int:
    """Remove the uploads (and their outputs beside them) whose jobs ended more than
    ``keep_uploads_days`` ago, counted from the file's last request; a file of a job still
    queued or running stays.  Returns how many files went."""
    folder = Path(config.http.upload_dir)
    if not folder.is_dir():
        return 0
    now = time.time() if now is None else now
    horizon = config.http.keep_uploads_days * 86400
    removed = 0
    for entry in _old_files(folder, now - horizon):
        if _in_use(store, entry):
            continue
        for own in [entry, *entry.parent.glob(f"{entry.stem}.*")]:
            with contextlib.suppress(OSError):
                own.unlink()
                removed += 1
    return removed


def _old_files(folder: Path, before: float) -> Iterable[Path]:
    """Uploads (not their outputs, not temporary files) last touched before ``before``."""
    for entry in folder.glob("*/*"):
        name = entry.name
        if name.startswith(".") or not re.match(r"[0-9a-f]{20}[-.]", name):
            continue
        if name.endswith((".txt", ".srt", ".vtt", ".json", ".rttm")):
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < before:
                yield entry


def _in_use(store: Store, path: Path) -> bool:
    """Whether a job not yet ended reads ``path`` (as its input or a known speaker's clip)."""
    for job in store.jobs([JobStatus.QUEUED, JobStatus.RUNNING]):
        if job.path == str(path) or str(path) in (r for _n, r in job.options.known_speakers):
            return True
    return False


def ended(job: JobRecord) -> bool:
    return job.status in TERMINAL
