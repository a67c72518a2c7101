"""Named voices with the real models on real recordings from ../shared/eval.

Two audiobook readers are enrolled from one recording each; a conversation is made of their turns
in *other* recordings (later passages) and a third, unknown voice (JFK).  The
daemon names the two and leaves the third SPEAKER_xx in every output; removing a voice changes
finished jobs only on ``speakers JOB --relabel``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.devset import RATE, Piece, decode
from tests.conftest import EVAL, need_eval
from tests.e2e.test_diarization import make_invoke

pytestmark = [pytest.mark.model, pytest.mark.eval, pytest.mark.slow]


def conversation(path: Path, parts: list[list[Piece]], seconds: float = 8.0) -> list[str]:
    """Turns of each voice in turn (at most ``seconds`` each, 0.4 s apart) until every
    voice's material is used once; returns who speaks each turn (by index)."""
    import soundfile

    out: list[np.ndarray] = []
    queues = [list(p) for p in parts]
    order = []
    sources: dict[Path, np.ndarray] = {}
    while any(queues):
        for i, q in enumerate(queues):
            if not q:
                continue
            p = q.pop(0)
            samples = sources.setdefault(p.path, decode(p.path))
            clip = samples[int(p.start * RATE) : int(min(p.end, p.start + seconds) * RATE)]
            out += [clip / (np.max(np.abs(clip)) or 1.0) * 0.5, np.zeros(int(0.4 * RATE))]
            order.append(str(i))
    soundfile.write(path, np.concatenate(out).astype(np.float32), RATE, subtype="PCM_16")
    return order


def test_enrolled_voices_get_their_names_and_a_stranger_does_not(
    tmp_path: Path, model_cache: Path
) -> None:
    need_eval("asr_en", "librivox-0870.wav")
    need_eval("asr_en", "jfk.flac")
    invoke = make_invoke(tmp_path, model_cache)

    def lj(first: int, last: int) -> list[Piece]:
        return [Piece(EVAL / "asr_en" / f"LJ001-{i:04d}.wav", 0.0, 6.0) for i in range(first, last)]

    def librivox(*numbers: int) -> list[Piece]:
        return [Piece(EVAL / "asr_en" / f"librivox-{n:04d}.wav", 0.0, 8.0) for n in numbers]

    # one recording each: two audiobook readers
    enroll = {"Robin": librivox(870), "Linda": lj(1, 6)}
    for name, pieces in enroll.items():
        clip = tmp_path / f"{name}.wav"
        conversation(clip, [pieces], seconds=30.0)
        res = invoke("voices", "add", name, str(clip))
        assert f"enrolled {name}: " in res.stdout
    assert invoke("voices", "list").stdout.startswith("Linda: ")

    # their other recordings (later passages) and a voice nobody enrolled
    talk = tmp_path / "inbox" / "talk.wav"
    talk.parent.mkdir(parents=True)
    stranger = [Piece(EVAL / "asr_en" / "jfk.flac", s, s + 5.5) for s in (0.2, 5.7)]
    conversation(talk, [librivox(880, 890), lj(11, 16), stranger])
    # the count is told: this test is about names (bench.speakers measures counting; the old,
    # noisy JFK recording is the kind a blind count may split in two)
    invoke("add", str(talk), "--num-speakers", "3")
    invoke("run", "--once")

    out = tmp_path / "out"
    data = json.loads((out / "talk.json").read_text())
    named = sorted(s for s in data["speakers"] if not s.startswith("SPEAKER_"))
    unnamed = [s for s in data["speakers"] if s.startswith("SPEAKER_")]
    assert named == ["Linda", "Robin"], data["speakers"]
    assert len(unnamed) == 1, data["speakers"]
    # the names are in every output
    assert {w["speaker"] for s in data["segments"] for w in s["words"]} == set(data["speakers"])
    for fmt in ("txt", "srt", "vtt", "rttm"):
        text = (out / f"talk.{fmt}").read_text()
        assert "Robin" in text and "Linda" in text, fmt
    [job] = json.loads(invoke("status", "--json").stdout)
    assert {v["name"] for v in job["metrics"]["voices"].values()} == {"Linda", "Robin"}
    assert "= Linda (distance " in invoke("status", str(job["id"])).stdout
    listed = invoke("speakers", str(job["id"])).stdout
    assert "Robin (SPEAKER_" in listed and "enrolled voice, distance" in listed

    # `transcribe` (no daemon) names them too; every step is served from the cache
    invoke("transcribe", str(talk), "--num-speakers", "3", "-o", str(tmp_path / "once"))
    assert sorted(json.loads((tmp_path / "once" / "talk.json").read_text())["speakers"]) == sorted(
        data["speakers"]
    )

    # a voice removed names nobody in new jobs, but a finished job keeps it until relabelled
    invoke("voices", "remove", "Robin")
    assert "Robin" in (out / "talk.txt").read_text()
    invoke("speakers", str(job["id"]), "--relabel")
    data = json.loads((out / "talk.json").read_text())
    assert [s for s in data["speakers"] if not s.startswith("SPEAKER_")] == ["Linda"]
    assert "Robin" not in (out / "talk.txt").read_text()
    [job] = json.loads(invoke("status", "--json").stdout)
    assert job["metrics"]["steps"]["computed"] != {}  # the first run's figures are kept
