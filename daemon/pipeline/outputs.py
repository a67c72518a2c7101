"""Transcript writers (txt, srt, vtt, json, rttm) and a job's output files, published as one
set that never clobbers another's."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from daemon.pipeline.asr import Segment, Word
from daemon.pipeline.cues import DEFAULT_CUES, CueRules, label, layout
from daemon.pipeline.merge import Turn
from daemon.placement import file_name, safe_stem
from daemon.sysload import pid_alive


@dataclass(frozen=True)
class Transcript:
    source: str
    sha256: str
    duration: float
    language: str
    profile: str
    model: str
    segments: tuple[Segment, ...]
    speakers: tuple[str, ...] = ()
    turns: tuple[Turn, ...] = ()
    """Speaker turns as diarized (for RTTM)."""


def to_json(t: Transcript) -> dict[str, Any]:
    """The JSON contract: source, sha256, duration, language, profile, model, speakers, segments."""
    return {
        "source": t.source,
        "sha256": t.sha256,
        "duration": round(t.duration, 3),
        "language": t.language,
        "profile": t.profile,
        "model": t.model,
        "speakers": list(t.speakers),
        "segments": [
            {
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "speaker": s.speaker,
                "text": s.text,
                "words": [
                    {
                        "start": round(w.start, 3),
                        "end": round(w.end, 3),
                        "word": w.word,
                        "probability": round(w.probability, 4),
                        "speaker": s.speaker,
                    }
                    for w in s.words
                ],
            }
            for s in t.segments
        ],
    }


def to_record(t: Transcript) -> dict[str, Any]:
    """The transcript as the database keeps it: the JSON contract and the diarized turns (the
    speakers' diarized labels, not their names: names are kept beside it)."""
    return {**to_json(t), "turns": [[turn.start, turn.end, turn.speaker] for turn in t.turns]}


def from_record(d: dict[str, Any]) -> Transcript:
    """A transcript from :func:`to_record`'s form (or the JSON contract, without turns)."""
    segments = tuple(
        Segment(
            start=float(s["start"]),
            end=float(s["end"]),
            text=str(s["text"]),
            words=tuple(
                Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w["probability"]))
                for w in s.get("words", [])
            ),
            speaker=s.get("speaker"),
        )
        for s in d.get("segments", [])
    )
    return Transcript(
        source=str(d.get("source", "")),
        sha256=str(d.get("sha256", "")),
        duration=float(d.get("duration", 0.0)),
        language=str(d.get("language", "")),
        profile=str(d.get("profile", "")),
        model=str(d.get("model", "")),
        segments=segments,
        speakers=tuple(str(x) for x in d.get("speakers", [])),
        turns=tuple(Turn(float(a), float(b), str(w)) for a, b, w in d.get("turns", [])),
    )


def clock(seconds: float, sep: str = ".") -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def render_txt(t: Transcript, timestamps: bool = False) -> str:
    lines = []
    for s in t.segments:
        prefix = f"[{clock(s.start)} --> {clock(s.end)}] " if timestamps else ""
        speaker = f"{s.speaker}: " if s.speaker else ""
        lines.append(f"{prefix}{speaker}{s.text}")
    return "\n".join(lines) + ("\n" if lines else "")


def render_srt(t: Transcript, rules: CueRules = DEFAULT_CUES) -> str:
    """SubRip, cues laid out by :func:`daemon.pipeline.cues.layout` (the speaker's label
    starts a cue's first line)."""
    blocks = []
    for i, c in enumerate(layout(t.segments, rules, labels=True), start=1):
        text = label(c.speaker) + "\n".join(c.lines)
        blocks.append(f"{i}\n{clock(c.start, ',')} --> {clock(c.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def render_vtt(t: Transcript, rules: CueRules = DEFAULT_CUES) -> str:
    """WebVTT, cues laid out as for srt; the speaker as a voice span (not counted as text)."""
    blocks = ["WEBVTT\n"]
    for c in layout(t.segments, rules):
        text = "\n".join(c.lines)
        if c.speaker:
            text = f"<v {c.speaker}>{text}</v>"
        blocks.append(f"{clock(c.start)} --> {clock(c.end)}\n{text}\n")
    return "\n".join(blocks)


def render_rttm(t: Transcript) -> str:
    """NIST RTTM: one SPEAKER line per turn; the file id is the source's stem and the speaker
    its name, each with spaces as underscores (fields are separated by spaces)."""
    uri = _rttm_field(Path(t.source).stem) or "audio"
    return "".join(
        f"SPEAKER {uri} 1 {turn.start:.3f} {turn.end - turn.start:.3f} <NA> <NA> "
        f"{_rttm_field(turn.speaker)} <NA> <NA>\n"
        for turn in t.turns
    )


def _rttm_field(text: str) -> str:
    return re.sub(r"\s+", "_", text)


def rename_speakers(t: Transcript, names: dict[str, str]) -> Transcript:
    """The same transcript with speaker labels renamed (unnamed labels are kept)."""
    if not names:
        return t

    def n(s: str | None) -> str | None:
        return None if s is None else names.get(s, s)

    return replace(
        t,
        speakers=tuple(dict.fromkeys(n(s) or s for s in t.speakers)),
        segments=tuple(replace(s, speaker=n(s.speaker)) for s in t.segments),
        turns=tuple(replace(turn, speaker=n(turn.speaker) or turn.speaker) for turn in t.turns),
    )


def render(
    t: Transcript, fmt: str, timestamps_in_txt: bool = False, cues: CueRules = DEFAULT_CUES
) -> str:
    if fmt == "txt":
        return render_txt(t, timestamps_in_txt)
    if fmt == "srt":
        return render_srt(t, cues)
    if fmt == "vtt":
        return render_vtt(t, cues)
    if fmt == "json":
        return json.dumps(to_json(t), ensure_ascii=False, indent=2) + "\n"
    if fmt == "rttm":
        return render_rttm(t)
    raise ValueError(f"unknown output format {fmt!r}")


def choose_stem(
    out_dir: Path,
    stem: str,
    formats: Sequence[str],
    own: Collection[str],
    others: Collection[str],
    name: str = "{stem}",
    language: str = "",
) -> str:
    """The first of the names ``name`` gives ``stem``, ``stem-1``, ... (see
    :func:`daemon.placement.file_name`) whose files are free or already this job's own.

    ``own``: paths this job wrote before (may be replaced).  ``others``: paths recorded by other
    jobs (never replaced, even if a user deleted them meanwhile).
    """
    n = 0
    while True:
        candidate = file_name(name, stem, language, n)
        paths = [str(out_dir / f"{candidate}.{fmt}") for fmt in formats]
        if all((p in own or not os.path.lexists(p)) and p not in others for p in paths):
            return candidate
        n += 1


_TEMP = re.compile(
    r"^\..+\.(txt|srt|vtt|json|rttm)\.(?:(\d+)(?:@([A-Za-z0-9_-]+))?\.)?[A-Za-z0-9_]{8}\.tmp$"
)
HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64]
"""This machine, as temp file names carry it (nodes may share an output folder)."""
STALE_ELSEWHERE = 3600.0
"""A temp file of another machine's writer is left alone for this long (its writer may live)."""


def remove_stale_temps(out_dir: Path, now: float | None = None) -> int:
    """Delete temp files :func:`stage` left behind when the daemon was killed while writing
    (the finished file was never replaced, so nothing is lost).  A temp file of a
    process still alive on this machine stays, and so does another machine's for an hour
    (nodes of a fleet share output folders).  Returns how many went."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    now = time.time() if now is None else now
    for entry in out_dir.iterdir():
        match = _TEMP.match(entry.name)
        if match is None or not entry.is_file():
            continue
        pid, host = match.group(2), match.group(3)
        if host is not None and host != HOST:
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime < STALE_ELSEWHERE:
                    continue
        elif pid and pid_alive(int(pid)):
            continue
        entry.unlink(missing_ok=True)
        removed += 1
    return removed


def stage(path: Path, text: str) -> str:
    """``text`` in a new temp file beside ``path`` (named for it, this process and machine:
    see :func:`remove_stale_temps`), written and fsynced; the temp file's path.  Nothing is
    left on error."""
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}@{HOST}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            os.fchmod(f.fileno(), new_file_mode())  # mkstemp's 0600 would hide it from Plex...
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def new_file_mode() -> int:
    """The mode the process umask gives a new file (0644 under 022, 0640 under 027).  Read
    from /proc where it can be: setting the umask to read it would race other threads."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _link(tmp: str, path: Path) -> bool:
    """Hard-link ``tmp`` as ``path`` (True), or where the file system has no hard links (some
    SMB shares) claim the name with an exclusively created empty file that the caller then
    replaces (False).  Either raises FileExistsError when the name is taken."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return False
    return True


def write_outputs(
    t: Transcript,
    out_dir: Path,
    stem: str,
    formats: Sequence[str],
    own: Collection[str] = (),
    others: Collection[str] = (),
    timestamps_in_txt: bool = False,
    cues: CueRules = DEFAULT_CUES,
    name: str = "{stem}",
    hold: Callable[[list[str]], None] | None = None,
) -> list[str]:
    """Write the transcript in each format under the first free name (see
    :func:`choose_stem`; ``name`` is the ``[output] name`` template), as one set: every file
    is written to a temp file and fsynced first, and only once all are written do they take
    their names.  On any error none of the set is left under a new name, no temp file stays,
    and the error names the folder (a full disk: where to free space).

    ``hold`` is told the names just before they are taken (a job records them, so that its
    next attempt finds them as its own).  A name that is not the job's own is taken only if
    still free at that moment: when another writer (a node sharing the folder) took one
    first, the set is taken back and the next name is tried.  Temp files a killed writer left
    in ``out_dir`` go first."""
    remove_stale_temps(out_dir)
    base = safe_stem(stem)
    texts = [
        (out_dir / f"{base}.{fmt}", render(t, fmt, timestamps_in_txt, cues)) for fmt in formats
    ]
    taken = set(others)
    with _staged(out_dir, texts) as temps:
        while True:
            chosen = choose_stem(out_dir, base, formats, own, taken, name, t.language)
            paths = [out_dir / f"{chosen}.{fmt}" for fmt in formats]
            if hold is not None:
                hold([str(p) for p in paths])
            try:
                with _naming(out_dir):
                    _move_into_place(temps, paths, own)
            except FileExistsError:
                taken |= {str(p) for p in paths}
                continue
            return [str(p) for p in paths]


@contextlib.contextmanager
def _staged(out_dir: Path, texts: Sequence[tuple[Path, str]]) -> Iterator[list[str]]:
    """Each text in a temp file of ``out_dir`` (see :func:`stage`), in order; those still
    there on leaving (not moved into place) go."""
    temps: list[str] = []
    try:
        with _naming(out_dir):
            out_dir.mkdir(parents=True, exist_ok=True)
            for path, text in texts:
                temps.append(stage(path, text))
        yield temps
    finally:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def _naming(out_dir: Path) -> Iterator[None]:
    """An error writing into ``out_dir`` names that folder, the place a person must fix (a
    full disk, a read-only folder), instead of a temp file or nothing at all."""
    try:
        yield
    except FileExistsError:
        raise  # a name another writer took: not an error of the folder
    except OSError as exc:
        if not exc.errno:
            raise
        raise OSError(exc.errno, exc.strerror, str(out_dir)) from exc


def _move_into_place(temps: Sequence[str], paths: Sequence[Path], own: Collection[str]) -> None:
    """Staged files under their final names, as one set: first the names that are not the
    job's own, each taken only while still free (:func:`_link`; FileExistsError when another
    writer took one), then the job's own replaced, then the folder fsynced.  On any error
    the names taken here go again, so none of them stays visible (the job's own, replaced,
    stay its own)."""
    claimed: list[Path] = []
    replaced: list[tuple[str, Path]] = []
    try:
        for tmp, path in zip(temps, paths, strict=True):
            if str(path) in own:
                replaced.append((tmp, path))
                continue
            linked = _link(tmp, path)
            claimed.append(path)
            if not linked:  # an empty file holds the name: the temp replaces it
                replaced.append((tmp, path))
        for tmp, path in replaced:
            os.replace(tmp, path)
        _sync_folder(paths[0].parent)
    except BaseException:
        for path in claimed:
            path.unlink(missing_ok=True)
        raise


def _sync_folder(folder: Path) -> None:
    """fsync a folder: the names just made in it survive a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
