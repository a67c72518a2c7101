"""Bad input, made by the test, through the daemon in one batch with good files among them.

Every broken file ends as a failed job with a one-line reason; every odd but valid file (8 kHz,
stereo 48 kHz, 24-bit, silence, strange names) ends done with the right text; the daemon exits 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from daemon import config as config_mod
from daemon.jobs import JobStatus
from daemon.store import open_store, utcnow
from tests.conftest import make_video, need_eval, write_config

pytestmark = [pytest.mark.model, pytest.mark.eval]

PHRASE = "ask not what your country"

NAMES = {
    "spaces": "with some spaces.flac",
    "quotes": 'it\'s "quoted".flac',
    "semicolon": "a;b;c.flac",
    "subshell": "$(touch PWNED).flac",
    "newline": "line\nbreak.flac",
    "cyrillic": "запись интервью.flac",
}
NON_UTF8 = b"bad-\xff\xfe-bytes.flac"


def encode(src: Path, dst: Path, codec: str, rate: int, layout: str, fmt: str) -> Path:
    """Re-encode ``src`` with PyAV (no shell, no ffmpeg binary)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        for frame in inp.decode(audio=0):
            frame.pts = None
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    out.mux(packet)
        for converted in resampler.resample(None):
            for packet in stream.encode(converted):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return dst


def write_pcm(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def truncate(path: Path, share: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])
    return path


def video_only(dst: Path) -> Path:
    import av

    with av.open(str(dst), "w") as out:
        v = out.add_stream("mpeg4", rate=5)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        for i in range(20):
            img = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 10, np.uint8), "rgb24")
            img.pts = i
            for packet in v.encode(img):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    return dst


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.mark.slow  # about 35-100 s: CI runs it with -m slow
def test_bad_input_corpus_through_the_daemon(tmp_path: Path, model_cache: Path) -> None:
    src = need_eval("asr_en", "jfk.flac")
    inbox = tmp_path / "inbox"
    work = tmp_path / "make"
    inbox.mkdir()
    work.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()

    expect_done: dict[str, str | None] = {}  # file name -> phrase its transcript must hold
    expect_failed: dict[str, str] = {}  # file name -> words its error must hold

    def done(name: str, phrase: str | None = PHRASE) -> None:
        expect_done[name] = phrase

    shutil.copy(src, inbox / "good.flac")
    done("good.flac")
    encode(src, inbox / "phone 8k.wav", "pcm_s16le", 8000, "mono", "s16")
    done("phone 8k.wav")
    encode(src, inbox / "stereo48k.wav", "pcm_s16le", 48000, "stereo", "s16")
    done("stereo48k.wav")
    encode(src, inbox / "deep24.wav", "pcm_s24le", 48000, "mono", "s32")
    done("deep24.wav")
    write_pcm(inbox / "silence.wav", np.zeros(16000 * 20, np.int16))
    done("silence.wav", None)
    rng = np.random.default_rng(7)
    write_pcm(inbox / "hiss.wav", rng.normal(0, 30, 16000 * 20))  # about -60 dBFS noise
    done("hiss.wav", None)
    for name in NAMES.values():
        shutil.copy(src, inbox / name)
        done(name)
    shutil.copy(src, os.fsencode(inbox) + b"/" + NON_UTF8)
    done(os.fsdecode(NON_UTF8))
    (inbox / "folder.wav").mkdir()  # a directory named like audio: its files count, not it
    shutil.copy(src, inbox / "folder.wav" / "inside.flac")
    done("inside.flac")

    (inbox / "empty.wav").touch()
    expect_failed["empty.wav"] = "empty"
    for ext, codec, fmt in (("wav", "pcm_s16le", "s16"), ("mp3", "libmp3lame", "fltp")):
        truncate(encode(src, inbox / f"cut.{ext}", codec, 16000, "mono", fmt))
        expect_failed[f"cut.{ext}"] = "truncated"
    truncate(encode(src, inbox / "cut.flac", "flac", 16000, "mono", "s16"))
    expect_failed["cut.flac"] = "decod"  # FLAC's decoder stops at the cut frame
    absurd = encode(src, inbox / "absurd.wav", "pcm_s16le", 16000, "mono", "s16")
    data = bytearray(absurd.read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = (0x7FFF0000).to_bytes(4, "little")  # claims 18 hours
    absurd.write_bytes(bytes(data))
    expect_failed["absurd.wav"] = "header declares"
    (inbox / "notes.mp3").write_text("these are my meeting notes, not audio\n" * 50)
    expect_failed["notes.mp3"] = "not decodable"
    (inbox / "photo.wav").write_bytes(PNG)
    expect_failed["photo.wav"] = "audio"
    video_only(inbox / "screen.mp4")
    expect_failed["screen.mp4"] = "no audio stream"
    shutil.copy(src, outside / "secret.flac")
    (inbox / "link.flac").symlink_to(outside / "secret.flac")
    expect_failed["link.flac"] = "outside the watched folders"
    make_video(src, inbox / "talk.mkv")
    done("talk.mkv")

    locked = inbox / "locked.flac"
    shutil.copy(src, locked)
    locked.write_bytes(locked.read_bytes() + b"\0")  # its own content, not a duplicate
    locked.chmod(0)
    expect_failed["locked.flac"] = "Permission denied"
    cmd = [sys.executable, "-m", "daemon"]
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all"]
        cmd += [sys.executable, "-m", "daemon"]

    cfg = write_config(tmp_path, model_cache)
    config = config_mod.load(cfg)
    store = open_store(config)
    # enqueued, then deleted before a worker reaches it: cancelled, not failed
    gone = tmp_path / "gone.flac"
    shutil.copy(src, gone)
    store.enqueue(str(inbox / "gone.flac"), "0" * 64, gone.stat().st_size, utcnow())
    expect_cancelled = {"gone.flac": "no longer exists"}

    proc = subprocess.run(
        [*cmd, "--config", str(cfg), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]

    jobs = {os.path.basename(j.path): j for j in store.jobs()}
    assert "folder.wav" not in jobs
    assert set(jobs) == set(expect_done) | set(expect_failed) | set(expect_cancelled), sorted(jobs)
    out_dir = (tmp_path / "out").resolve()
    for name, words in expect_failed.items():
        job = jobs[name]
        assert job.status is JobStatus.FAILED, (name, job.status, job.error)
        assert job.error and words in job.error, (name, job.error)
        assert "\n" not in job.error and "Traceback" not in job.error
        assert job.attempts <= 1, (name, job.attempts)  # permanent: no retries
    for name, words in expect_cancelled.items():
        job = jobs[name]
        assert job.status is JobStatus.CANCELLED, (name, job.status, job.error)
        assert job.error and words in job.error and "input removed" in job.error, job.error
    for name, phrase in expect_done.items():
        job = jobs[name]
        assert job.status is JobStatus.DONE, (name, job.status, job.error)
        outs = [Path(p) for p in job.outputs]
        assert len(outs) == 5, (name, outs)
        for out in outs:
            assert out_dir in out.resolve().parents, out  # mirrored below it, never outside
            str(out).encode("utf-8")  # the mirrored folders too
            assert out.exists() and "\n" not in out.name
            out.name.encode("utf-8")  # valid UTF-8 names only
        text = next(p for p in outs if p.suffix == ".txt").read_text()
        doc = json.loads(next(p for p in outs if p.suffix == ".json").read_text())
        if phrase is None:
            assert doc["segments"] == [] and text.strip() == "", (name, text)
        else:
            assert phrase in text.lower(), (name, text)
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    assert not (Path.cwd() / "PWNED").exists()
