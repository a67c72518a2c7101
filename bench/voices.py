"""Named voices: calibrate ``[voices] max_distance`` on the speakers dev set (bench.devset).

    python -m bench.voices [--eval ../shared/eval] [--profiles fast balanced quality]

Every voice of the dev set (17: English and Russian readers, AMI participants) is enrolled the
way ``transcribd voices add`` does it, from a recording of its own material (its lone stretches
joined by short pauses, at most :data:`ENROLL_SECONDS`).  Every file of the dev set is then
diarized by the product's own path (each profile's diarization, through the step cache), and
each diarized speaker is given the reference voice that holds most of its speech; it is *clean*
when that voice holds at least 80 % (else diarization mixed voices in it).  At each distance
threshold, over all speakers and over the clean ones:

- **false match, open set** (the calibration target): a speaker whose own voice is *not*
  enrolled, with the 16 other voices enrolled, gets a name; per speaker;
- **false match, pairs**: the share of (speaker, other voice) pairs within the threshold;
- **wrong name, closed set**: with every voice enrolled (one-to-one per file, as in the
  product), a speaker gets another's name;
- **right name**: with every voice enrolled, a speaker gets its own.

The chosen threshold is the largest on the grid whose open-set false-match rate over *all*
speakers (mixed ones included) is at most 1 % in every profile.
Caveat: the enrollment recordings and the conversations draw on the same source recordings (the
evaluation data holds no second session of these people), so the right-name rate is optimistic;
false matches compare different people and are not affected.  Results:
bench/results/voices.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.devset import RATE, Item, build, decode, voices
from bench.metrics import load_rttm
from daemon import config as config_mod
from daemon import voices as voices_mod
from daemon.app import voices as voices_app
from daemon.errors import UserError
from daemon.intake import hash_file
from daemon.jobrun import speakers_of_file
from daemon.store import open_store
from daemon.warm import WarmModels

REPO = Path(__file__).resolve().parents[1]
ENROLL_SECONDS = 60.0
GRID = tuple(round(x, 2) for x in np.arange(0.10, 0.91, 0.02))
TARGET = 0.01
CLEAN = 0.8
"""A diarized speaker is clean when one voice holds at least this share of its speech."""


@dataclass(frozen=True)
class Speaker:
    """A diarized speaker of one file."""

    file: str
    label: str
    voice: str | None
    """The reference voice behind most of its speech (None: none of it is anyone's)."""
    purity: float
    """That voice's share of the speaker's speech (below 1: diarization mixed voices)."""
    seconds: float
    print: tuple[float, ...]


def enrollment_wav(pieces: Sequence[Any], out: Path) -> Path:
    """A voice's lone stretches joined by 0.3 s pauses, at most ENROLL_SECONDS."""
    import soundfile

    parts, have = [], 0.0
    sources: dict[Path, np.ndarray] = {}
    for p in pieces:
        samples = sources.setdefault(p.path, decode(p.path))
        clip = samples[int(p.start * RATE) : int(p.end * RATE)]
        parts += [clip, np.zeros(int(0.3 * RATE), dtype=np.float32)]
        have += p.length
        if have >= ENROLL_SECONDS:
            break
    soundfile.write(out, np.concatenate(parts), RATE, subtype="PCM_16")
    return out


def reference_voice(item: Item, label: str) -> str:
    return label if item.kind == "synthetic" else f"ami-{label}"


def speakers_of(
    item: Item, turns: Sequence[tuple[float, float, str]], prints: dict[str, tuple[float, ...]]
) -> list[Speaker]:
    ref = load_rttm(str(item.rttm))
    out = []
    for label, vec in prints.items():
        mine = [(s, e) for s, e, w in turns if w == label]
        seconds = sum(e - s for s, e in mine)
        overlap: dict[str, float] = {}
        for s, e in mine:
            for rs, re_, who in ref:
                o = min(e, re_) - max(s, rs)
                if o > 0:
                    name = reference_voice(item, who)
                    overlap[name] = overlap.get(name, 0.0) + o
        best, most = max(overlap.items(), key=lambda kv: kv[1], default=("", 0.0))
        purity = most / sum(overlap.values()) if overlap else 0.0
        out.append(Speaker(item.name, label, best or None, purity, seconds, vec))
    return out


def rates(
    speakers: Sequence[Speaker], enrolled: Sequence[voices_mod.Voice], t: float
) -> dict[str, float]:
    by_name = {v.name: v for v in enrolled}
    open_false = pairs_false = pairs = closed_wrong = right = 0
    for s in speakers:
        others = [v for v in enrolled if v.name != s.voice]
        d = [voices_mod.distance(s.print, v.embedding) for v in others]
        open_false += min(d) <= t
        pairs_false += sum(x <= t for x in d)
        pairs += len(d)
    files = sorted({s.file for s in speakers})
    for f in files:
        mine = [s for s in speakers if s.file == f]
        matches = voices_mod.match({s.label: s.print for s in mine}, enrolled, t)
        named = {m.speaker: m.name for m in matches}
        for s in mine:
            got = named.get(s.label)
            closed_wrong += got is not None and got != s.voice
            right += got is not None and got == s.voice and s.voice in by_name
    genuine = sum(s.voice in by_name for s in speakers)
    return {
        "threshold": t,
        "false_match_open": open_false / len(speakers),
        "false_match_pairs": pairs_false / pairs,
        "wrong_name_closed": closed_wrong / len(speakers),
        "right_name": right / max(genuine, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--work", type=Path, help="reuse this folder (its step cache)")
    parser.add_argument("--profiles", nargs="+", default=list(config_mod.PROFILE_NAMES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")
    tmp = args.work or Path(tempfile.mkdtemp(prefix="transcribd-voices-"))
    items = build(args.eval, tmp / "devset")
    config = config_mod.from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp / 'jobs.db'}"},
            "watch": {"folders": [str(tmp / "inbox")]},
            "output": {"dir": str(tmp / "out")},
            "daemon": {"work_dir": str(tmp / "work")},
        }
    )
    enroll_dir = tmp / "enroll"
    enroll_dir.mkdir(exist_ok=True)
    enrolled: list[voices_mod.Voice] = []
    with closing(open_store(config)) as store:  # a reused folder: enroll afresh
        for old in store.voices.all():
            store.voices.remove(old.name)
    for v in voices(args.eval):
        wav = enrollment_wav(v.pieces, enroll_dir / f"{v.name}.wav")
        try:
            enrolled.append(voices_app.enroll(config, v.name, [wav]).voice)
        except UserError as exc:  # its speakers stay in the trials, as strangers
            print(f"not enrolled {v.name}: {exc}", flush=True)
            continue
        print(f"enrolled {v.name}: {enrolled[-1].seconds:.1f} s", flush=True)
    store = open_store(config)
    models = WarmModels.of(config)
    results = {}
    for profile in args.profiles:
        speakers: list[Speaker] = []
        for item in items:
            sha, _ = hash_file(item.wav)
            found = speakers_of_file(config, models, store, item.wav, sha, profile_name=profile)
            turns = [(t.start, t.end, t.speaker) for t in found.turns]
            speakers += speakers_of(item, turns, found.centroids)
        print(f"\n== {profile}")
        results[profile] = calibrate(speakers, enrolled)
    store.close()
    chosen = [r["chosen"] for r in results.values()]
    final = None if None in chosen else min(chosen)
    print(f"\nchosen max_distance, every profile: {final}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = {"files": len(items), "voices": len(enrolled), "chosen": final, "profiles": results}
    (args.out / "voices.json").write_text(json.dumps(out, indent=2))
    print(f"written {args.out / 'voices.json'}")


def calibrate(speakers: Sequence[Speaker], enrolled: Sequence[voices_mod.Voice]) -> dict[str, Any]:
    """The curves of one profile's speakers, printed, and the threshold they allow."""
    clean = [s for s in speakers if s.purity >= CLEAN]
    print(
        f"{len(speakers)} diarized speakers, {len(clean)} clean "
        f"(one voice holds at least {CLEAN:.0%} of the speech)"
    )
    curves = {
        "clean": [rates(clean, enrolled, t) for t in GRID],
        "all": [rates(speakers, enrolled, t) for t in GRID],
    }
    ok = [r["threshold"] for r in curves["all"] if r["false_match_open"] <= TARGET]
    chosen = max(ok) if ok else None
    print(f"{'':>9} {'clean speakers':^30} | {'all speakers':^30}")
    head = f"{'FM open':>8} {'FM pairs':>8} {'wrong':>6} {'right':>6}"
    print(f"{'threshold':>9} {head} | {head}")
    for c, a in zip(curves["clean"], curves["all"], strict=True):
        cells = [
            f"{r['false_match_open'] * 100:7.1f}% {r['false_match_pairs'] * 100:7.2f}% "
            f"{r['wrong_name_closed'] * 100:5.1f}% {r['right_name'] * 100:5.1f}%"
            for r in (c, a)
        ]
        print(f"{c['threshold']:9.2f} {cells[0]} | {cells[1]}")
    print(f"chosen: {chosen} (open-set false matches of all speakers <= {TARGET:.0%})")

    def distances(same: bool) -> list[float]:
        return [
            voices_mod.distance(s.print, e.embedding)
            for s in clean
            for e in enrolled
            if (e.name == s.voice) is same
        ]

    strangers = sorted(
        (voices_mod.distance(s.print, e.embedding), s.file, s.label, s.voice, s.purity, e.name)
        for s in speakers
        for e in enrolled
        if e.name != s.voice
    )[:5]
    print("closest strangers:")
    for d, f, label, voice, purity, other in strangers:
        print(f"  {d:.3f} {f} {label} ({voice}, {purity:.0%}) ~ {other}")
    summary = {
        "speakers": len(speakers),
        "clean": len(clean),
        "chosen": chosen,
        "genuine_clean_quantiles_5_50_95": np.quantile(distances(True), [0.05, 0.5, 0.95])
        .round(3)
        .tolist(),
        "impostor_clean_quantiles_1_5_50": np.quantile(distances(False), [0.01, 0.05, 0.5])
        .round(3)
        .tolist(),
        "curves": curves,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "curves"}))
    return summary


if __name__ == "__main__":
    main()
