"""Who spoke: each profile against pyannote's stock pipeline on the whole file, on the dev set
of :mod:`bench.devset` (built at run time), in one run.

    python -m bench.speakers [--profiles fast balanced quality] [--eval ../shared/eval]
                             [--threads 2] [--resamples 2000]
    python -m bench.speakers --ablate     # one change to balanced per row (see VARIANTS)
    python -m bench.speakers --seed 2     # another dev set: other conversations of the same voices
    python -m bench.speakers --pool bench/results/speakers.json bench/results/speakers-seed2.json
                                          # one table over the files of several seeds' runs

Per system: pooled DER at collar 0 and 0.25 (pyannote.metrics, overlap scored, within the UEM
where a file has one), speaker count exact, word-speaker accuracy (the share of words attributed
to the speaker who said them, under the optimal label mapping; and the same among the words
where the diarization itself is right: what the word-to-turn merge loses), the diarization's
real-time factor, and for each profile a bootstrap 95 % interval (over files) of its DER minus
the whole-file baseline's.  The baseline's words are the balanced profile's, attributed to its
turns by the same merge.  Results go to bench/results/speakers.json (speakers-seedN.json for
``--seed N``), with each file's truth, so that ``--pool`` can score several seeds as one set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.devset import Item, build, decode
from bench.metrics import load_rttm, load_uem
from bench.quality import BASELINE_DIARIZATION
from daemon import config as config_mod
from daemon.intake import hash_file
from daemon.jobrun import run_pipeline
from daemon.jobs import JobOptions
from daemon.pipeline.asr import Segment
from daemon.pipeline.merge import Turn, attribute
from daemon.profiles import Profile
from daemon.profiles import resolve as resolve_profile
from daemon.store import open_store
from daemon.warm import WarmModels

REPO = Path(__file__).resolve().parents[1]
BASELINE = "whole-file"
COMPONENTS = ("total", "missed detection", "false alarm", "confusion")

TurnT = tuple[float, float, str]
WordT = tuple[float, float, str]


@dataclass
class Scored:
    """One system on one file."""

    components: dict[float, dict[str, float]]
    """By collar: pyannote's error components (seconds)."""
    speakers: int
    words: tuple[int, int, int, int]
    """(right, counted, right where the diarization is right, counted there)."""
    seconds: float
    """Diarization wall seconds."""
    duration: float


@dataclass
class Results:
    rows: dict[str, dict[str, Scored]] = field(default_factory=dict)
    """system -> file -> scored."""


def components(
    ref: Sequence[TurnT], hyp: Sequence[TurnT], uem: list[tuple[float, float]] | None, collar: float
) -> dict[str, float]:
    from pyannote.core import Segment as PSegment
    from pyannote.core import Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    region = Timeline([PSegment(s, e) for s, e in (uem or [_extent(ref, hyp)])])
    metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
    detail = metric(annotation(ref), annotation(hyp), uem=region, detailed=True)
    return {k: float(detail[k]) for k in COMPONENTS}


def _extent(ref: Sequence[TurnT], hyp: Sequence[TurnT]) -> tuple[float, float]:
    spans = list(ref) + list(hyp)
    return min(s for s, _, _ in spans), max(e for _, e, _ in spans)


def annotation(turns: Sequence[TurnT]) -> Any:
    from pyannote.core import Annotation
    from pyannote.core import Segment as PSegment

    ann = Annotation()
    for i, (s, e, who) in enumerate(turns):
        ann[PSegment(s, e), i] = who
    return ann


def _most(turns: Sequence[TurnT], start: float, end: float) -> str | None:
    """The speaker whose turns cover most of [start, end]."""
    cover: dict[str, float] = {}
    for s, e, who in turns:
        o = min(e, end) - max(s, start)
        if o > 0:
            cover[who] = cover.get(who, 0.0) + o
    return max(cover, key=lambda w: cover[w]) if cover else None


def word_accuracy(
    words: Sequence[WordT], ref: Sequence[TurnT], hyp: Sequence[TurnT]
) -> tuple[int, int, int, int]:
    """(right, counted, right where the diarization is right, counted there): a word counts
    where one reference speaker covers most of it; it is right when its attributed speaker
    maps (optimal mapping) to that speaker.  "Where the diarization is right": at the word's
    middle, the turns' speaker maps to the reference's speaker there (a word straddling a
    turn change is then judged by where the merge put it, not by the same rule)."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    mapping = DiarizationErrorRate().optimal_mapping(annotation(ref), annotation(hyp))
    right = counted = right_there = counted_there = 0
    for s, e, who in words:
        truth = _most(ref, s, e)
        if truth is None:
            continue
        counted += 1
        ok = mapping.get(who) == truth
        right += ok
        middle = (s + e) / 2
        if mapping.get(_most(hyp, middle, middle + 1e-3) or "") == _most(
            ref, middle, middle + 1e-3
        ):
            counted_there += 1
            right_there += ok
    return right, counted, right_there, counted_there


def words_of(segments: Sequence[Segment]) -> list[WordT]:
    return [(w.start, w.end, s.speaker or "") for s in segments for w in s.words]


def pooled(rows: dict[str, Scored], files: Sequence[str], collar: float) -> float:
    err = tot = 0.0
    for f in files:
        c = rows[f].components[collar]
        err += c["missed detection"] + c["false alarm"] + c["confusion"]
        tot += c["total"]
    return err / tot if tot else float("nan")


def bootstrap_diff(
    a: dict[str, Scored], b: dict[str, Scored], collar: float, resamples: int, seed: int = 0
) -> tuple[float, float, float]:
    """Pooled DER of ``a`` minus ``b`` and its bootstrap 95 % interval (files resampled)."""
    files = sorted(a)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        pick = [files[i] for i in rng.integers(0, len(files), len(files))]
        diffs.append(pooled(a, pick, collar) - pooled(b, pick, collar))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return pooled(a, files, collar) - pooled(b, files, collar), float(lo), float(hi)


def summary(
    results: Results, items: Sequence[Item], resamples: int, reference: str = BASELINE
) -> list[dict[str, Any]]:
    """One row per system; with a bootstrap interval of its DER minus ``reference``'s."""
    truth = {i.name: i.speakers for i in items}
    two = {
        i.name for i in items if i.kind == "synthetic" and i.speakers == 2 and i.turn == (2.0, 6.0)
    }
    out = []
    base = results.rows.get(reference)
    for system, rows in results.rows.items():
        files = sorted(rows)
        w = np.sum([rows[f].words for f in files], axis=0)
        row: dict[str, Any] = {
            "system": system,
            "files": len(files),
            "minutes": sum(rows[f].duration for f in files) / 60,
            "der": pooled(rows, files, 0.0),
            "der_collar": pooled(rows, files, 0.25),
            "count_exact": sum(rows[f].speakers == truth[f] for f in files),
            "two_found_two": sum(rows[f].speakers == 2 for f in files if f in two),
            "two_files": len(two & set(files)),
            "word_accuracy": w[0] / w[1] if w[1] else float("nan"),
            "word_accuracy_where_right": w[2] / w[3] if w[3] else float("nan"),
            "diarize_rtf": sum(rows[f].seconds for f in files)
            / sum(rows[f].duration for f in files),
        }
        if base is not None and system != reference:
            for collar, key in ((0.0, "diff"), (0.25, "diff_collar")):
                row[key] = bootstrap_diff(rows, base, collar, resamples)
        out.append(row)
    return out


def print_table(table: Sequence[dict[str, Any]]) -> None:
    print(
        f"{'system':<26} {'files':>5} {'DER':>7} {'DER.25':>7} {'vs reference (95% CI)':>28} "
        f"{'count':>7} {'2of2':>6} {'words':>6} {'w|diar':>7} {'diar RTF':>8}"
    )
    for r in table:
        diff = r.get("diff")
        vs = f"{diff[0] * 100:+.1f} [{diff[1] * 100:+.1f}, {diff[2] * 100:+.1f}]" if diff else "-"
        print(
            f"{r['system']:<26} {r['files']:>5} {r['der'] * 100:6.1f}% "
            f"{r['der_collar'] * 100:6.1f}% "
            f"{vs:>28} {r['count_exact']:>3}/{r['files']:<3} "
            f"{r['two_found_two']:>2}/{r['two_files']:<3} {r['word_accuracy'] * 100:5.1f}% "
            f"{r['word_accuracy_where_right'] * 100:6.1f}% {r['diarize_rtf']:8.4f}"
        )


def variants(base: Profile) -> list[tuple[str, Profile, dict[str, Any]]]:
    """The ablation: one change to ``base`` per row (name, profile, [diarization] changes).
    ASR beside diarization is left out: it shares the diarization's cache key, so its DER is
    the same by construction (its speed is bench.speed's)."""
    d = base.diarization

    def with_(**changes: Any) -> Profile:
        return dataclasses.replace(base, diarization=dataclasses.replace(d, **changes))

    unscaled = round(d.min_cluster_size * d.segmentation_step / 0.1)
    return [
        (base.name, base, {}),
        ("step 0.1", with_(segmentation_step=0.1), {}),
        ("step 0.5", with_(segmentation_step=0.5), {}),
        (f"min cluster {unscaled} (unscaled)", with_(min_cluster_size=unscaled), {}),
        ("threshold 0.7046", with_(threshold=0.7046), {}),
        ("threshold 0.5", with_(threshold=0.5), {}),
        ("embedding per speaker", with_(chunked_embeddings=False), {}),
        ("windows of 20 s (linked)", base, {"window_seconds": 20.0}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=list(config_mod.PROFILE_NAMES))
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=0, help="only the first N files (a smoke run)")
    parser.add_argument("--ablate", action="store_true", help="one change to balanced per row")
    parser.add_argument("--seed", type=int, default=0, help="which dev set to build")
    parser.add_argument(
        "--pool", nargs="+", type=Path, default=[], help="score these runs' files as one set"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.pool:
        results, items = pool(args.pool)
        print(f"pooled: {len(items)} files from {len(args.pool)} runs")
        print_table(summary(results, items, args.resamples, BASELINE))
        return
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")
    tmp = Path(tempfile.mkdtemp(prefix="transcribd-speakers-"))
    items = build(args.eval, tmp / "devset", seed=args.seed)
    if args.limit:
        items = items[: args.limit]
    minutes = sum(len(decode(i.wav)) for i in items) / 16000 / 60
    print(f"dev set (seed {args.seed}): {len(items)} files, {minutes:.1f} min", flush=True)
    if args.ablate:
        results = ablate(items, args.threads, tmp)
    else:
        results = run(items, args.profiles, args.threads, tmp)
    table = summary(results, items, args.resamples, "balanced" if args.ablate else BASELINE)
    print()
    print_table(table)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "ablation" if args.ablate else "speakers"
    out = args.out / (f"{name}.json" if args.seed == 0 else f"{name}-seed{args.seed}.json")
    files = {
        system: {f: dataclasses.asdict(s) for f, s in rows.items()}
        for system, rows in results.rows.items()
    }
    truth = {i.name: {"kind": i.kind, "speakers": i.speakers, "turn": i.turn} for i in items}
    out.write_text(
        json.dumps(
            {"seed": args.seed, "table": table, "items": truth, "files": files},
            indent=2,
            default=str,
        )
    )
    print(f"\nwritten {out}")


SHARED_KINDS = ("ami", "phone")
"""The kinds of dev-set file every seed holds alike: the recordings of the evaluation data."""


def pool(paths: Sequence[Path]) -> tuple[Results, list[Item]]:
    """The files of several runs (each written with its truth) as one set, each file's name
    prefixed with its run's seed.  The recordings every seed shares (:data:`SHARED_KINDS`)
    count once, under the first run's name, each system's row from the first run that has
    one."""
    results, items = Results(), []
    pooled_as: dict[str, str] = {}  # a shared recording's name -> its name in the pool
    for path in paths:
        data = json.loads(path.read_text())
        if "items" not in data:
            raise SystemExit(f"{path} has no truth per file (written before --pool existed)")
        prefix = f"s{data['seed']}/"
        if any(i.name.startswith(prefix) for i in items):
            raise SystemExit(f"{path}: seed {data['seed']} is already in the pool")
        names: dict[str, str] = {}
        for name, t in data["items"].items():
            names[name] = prefix + name
            if t["kind"] in SHARED_KINDS:
                names[name] = pooled_as.setdefault(name, names[name])
            if names[name].startswith(prefix):  # not pooled from an earlier run
                turn = tuple(t["turn"]) if t["turn"] else None
                items.append(
                    Item(names[name], Path(), Path(), None, t["kind"], t["speakers"], turn)
                )
        for system, rows in data["files"].items():
            kept = results.rows.setdefault(system, {})
            for name, row in rows.items():
                if names[name] in kept:
                    continue  # a shared recording this system was scored on in an earlier run
                kept[names[name]] = Scored(
                    components={float(c): v for c, v in row["components"].items()},
                    speakers=row["speakers"],
                    words=tuple(row["words"]),
                    seconds=row["seconds"],
                    duration=row["duration"],
                )
    return results, items


def bench_config(tmp: Path, diarization: dict[str, Any] | None = None) -> config_mod.Config:
    return config_mod.from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp / 'jobs.db'}"},
            "watch": {"folders": [str(tmp / "inbox")]},
            "output": {"dir": str(tmp / "out")},
            # steps one after the other, each with all threads: clean per-step timings
            "daemon": {"work_dir": str(tmp / "work"), "overlap_diarization": False},
            "diarization": diarization or {},
        }
    )


def ablate(items: Sequence[Item], threads: int, tmp: Path) -> Results:
    """Each variant of balanced on every file (the ASR is computed once: its cache key does
    not change), then pyannote's stock pipeline at its own threshold on the whole file."""
    store = open_store(bench_config(tmp))
    models = WarmModels.of(bench_config(tmp))
    results = Results()
    base = resolve_profile("balanced", {})
    for name, profile, diarization in variants(base):
        config = bench_config(tmp, diarization)
        print(f"== {name}", flush=True)
        for item in items:
            ref = load_rttm(str(item.rttm))
            uem = load_uem(str(item.uem)) if item.uem else None
            sha, _ = hash_file(item.wav)
            result = run_pipeline(
                config, models, store, item.wav, sha, JobOptions(), threads=threads, profile=profile
            )
            t = result.transcript
            hyp = [(x.start, x.end, x.speaker) for x in t.turns]
            seconds = result.stats.seconds.get("diarize", 0.0)
            words = words_of(t.segments)
            _score(results, name, item, ref, hyp, uem, words, seconds, result.audio_seconds)
    stock = models.diarizer(BASELINE_DIARIZATION, threads)
    print("== whole-file 0.7046", flush=True)
    for item in items:
        ref = load_rttm(str(item.rttm))
        uem = load_uem(str(item.uem)) if item.uem else None
        samples = decode(item.wav)
        started = time.perf_counter()
        turns = stock(samples).turns
        seconds = time.perf_counter() - started
        hyp = [(x.start, x.end, x.speaker) for x in turns]
        _score(results, "whole-file 0.7046", item, ref, hyp, uem, [], seconds, len(samples) / 16000)
    store.close()
    return results


def run(items: Sequence[Item], profiles: Sequence[str], threads: int, tmp: Path) -> Results:
    config = bench_config(tmp)
    store = open_store(config)
    models = WarmModels.of(config)
    baseline = models.diarizer(BASELINE_DIARIZATION, threads)
    results = Results()
    for item in items:
        ref = load_rttm(str(item.rttm))
        uem = load_uem(str(item.uem)) if item.uem else None
        sha, _ = hash_file(item.wav)
        balanced_segments: list[Segment] = []
        for profile in profiles:
            result = run_pipeline(
                config, models, store, item.wav, sha, JobOptions(profile=profile), threads=threads
            )
            t = result.transcript
            hyp = [(x.start, x.end, x.speaker) for x in t.turns]
            seconds = result.stats.seconds.get("diarize", 0.0)
            _score(
                results,
                profile,
                item,
                ref,
                hyp,
                uem,
                words_of(t.segments),
                seconds,
                result.audio_seconds,
            )
            if profile == "balanced" or not balanced_segments:
                balanced_segments = [Segment(s.start, s.end, s.text, s.words) for s in t.segments]
        samples = decode(item.wav)
        started = time.perf_counter()
        turns = baseline(samples).turns
        seconds = time.perf_counter() - started
        hyp = [(x.start, x.end, x.speaker) for x in turns]
        words = words_of(attribute(balanced_segments, [Turn(*x) for x in hyp]))
        _score(results, BASELINE, item, ref, hyp, uem, words, seconds, len(samples) / 16000)
        print(f"{item.name}: done", flush=True)
    store.close()
    return results


def _score(
    results: Results,
    system: str,
    item: Item,
    ref: list[TurnT],
    hyp: list[TurnT],
    uem: list[tuple[float, float]] | None,
    words: list[WordT],
    seconds: float,
    duration: float,
) -> None:
    scored = Scored(
        components={c: components(ref, hyp, uem, c) for c in (0.0, 0.25)},
        speakers=len({w for *_, w in hyp}),
        words=word_accuracy(words, ref, hyp),
        seconds=seconds,
        duration=duration,
    )
    results.rows.setdefault(system, {})[item.name] = scored
    c = scored.components[0.0]
    der = (c["missed detection"] + c["false alarm"] + c["confusion"]) / (c["total"] or 1.0)
    print(
        f"  {system:<10} {item.name:<18} DER {der * 100:5.1f}%  speakers {scored.speakers} "
        f"(true {item.speakers})",
        flush=True,
    )


if __name__ == "__main__":
    main()
