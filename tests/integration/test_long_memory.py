"""Memory stays flat in file length: decoding and VAD of a 30-minute file stream from disk."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

from tests.conftest import need_eval

PROBE = """
import json, sys
from pathlib import Path
from daemon.pipeline import audio
from daemon.sysload import peak_rss
from daemon.pipeline.vad import SpeechDetector, VadParams, plan_chunks
src, spool = Path(sys.argv[1]), Path(sys.argv[2])
detector = SpeechDetector(VadParams())
samples = audio.decode_to_spool(src, spool, on_block=detector.feed)
chunks = plan_chunks(detector.regions, 60.0)
longest = max(sum(b - a for a, b in audio_ranges) for audio_ranges in
              ([(round(r.start * 16000), round(r.end * 16000)) for r in c.regions]
               for c in chunks))
part = audio.read_spool(spool, 0, longest)
print(json.dumps({"samples": samples, "chunks": len(chunks),
                  "peak": peak_rss()}))
"""


def make_long(tmp: Path, minutes: float) -> Path:
    src = need_eval("diarization", "sample.wav")
    with wave.open(str(src)) as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    out = tmp / f"long-{minutes:g}.wav"
    repeats = int(minutes * 60 / (params.nframes / params.framerate)) + 1
    with wave.open(str(out), "wb") as w:
        w.setparams(params)
        for _ in range(repeats):
            w.writeframes(frames)
    return out


def peak_for(tmp: Path, minutes: float) -> dict[str, int]:
    src = make_long(tmp, minutes)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(src), str(tmp / f"{minutes:g}.pcm")],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, int] = json.loads(out.stdout)
    return result


def test_decode_and_vad_of_30_minutes_stays_flat(tmp_path: Path) -> None:
    short = peak_for(tmp_path, 3)
    long = peak_for(tmp_path, 30)
    assert long["samples"] >= 30 * 60 * 16000
    assert long["chunks"] >= 5 * short["chunks"]  # ten times the audio, many more chunks
    # the whole 30 minutes as float32 would be 115 MB on its own; streaming keeps the peak
    # within allocator noise of the 3-minute run (measured 10-21 MB apart between runs here,
    # with no trend: 60 minutes peaked below 30), far below what holding the file would add
    whole_file = 30 * 60 * 16000 * 4
    assert long["peak"] - short["peak"] < whole_file / 2, (short, long)
    print(f"peak RSS: 3 min {short['peak'] / 1e6:.0f} MB, 30 min {long['peak'] / 1e6:.0f} MB")
    assert long["peak"] < 600 * 1024 * 1024
