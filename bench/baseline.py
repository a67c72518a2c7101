"""The seed's "current approach", one file per process: load the models, faster-whisper on the
whole file (chunk_length=15, beam_size=1, no VAD), then pyannote's stock SpeakerDiarization on
the whole file, one after the other, with the same weights transcribd uses.

    python -m bench.baseline FILE [DEVICE]
        -> one JSON line: wall/cpu seconds, peak RSS, text, turns

DEVICE ("cpu", the default, or "cuda:N") is where both models run: Whisper in int8 on the CPU,
float16 on a GPU; the diarization networks on the GPU where ONNX Runtime has its CUDA provider.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    started = time.perf_counter()
    path = Path(sys.argv[1])
    from faster_whisper import WhisperModel

    from bench.quality import BASELINE_DIARIZATION
    from daemon import devices, modelstore
    from daemon.config import cache_home
    from daemon.pipeline import audio
    from daemon.pipeline.diarize import Diarizer
    from daemon.sysload import usable_cores

    device = devices.resolve(sys.argv[2] if len(sys.argv) > 2 else "cpu")
    threads = usable_cores()
    resolved = modelstore.resolve("base", cache_home() / "models")
    model = WhisperModel(
        str(resolved.path),
        device=device.kind,
        device_index=device.index,
        compute_type="int8" if device.kind == "cpu" else "float16",
        cpu_threads=threads,
    )
    gpu = device.index if device.diarization_on_gpu else None
    diarizer = Diarizer(BASELINE_DIARIZATION, threads=threads, gpu=gpu)
    loaded = time.perf_counter()
    samples = np.concatenate(list(audio.decode_blocks(path)))
    segments, _ = model.transcribe(samples, beam_size=1, chunk_length=15, vad_filter=False)
    text = " ".join(s.text.strip() for s in segments)
    asr_done = time.perf_counter()
    turns = diarizer(samples).turns
    done = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "file": str(path),
                "device": device.name,
                "duration": samples.size / audio.SAMPLE_RATE,
                "wall": done - started,
                "load": loaded - started,
                "asr": asr_done - loaded,
                "diarize": done - asr_done,
                "cpu": usage.ru_utime + usage.ru_stime,
                "peak_rss": usage.ru_maxrss * 1024,
                "text": text,
                "turns": [[t.start, t.end, t.speaker] for t in turns],
            }
        )
    )


if __name__ == "__main__":
    main()
