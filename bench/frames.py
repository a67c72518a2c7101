"""Shared CAM++ frames: the embedding network once per stretch of audio against once per chunk.

    python -m bench.frames [--eval ../shared/eval] [--seed 0] [--steps 0.5 0.3 0.1]
        [--blocks 2 3 12]

At a segmentation step below 1, pyannote's chunks overlap (each second is in 1 / step chunks)
and the embedding network runs on each chunk: at step 0.5 every second twice, at 0.1 ten times.
With ``DiarizeParams.shared_frames`` its front end runs once over the window and its TDNN
layers once per block of two chunks, blocks one chunk apart, and each chunk's frames are cut
from the block holding it (CAM++'s frames then see their block's context, the fbank normalised
over a chunk's length).  Per step, on the dev set of
:mod:`bench.devset` (ONNX Runtime, the profiles' settings otherwise): pooled DER at collar 0
and 0.25, speaker count exact, the embedding step's wall seconds, and the bootstrap 95 %
interval of DER shared minus exact.

``--blocks CHUNKS ...`` compares block lengths instead, against the first one given: blocks of
CHUNKS chunks (``DiarizeParams.frame_block_chunks``; the TDNN layers see CHUNKS / (CHUNKS - 1)
times the audio).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.clusters import DevData, load_dev, report, step_parser
from bench.speakers import Results, bootstrap_diff, print_table, summary
from daemon.pipeline.diarize import DiarizeParams, Diarizer


def main() -> None:
    parser = step_parser(__doc__ or "")
    parser.add_argument("--blocks", nargs="+", default=[], metavar="CHUNKS")
    args = parser.parse_args()
    dev = load_dev(args, "transcribd-frames-")
    items = dev.items
    tmp = Path(tempfile.mkdtemp(prefix="transcribd-frames-models-"))
    if args.blocks:
        compare_blocks(args, dev, tmp)
        return
    for step in args.steps:
        results = Results()
        embedding_seconds = {}
        for shared in (False, True):
            name = f"{step} {'shared' if shared else 'exact'}"
            # frames compared with pyannote's clustering alone, as in the sections before merging
            params = DiarizeParams(
                segmentation_step=step, shared_frames=shared, merge_distance=0, lone_voice_share=0
            )
            embedding_seconds[name] = run_variant(args, dev, tmp, params, name, results)
        exact, shared_rows = (results.rows[f"{step} {k}"] for k in ("exact", "shared"))
        print_table(summary(results, items, args.resamples, reference=f"{step} exact"))
        for collar in (0.0, 0.25):
            diff, lo, hi = bootstrap_diff(shared_rows, exact, collar, args.resamples)
            print(
                f"step {step}: DER shared - exact at collar {collar}: {diff * 100:+.2f} points "
                f"[{lo * 100:+.2f}, {hi * 100:+.2f}]; embeddings "
                f"{embedding_seconds[f'{step} exact'] / embedding_seconds[f'{step} shared']:.2f}x "
                "faster shared",
                flush=True,
            )


def run_variant(
    args: Any, dev: DevData, tmp: Path, params: DiarizeParams, name: str, results: Results
) -> float:
    """Diarize the dev set with ``params`` into ``results.rows[name]``, report its line, and
    return the embedding step's wall seconds."""
    diarizer = Diarizer(params, threads=args.threads, onnx_cache=tmp / "models")
    diarizer(dev.audio[dev.items[0].name])  # warm
    rows, seconds = [], 0.0
    for item in dev.items:
        found = diarizer(dev.audio[item.name])
        seconds += found.timing.get("embeddings", (0.0, 0.0))[0]
        scored = dev.score(item, found, sum(wall for wall, _ in found.timing.values()))
        results.rows.setdefault(name, {})[item.name] = scored
        rows.append((item, scored.components[0.0], scored.speakers))
    report(params.segmentation_step, name, rows)
    print(f"    embeddings {seconds:.1f} s", flush=True)
    return seconds


def compare_blocks(args: Any, dev: DevData, tmp: Path) -> None:
    """Each step with each block length of ``args.blocks``, against the first one."""
    items = dev.items
    for step in args.steps:
        results = Results()
        seconds: dict[str, float] = {}
        for variant in args.blocks:
            name = f"{step} blocks {variant}"
            params = DiarizeParams(
                segmentation_step=step,
                frame_block_chunks=int(variant),
                merge_distance=0,
                lone_voice_share=0,
            )
            seconds[name] = run_variant(args, dev, tmp, params, name, results)
        first = f"{step} blocks {args.blocks[0]}"
        print_table(summary(results, items, args.resamples, reference=first))
        for variant in args.blocks[1:]:
            name = f"{step} blocks {variant}"
            rows_of = results.rows
            diff, lo, hi = bootstrap_diff(rows_of[name], rows_of[first], 0.0, args.resamples)
            print(
                f"step {step}: DER {variant} - {args.blocks[0]}: {diff * 100:+.2f} points "
                f"[{lo * 100:+.2f}, {hi * 100:+.2f}]; embeddings "
                f"{seconds[first] / seconds[name]:.2f}x faster",
                flush=True,
            )


if __name__ == "__main__":
    main()
