"""ASR of one file's chunks: faster-whisper's sequential ``transcribe`` (the adapter's former
path), its batched pipeline (the adapter now), and the batched pipeline on two lanes, in one run.

    python -m bench.lanes [--model base] [--threads 2] [--repeats 2]

Two sets of audio from ../shared/eval, each cut into 30-s chunks: the English clips (with their
reference transcripts: WER) and the AMI excerpts with the call (meeting speech).  Each
configuration runs in a fresh process: ``sequential`` and ``batched`` with one lane on all
``--threads`` threads, ``lanes`` with ``--threads`` CTranslate2 replicas of one thread fed by as
many Python threads.  Prints wall seconds, peak RSS, WER and the ratio to ``sequential``;
configurations alternate so that drift in the machine's speed hits all of them.
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
SETS = {"english clips": "asr_en", "meetings": "diarization"}
CONFIGS = ("sequential", "batched", "lanes")


def measure(model_name: str, config: str, threads: int, folder: Path) -> dict[str, float]:
    import numpy as np

    from bench.metrics import wer
    from daemon.modelstore import resolve
    from daemon.pipeline.asr import AsrModel, AsrOptions
    from daemon.pipeline.audio import SAMPLE_RATE, decode_blocks

    files = sorted(folder.glob("*.wav"))
    audio = np.concatenate([b for f in files for b in decode_blocks(f)])
    refs = [f.with_suffix(".txt") for f in files]
    step = CHUNK_SECONDS * SAMPLE_RATE
    chunks = [audio[i : i + step] for i in range(0, audio.size, step)]
    cache = Path(tempfile.gettempdir()) / "transcribd-bench-models"
    lanes = threads if config == "lanes" else 1
    model = AsrModel(resolve(model_name, cache, False), "int8", threads // lanes, lanes)
    options = AsrOptions(beam_size=1)

    def sequential(chunk: np.ndarray) -> str:
        segments, _ = model._model.transcribe(
            chunk, language="en", beam_size=1, word_timestamps=True, vad_filter=False,
            condition_on_previous_text=False,
        )  # fmt: skip
        return " ".join(s.text for s in segments)

    def batched(chunk: np.ndarray) -> str:
        return " ".join(s.text for s in model.transcribe(chunk, "en", options)[0])

    run = sequential if config == "sequential" else batched
    run(chunks[0])  # warm up
    started = time.perf_counter()
    with ThreadPoolExecutor(lanes) as pool:
        texts = list(pool.map(run, chunks))
    wall = time.perf_counter() - started
    scored = all(r.is_file() for r in refs)
    reference = " ".join(r.read_text() for r in refs) if scored else ""
    return {
        "wall": wall,
        "audio": audio.size / SAMPLE_RATE,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "wer": wer(reference, " ".join(texts)) if scored else -1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        config, folder = args.one
        print(json.dumps(measure(args.model, config, args.threads, Path(folder))))
        return
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")
    summary = []
    for set_name, folder in SETS.items():
        rows: dict[str, list[dict[str, float]]] = {c: [] for c in CONFIGS}
        for _ in range(args.repeats):
            for config in CONFIGS:
                out = subprocess.run(
                    [sys.executable, "-m", "bench.lanes", "--model", args.model, "--threads",
                     str(args.threads), "--one", config, str(args.eval / folder)],
                    cwd=REPO, capture_output=True, text=True, check=True,
                )  # fmt: skip
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows[config].append(r)
                print(
                    f"{set_name}: {config:<10} {r['wall']:7.2f} s  {r['peak_rss'] / 1e9:.2f} GB",
                    flush=True,
                )
        base = min(r["wall"] for r in rows["sequential"])
        for config, rs in rows.items():
            best = min(r["wall"] for r in rs)
            score = f"WER {rs[0]['wer']:.2%}" if rs[0]["wer"] >= 0 else "no reference"
            summary.append(
                f"{set_name} ({rs[0]['audio']:.0f} s, {args.model}), best of {args.repeats}: "
                f"{config:<10} {best:6.2f} s  peak {max(r['peak_rss'] for r in rs) / 1e9:.2f} GB"
                f"  {score}  x{base / best:.2f}"
            )
    print("\n".join(summary))


if __name__ == "__main__":
    main()
