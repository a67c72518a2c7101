"""Does the quality profile's diarization pay more on some files than others?  What the planner
may choose by: the file facts measured at intake (:mod:`daemon.pipeline.facts`).

    python -m bench.auto [--eval ../shared/eval] [--snr 15 5] [--limit N]

On the dev set of :mod:`bench.devset` (built at run time) and on copies of its conversations
with pink noise added at each ``--snr`` (dB, against the speech's power), the balanced and the
quality profile diarize every file (the same cached steps as the daemon).  Reported: each
file's measured facts beside the construction (does the cheap measurement tell noisy audio?),
and the DER of quality minus balanced with a bootstrap 95 % interval per condition and per
measured-fact bucket.  Results go to bench/results/auto.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.devset import Item, build, decode
from bench.metrics import load_rttm, load_uem
from bench.speakers import REPO, Results, Scored, bench_config, bootstrap_diff, components, pooled
from daemon.intake import hash_file
from daemon.jobrun import speakers_of_file
from daemon.pipeline.audio import SAMPLE_RATE
from daemon.pipeline.facts import AudioFacts, facts_of
from daemon.store import open_store
from daemon.warm import WarmModels

PROFILES = ("balanced", "quality")


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of pink (1/f) noise, unit power."""
    spectrum = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / np.sqrt(f), n)
    return x / np.sqrt(np.mean(x**2))


def speech_power(samples: np.ndarray, turns: Sequence[tuple[float, float, str]]) -> float:
    mask = np.zeros(samples.size, dtype=bool)
    for s, e, _ in turns:
        mask[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)] = True
    return float(np.mean(samples[mask].astype(np.float64) ** 2)) if mask.any() else 0.0


def noisy(item: Item, snr: float, out_dir: Path, seed: int) -> Item:
    """A copy of ``item`` with pink noise at ``snr`` dB below its speech."""
    import soundfile

    samples = decode(item.wav)
    power = speech_power(samples, load_rttm(str(item.rttm)))
    noise = pink(samples.size, np.random.default_rng(seed)) * np.sqrt(power / 10 ** (snr / 10))
    mix = np.clip(samples + noise.astype(np.float32), -1.0, 1.0)
    wav = out_dir / f"{item.name}-snr{snr:g}.wav"
    soundfile.write(wav, mix, SAMPLE_RATE, subtype="PCM_16")
    return dataclasses.replace(item, name=wav.stem, wav=wav)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--snr", type=float, nargs="+", default=[15.0, 5.0])
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=0, help="only the first N files (a smoke run)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")
    tmp = Path(tempfile.mkdtemp(prefix="transcribd-auto-"))
    items = build(args.eval, tmp / "devset")
    if args.limit:
        items = items[: args.limit]
    conditions: dict[str, list[Item]] = {"clean": items}
    for i, snr in enumerate(args.snr):
        conditions[f"snr {snr:g} dB"] = [
            noisy(it, snr, tmp / "devset", seed=1000 * i + k)
            for k, it in enumerate(items)
            if it.kind == "synthetic"
        ]
    print(f"{sum(map(len, conditions.values()))} files", flush=True)

    config = bench_config(tmp)
    store = open_store(config)
    models = WarmModels.of(config)
    results = Results()
    facts: dict[str, tuple[str, AudioFacts, float]] = {}
    seconds_of: dict[str, float] = {}
    every = [(condition, item) for condition, group in conditions.items() for item in group]
    for condition, item in every:
        samples = decode(item.wav)
        seconds_of[item.name] = len(samples) / SAMPLE_RATE
        started = time.perf_counter()
        measured = facts_of(len(samples) / SAMPLE_RATE, [samples[: 90 * SAMPLE_RATE]])
        facts[item.name] = (condition, measured, time.perf_counter() - started)
    # one profile at a time: the warm diarization pipeline is loaded once per profile
    for profile in PROFILES:
        print(f"== {profile}", flush=True)
        for _, item in every:
            ref = load_rttm(str(item.rttm))
            uem = load_uem(str(item.uem)) if item.uem else None
            sha, _ = hash_file(item.wav)
            started = time.perf_counter()
            found = speakers_of_file(config, models, store, item.wav, sha, profile_name=profile)
            seconds = time.perf_counter() - started
            hyp = [(t.start, t.end, t.speaker) for t in found.turns]
            scored = Scored(
                components={0.0: components(ref, hyp, uem, 0.0)},
                speakers=len({w for *_, w in hyp}),
                words=(0, 0, 0, 0),
                seconds=seconds,
                duration=seconds_of[item.name],  # decoded once, above
            )
            results.rows.setdefault(profile, {})[item.name] = scored
            der = pooled({"f": scored}, ["f"], 0.0)
            snr = facts[item.name][1].snr_db
            print(f"  {item.name:<24} snr {snr or 0:5.1f} dB  DER {der * 100:5.1f}%", flush=True)
    store.close()

    table = report(results, facts, args.resamples)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "auto.json"
    rows = {
        name: {
            "condition": cond,
            "facts": f.to_dict(),
            "snr_db": f.snr_db,
            "facts_seconds": s,
            **{p: dataclasses.asdict(results.rows[p][name]) for p in PROFILES},
        }
        for name, (cond, f, s) in facts.items()
    }
    out.write_text(json.dumps({"table": table, "files": rows}, indent=2, default=str))
    print(f"\nwritten {out}")


def report(
    results: Results, facts: dict[str, tuple[str, AudioFacts, float]], resamples: int
) -> list[dict[str, Any]]:
    """Quality minus balanced, per condition and per measured-fact bucket."""
    bal, qual = results.rows["balanced"], results.rows["quality"]
    groups: dict[str, list[str]] = {}
    buckets: dict[str, list[str]] = {}
    for name, (condition, f, _) in facts.items():
        groups.setdefault(condition, []).append(name)
        snr = f.snr_db
        for t in (10.0, 20.0, 30.0):
            side = "<" if snr is not None and snr < t else ">="
            buckets.setdefault(f"measured SNR {side} {t:g} dB", []).append(name)
        share = f.speech_share or 0.0
        buckets.setdefault(f"speech share {'<' if share < 0.8 else '>='} 0.8", []).append(name)
    groups.update(sorted(buckets.items()))
    groups["all"] = sorted(facts)
    print(
        f"\n{'group':<26} {'files':>5} {'SNR med':>8} {'balanced':>9} {'quality':>8} "
        f"{'quality - balanced (95% CI)':>30} {'diar s bal/qual':>16}"
    )
    table = []
    for group, names in groups.items():
        b = {n: bal[n] for n in names}
        q = {n: qual[n] for n in names}
        diff = bootstrap_diff(q, b, 0.0, resamples)
        snrs = [facts[n][1].snr_db for n in names if facts[n][1].snr_db is not None]
        row = {
            "group": group,
            "files": len(names),
            "snr_median": float(np.median(snrs)) if snrs else None,
            "balanced": pooled(b, names, 0.0),
            "quality": pooled(q, names, 0.0),
            "diff": diff,
            "seconds": (sum(x.seconds for x in b.values()), sum(x.seconds for x in q.values())),
        }
        table.append(row)
        print(
            f"{group:<26} {len(names):>5} {row['snr_median'] or 0:8.1f} "
            f"{row['balanced'] * 100:8.1f}% {row['quality'] * 100:7.1f}% "
            f"{diff[0] * 100:+8.1f} [{diff[1] * 100:+.1f}, {diff[2] * 100:+.1f}]{'':>10} "
            f"{row['seconds'][0]:7.0f}/{row['seconds'][1]:<7.0f}"
        )
    return table


if __name__ == "__main__":
    main()
