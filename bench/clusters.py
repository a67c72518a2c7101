"""How many speakers: clustering variants on the profiles' own embeddings, in one run.

    python -m bench.clusters [--eval ../shared/eval] [--seed 0] [--steps 0.5 0.3 0.1]
                             [--monologues | --crowded]

Segmentation and embeddings are computed once per file and segmentation step (each profile's
step) and kept in memory; every clustering variant then re-runs only pyannote's clustering,
reconstruction and output on them, so a variant costs seconds, not a full diarization.  Per
step and variant: pooled DER (collar 0), speaker count exact, two-person 2-6 s conversations
where 2 were found, and how the misses fall (too few / too many).  Then the profiles (each
one's step, the shipped clustering) against pyannote's clustering at step 0.1 on the same
features, with bootstrap 95 % intervals of the DER differences (as bench.speakers, without the
words: the clustering does not change how words are given to turns; bench.speakers runs the
stock pipeline itself).  ``--seed`` builds
another dev set (other conversations of the same voices): tune on one seed, confirm on another.
``--monologues`` runs each voice alone instead (a rule that finds more voices must not split
one), ``--crowded`` files of 8-19 voices in one window (a long meeting's windows; the dev set
has 2-5).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.devset import Item, build, crowded, decode, monologues
from bench.metrics import load_rttm, load_uem
from bench.speakers import BASELINE, Results, Scored, components, print_table, summary
from daemon.pipeline.clusters import LONE_VOICE_SHARE, MERGE_DISTANCE
from daemon.pipeline.diarize import PYANNOTE_THRESHOLD, DiarizeParams, Diarizer
from daemon.pipeline.merge import WindowDiarization

REPO = Path(__file__).resolve().parents[1]
CANDIDATE = 0.80
"""A clustering threshold tried instead of pyannote's (it merged two voices of a test window:
bench/RESULTS.md)."""
SHIPPED = "ahc 0.7046 + merge 0.80 + lone voices where one"
"""The variant the profiles run (DiarizeParams' threshold, merge_distance and lone_voice_share)."""
PROFILE_STEPS = {"fast": 0.5, "balanced": 0.3, "quality": 0.1}


@dataclass(frozen=True)
class Method:
    """pyannote's centroid agglomerative clustering at ``threshold``; with ``merge``, clusters
    whose unit centroids are closer than it are then merged, closest first."""

    threshold: float
    merge: float = 0.0
    lone_voices: float = 0.0
    """Then :func:`lone_voices`, candidates speaking alone this share of a chunk (0: not)."""
    far: float | None = None
    """:func:`lone_voices`' distance that makes a candidate unexplained (None: the threshold)."""
    members: int = 3
    """:func:`lone_voices`' least members (never fewer than pyannote's least cluster size)."""
    only_one: bool = False
    """:func:`lone_voices` only where the clustering (and the merge) found a single voice, as
    the profiles' own clustering class does it (``far`` and ``members`` are its own then)."""


def variants() -> list[tuple[str, Method]]:
    return [
        (f"ahc {PYANNOTE_THRESHOLD} (pyannote)", Method(PYANNOTE_THRESHOLD)),
        ("ahc 0.75", Method(0.75)),
        (f"ahc {CANDIDATE:.2f}", Method(CANDIDATE)),
        ("ahc 0.7046 + merge 0.80", Method(PYANNOTE_THRESHOLD, merge=MERGE_DISTANCE)),
        *(
            (
                f"ahc 0.7046 + lone voices 0.1, far {far or PYANNOTE_THRESHOLD}",
                Method(PYANNOTE_THRESHOLD, lone_voices=0.1, far=far),
            )
            for far in (None, 0.9)
        ),
        (
            SHIPPED,
            Method(
                PYANNOTE_THRESHOLD,
                merge=MERGE_DISTANCE,
                lone_voices=LONE_VOICE_SHARE,
                only_one=True,
            ),
        ),
    ]


def lone_voice_clustering(metric: str, method: Method) -> Any:
    """The profiles' clustering class without the merge, looking for lone voices in every file
    (not only where one voice was found), with ``method``'s ``far`` and ``members``.  Rejected:
    bench/RESULTS.md."""
    from daemon.pipeline.speaker_clustering import SpeakerClustering

    class EveryFile(SpeakerClustering):
        far = method.far
        members = method.members

        def looks_for_lone_voices(self, found: int) -> bool:
            return found > 0

    return EveryFile(metric, lone_share=method.lone_voices)


def install(pipeline: Any, method: Method) -> None:
    """Make a loaded pyannote SpeakerDiarization cluster with ``method`` (a merge, or lone voices
    where one was found: the profiles' own clustering class)."""
    if not hasattr(pipeline, "stock_clustering"):
        object.__setattr__(pipeline, "stock_clustering", pipeline.clustering)
    stock = pipeline.stock_clustering
    if method.lone_voices and not method.only_one:
        clustering = lone_voice_clustering(stock.metric, method)
    elif method.merge > 0 or method.only_one:
        from daemon.pipeline.speaker_clustering import speaker_clustering

        clustering = speaker_clustering(method.merge, stock.metric, method.lone_voices)
    else:
        clustering = stock
    if clustering is not stock:
        clustering.method = stock.method
        clustering.min_cluster_size = stock.min_cluster_size
    clustering.threshold = method.threshold
    object.__setattr__(pipeline, "clustering", clustering)


class Features:
    """Segmentations and embeddings of each file, computed once per pipeline."""

    def __init__(self, diarizer: Diarizer) -> None:
        self.current = ""
        self.store: dict[tuple[str, str], Any] = {}
        pipe = diarizer._pipeline
        seg, emb = pipe.get_segmentations, pipe.get_embeddings

        def get_segmentations(file: Any, hook: Any = None) -> Any:
            key = (self.current, "seg")
            if key not in self.store:
                self.store[key] = seg(file, hook=hook)
            return self.store[key]

        def get_embeddings(
            file: Any, binary: Any, exclude_overlap: bool = False, hook: Any = None
        ) -> Any:
            key = (self.current, "emb")
            if key not in self.store:
                self.store[key] = emb(file, binary, exclude_overlap=exclude_overlap, hook=hook)
            return self.store[key]

        object.__setattr__(pipe, "get_segmentations", get_segmentations)
        object.__setattr__(pipe, "get_embeddings", get_embeddings)


def main() -> None:
    args = step_parser(__doc__ or "").parse_args()
    dev = load_dev(args, "transcribd-clusters-")
    items, audio = dev.items, dev.audio
    results = Results()
    for step in args.steps:
        # pyannote's clustering alone: each variant adds its own steps
        params = DiarizeParams(segmentation_step=step, merge_distance=0.0, lone_voice_share=0.0)
        diarizer = Diarizer(params, threads=args.threads)
        features = Features(diarizer)
        for name, method in variants():
            if args.only and args.only not in name:
                continue
            install(diarizer._pipeline, method)
            rows = []
            for item in items:
                features.current = item.name
                scored = dev.score(item, diarizer(audio[item.name]))
                results.rows.setdefault(f"{step} {name}", {})[item.name] = scored
                rows.append((item, scored.components[0.0], scored.speakers))
            report(step, name, rows)
    profiles = profile_rows(results, args.steps)
    if BASELINE in profiles.rows:
        print(f"\nprofiles ({SHIPPED}) against pyannote's clustering at step 0.1 (as {BASELINE}):")
        print_table(summary(profiles, items, args.resamples))


def step_parser(doc: str) -> argparse.ArgumentParser:
    """The options of the benches that diarize the dev set once per segmentation step."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=float, nargs="+", default=[0.5, 0.3, 0.1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--only", default="", help="only the variants whose name holds this")
    files = parser.add_mutually_exclusive_group()
    files.add_argument(
        "--monologues",
        action="store_true",
        help="each voice alone instead of the dev set (count: files found as one speaker)",
    )
    files.add_argument(
        "--crowded",
        action="store_true",
        help="files of 8-19 voices in one window instead of the dev set",
    )
    return parser


@dataclass
class DevData:
    """The dev set built for one run: its files, their audio, reference turns and UEMs."""

    items: list[Item]
    audio: dict[str, np.ndarray]
    refs: dict[str, list[tuple[float, float, str]]]
    uems: dict[str, list[tuple[float, float]] | None]

    def score(self, item: Item, found: WindowDiarization, seconds: float = 0.0) -> Scored:
        """One diarization of ``item`` against its truth (no words: these benches have none)."""
        hyp = [(t.start, t.end, t.speaker) for t in found.turns]
        ref, uem = self.refs[item.name], self.uems[item.name]
        return Scored(
            components={c: components(ref, hyp, uem, c) for c in (0.0, 0.25)},
            speakers=len({t.speaker for t in found.turns}),
            words=(0, 0, 0, 0),
            seconds=seconds,
            duration=len(self.audio[item.name]) / 16000,
        )


def load_dev(args: argparse.Namespace, prefix: str) -> DevData:
    """Build the dev set of ``args.seed`` (or its monologues, or its crowded files) in a
    temporary folder (the first ``args.limit`` files if set) and decode it."""
    logging.basicConfig(level=logging.WARNING)
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    make, kind = build, "dev set"
    if args.monologues:
        make, kind = monologues, "monologues"
    elif args.crowded:
        make, kind = crowded, "crowded files"
    items = make(args.eval, tmp / "devset", seed=args.seed)
    if args.limit:
        items = items[: args.limit]
    print(f"{kind} (seed {args.seed}): {len(items)} files", flush=True)
    return DevData(
        items,
        {i.name: decode(i.wav) for i in items},
        {i.name: load_rttm(str(i.rttm)) for i in items},
        {i.name: load_uem(str(i.uem)) if i.uem else None for i in items},
    )


def profile_rows(results: Results, steps: Sequence[float]) -> Results:
    """Each profile's rows (its step, :data:`SHIPPED`) and a baseline's: pyannote's clustering
    at step 0.1 on the same features (shared frames: close to, not the same as, the stock
    pipeline's embedding pass per speaker, which bench.speakers runs)."""
    out = Results()
    for profile, step in PROFILE_STEPS.items():
        rows = results.rows.get(f"{step} {SHIPPED}")
        if rows is not None:
            out.rows[profile] = rows
    stock = results.rows.get(f"0.1 ahc {PYANNOTE_THRESHOLD} (pyannote)")
    if 0.1 in steps and stock is not None:
        out.rows[BASELINE] = stock
    return out


def report(step: float, name: str, rows: Sequence[tuple[Item, dict[str, float], int]]) -> None:
    err = sum(c["missed detection"] + c["false alarm"] + c["confusion"] for _, c, _ in rows)
    tot = sum(c["total"] for _, c, _ in rows)
    exact = sum(n == i.speakers for i, _, n in rows)
    few = sum(n < i.speakers for i, _, n in rows)
    many = sum(n > i.speakers for i, _, n in rows)
    two = [
        n for i, _, n in rows if i.kind == "synthetic" and i.speakers == 2 and i.turn == (2.0, 6.0)
    ]
    print(
        f"step {step:.1f}  {name:<28} DER {err / tot * 100:5.1f}%  count {exact}/{len(rows)} "
        f"(few {few}, many {many})  2of2 {sum(n == 2 for n in two)}/{len(two)}",
        flush=True,
    )
    misses = [f"{i.name}:{n}/{i.speakers}" for i, _, n in rows if n != i.speakers]
    print("    " + " ".join(misses), flush=True)


if __name__ == "__main__":
    main()
