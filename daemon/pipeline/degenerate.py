"""Is a transcript plainly degenerate?  A safeguard that does not depend on the model's hash.

A damaged Whisper model, and now and then a sound Whisper decoding noise or music, produces
loops: one character or token over and over (224 ``"`` for an 11-s speech, ``!!!!…``,
``container container …``, ``+.+.+.…``).  faster-whisper's sequential ``transcribe`` measures
each window's gzip compression ratio and decodes again at a higher temperature above
``compression_ratio_threshold`` (2.4); the batched pipeline the daemon runs has no such
fallback, so these come out as they are.

What the ASR step does about one (:func:`transcribe_checked`, :func:`unsound_asr`): the chunk
is decoded once more with faster-whisper's sequential pass and its temperature fallback,
Whisper's own answer to loops; a chunk still degenerate after that fails the job with a
permanent error naming the model (:class:`daemon.errors.DegenerateTranscript`) and is never
cached, and a degenerate result found in the cache is dropped and computed again.  Failing
rather than publishing with a flag: a job has no "done, but doubtful" state, a transcript that
is a loop is of no use to anyone who receives it, and the error says what to check.

The limits are far from real speech: on the 35 evaluation clips (English, Russian and the
diarization recordings) none fires, with base or with tiny.en; the highest compression ratio
of a window was 1.91 with base, and 3.08 with tiny.en on the German half of
multilingual_en_de.mp3, which the English-only model writes as gibberish ending in a loop of
two words (tests/e2e/test_degenerate_eval.py).
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from daemon.errors import DegenerateTranscript

if TYPE_CHECKING:
    from daemon.pipeline.asr import AsrModel, AsrOptions, Segment
    from daemon.pipeline.audio import Audio

log = logging.getLogger(__name__)

COMPRESSION_RATIO_LIMIT = 4.0
"""Far above faster-whisper's ``compression_ratio_threshold`` (2.4), where its sequential pass
already decodes again: only a loop compresses this well."""
REPEATS = 10
"""One character or token (up to :data:`UNIT_CHARS` characters without a space inside, and the
space after it) repeated this many times in a row..."""
UNIT_CHARS = 24
RUN_CHARS = 48
"""...covering at least this many characters is a loop ("no, no, no" and "1000000" are not).
Longer units are left to the compression ratio: a unit of several words ("tzu fafan, " 24
times after a window of gibberish: tiny.en on the German half of multilingual_en_de.mp3) is
a hallucination rather than plainly degenerate."""
_LOOP = re.compile(rf"(\S{{1,{UNIT_CHARS}}}? ?)\1{{{REPEATS - 1},}}")


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression, as faster-whisper computes it."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def degenerate(text: str) -> str | None:
    """Why ``text`` is plainly degenerate, or None: one character or token repeated
    :data:`REPEATS` times in a row over :data:`RUN_CHARS` characters, or a compression ratio above
    :data:`COMPRESSION_RATIO_LIMIT` (pure)."""
    flat = " ".join(text.split())
    for match in _LOOP.finditer(flat):
        if len(match.group(0)) >= RUN_CHARS:
            unit = match.group(1)
            shown = unit.strip() or unit
            return f"{shown!r} repeated {len(match.group(0)) // len(unit)} times"
    ratio = compression_ratio(flat)
    if ratio > COMPRESSION_RATIO_LIMIT:
        return f"compression ratio {ratio:.1f}, above {COMPRESSION_RATIO_LIMIT}"
    return None


def degenerate_windows(texts: Iterable[str]) -> str | None:
    """Why the text of a chunk is degenerate, or None: each of its Whisper windows' texts
    (where a loop is not diluted by the others), then all of them together."""
    texts = list(texts)
    for text in texts:
        problem = degenerate(text)
        if problem is not None:
            return problem
    return degenerate(" ".join(texts))


def transcribe_checked(
    model: AsrModel,
    name: str,
    clip: Audio,
    span: tuple[float, float],
    language: str | None,
    options: AsrOptions,
) -> tuple[list[Segment], str]:
    """A chunk's segments and language from ``model`` (the profile's ``name``; the chunk spans
    ``span`` seconds of the file).  A plainly degenerate pass is decoded again with
    faster-whisper's temperature fallback; one still degenerate is
    :class:`DegenerateTranscript` (permanent: nothing is cached, nothing published)."""
    found, lang = model.transcribe(clip, language, options)
    problem = degenerate_windows(s.text for s in found)
    if problem is None:
        return found, lang
    where = f"{_clock(span[0])}-{_clock(span[1])}"
    log.warning(
        "the transcript of %s is degenerate (%s): decoding it again with temperature fallback",
        where,
        problem,
        extra={"model": name, "chunk": where, "problem": problem},
    )
    found, lang = model.transcribe_again(clip, language, options)
    problem = degenerate_windows(s.text for s in found)
    if problem is None:
        return found, lang
    raise DegenerateTranscript(
        f"the transcript of {where} is degenerate with model '{name}' ({problem}), even "
        "decoded again: the model may be damaged (transcribd doctor re-hashes it) or the "
        "audio holds nothing Whisper can follow; nothing was published"
    )


def unsound_asr(payload: dict[str, Any]) -> str | None:
    """Why a cached ASR result must not be served (a transcript cached degenerate, e.g. by a
    damaged model before models were verified), or None."""
    segments: list[dict[str, Any]] = payload.get("segments", [])
    return degenerate_windows(str(s.get("text", "")) for s in segments)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"
