from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.pipeline import audio
from daemon.pipeline.audio import DecodeError, check_complete, decode_blocks, probe
from tests.conftest import write_wav


def test_probe_and_decode_resamples_to_16k_mono(tmp_path: Path) -> None:
    src = write_wav(tmp_path / "a.wav", 2.5, rate=48000, channels=2)
    info = audio.probe(src)
    assert info.sample_rate == 48000 and info.channels == 2
    assert info.duration == pytest.approx(2.5, abs=0.01)
    blocks = list(audio.decode_blocks(src, block_seconds=1.0))
    assert [b.size for b in blocks[:2]] == [16000, 16000]
    total = sum(b.size for b in blocks)
    assert abs(total - 40000) < 200
    assert all(b.dtype == np.float32 for b in blocks)
    assert 0.2 < float(np.abs(np.concatenate(blocks)).max()) < 0.35


def test_spool_roundtrip(tmp_path: Path) -> None:
    src = write_wav(tmp_path / "a.wav", 3.0, rate=8000)
    seen: list[int] = []
    n = audio.decode_to_spool(src, tmp_path / "a.pcm", lambda b, off: seen.append(off), 1.0)
    assert abs(n - 48000) < 100 and seen[:3] == [0, 16000, 32000]
    part = audio.read_spool(tmp_path / "a.pcm", 16000, 20000)
    assert part.size == 4000 and part.dtype == np.float32
    assert audio.read_spool(tmp_path / "a.pcm", n - 10, n + 1000).size == 10


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"hello, this is text\n" * 50, "not decodable audio")],
)
def test_probe_rejects_non_audio(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "x.mp3"
    f.write_bytes(content)
    with pytest.raises(audio.DecodeError, match=message):
        audio.probe(f)


def test_probe_rejects_directory(tmp_path: Path) -> None:
    d = tmp_path / "dir.wav"
    d.mkdir()
    with pytest.raises(audio.DecodeError, match="directory"):
        audio.probe(d)


@pytest.mark.parametrize(
    ("decoded", "declared", "bad"),
    [
        (11.0, 11.0, False),
        (10.95, 11.0, False),  # encoder padding
        (5.5, 11.0, True),
        (9.5, 11.0, True),  # 14 % short, 1.5 s
        (2.0, 2.9, False),  # short by under a second
        (5.5, 67108.0, True),  # an absurd header
        (5.5, None, False),  # nothing declared
        (12.0, 11.0, False),
    ],
)
def test_check_complete(decoded: float, declared: float | None, bad: bool) -> None:
    if bad:
        with pytest.raises(DecodeError, match="truncated or damaged"):
            check_complete(decoded, declared)
    else:
        check_complete(decoded, declared)


def test_truncated_wav_is_caught_by_its_header(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 4.0)
    info = probe(wav)
    assert info.declared == pytest.approx(4.0)
    wav.write_bytes(wav.read_bytes()[: 44 + 32000])
    info = probe(wav)
    assert info.duration == pytest.approx(1.0, abs=0.01)  # FFmpeg clamps to the file
    assert info.declared == pytest.approx(4.0)
    with pytest.raises(DecodeError, match=r"header declares 4\.0 s"):
        check_complete(sum(b.size for b in decode_blocks(wav)) / 16000, info.declared)


def test_streamed_wav_size_is_not_a_declaration(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", 2.0)
    data = bytearray(wav.read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
    wav.write_bytes(bytes(data))
    info = probe(wav)
    assert info.declared == pytest.approx(2.0, abs=0.01)
