"""whisper-asr-webservice's API as Bazarr's Whisper provider calls it: requests' Session, the
key in the endpoint URL (Basic auth), raw 16 kHz mono s16le PCM with ``encode=false``, and an
SRT back; then ``/detect-language`` the same way."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
import requests
import srt

from tests.conftest import need_eval
from tests.http.conftest import Live

pytestmark = [pytest.mark.model, pytest.mark.eval]


def pcm(path: Path) -> bytes:
    """The file's samples as Bazarr's ffmpeg call gives them (16 kHz mono s16le)."""
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return w.readframes(w.getnframes())


def bazarr(live: Live) -> tuple[requests.Session, str]:
    """Bazarr's session and endpoint setting: http://any:KEY@host:port."""
    session = requests.Session()
    session.headers["User-Agent"] = "Subliminal/2.1.0"
    host = live.url.removeprefix("http://")
    return session, f"http://bazarr:{live.key}@{host}"


def test_bazarrs_asr_request_gets_plain_srt(live: Live) -> None:
    session, endpoint = bazarr(live)
    out = pcm(need_eval("asr_en", "LJ001-0002.wav"))
    r = session.post(
        f"{endpoint}/asr",
        params={"task": "transcribe", "language": "en", "output": "srt", "encode": "false"},
        files={"audio_file": out},
        timeout=(10, 600),
    )
    assert r.status_code == 200, r.text
    cues = list(srt.parse(r.text))
    text = " ".join(c.content for c in cues).lower()
    assert "in being comparatively modern" in text
    assert "SPEAKER" not in r.text  # a subtitle provider gets plain cues
    assert r.headers["content-disposition"].startswith("attachment")
    # the job shows where it came from
    job = next(j for j in live.jobs() if j["name"] == "audio_file")
    assert job["origin"] == "http:tester" and job["status"] == "done"
    assert "from: http:tester" in live.daemon.status(str(job["id"]))


def test_detect_language_then_translate_as_bazarr_does(live: Live) -> None:
    session, endpoint = bazarr(live)
    out = pcm(need_eval("asr_ru", "golos-001ce26c.wav"))
    r = session.post(
        f"{endpoint}/detect-language",
        params={"encode": "false"},
        files={"audio_file": out},
        timeout=(10, 600),
    )
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["language_code"] == "ru" and found["detected_language"] == "russian"
    assert 0.5 < found["confidence"] <= 1.0
    r = session.post(
        f"{endpoint}/asr",
        params={"task": "translate", "language": "ru", "output": "srt", "encode": "false"},
        files={"audio_file": out},
        timeout=(10, 600),
    )
    assert r.status_code == 200, r.text
    assert list(srt.parse(r.text)) and not any("а" <= ch <= "я" for ch in r.text.lower())


def test_other_outputs_and_a_wrong_key(live: Live) -> None:
    session, endpoint = bazarr(live)
    clip = need_eval("asr_en", "jfk.flac")
    for output in ("txt", "vtt", "tsv", "json"):
        with clip.open("rb") as f:
            r = session.post(
                f"{endpoint}/asr",
                params={"output": output, "word_timestamps": "true", "diarize": "true"},
                files={"audio_file": ("jfk.flac", f)},
                timeout=(10, 600),
            )
        assert r.status_code == 200, (output, r.text)
        if output == "json":
            body = r.json()
            assert body["language"] == "en" and body["segments"][0]["words"]
            assert body["segments"][0]["speaker"] == "SPEAKER_00"
        elif output == "tsv":
            assert r.text.startswith("start\tend\ttext\n")
        elif output == "vtt":
            assert r.text.startswith("WEBVTT")
        else:
            assert "ask not what your country" in r.text.lower()
    wrong = endpoint.replace(live.key, "tsk_nope")
    r = session.post(f"{wrong}/asr", files={"audio_file": b"\0\0" * 1600}, timeout=30)
    assert r.status_code == 401 and r.json()["detail"] == "invalid API key"
