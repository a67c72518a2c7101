"""Where a job's transcripts go and what they are called (pure).

``[output] layout``: "mirror" (under the output folder, the input's folders below its watched
folder mirrored, so ``a/talk.mp3`` and ``b/talk.mp3`` get ``a/talk.txt`` and ``b/talk.txt``),
"beside" (next to the input, where media servers look) or "flat" (every transcript directly in
the output folder).  ``[output] name``: a template of the file name without its format suffix,
``{stem}`` (the input's name without its suffix) and ``{lang}`` (the transcript's ISO 639-1
language code), so ``"{stem}.{lang}"`` gives ``movie.en.srt``.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable
from pathlib import Path, PurePath

LAYOUTS = ("mirror", "beside", "flat")
NAME_FIELDS = ("stem", "lang")
UNKNOWN_LANGUAGE = "und"
"""``{lang}`` of a transcript without a language (no speech): ISO 639-2's "undetermined"."""


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]+")


def safe_stem(name: str) -> str:
    """A file stem that is one plain name: no separators, control characters or leading dots,
    valid UTF-8 (undecodable bytes become U+FFFD) and at most 200 bytes (names end at 255)."""
    text = os.fsencode(name).decode("utf-8", "replace")
    stem = _UNSAFE.sub("_", text).strip().lstrip(".")
    stem = stem.encode("utf-8")[:200].decode("utf-8", "ignore")
    return stem or "transcript"


def check_name(template: str) -> str | None:
    """Why ``template`` cannot name output files, or None: only ``{stem}`` and ``{lang}``,
    ``{stem}`` at least once (else every input would get the same name), no path separators."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"{template!r} is not a valid template ({exc})"
    fields = [f for _text, f, _spec, _conv in parsed if f is not None]
    for text, f, spec, conv in parsed:
        if f is not None and (f not in NAME_FIELDS or spec or conv):
            return f"{{{f}}} is not a placeholder here (known: {{stem}}, {{lang}})"
        if "/" in text or "\\" in text:
            return f"{template!r} holds a path separator; use layout for folders"
    if "stem" not in fields:
        return f"{template!r} lacks {{stem}}: every input would get the same name"
    return None


def file_name(template: str, stem: str, language: str, n: int = 0) -> str:
    """The output name (without the format suffix) for ``stem``; ``n`` > 0 is the n-th
    alternative when the name is taken, counted on the stem so that ``{stem}.{lang}`` stays
    ``talk-1.en`` (media servers read the language after the last dot)."""
    counted = stem if n == 0 else f"{stem}-{n}"
    return template.format(stem=counted, lang=language or UNKNOWN_LANGUAGE)


def innermost(path: PurePath, folders: Iterable[PurePath]) -> PurePath | None:
    """The deepest of ``folders`` holding ``path`` (lexically), or None."""
    holding = [f for f in folders if f in path.parents]
    return max(holding, key=lambda f: len(f.parts), default=None)


def outermost(path: PurePath, folders: Iterable[PurePath]) -> PurePath | None:
    """The shallowest of ``folders`` holding ``path`` (lexically), or None."""
    holding = [f for f in folders if f in path.parents]
    return min(holding, key=lambda f: len(f.parts), default=None)


def output_folder(
    source: PurePath, layout: str, out_dir: PurePath, watched: Iterable[PurePath]
) -> PurePath:
    """The folder a transcript of ``source`` goes to.  Mirror keeps the input's folders below
    the outermost watched folder holding it, each folder name made a plain valid UTF-8 name
    as file names are (:func:`safe_stem`); a file at a watched folder's top, or one added from
    elsewhere, lands directly in ``out_dir``, as flat does."""
    if layout == "beside":
        return source.parent
    if layout == "flat":
        return out_dir
    if layout != "mirror":
        raise ValueError(f"unknown output layout {layout!r}")
    root = outermost(source, watched)
    if root is None:
        return out_dir
    return out_dir.joinpath(*map(safe_stem, source.parent.relative_to(root).parts))


def local_path(path: Path) -> Path:
    """A path as placement compares it: absolute, symlinks resolved where they exist."""
    return Path(path).expanduser().resolve()
