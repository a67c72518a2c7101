"""End to end with the real bundled Whisper model on real recordings from ../shared/eval."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bench.metrics import normalize, wer
from daemon.cli import cli
from tests.conftest import make_video, need_eval, write_config

pytestmark = [pytest.mark.model, pytest.mark.eval]

FORMATS = ("txt", "srt", "vtt", "json", "rttm")


@pytest.fixture
def invoke(config_file: Path) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        res = CliRunner().invoke(cli, ["--config", str(config_file), *args])
        assert res.exit_code == 0, res.output
        return res

    return run


def jobs(invoke: Callable[..., Result]) -> list[dict[str, object]]:
    data: list[dict[str, object]] = json.loads(invoke("status", "--json").output)
    return data


CLIPS = ("jfk.flac", "librispeech-1995-1837-0001.wav")


def test_run_once_transcribes_reuses_cache_and_serves_duplicates(
    invoke: Callable[..., Result], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in CLIPS:
        shutil.copy(need_eval("asr_en", name), inbox / name)

    res = invoke("run", "--once")
    assert "2 done, 0 failed" in res.output

    out = tmp_path / "out"
    for name in CLIPS:
        stem = Path(name).stem
        for fmt in FORMATS:
            assert (out / f"{stem}.{fmt}").stat().st_size > 0, f"{stem}.{fmt} missing"
        data = json.loads((out / f"{stem}.json").read_text())
        assert data["language"] == "en" and data["model"] == "base"
        assert data["sha256"] and data["duration"] > 5
        text = " ".join(s["text"] for s in data["segments"])
        ref = need_eval("asr_en", f"{stem}.txt").read_text()
        assert wer(ref, text) <= 0.15, (ref, text)
        # word timestamps are on the file's timeline and inside the segment
        for seg in data["segments"]:
            assert 0 <= seg["start"] <= seg["end"] <= data["duration"] + 0.05
            for w in seg["words"]:
                assert seg["start"] - 0.01 <= w["start"] <= w["end"] <= seg["end"] + 0.01
        assert (out / f"{stem}.srt").read_text().startswith("1\n00:00:")
        assert (out / f"{stem}.vtt").read_text().startswith("WEBVTT")

    first = {j["path"]: j for j in jobs(invoke)}
    for j in first.values():
        steps = j["metrics"]["steps"]  # type: ignore[index]
        assert steps["computed"]["asr"] >= 1 and steps["computed"]["vad"] == 1
        # where the time went: every step, diarization in its parts, in wall and CPU seconds
        parts = ["diarize.segmentation", "diarize.embeddings", "diarize.clustering"]
        for kind in ("seconds", "cpu"):
            spent = steps[kind]
            assert {"probe", "vad", "asr", "diarize", "merge", "outputs", *parts} <= set(spent)
            assert all(v >= 0 for v in spent.values()), spent
            assert sum(spent[p] for p in parts) <= spent["diarize"] + 0.01, spent
        assert steps["seconds"]["diarize.embeddings"] > 0 < steps["seconds"]["asr"]

    # requeue everything: every step comes from the cache, no model is even loaded
    before = {p: Path(p).read_text() for j in first.values() for p in j["outputs"]}  # type: ignore[attr-defined]
    invoke("requeue", "1", "2")
    invoke("run", "--once")
    for j in jobs(invoke):
        assert j["status"] == "done"
        assert j["metrics"]["steps"]["computed"] == {}  # type: ignore[index]
        assert j["metrics"]["steps"]["cached"]["asr"] >= 1  # type: ignore[index]
        assert j["metrics"]["model_loads"] == 0  # type: ignore[index]
    assert {p: Path(p).read_text() for p in before} == before  # same files, rewritten in place

    # a second copy under another name: a duplicate, served from the cache, own outputs
    shutil.copy(inbox / "jfk.flac", inbox / "jfk copy.flac")
    invoke("run", "--once")
    dup = jobs(invoke)[-1]
    jfk_id = next(j["id"] for j in first.values() if str(j["path"]).endswith("jfk.flac"))
    assert dup["duplicate_of"] == jfk_id and dup["status"] == "done"
    assert dup["metrics"]["steps"]["computed"] == {}  # type: ignore[index]
    assert sorted(Path(p).name for p in dup["outputs"]) == sorted(  # type: ignore[attr-defined]
        f"jfk copy.{f}" for f in FORMATS
    )
    assert f"duplicate of #{jfk_id}" in invoke("status").output


def test_transcribe_one_shot(invoke: Callable[..., Result], tmp_path: Path) -> None:
    res = invoke("transcribe", str(need_eval("asr_en", "jfk.flac")), "-o", str(tmp_path / "o"))
    written = res.stdout.split()
    assert sorted(Path(p).name for p in written) == sorted(f"jfk.{f}" for f in FORMATS)
    lines = (tmp_path / "o" / "jfk.txt").read_text().splitlines()
    assert all(line.startswith("SPEAKER_00: ") for line in lines)  # one voice
    text = " ".join(line.removeprefix("SPEAKER_00: ") for line in lines)
    assert wer(need_eval("asr_en", "jfk.txt").read_text(), text) <= 0.15
    # a second time the user's earlier files are kept and new ones get a suffix; every step
    # comes from the cache, and --metrics says so (merged and written, nothing computed)
    report = tmp_path / "metrics.json"
    again = invoke(
        "transcribe",
        str(need_eval("asr_en", "jfk.flac")),
        "-o",
        str(tmp_path / "o"),
        "--metrics",
        str(report),
    )
    assert "jfk-1.txt" in again.output
    metrics = json.loads(report.read_text())
    assert metrics["audio_seconds"] == pytest.approx(11.0, abs=0.1)
    assert metrics["steps"]["computed"] == {} and metrics["steps"]["cached"]["asr"] >= 1
    assert set(metrics["steps"]["seconds"]) == {"merge", "outputs"} == set(metrics["steps"]["cpu"])
    assert 0 < metrics["steps"]["seconds"]["outputs"] <= metrics["wall_seconds"]
    # a metrics file that cannot be written is said before any work, in one line
    bad = CliRunner().invoke(
        cli,
        [
            "--config",
            str(tmp_path / "config.toml"),
            "transcribe",
            str(tmp_path / "o" / "jfk.txt"),
            "--metrics",
            str(tmp_path / "no" / "such" / "m.json"),
        ],
    )
    assert bad.exit_code != 0 and "no/such" in bad.output and "Traceback" not in bad.output


def test_forced_language_and_video_container(invoke: Callable[..., Result], tmp_path: Path) -> None:
    """A Russian clip with the language forced, inside a video container with a video stream."""
    src = need_eval("asr_ru", "golos-001ce26c.wav")
    video = make_video(src, tmp_path / "clip.mp4")
    invoke("transcribe", str(video), "-o", str(tmp_path / "o"), "--language", "ru")
    data = json.loads((tmp_path / "o" / "clip.json").read_text())
    assert data["language"] == "ru"
    text = normalize(" ".join(s["text"] for s in data["segments"]))
    # Whisper base writes the numbers as digits; the words around them must be there
    assert "сколько будет" in text and "тысяч" in text, text


@pytest.mark.parametrize(
    ("folder", "clip", "language", "model"),
    [
        ("asr_en", "librispeech-1995-1837-0001.wav", "en", "tiny.en"),
        ("asr_ru", "pisets_test_sound_ru.wav", "ru", "base"),
    ],
)
def test_fast_profile_takes_the_english_model_for_english_only(
    invoke: Callable[..., Result],
    tmp_path: Path,
    folder: str,
    clip: str,
    language: str,
    model: str,
) -> None:
    src = need_eval(folder, clip)
    invoke("transcribe", str(src), "-o", str(tmp_path / "o"), "--profile", "fast")
    data = json.loads((tmp_path / "o" / f"{src.stem}.json").read_text())
    assert (data["language"], data["model"], data["profile"]) == (language, model, "fast")
    hyp = " ".join(s["text"] for s in data["segments"])
    ref = src.with_suffix(".txt").read_text()
    assert wer(ref, hyp) <= (0.25 if language == "en" else 0.6), hyp


def test_vocabulary_per_folder_reaches_whisper_and_its_cache_key(
    tmp_path: Path, model_cache: Path
) -> None:
    """hotwords give a preferred spelling, an initial prompt a style (lowercase, as the prompt
    is), each set per watched folder; the same recording in three folders is three ASR passes,
    and a fourth with a vocabulary seen before is served from the cache."""
    inbox = tmp_path / "inbox"
    extra = (
        f'[folders."{inbox / "terms"}"]\nhotwords = "fellow-Americans"\n'
        f'[folders."{inbox / "style"}"]\n'
        'initial_prompt = "and so, um, my fellow, uh, americans, like, lowercase text"\n'
    )
    cfg = write_config(tmp_path, model_cache, "[diarization]\nenabled = false\n" + extra)
    for folder in ("", "terms", "style"):
        (inbox / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(need_eval("asr_en", "jfk.flac"), inbox / folder / "jfk.flac")

    def run(*args: str) -> Result:
        res = CliRunner().invoke(cli, ["--config", str(cfg), *args])
        assert res.exit_code == 0, res.output
        return res

    run("run", "--once")
    out = tmp_path / "out"
    plain, terms = (out / "jfk.txt").read_text(), (out / "terms" / "jfk.txt").read_text()
    style = (out / "style" / "jfk.txt").read_text()
    assert "my fellow Americans" in plain and plain.startswith("And so"), plain
    assert "my fellow-Americans" in terms, terms
    # the prompt's lowercase spelling wins (its other effects vary with the CPU's int8 kernels)
    assert "fellow americans" in style, style
    done = json.loads(run("status", "--json").output)
    assert [j["metrics"]["steps"]["computed"].get("asr", 0) for j in done] == [1, 1, 1]

    again = run("transcribe", str(inbox / "jfk.flac"), "--hotwords", "fellow-Americans")
    assert "fellow-Americans" in Path(again.stdout.split()[0]).read_text()
    bad = CliRunner().invoke(cli, ["--config", str(cfg), "add", str(cfg), "--language", "english"])
    assert bad.exit_code == 2 and "unknown language 'english'" in bad.output
