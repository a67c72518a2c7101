"""File facts on recorded speech: a long file is sampled (not decoded whole), noise shows in the
signal-to-noise ratio, and the intake keeps the facts with the job for the planner."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from daemon.config import Config
from daemon.intake import Intake
from daemon.pipeline import facts
from daemon.pipeline.audio import SAMPLE_RATE, decode_blocks
from daemon.store import Store, utcnow
from tests.conftest import need_eval

pytestmark = pytest.mark.eval


def reading(path: Path, rounds: int, noise_dbfs: float) -> None:
    """``rounds`` x (a 10-s sentence, then as long a pause) over white noise at ``noise_dbfs``,
    16-bit WAV at ``path``."""
    import soundfile

    clip = np.concatenate(list(decode_blocks(need_eval("asr_en", "LJ001-0001.wav"))))
    clip = clip / np.sqrt(np.mean(clip**2)) * 10 ** (-20 / 20)  # speech at -20 dBFS
    pause = np.zeros(clip.size, dtype=np.float32)
    audio = np.concatenate([np.concatenate([clip, pause]) for _ in range(rounds)])
    rng = np.random.default_rng(1)
    audio = audio + rng.normal(0.0, 10 ** (noise_dbfs / 20), audio.size)
    soundfile.write(path, np.clip(audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")


def test_a_long_quiet_reading_and_a_noisy_one(tmp_path: Path) -> None:
    clean, noisy = tmp_path / "clean.wav", tmp_path / "noisy.wav"
    reading(clean, 12, -70.0)  # 4 minutes: sampled in stretches
    reading(noisy, 12, -30.0)
    started = time.perf_counter()
    quiet = facts.measure(clean)
    assert time.perf_counter() - started < 10
    assert quiet.duration == pytest.approx(12 * 2 * 9.655, abs=0.1)
    # the sentence is mostly speech: about half the file, whichever stretches were sampled
    assert quiet.speech_share is not None and 0.25 < quiet.speech_share < 0.6
    assert quiet.speech_db is not None and -24 < quiet.speech_db < -17
    assert quiet.snr_db is not None and quiet.snr_db > 40
    loud = facts.measure(noisy)
    assert loud.snr_db is not None and 5 < loud.snr_db < 20, loud
    assert loud.noise_db == pytest.approx(-30.0, abs=2.0)


def test_intake_keeps_the_facts_with_the_job(config: Config, store: Store, tmp_path: Path) -> None:
    inbox = config.watch.folders[0]
    inbox.mkdir(parents=True, exist_ok=True)
    reading(inbox / "talk.wav", 2, -50.0)
    (inbox / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all" * 10)
    intake = Intake(config, store, measure=facts.measure)
    intake.rescan(utcnow())
    deadline = time.monotonic() + 20
    got = []
    while len(got) < 2 and time.monotonic() < deadline:
        got += intake.poll(utcnow())
        time.sleep(0.1)
    jobs = {Path(j.path).name: j for j in (store.get(e.job_id) for e in got) if j is not None}
    talk = jobs["talk.wav"].facts
    assert talk is not None and talk.speech_share is not None and talk.speech_share > 0.25
    assert talk.snr_db is not None and 20 < talk.snr_db < 40
    assert jobs["broken.wav"].facts is not None and jobs["broken.wav"].facts.duration is None
    # status --json shows them
    assert jobs["talk.wav"].as_dict()["facts"]["speech_share"] == talk.speech_share


def test_a_long_silence_is_not_called_speechless_and_video_is_sampled(tmp_path: Path) -> None:
    import soundfile

    from tests.conftest import make_video

    quiet = tmp_path / "quiet.wav"  # 3 minutes of faint noise: the samples hear no speech...
    rng = np.random.default_rng(2)
    soundfile.write(quiet, rng.normal(0, 1e-3, 180 * SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    f = facts.measure(quiet)
    # ...but three stretches of a long file cannot tell there is none (the planner would run it
    # on fast): unknown, not 0
    assert f.duration == pytest.approx(180.0) and f.speech_share is None
    assert f.noise_db is not None and -65 < f.noise_db < -55

    src = tmp_path / "talk.wav"
    reading(src, 6, -60.0)  # 2 minutes: sampled in stretches, on the audio stream
    video = make_video(src, tmp_path / "talk.mp4")
    seen = facts.measure(video)
    assert seen.duration == pytest.approx(6 * 2 * 9.655, abs=0.5)
    assert seen.speech_share is not None and 0.25 < seen.speech_share < 0.6
    assert seen.snr_db is not None and seen.snr_db > 25
