from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from daemon.pipeline.asr import Segment, Word
from daemon.pipeline.outputs import (
    Transcript,
    choose_stem,
    clock,
    render_srt,
    render_txt,
    render_vtt,
    safe_stem,
    to_json,
    write_outputs,
)


def transcript(speaker: str | None = None) -> Transcript:
    w = (Word(0.5, 0.9, " Hello", 0.9), Word(1.0, 1.4, " world.", 0.8))
    return Transcript(
        source="/in/a.wav",
        sha256="a" * 64,
        duration=3725.5,
        language="en",
        profile="balanced",
        model="base",
        segments=(
            Segment(0.5, 1.4, "Hello world.", w, speaker),
            Segment(3661.25, 3662.0, "Bye.", (), speaker),
        ),
        speakers=(speaker,) if speaker else (),
    )


def test_clock() -> None:
    assert clock(3661.25) == "01:01:01.250"
    assert clock(0.0005, ",") == "00:00:00,000" or clock(0.0005, ",") == "00:00:00,001"
    assert clock(-1) == "00:00:00.000"


def test_txt() -> None:
    assert render_txt(transcript()) == "Hello world.\nBye.\n"
    assert render_txt(transcript(), timestamps=True).startswith(
        "[00:00:00.500 --> 00:00:01.400] Hello world."
    )


def test_srt() -> None:
    assert render_srt(transcript()) == (
        "1\n00:00:00,500 --> 00:00:01,500\nHello world.\n\n2\n01:01:01,250 --> 01:01:02,250\nBye.\n"
    )  # each cue at least 1 s on screen


def test_vtt() -> None:
    assert render_vtt(transcript()).startswith("WEBVTT\n\n00:00:00.500 --> 00:00:01.500\nHello")


def test_json_contract() -> None:
    data = to_json(transcript())
    assert set(data) == {
        "source",
        "sha256",
        "duration",
        "language",
        "profile",
        "model",
        "speakers",
        "segments",
    }
    seg = data["segments"][0]
    assert set(seg) == {"start", "end", "speaker", "text", "words"}
    assert seg["speaker"] is None
    assert seg["words"][0] == {
        "start": 0.5,
        "end": 0.9,
        "word": " Hello",
        "probability": 0.9,
        "speaker": None,
    }


def test_safe_stem() -> None:
    assert safe_stem("a/b\\c\nd") == "a_b_c_d"
    assert safe_stem("..hidden") == "hidden"
    assert safe_stem("интервью $(rm -rf) ; 'x'") == "интервью $(rm -rf) ; 'x'"
    assert safe_stem("") == "transcript"


def test_choose_stem_never_clobbers(tmp_path: Path) -> None:
    fmts = ["txt", "json"]
    assert choose_stem(tmp_path, "a", fmts, (), ()) == "a"
    (tmp_path / "a.json").write_text("user's own file")
    assert choose_stem(tmp_path, "a", fmts, (), ()) == "a-1"
    # this job's own earlier output may be replaced
    assert choose_stem(tmp_path, "a", fmts, {str(tmp_path / "a.json")}, ()) == "a"
    # another job's output is never taken, even if deleted meanwhile
    assert choose_stem(tmp_path, "b", fmts, (), {str(tmp_path / "b.txt")}) == "b-1"


def test_write_outputs_atomic_and_complete(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("keep me")
    written = write_outputs(transcript(), tmp_path, "a", ["txt", "srt", "vtt", "json"])
    assert [Path(p).name for p in written] == ["a-1.txt", "a-1.srt", "a-1.vtt", "a-1.json"]
    assert (tmp_path / "a.txt").read_text() == "keep me"
    assert json.loads((tmp_path / "a-1.json").read_text())["duration"] == 3725.5
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_speaker_writers() -> None:
    from daemon.pipeline.merge import Turn
    from daemon.pipeline.outputs import rename_speakers, render_rttm

    t = transcript("SPEAKER_00")
    t = Transcript(
        **{
            **t.__dict__,
            "source": "/in/my talk.wav",
            "turns": (Turn(0.5, 1.4, "SPEAKER_00"), Turn(3661.0, 3662.5, "SPEAKER_01")),
        }
    )
    assert render_txt(t).startswith("SPEAKER_00: Hello world.\n")
    assert "\nSPEAKER_00: Hello world.\n" in render_srt(t)
    assert "<v SPEAKER_00>Hello world." in render_vtt(t)
    assert render_rttm(t) == (
        "SPEAKER my_talk 1 0.500 0.900 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
        "SPEAKER my_talk 1 3661.000 1.500 <NA> <NA> SPEAKER_01 <NA> <NA>\n"
    )
    data = to_json(t)
    assert data["speakers"] == ["SPEAKER_00"]
    assert data["segments"][0]["speaker"] == "SPEAKER_00"
    assert data["segments"][0]["words"][0]["speaker"] == "SPEAKER_00"
    renamed = rename_speakers(t, {"SPEAKER_00": "Alice"})
    assert renamed.speakers == ("Alice",)
    assert render_txt(renamed).startswith("Alice: Hello")
    assert [x.speaker for x in renamed.turns] == ["Alice", "SPEAKER_01"]
    # a name with spaces stays one RTTM field
    spaced = render_rttm(rename_speakers(t, {"SPEAKER_00": "Dr. Anna  Okonkwo"}))
    assert spaced.splitlines()[0] == (
        "SPEAKER my_talk 1 0.500 0.900 <NA> <NA> Dr._Anna_Okonkwo <NA> <NA>"
    )


def test_stale_temps_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    import tempfile

    from daemon.pipeline.outputs import remove_stale_temps

    keep = [tmp_path / "talk.txt", tmp_path / ".notes.txt", tmp_path / "x.tmp"]
    for p in keep:
        p.write_text("user")
    _fd, tmp = tempfile.mkstemp(prefix=".talk.json.", suffix=".tmp", dir=tmp_path)
    os.close(_fd)
    assert remove_stale_temps(tmp_path) == 1
    assert not Path(tmp).exists() and all(p.exists() for p in keep)


def test_a_live_writers_temps_stay(tmp_path: Path) -> None:
    """Another daemon writing into the same folder: its temp files are not swept away."""
    import subprocess
    import sys
    import tempfile

    from daemon.pipeline.outputs import remove_stale_temps

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    try:
        paths = []
        for pid in (live.pid, int(dead.stdout)):
            fd, tmp = tempfile.mkstemp(prefix=f".talk.txt.{pid}.", suffix=".tmp", dir=tmp_path)
            os.close(fd)
            paths.append(Path(tmp))
        assert remove_stale_temps(tmp_path) == 1
        assert paths[0].exists() and not paths[1].exists()
    finally:
        live.kill()
        live.wait()


def test_another_machines_fresh_temps_stay_and_old_ones_go(tmp_path: Path) -> None:
    """Nodes of a fleet share the output folder: a temp file named for another host is that
    host's writer at work (its pid means nothing here) until it is an hour old."""
    from daemon.pipeline.outputs import HOST, STALE_ELSEWHERE, remove_stale_temps

    other = "elsewhere" if HOST != "elsewhere" else "yonder"
    fresh = tmp_path / f".talk.txt.1@{other}.abcd1234.tmp"
    old = tmp_path / f".talk.json.1@{other}.abcd1234.tmp"
    mine = tmp_path / f".talk.srt.999999999@{HOST}.abcd1234.tmp"  # no such pid here
    for p in (fresh, old, mine):
        p.write_text("partial")
    now = fresh.stat().st_mtime + 60
    os.utime(old, (now - STALE_ELSEWHERE - 1, now - STALE_ELSEWHERE - 1))
    assert remove_stale_temps(tmp_path, now=now) == 2
    assert fresh.exists() and not old.exists() and not mine.exists()


def test_a_name_taken_by_another_writer_meanwhile_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two nodes finishing files of the same name at once: the one that comes second finds
    the name taken at the moment it writes (not only when it chose it) and takes the next."""
    from daemon.pipeline import outputs

    chosen = outputs.choose_stem
    raced: list[str] = []

    def choose_then_lose_the_race(*args: Any, **kwargs: Any) -> str:
        stem = chosen(*args, **kwargs)
        if not raced:  # another node writes talk.json right after we chose "talk"
            raced.append(stem)
            (tmp_path / f"{stem}.json").write_text("the other node's transcript")
        return stem

    monkeypatch.setattr(outputs, "choose_stem", choose_then_lose_the_race)
    written = outputs.write_outputs(transcript(), tmp_path, "talk", ["txt", "json"])
    assert [Path(p).name for p in written] == ["talk-1.txt", "talk-1.json"]
    assert (tmp_path / "talk.json").read_text() == "the other node's transcript"
    assert not (tmp_path / "talk.txt").exists()  # what it wrote under the lost name went
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "talk-1.json",
        "talk-1.txt",
        "talk.json",
    ]


WRITE_UNDER_UMASK = """
import os, sys
from pathlib import Path
os.umask(int(sys.argv[2], 8))
from daemon.pipeline.outputs import write_outputs
from tests.unit.test_outputs import transcript
print(" ".join(write_outputs(transcript(), Path(sys.argv[1]), "talk", ["txt", "srt", "json"])))
"""


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("027", 0o640), ("077", 0o600)])
def test_outputs_get_the_mode_the_umask_gives_a_new_file(
    tmp_path: Path, umask: str, mode: int
) -> None:
    """Still written atomically (temp file, rename), but readable by whom the umask lets in:
    0644 for a desktop user, 0640 under the systemd unit's UMask=0027."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_UMASK, str(tmp_path), umask],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    ).stdout.split()
    assert len(out) == 3
    assert {oct(os.stat(p).st_mode & 0o777) for p in out} == {oct(mode)}
