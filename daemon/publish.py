"""What a finished job publishes: which transcript files it writes, in which folder and under
which name (the ``[output]`` settings or its folder's own), laid out how, and with which
speaker names (the enrolled voices its speakers match)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from daemon import placement, voices
from daemon.config import Config, FolderOptions
from daemon.jobs import JobRecord
from daemon.pipeline.cues import CueRules
from daemon.pipeline.diarize import WEIGHTS_ID
from daemon.pipeline.outputs import Transcript, rename_speakers, write_outputs
from daemon.store import Store

log = logging.getLogger(__name__)


def write_job_outputs(
    config: Config,
    store: Store,
    job: JobRecord,
    transcript: Transcript,
    names: dict[str, str],
    place: tuple[Path, str] | None = None,
) -> list[str]:
    """Write a job's transcript files (speakers named by ``names``) where ``place`` says (the
    folder and name template; default: :func:`output_place` of this config), replacing its
    own earlier ones and those of the jobs it superseded at its path, never another's; those
    earlier files that now have other names (another language, layout or name) go."""
    own = set(job.outputs) | store.superseded_outputs(job.path, job.id)
    folder, name = place or output_place(config, Path(job.path))
    others = store.outputs_in_use() - own
    written = write_outputs(
        rename_speakers(transcript, names),
        folder,
        Path(job.path).stem,
        config.output.formats,
        own=own,
        others=others,
        timestamps_in_txt=config.output.timestamps_in_txt,
        cues=cue_rules(config),
        name=name,
    )
    for stale in own - set(written) - others:
        Path(stale).unlink(missing_ok=True)
    return written


def folder_options(config: Config, source: Path) -> FolderOptions:
    """The options of the innermost ``[folders."..."]`` holding ``source`` (none set when no
    configured folder holds it)."""
    options = {placement.local_path(f): o for f, o in config.folders.items()}
    inner = placement.innermost(placement.local_path(source), options)
    return options[Path(inner)] if inner is not None else FolderOptions()


def output_place(config: Config, source: Path) -> tuple[Path, str]:
    """The folder and name template of ``source``'s transcripts: ``[output]`` layout and name,
    or those of the innermost ``[folders."..."]`` holding it (see :mod:`daemon.placement`)."""
    real = placement.local_path(source)
    opts = folder_options(config, source)
    watched = [placement.local_path(f) for f in config.watch.folders]
    layout = opts.layout or config.output.layout
    folder = placement.output_folder(real, layout, placement.local_path(config.output.dir), watched)
    return Path(folder), opts.name or config.output.name


def voice_matches(
    config: Config, store: Store, source: Path, prints: dict[str, tuple[float, ...]]
) -> list[voices.Match]:
    """Which of a job's speakers are enrolled voices (none where ``[voices]`` or the file's
    folder turns naming off)."""
    enabled = folder_options(config, source).voices
    if not (config.voices.enabled if enabled is None else enabled) or not prints:
        return []
    enrolled = store.voices.all()
    comparable = voices.usable(enrolled, WEIGHTS_ID)
    if len(comparable) < len(enrolled):
        log.warning(
            "%d enrolled voice(s) were made with other diarization weights and name nobody; "
            "enroll them again (transcribd voices list)",
            len(enrolled) - len(comparable),
        )
    return voices.match(prints, comparable, config.voices.max_distance)


def matches_record(matches: list[voices.Match]) -> dict[str, dict[str, Any]]:
    """The matches as a job's metrics keep them: by label, the name and distance."""
    return {m.speaker: {"name": m.name, "distance": m.distance} for m in matches}


def matches_of(metrics: dict[str, Any]) -> list[voices.Match]:
    """The matches a job's metrics keep (see :func:`matches_record`)."""
    kept = metrics.get("voices") or {}
    return [voices.Match(k, str(v["name"]), float(v["distance"])) for k, v in kept.items()]


def cue_rules(config: Config) -> CueRules:
    """How subtitle cues are laid out, from ``[output]``."""
    o = config.output
    return CueRules(o.max_line_chars, o.max_lines, o.max_cue_seconds)
