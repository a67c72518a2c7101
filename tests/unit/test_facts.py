"""File facts: levels (pure) and the measurement of real files made here (a tone is no speech,
so the VAD part is tested on recorded speech in tests/integration/test_facts.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.jobs import AudioFacts
from daemon.pipeline.audio import SAMPLE_RATE
from daemon.pipeline.facts import FRAME, HOP, frame_power, levels, measure


def db(x: float) -> float:
    return 20 * float(np.log10(x))


@pytest.mark.parametrize("n", [FRAME, FRAME + HOP - 1, FRAME + HOP, 3 * SAMPLE_RATE + 17])
def test_frame_power_is_librosas_frame_rms_squared(n: int) -> None:
    import librosa

    audio = np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32)
    rms = librosa.feature.rms(y=audio, frame_length=FRAME, hop_length=HOP, center=False)[0]
    ours = frame_power(audio)
    assert ours.shape == rms.shape
    np.testing.assert_allclose(ours, rms.astype(np.float64) ** 2, rtol=1e-5)


def test_levels_of_speech_over_a_noise_floor() -> None:
    rng = np.random.default_rng(0)
    n = 10 * SAMPLE_RATE
    noise = rng.normal(0.0, 10 ** (-60 / 20), n)  # -60 dBFS white noise
    t = np.arange(n) / SAMPLE_RATE
    loud = 10 ** (-20 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 220 * t)  # -20 dBFS RMS
    audio = noise.copy()
    spans = [(2 * SAMPLE_RATE, 4 * SAMPLE_RATE), (6 * SAMPLE_RATE, 9 * SAMPLE_RATE)]
    for s, e in spans:
        audio[s:e] += loud[s:e]
    speech_db, noise_db = levels(audio.astype(np.float32), spans)
    assert speech_db == pytest.approx(-20.0, abs=0.5)
    assert noise_db == pytest.approx(-60.0, abs=1.5)


def test_levels_without_speech_or_sound() -> None:
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    assert levels(silence, []) == (None, -100.0)  # digital silence: clamped, no speech level
    assert levels(np.zeros(10, dtype=np.float32), []) == (None, None)  # too short to frame


def test_facts_round_trip_and_snr() -> None:
    f = AudioFacts(duration=12.5, speech_share=0.61234, speech_db=-23.456, noise_db=-61.04)
    assert f.snr_db == pytest.approx(37.584)
    stored = f.to_dict()
    assert stored == {
        "duration": 12.5,
        "speech_share": 0.612,
        "speech_db": -23.5,
        "noise_db": -61.0,
    }
    assert AudioFacts.from_dict(stored) == AudioFacts(12.5, 0.612, -23.5, -61.0)
    assert AudioFacts.from_dict(None) is None
    assert AudioFacts(duration=3.0).snr_db is None


def test_measure_a_tone_and_a_broken_file(tmp_path: Path) -> None:
    import soundfile

    tone = tmp_path / "tone.wav"
    t = np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE
    soundfile.write(tone, 0.1 * np.sin(2 * np.pi * 440 * t), SAMPLE_RATE, subtype="PCM_16")
    f = measure(tone)
    assert f.duration == pytest.approx(5.0, abs=0.01)
    assert f.speech_share == 0.0  # a steady tone is not speech
    assert f.speech_db is None and f.snr_db is None
    assert f.noise_db == pytest.approx(db(0.1 / np.sqrt(2)), abs=0.5)

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all" * 10)
    assert measure(broken) == AudioFacts(duration=None)
    assert measure(tmp_path / "gone.wav") == AudioFacts(duration=None)
