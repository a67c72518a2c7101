"""A done job's speakers: listed, renamed, or named again from the enrolled voices (its
outputs rewritten from the cache, no model runs)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from daemon import voices
from daemon.app.session import using
from daemon.config import Config
from daemon.errors import CacheMiss, UserError
from daemon.jobrun import run_pipeline
from daemon.jobs import JobRecord, JobStatus
from daemon.pipeline.run import PipelineResult
from daemon.publish import matches_of, matches_record, voice_matches, write_job_outputs
from daemon.store import Store
from daemon.warm import WarmModels


@dataclass(frozen=True)
class SpeakersReport:
    """A done job's speakers after ``transcribd speakers``."""

    speakers: list[tuple[str, str, float | None]]
    """(diarized label, name in the outputs, distance to the enrolled voice that named it)."""
    written: list[str]
    """The outputs rewritten (none when nothing changed)."""


def done_result(config: Config, store: Store, job_id: int) -> tuple[JobRecord, PipelineResult]:
    """A done job and its pipeline's result, from the cache alone (no model runs)."""
    job = store.get(job_id)
    if job is None:
        raise UserError(f"no job #{job_id}")
    if job.status is not JobStatus.DONE:
        raise UserError(f"job #{job_id} is {job.status.value}; only a done job has speakers")
    try:
        result = run_pipeline(
            config,
            WarmModels.of(config),
            store,
            Path(job.path),
            job.sha256,
            job.options,
            previous_profile=job.profile,
            cache_only=True,
        )
    except CacheMiss as exc:
        raise UserError(f"job #{job_id}: {exc}; requeue it instead") from None
    return job, result


def speakers(
    config: Config,
    job_id: int,
    renames: dict[str, str],
    relabel: bool = False,
    store: Store | None = None,
) -> SpeakersReport:
    """A done job's speakers; with ``renames`` (users may name a speaker by its diarized
    label or its current name) or ``relabel`` (match its voices against the enrolled ones
    again), its outputs and its transcript in the database are rewritten from the cache (no
    model runs).  ``store``: the caller's (else one is opened for the call)."""
    with using(config, store) as store:
        job, result = done_result(config, store, job_id)
        manual = job.options.names
        matches = matches_of(job.metrics)
        if relabel:
            matches = voice_matches(config, store, Path(job.path), result.voiceprints)
        names = voices.names(matches, manual)
        current = {names.get(label, label): label for label in result.transcript.speakers}
        for old, new in renames.items():
            label = current.get(old) or (old if old in result.transcript.speakers else None)
            if label is None:
                known = ", ".join(sorted(current)) or "none"
                raise UserError(f"job #{job_id} has no speaker '{old}' (speakers: {known})")
            manual[label] = new
        names = voices.names(matches, manual)
        distances = {m.speaker: m.distance for m in matches if names.get(m.speaker) == m.name}
        listed = [
            (label, names.get(label, label), distances.get(label))
            for label in result.transcript.speakers
        ]
        if not renames and not relabel:
            return SpeakersReport(listed, [])
        written = write_job_outputs(config, store, job, result.transcript, names)
        options = dataclasses.replace(job.options, speaker_names=tuple(manual.items()))
        metrics = {**job.metrics, "voices": matches_record(matches)}
        store.rewrite_done(job_id, store.now(), options, written, metrics)
        store.transcripts.rename(job_id, names, store.now())
        return SpeakersReport(listed, written)
