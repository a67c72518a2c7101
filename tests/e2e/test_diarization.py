"""Speaker attribution with the real pyannote pipeline on real recordings from ../shared/eval."""

from __future__ import annotations

import json
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bench.metrics import der, load_rttm
from daemon.cli import cli
from tests.conftest import need_eval, write_config

pytestmark = [pytest.mark.model, pytest.mark.eval]


def make_invoke(tmp_path: Path, model_cache: Path, extra: str = "") -> Callable[..., Result]:
    cfg = write_config(tmp_path, model_cache, extra)

    def run(*args: str) -> Result:
        res = CliRunner().invoke(cli, ["--config", str(cfg), *args])
        assert res.exit_code == 0, res.output
        return res

    return run


def turns_of(path: Path) -> list[tuple[float, float, str]]:
    return load_rttm(str(path))


def test_sample_through_the_daemon_two_speakers_low_der(tmp_path: Path, model_cache: Path) -> None:
    invoke = make_invoke(tmp_path, model_cache)
    invoke("add", str(need_eval("diarization", "sample.wav")))
    invoke("run", "--once")
    data = json.loads((tmp_path / "out" / "sample.json").read_text())
    assert data["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    assert all(s["speaker"] in data["speakers"] for s in data["segments"])
    assert all(w["speaker"] == s["speaker"] for s in data["segments"] for w in s["words"])
    hyp = turns_of(tmp_path / "out" / "sample.rttm")
    error = der(load_rttm(str(need_eval("diarization", "sample.rttm"))), hyp)
    assert error <= 0.10, error
    lines = (tmp_path / "out" / "sample.txt").read_text().splitlines()
    assert {line.split(": ", 1)[0] for line in lines} == {"SPEAKER_00", "SPEAKER_01"}

    # rename without recomputing: outputs rewritten from the cache
    res = invoke("speakers", "1", "--rename", "SPEAKER_00=Diane", "--rename", "SPEAKER_01=Sheila")
    assert "sample.txt" in res.output
    txt = (tmp_path / "out" / "sample.txt").read_text()
    assert {line.split(": ", 1)[0] for line in txt.splitlines()} == {"Diane", "Sheila"}
    assert json.loads((tmp_path / "out" / "sample.json").read_text())["speakers"] == [
        "Diane",
        "Sheila",
    ]
    assert "Diane" in (tmp_path / "out" / "sample.rttm").read_text()
    # names stick across a requeue (served from the cache)
    invoke("requeue", "1")
    invoke("run", "--once")
    assert "Diane: " in (tmp_path / "out" / "sample.txt").read_text()
    [job] = json.loads(invoke("status", "--json").output)
    assert job["metrics"]["steps"]["computed"] == {}


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_doubled_file_keeps_labels_across_windows(tmp_path: Path, model_cache: Path) -> None:
    """sample.wav twice in a row, diarized in two windows (25 s and 35 s) linked by voice."""
    src = need_eval("diarization", "sample.wav")
    with wave.open(str(src)) as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    doubled = tmp_path / "doubled.wav"
    with wave.open(str(doubled), "wb") as w:
        w.setparams(params)
        w.writeframes(frames + frames)
    half = params.nframes / params.framerate
    invoke = make_invoke(tmp_path, model_cache, "[diarization]\nwindow_seconds = 25.0\n")
    invoke("transcribe", str(doubled), "-o", str(tmp_path / "o"))
    hyp = turns_of(tmp_path / "o" / "doubled.rttm")
    assert sorted({s for _, _, s in hyp}) == ["SPEAKER_00", "SPEAKER_01"]
    first = [t for t in hyp if t[1] <= half]
    second = [(a - half, b - half, s) for a, b, s in hyp if a >= half]
    assert first and second
    # the same voice has the same label in both halves: each second-half label overlaps most
    # with the same label in the first half
    overlap: dict[tuple[str, str], float] = {}
    for a, b, s in second:
        for c, d, r in first:
            o = min(b, d) - max(a, c)
            if o > 0:
                overlap[s, r] = overlap.get((s, r), 0.0) + o
    for label in ("SPEAKER_00", "SPEAKER_01"):
        best = max((r for s, r in overlap if s == label), key=lambda r: overlap[label, r])
        assert best == label, overlap


def test_num_speakers_hint_is_honoured(tmp_path: Path, model_cache: Path) -> None:
    invoke = make_invoke(tmp_path, model_cache)
    invoke(
        "transcribe",
        str(need_eval("diarization", "sample.wav")),
        "-o",
        str(tmp_path / "o"),
        "--num-speakers",
        "1",
    )
    data = json.loads((tmp_path / "o" / "sample.json").read_text())
    assert data["speakers"] == ["SPEAKER_00"]
    assert {s["speaker"] for s in data["segments"]} == {"SPEAKER_00"}
