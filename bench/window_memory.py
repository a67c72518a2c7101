"""Peak memory and time of diarizing one 10-minute window, by CAM++ embedding batch size.

    python -m bench.window_memory [--profile fast] [--batches 8 4 2 1] [--repeats 2]

The first 10 minutes of the long benchmark file (AMI excerpts and the call of ../shared/eval)
go through the warm diarization pipeline of a profile in a fresh process per configuration;
the process's peak RSS (VmHWM) after loading and after the window, and the window's seconds.
Configurations alternate so that drift in the machine's speed hits all of them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WINDOW_SECONDS = 600


def measure(profile: str, batch: int, wav: Path) -> dict[str, float]:
    from daemon.sysload import bound_malloc_arenas, peak_rss

    bound_malloc_arenas()
    from daemon.pipeline import diarize
    from daemon.pipeline.audio import SAMPLE_RATE, read_spool
    from daemon.profiles import BUILTIN

    diarize.EMBEDDING_BATCH = batch
    audio = read_spool(wav, 0, WINDOW_SECONDS * SAMPLE_RATE)
    diarizer = diarize.Diarizer(BUILTIN[profile].diarization, threads=2)
    loaded = peak_rss()
    started = time.perf_counter()
    found = diarizer(audio, offset=0.0)
    return {
        "seconds": time.perf_counter() - started,
        "loaded_rss": loaded,
        "peak_rss": peak_rss(),
        "speakers": len(found.centroids),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 4, 2, 1])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.profile, int(args.one[0]), Path(args.one[1]))))
        return
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")
    from bench.speed import build_long
    from daemon.pipeline.audio import decode_to_spool

    tmp = Path(tempfile.mkdtemp(prefix="transcribd-window-"))
    build_long(args.eval, WINDOW_SECONDS / 60, tmp / "long.wav")
    spool = tmp / "long.pcm"
    decode_to_spool(tmp / "long.wav", spool)
    rows: dict[int, list[dict[str, float]]] = {b: [] for b in args.batches}
    for _ in range(args.repeats):
        for batch in args.batches:
            out = subprocess.run(
                [sys.executable, "-m", "bench.window_memory", "--profile", args.profile,
                 "--one", str(batch), str(spool)],
                cwd=REPO, capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows[batch].append(r)
            print(
                f"batch {batch}: {r['seconds']:6.1f} s  loaded {r['loaded_rss'] / 1e9:.2f} GB  "
                f"peak {r['peak_rss'] / 1e9:.2f} GB  {r['speakers']} speakers",
                flush=True,
            )
    first = args.batches[0]
    base_s = min(r["seconds"] for r in rows[first])
    base_p = max(r["peak_rss"] for r in rows[first])
    for batch, rs in rows.items():
        s = min(r["seconds"] for r in rs)
        p = max(r["peak_rss"] for r in rs)
        print(
            f"{args.profile}, 10-min window, batch {batch}: best {s:.1f} s (x{base_s / s:.2f} "
            f"of batch {first}), worst peak {p / 1e9:.2f} GB ({(p - base_p) / 1e9:+.2f} GB)"
        )


if __name__ == "__main__":
    main()
