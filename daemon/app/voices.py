"""Enrolled voices (``transcribd voices``): a person's voice print from recordings of them,
listed and removed."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from daemon import fsnames, voices
from daemon.app.session import using
from daemon.config import Config
from daemon.errors import UserError
from daemon.intake import hash_file
from daemon.jobrun import speakers_of_file
from daemon.pipeline.diarize import WEIGHTS_ID
from daemon.store import Store, open_store
from daemon.voices import MainSpeaker, Voice
from daemon.warm import WarmModels


@dataclass(frozen=True)
class Enrolled:
    voice: Voice
    files: list[tuple[str, MainSpeaker]]
    """Each recording enrolled now, with its main speaker."""


ENROLL_LEAST_SECONDS = 3.0
"""Less speech than this gives no usable voice print."""


def enroll(
    config: Config, name: str, paths: list[Path], on_file: Callable[[Path], None] = lambda _p: None
) -> Enrolled:
    """Enroll ``name``'s voice from recordings of them speaking (alone, or at least most of
    the time): each recording's main speaker's voice print, averaged by speech time (with the
    voice's earlier enrollment, if any).  Diarization goes through the step cache."""
    problem = voices.name_problem(name)
    if problem:
        raise UserError(problem)
    for path in paths:
        if not path.is_file():
            raise UserError(f"not a file: {fsnames.printable(path)}")
    models = WarmModels.of(config)
    with closing(open_store(config)) as store:
        prints: list[tuple[tuple[float, ...], float, str]] = []
        mains: list[tuple[str, MainSpeaker]] = []
        for path in paths:
            on_file(path)
            shown = fsnames.printable(path)
            sha, _size = hash_file(path)
            found = speakers_of_file(config, models, store, path, sha)
            speech: dict[str, float] = {}
            for t in found.turns:
                speech[t.speaker] = speech.get(t.speaker, 0.0) + (t.end - t.start)
            main = voices.main_speaker(speech, found.centroids)
            if main is None or main.seconds < ENROLL_LEAST_SECONDS:
                had = 0.0 if main is None else main.seconds
                raise UserError(
                    f"{shown}: too little speech to enroll a voice ({had:.1f} s; at least "
                    f"{ENROLL_LEAST_SECONDS:.0f} s, better 30 s or more)"
                )
            if main.share < voices.ENROLL_SHARE:
                raise UserError(
                    f"{shown}: {main.others + 1} voices speak about equally (the main one has "
                    f"{main.share:.0%} of the speech); give a recording of {name} alone"
                )
            prints.append((found.centroids[main.label], main.seconds, shown))
            mains.append((shown, main))
        voice = voices.enrolled(name, prints, WEIGHTS_ID, store.voices.get(name))
        store.voices.put(voice, store.now())
    return Enrolled(voice, mains)


def list_voices(config: Config, store: Store | None = None) -> list[tuple[Voice, bool]]:
    """The enrolled voices, each with whether it can name speakers (made with the weights in
    use)."""
    with using(config, store) as store:
        return [(v, v.weights == WEIGHTS_ID) for v in store.voices.all()]


def remove_voice(config: Config, name: str, store: Store | None = None) -> None:
    with using(config, store) as store:
        if not store.voices.remove(name):
            known = ", ".join(v.name for v in store.voices.all()) or "none"
            raise UserError(f"no voice '{name}' (enrolled: {known})")


def enroll_speaker(
    config: Config, job_id: int, label: str, name: str, store: Store | None = None
) -> Voice:
    """ "This is a voice I know": a done job's speaker ``label`` enrolled as ``name`` (their
    file-wide voice print, from the cache: no model runs), or added to the voice of that
    name; the speaker is named so in the job's outputs too.  The checks of ``voices add``:
    a valid name, enough speech."""
    from daemon.app.speakers import done_result
    from daemon.app.speakers import speakers as rename

    problem = voices.name_problem(name)
    if problem:
        raise UserError(problem)
    with using(config, store) as store:
        _job, result = done_result(config, store, job_id)
        voiceprint = result.voiceprints.get(label)
        seconds = sum(t.end - t.start for t in result.transcript.turns if t.speaker == label)
        if voiceprint is None or seconds < ENROLL_LEAST_SECONDS:
            raise UserError(
                f"{label} speaks {seconds:.1f} s in job #{job_id}: too little to enroll a voice "
                f"(at least {ENROLL_LEAST_SECONDS:.0f} s)"
            )
        shown = f"job #{job_id} {label}"
        voice = voices.enrolled(
            name, [(voiceprint, seconds, shown)], WEIGHTS_ID, store.voices.get(name)
        )
        store.voices.put(voice, store.now())
        rename(config, job_id, {label: name}, store=store)
    return voice
