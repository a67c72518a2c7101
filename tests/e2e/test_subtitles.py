"""Every cue of every evaluation recording's subtitles follows the broadcast rules, and real
parsers read the files back."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import srt
import webvtt

from daemon import config as config_mod
from daemon.jobs import JobStatus
from daemon.store import open_store
from tests.conftest import EVAL, need_eval, write_config

pytestmark = [pytest.mark.model, pytest.mark.eval]

AUDIO = (".wav", ".flac", ".mp3")


@pytest.mark.slow
def test_every_cue_of_every_eval_recording_obeys_the_rules(
    tmp_path: Path, model_cache: Path
) -> None:
    need_eval("asr_en")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources = sorted(p for p in EVAL.rglob("*") if p.suffix in AUDIO)
    for src in sources:
        shutil.copy(src, inbox / f"{src.parent.name}-{src.name}")
    cfg = write_config(tmp_path, model_cache)
    out = f'[output]\ndir = "{tmp_path / "out"}"\n'
    text = cfg.read_text().replace('profile = "balanced"', 'profile = "fast"')
    cfg.write_text(text.replace(out, out + 'formats = ["srt", "vtt"]\n'))
    res = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(cfg), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = open_store(config_mod.load(cfg)).jobs()
    assert len(jobs) == len(sources) and all(j.status is JobStatus.DONE for j in jobs)
    checked = 0
    for job in jobs:
        srt_file = next(p for p in job.outputs if p.endswith(".srt"))
        vtt_file = next(p for p in job.outputs if p.endswith(".vtt"))
        subs = list(srt.parse(Path(srt_file).read_text()))
        for s in subs:
            lines = s.content.split("\n")
            assert len(lines) <= 2 and all(len(line) <= 42 for line in lines), (srt_file, s)
            seconds = (s.end - s.start).total_seconds()
            assert 0.999 <= seconds <= 7.001, (srt_file, s)
        for a, b in itertools.pairwise(subs):
            assert a.end <= b.start, (srt_file, a, b)
        captions = webvtt.read(vtt_file)
        for c in captions:  # the text without the voice span's tags
            lines = c.text.split("\n")
            assert len(lines) <= 2 and all(len(line) <= 42 for line in lines), (vtt_file, c)
            assert 0.999 <= c.end_in_seconds - c.start_in_seconds <= 7.001, (vtt_file, c)
        checked += len(subs)
    assert checked >= 100, checked  # 130 cues in 37 files
