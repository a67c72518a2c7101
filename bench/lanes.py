"""ASR lanes: chunks of one file on several CTranslate2 replicas, against one replica on all
threads, in the same run.

    python -m bench.lanes [--model base] [--threads 2] [--repeats 2]

The AMI excerpts and the call of ../shared/eval, cut into 30-s chunks, are transcribed with the
project's adapter (beam 1, int8, word timestamps) in a fresh process per configuration: one
lane with all ``--threads`` threads, then ``--threads`` lanes of one thread fed by as many
Python threads, then faster-whisper's ``BatchedInferencePipeline`` (one lane, all threads,
``--batch`` windows per batch) on the same audio.  Prints wall seconds, peak RSS and the
ratio; configurations alternate so that drift in the machine's speed hits all of them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHUNK_SECONDS = 30


def measure(
    model_name: str, lanes: int, threads: int, eval_dir: Path, batch: int = 0
) -> dict[str, float]:
    import numpy as np

    from daemon.modelstore import resolve
    from daemon.pipeline.asr import AsrModel, AsrOptions
    from daemon.pipeline.audio import SAMPLE_RATE, decode_blocks

    files = sorted((eval_dir / "diarization").glob("*.wav"))
    audio = np.concatenate([b for f in files for b in decode_blocks(f)])
    step = CHUNK_SECONDS * SAMPLE_RATE
    chunks = [audio[i : i + step] for i in range(0, audio.size, step)]
    cache = Path(tempfile.gettempdir()) / "transcribd-bench-models"
    model = AsrModel(resolve(model_name, cache, False), "int8", threads, lanes)
    options = AsrOptions(beam_size=1)
    model.transcribe(chunks[0], "en", options)  # warm up
    started = time.perf_counter()
    if batch:  # faster-whisper's batched pipeline: the 30-s windows go through in batches
        from faster_whisper import BatchedInferencePipeline

        batched = BatchedInferencePipeline(model._model)
        segments, _info = batched.transcribe(
            audio, language="en", beam_size=1, word_timestamps=True, vad_filter=False,
            batch_size=batch,
            clip_timestamps=[
                {"start": i / SAMPLE_RATE, "end": min(i + step, audio.size) / SAMPLE_RATE}
                for i in range(0, audio.size, step)
            ],
        )  # fmt: skip
        list(segments)
    else:
        with ThreadPoolExecutor(lanes) as pool:
            list(pool.map(lambda c: model.transcribe(c, "en", options), chunks))
    return {
        "wall": time.perf_counter() - started,
        "audio": audio.size / SAMPLE_RATE,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="batched pipeline's batch size")
    parser.add_argument("--one", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        lanes, threads, batch = args.one
        print(json.dumps(measure(args.model, lanes, threads, args.eval, batch)))
        return
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")
    configs = {
        "1 lane": (1, args.threads, 0),
        f"{args.threads} lanes": (args.threads, 1, 0),
        f"batched {args.batch}": (1, args.threads, args.batch),
    }
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in configs}
    for _ in range(args.repeats):
        for name, (lanes, threads, batch) in configs.items():
            out = subprocess.run(
                [sys.executable, "-m", "bench.lanes", "--model", args.model, "--eval",
                 str(args.eval), "--one", str(lanes), str(threads), str(batch)],
                cwd=REPO, capture_output=True, text=True, check=True,
            )  # fmt: skip
            rows[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[name][-1]
            print(f"{name:<10} {r['wall']:7.2f} s  {r['peak_rss'] / 1e9:.2f} GB", flush=True)
    base = min(r["wall"] for r in rows["1 lane"])
    for name, rs in rows.items():
        best = min(r["wall"] for r in rs)
        print(
            f"{args.model}, {rs[0]['audio']:.0f} s of audio, best of {args.repeats}: {name:<10} "
            f"{best:6.2f} s  peak {max(r['peak_rss'] for r in rs) / 1e9:.2f} GB  "
            f"x{base / best:.2f}"
        )


if __name__ == "__main__":
    main()
