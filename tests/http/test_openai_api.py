"""The OpenAI audio API against a live daemon, through the official ``openai`` package: the
formats, speakers (enrolled names, known speakers by reference clip, letters), translation,
errors as the client's own exceptions."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import srt

from tests.conftest import need_eval
from tests.http.conftest import Live, cut

pytestmark = [pytest.mark.model, pytest.mark.eval]


OPENED: list[openai.OpenAI] = []
"""The clients a test made, closed after it (an unclosed connection is an error here)."""


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def client(live: Live, key: str | None = None) -> openai.OpenAI:
    made = openai.OpenAI(base_url=live.api, api_key=key or live.key, max_retries=0, timeout=600)
    OPENED.append(made)
    return made


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_text_json_and_verbose_json_with_words(live: Live) -> None:
    jfk = need_eval("asr_en", "jfk.flac")
    c = client(live)
    with jfk.open("rb") as f:
        text = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert isinstance(text, str) and "ask not what your country" in text.lower()
    with jfk.open("rb") as f:
        plain = c.audio.transcriptions.create(model="whisper-1", file=f)
    assert plain.text.strip() == text.strip()
    with jfk.open("rb") as f:
        verbose = c.audio.transcriptions.create(
            model="gpt-4o-transcribe",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert verbose.language == "english"
    assert verbose.duration == pytest.approx(11.0, abs=0.2)
    assert verbose.words and verbose.segments
    spoken = [w.word.strip().lower().strip(",.") for w in verbose.words]
    assert spoken[:3] == ["and", "so", "my"]
    assert all(a.start <= b.start for a, b in zip(verbose.words, verbose.words[1:], strict=False))
    assert all(0 <= w.start <= w.end <= 11.2 for w in verbose.words)
    # the same audio asked four times: one job
    jfk_jobs = [j for j in live.jobs() if j["name"] == "jfk.flac"]
    assert len(jfk_jobs) == 1 and jfk_jobs[0]["origin"] == "http:tester"


def test_srt_and_vtt(live: Live) -> None:
    clip = need_eval("asr_en", "LJ001-0001.wav")
    c = client(live)
    with clip.open("rb") as f:
        subtitles = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
    cues = list(srt.parse(subtitles))
    assert cues and all((cue.end - cue.start).total_seconds() <= 7.0 for cue in cues)
    assert "printing" in " ".join(cue.content for cue in cues).lower()
    with clip.open("rb") as f:
        vtt = c.audio.transcriptions.create(model="whisper-1", file=f, response_format="vtt")
    assert vtt.startswith("WEBVTT")


def test_diarized_json_names_known_speakers_and_letters_the_rest(
    live: Live, tmp_path: Path
) -> None:
    """A two-person conversation: with no known speakers, A and B; with one person's clip
    (cut from the recording, where the ground truth says they speak alone), that person by
    name and the other a letter."""
    sample = need_eval("diarization", "sample.wav")
    rttm = need_eval("diarization", "sample.rttm").read_text()
    turns = [line.split() for line in rttm.splitlines() if line.strip()]
    longest = max(turns, key=lambda t: float(t[4]))
    start, length, who = float(longest[3]), float(longest[4]), longest[7]
    clip = cut(sample, tmp_path / "ref.wav", start, start + min(length, 8.0))
    c = client(live)
    with sample.open("rb") as f:
        plain = c.audio.transcriptions.create(
            model="gpt-4o-transcribe-diarize", file=f, response_format="diarized_json"
        )
    speakers = {s.speaker for s in plain.segments}
    assert speakers == {"A", "B"}, speakers
    ref = "data:audio/wav;base64," + base64.b64encode(clip.read_bytes()).decode()
    with sample.open("rb") as f:
        named = c.audio.transcriptions.create(
            model="gpt-4o-transcribe-diarize",
            file=f,
            response_format="diarized_json",
            known_speaker_names=["Alice"],
            known_speaker_references=[ref],
        )
    speakers = {s.speaker for s in named.segments}
    assert speakers == {"Alice", "A"}, speakers
    # Alice speaks where the ground truth's speaker of the clip speaks
    alice = [s for s in named.segments if s.speaker == "Alice"]
    theirs = [(float(t[3]), float(t[3]) + float(t[4])) for t in turns if t[7] == who]
    inside = sum(
        1 for s in alice if any(a - 0.5 <= (s.start + s.end) / 2 <= b + 0.5 for a, b in theirs)
    )
    assert inside >= 0.8 * len(alice)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the client's own
def test_translation_into_english(live: Live) -> None:
    russian = need_eval("asr_ru", "podlodka_test_0.wav")
    c = client(live)
    with russian.open("rb") as f:
        english = c.audio.translations.create(model="whisper-1", file=f)
    assert english.text.strip()
    assert not re.search("[а-яА-Я]", english.text), english.text
    with russian.open("rb") as f:
        original = c.audio.transcriptions.create(model="whisper-1", file=f, language="ru")
    assert re.search("[а-яА-Я]", original.text)
    assert len({j["id"] for j in live.jobs() if j["name"] == russian.name}) == 2


def test_wrong_key_text_file_and_unknown_model_raise_the_clients_own_errors(
    live: Live, tmp_path: Path
) -> None:
    jfk = need_eval("asr_en", "jfk.flac")
    with jfk.open("rb") as f, pytest.raises(openai.AuthenticationError):
        client(live, "tsk_wrong").audio.transcriptions.create(model="whisper-1", file=f)
    notes = tmp_path / "notes.wav"
    notes.write_text("this is a text file, not audio\n" * 20)
    with notes.open("rb") as f, pytest.raises(openai.BadRequestError, match="not decodable"):
        client(live).audio.transcriptions.create(model="whisper-1", file=f)
    failed = [j for j in live.jobs() if j["name"] == "notes.wav"]
    assert failed and failed[0]["status"] == "failed"
    with jfk.open("rb") as f, pytest.raises(openai.BadRequestError, match="unknown model"):
        client(live).audio.transcriptions.create(model="whisper-9", file=f)
    with jfk.open("rb") as f, pytest.raises(openai.BadRequestError, match="response_format"):
        client(live).audio.transcriptions.create(
            model="whisper-1",
            file=f,
            response_format="csv",  # type: ignore[arg-type]
        )


def test_diarized_json_names_an_enrolled_voice(live: Live, tmp_path: Path) -> None:
    """A voice enrolled with ``transcribd voices add`` names its speaker in diarized_json."""
    import subprocess
    import sys

    sample = need_eval("diarization", "sample.wav")
    rttm = need_eval("diarization", "sample.rttm").read_text()
    turns = [line.split() for line in rttm.splitlines() if line.strip()]
    who = max(turns, key=lambda t: float(t[4]))[7]
    theirs = [t for t in turns if t[7] == who and float(t[4]) >= 3.0]  # enrollable turns
    clips = [
        cut(sample, tmp_path / f"{i}.wav", float(t[3]), float(t[3]) + float(t[4]))
        for i, t in enumerate(sorted(theirs, key=lambda t: -float(t[4]))[:3])
    ]
    cmd = [sys.executable, "-m", "daemon", "--config", str(live.config), "voices"]
    enrolled = subprocess.run(
        [*cmd, "add", "Dana", *map(str, clips)], capture_output=True, text=True
    )
    assert enrolled.returncode == 0, enrolled.stderr
    try:
        with sample.open("rb") as f:
            answer = client(live).audio.transcriptions.create(
                model="gpt-4o-transcribe-diarize",
                file=f,
                response_format="diarized_json",
                prompt="A phone call.",  # other options: another job than the tests above
            )
        assert {s.speaker for s in answer.segments} == {"Dana", "A"}
    finally:
        subprocess.run([*cmd, "remove", "Dana"], capture_output=True, check=True)
