"""What a finished job publishes: which transcript files it writes, in which folder and under
which name (the ``[output]`` settings or its folder's own), laid out how, and with which
speaker names (the enrolled voices its speakers match)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import placement, voices
from daemon.config import Config, FolderOptions
from daemon.errors import Cancelled
from daemon.jobs import JobRecord, Lease
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
    lease: Lease | None = None,
) -> list[str]:
    """Write a job's transcript files (speakers named by ``names``) where ``place`` says (the
    folder and name template; default: :func:`output_place` of this config), as one set (all
    or none: :func:`daemon.pipeline.outputs.write_outputs`), replacing its own earlier ones
    and those of the jobs it superseded at its path, never another's; those earlier files
    that now have other names (another language, layout or name) go.

    ``lease``: the running attempt's.  The job then holds the names before they appear (see
    :class:`Holder`): an attempt that ends before the job is done leaves its names to the
    next one, which writes over them instead of beside them; a lost lease publishes nothing
    (:class:`Cancelled`)."""
    own = set(job.outputs) | store.superseded_outputs(job.path, job.id)
    folder, name = place or output_place(config, Path(job.path))
    others = store.outputs_in_use() - own
    holder = None if lease is None else Holder(store, lease, list(job.outputs))
    try:
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
            hold=holder,
        )
    except BaseException:
        if holder is not None:
            holder.release()
        raise
    for stale in own - set(written) - others:
        Path(stale).unlink(missing_ok=True)
    return written


@dataclass
class Holder:
    """Records, under a running job's lease, the names it is about to publish (with its
    earlier ones) as its outputs (:meth:`daemon.store.Store.hold_outputs`)."""

    store: Store
    lease: Lease
    earlier: list[str]
    held: bool = False

    def __call__(self, paths: list[str]) -> None:
        new = [p for p in paths if p not in self.earlier]
        if not self.store.hold_outputs(self.lease, [*self.earlier, *new]):
            raise Cancelled("the job is no longer this worker's")
        self.held = True

    def release(self) -> None:
        """Nothing of the set was published: the job holds only its earlier names again, and
        the next attempt takes the first free name anew.  A database out of reach keeps them
        held, which costs only the names."""
        if not self.held:
            return
        try:
            self.store.hold_outputs(self.lease, self.earlier)
        except Exception as exc:
            log.warning(
                "job %s keeps the output names it held (%s)",
                self.lease.job_id,
                type(exc).__name__,
                extra={"job": self.lease.job_id},
            )


def folder_options(config: Config, source: Path) -> FolderOptions:
    """The options of the innermost ``[folders."..."]`` holding ``source`` (none set when no
    configured folder holds it)."""
    options = {placement.local_path(f): o for f, o in config.folders.items()}
    inner = placement.innermost(placement.local_path(source), options)
    return options[Path(inner)] if inner is not None else FolderOptions()


def output_place(config: Config, source: Path) -> tuple[Path, str]:
    """The folder and name template of ``source``'s transcripts: ``[output]`` layout and name,
    or those of the innermost ``[folders."..."]`` holding it (see :mod:`daemon.placement`); an
    upload's (under ``[http] upload_dir``) go beside it, never to the watched folders'."""
    real = placement.local_path(source)
    uploads = placement.local_path(config.http.upload_dir)
    if real.is_relative_to(uploads):
        return real.parent, "{stem}"
    opts = folder_options(config, source)
    watched = [placement.local_path(f) for f in config.watch.folders]
    layout = opts.layout or config.output.layout
    folder = placement.output_folder(real, layout, placement.local_path(config.output.dir), watched)
    return Path(folder), opts.name or config.output.name


def voice_matches(
    config: Config,
    store: Store,
    source: Path,
    prints: dict[str, tuple[float, ...]],
    known: list[voices.Voice] | None = None,
) -> list[voices.Match]:
    """Which of a job's speakers are enrolled voices, or the ``known`` voices its request gave
    (OpenAI's known speakers: they take the place of an enrolled voice of the same name);
    none where ``[voices]`` or the file's folder turns naming off (a request's own known
    speakers are matched all the same: it asked for them)."""
    enabled = folder_options(config, source).voices
    known = known or []
    if not prints:
        return []
    if not (config.voices.enabled if enabled is None else enabled):
        return voices.match(prints, known, config.voices.max_distance) if known else []
    given = {v.name for v in known}
    enrolled = [v for v in store.voices.all() if v.name not in given]
    comparable = voices.usable(enrolled, WEIGHTS_ID)
    if len(comparable) < len(enrolled):
        log.warning(
            "%d enrolled voice(s) were made with other diarization weights and name nobody; "
            "enroll them again (transcribd voices list)",
            len(enrolled) - len(comparable),
        )
    return voices.match(prints, [*known, *comparable], config.voices.max_distance)


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
