"""Quality benchmark: transcribd against a whole-file baseline, in the same run.

    python -m bench.quality [--profile balanced] [--eval ../shared/eval] [--out bench/results]

For every recording in ../shared/eval:
- WER (lower-cased, punctuation removed) per file and per language, English and Russian;
- DER per diarization file (pyannote.metrics, collar 0, overlap scored, within the .uem) and the
  number of speakers found against the truth.
Baseline, with the same models: faster-whisper on the whole file (same beam size, no VAD, no
chunking) and pyannote's stock SpeakerDiarization (0.1 step, one embedding per chunk and speaker)
on the whole file.  The real-time factor of each step is printed beside them.  Models are loaded
(warmed) before anything is timed; the cache starts empty.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics import der, load_rttm, load_uem, normalize
from daemon import config as config_mod
from daemon.jobrun import run_pipeline
from daemon.jobs import JobOptions
from daemon.pipeline import audio
from daemon.pipeline.asr import AsrOptions
from daemon.pipeline.diarize import PYANNOTE_THRESHOLD, DiarizeParams
from daemon.profiles import resolve as resolve_profile
from daemon.store import open_store
from daemon.warm import WarmModels

REPO = Path(__file__).resolve().parents[1]
BASELINE_DIARIZATION = DiarizeParams(
    segmentation_step=0.1,
    chunked_embeddings=False,
    threshold=PYANNOTE_THRESHOLD,
    merge_distance=0.0,
    lone_voice_share=0.0,
)
"""pyannote's stock SpeakerDiarization: every window step, one embedding pass per speaker, its
own clustering threshold and nothing after it."""


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    import jiwer

    refs = [normalize(r) for r, _ in pairs]
    hyps = [normalize(h) for _, h in pairs]
    return float(jiwer.wer(refs, hyps)) if refs else float("nan")


def decode(path: Path) -> audio.Audio:
    return np.concatenate(list(audio.decode_blocks(path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="balanced", choices=config_mod.PROFILE_NAMES)
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")

    tmp = Path(tempfile.mkdtemp(prefix="transcribd-bench-"))
    config = config_mod.from_mapping(
        {
            "database": {"url": f"sqlite:///{tmp / 'jobs.db'}"},
            "watch": {"folders": [str(tmp / "inbox")]},
            "output": {"dir": str(tmp / "out")},
            # steps one after the other, each with all threads: clean per-step timings
            "daemon": {"work_dir": str(tmp / "work"), "overlap_diarization": False},
            "pipeline": {"profile": args.profile},
        }
    )
    store = open_store(config)
    models = WarmModels.of(config)
    profile = resolve_profile(args.profile, config.profiles)
    resolved = models.resolve(profile.model)
    asr = models.asr(resolved, profile.compute_type, args.threads)
    models.diarizer(profile.diarization, args.threads)
    baseline_diarizer = models.diarizer(BASELINE_DIARIZATION, args.threads)
    options = AsrOptions(beam_size=profile.beam_size, compute_type=profile.compute_type)

    rows: list[dict[str, Any]] = []
    asr_files = sorted((args.eval / "asr_en").glob("*.txt")) + sorted(
        (args.eval / "asr_ru").glob("*.txt")
    )
    for ref_path in asr_files:
        wav = next(
            (p for p in ref_path.parent.glob(ref_path.stem + ".*") if p.suffix != ".txt"), None
        )
        if wav is None:
            continue
        lang = ref_path.parent.name.split("_")[1]
        ref = ref_path.read_text(encoding="utf-8")
        ours = _ours(config, models, store, wav)
        samples = decode(wav)
        started = time.perf_counter()
        base_segments = asr._model.transcribe(
            samples, beam_size=options.beam_size, vad_filter=False, chunk_length=30
        )[0]
        base_text = " ".join(s.text for s in base_segments)
        base_seconds = time.perf_counter() - started
        rows.append(
            {
                "kind": "asr",
                "file": wav.name,
                "language": lang,
                "duration": ours["duration"],
                "ref": ref,
                "hyp": ours["text"],
                "base_hyp": base_text,
                "wer": _wer(ref, ours["text"]),
                "base_wer": _wer(ref, base_text),
                "rtf": ours["rtf"],
                "base_rtf": base_seconds / ours["duration"],
                "step_rtf": ours["step_rtf"],
            }
        )
        print(_fmt_asr(rows[-1]), flush=True)

    for rttm in sorted((args.eval / "diarization").glob("*.rttm")):
        wav = rttm.with_suffix(".wav")
        uem_path = rttm.with_suffix(".uem")
        uem = load_uem(str(uem_path)) if uem_path.exists() else None
        ref_turns = load_rttm(str(rttm))
        ours = _ours(config, models, store, wav)
        samples = decode(wav)
        started = time.perf_counter()
        base = baseline_diarizer(samples)
        base_seconds = time.perf_counter() - started
        base_turns = [(t.start, t.end, t.speaker) for t in base.turns]
        rows.append(
            {
                "kind": "diarization",
                "file": wav.name,
                "duration": ours["duration"],
                "der": der(ref_turns, ours["turns"], uem),
                "base_der": der(ref_turns, base_turns, uem),
                "speakers": len({s for *_, s in ours["turns"]}),
                "base_speakers": len({s for *_, s in base_turns}),
                "true_speakers": len({s for *_, s in ref_turns}),
                "rtf": ours["rtf"],
                "diarize_rtf": ours["step_rtf"].get("diarize", 0.0),
                "base_diarize_rtf": base_seconds / ours["duration"],
                "step_rtf": ours["step_rtf"],
            }
        )
        print(_fmt_der(rows[-1]), flush=True)

    summary = _summary(rows)
    print()
    for line in summary["lines"]:
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"quality-{args.profile}.json"
    out.write_text(
        json.dumps(
            {"profile": args.profile, "rows": rows, "summary": summary["figures"]},
            indent=2,
            ensure_ascii=False,
        )
    )
    print(f"\nwritten {out}")


def _ours(config: config_mod.Config, models: WarmModels, store: Any, wav: Path) -> dict[str, Any]:
    from daemon.intake import hash_file

    sha, _ = hash_file(wav)
    started = time.perf_counter()
    result = run_pipeline(config, models, store, wav, sha, JobOptions())
    wall = time.perf_counter() - started
    t = result.transcript
    duration = result.audio_seconds
    return {
        "duration": duration,
        "text": " ".join(s.text for s in t.segments),
        "turns": [(x.start, x.end, x.speaker) for x in t.turns],
        "rtf": wall / duration,
        "step_rtf": {k: round(v / duration, 4) for k, v in result.stats.seconds.items()},
    }


def _wer(ref: str, hyp: str) -> float:
    from bench.metrics import wer

    return wer(ref, hyp)


def _fmt_asr(r: dict[str, Any]) -> str:
    return (
        f"ASR  {r['file']:<34} {r['language']} {r['duration']:6.1f}s  "
        f"WER {r['wer']:.3f} (base {r['base_wer']:.3f})  "
        f"RTF {r['rtf']:.3f} (base asr {r['base_rtf']:.3f})"
    )


def _fmt_der(r: dict[str, Any]) -> str:
    return (
        f"DIAR {r['file']:<34} {r['duration']:6.1f}s  DER {r['der']:.3f} "
        f"(base {r['base_der']:.3f})  speakers {r['speakers']} (base {r['base_speakers']}, "
        f"true {r['true_speakers']})  diarize RTF {r['diarize_rtf']:.3f} "
        f"(base {r['base_diarize_rtf']:.3f})"
    )


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    lines = []
    for lang in ("en", "ru", "all"):
        mine = [r for r in rows if r["kind"] == "asr" and lang in ("all", r.get("language"))]
        pairs = [(r["ref"], r["hyp"]) for r in mine]
        base = [(r["ref"], r["base_hyp"]) for r in mine]
        if pairs:
            figures[f"wer_{lang}"] = corpus_wer(pairs)
            figures[f"base_wer_{lang}"] = corpus_wer(base)
            lines.append(
                f"WER {lang}: transcribd {figures[f'wer_{lang}']:.4f}  "
                f"baseline {figures[f'base_wer_{lang}']:.4f}  "
                f"diff {figures[f'wer_{lang}'] - figures[f'base_wer_{lang}']:+.4f}"
            )
    diar = [r for r in rows if r["kind"] == "diarization"]
    if diar:
        figures["der"] = float(np.mean([r["der"] for r in diar]))
        figures["base_der"] = float(np.mean([r["base_der"] for r in diar]))
        total = sum(r["duration"] for r in diar)
        figures["diarize_rtf"] = sum(r["diarize_rtf"] * r["duration"] for r in diar) / total
        figures["base_diarize_rtf"] = (
            sum(r["base_diarize_rtf"] * r["duration"] for r in diar) / total
        )
        figures["speaker_count_exact"] = sum(r["speakers"] == r["true_speakers"] for r in diar)
        figures["base_speaker_count_exact"] = sum(
            r["base_speakers"] == r["true_speakers"] for r in diar
        )
        lines.append(
            f"DER (mean of {len(diar)}): transcribd {figures['der']:.4f}  "
            f"baseline {figures['base_der']:.4f}  "
            f"diff {figures['der'] - figures['base_der']:+.4f}"
        )
        lines.append(
            f"diarize RTF: transcribd {figures['diarize_rtf']:.4f}  "
            f"baseline {figures['base_diarize_rtf']:.4f}  "
            f"speed-up x{figures['base_diarize_rtf'] / figures['diarize_rtf']:.2f}"
        )
        lines.append(
            f"speaker count exact: transcribd {figures['speaker_count_exact']}/"
            f"{len(diar)}  baseline {figures['base_speaker_count_exact']}/{len(diar)}"
        )
    steps: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r["step_rtf"].items():
            steps.setdefault(k, []).append(v)
    figures["step_rtf_mean"] = {k: float(np.mean(v)) for k, v in steps.items()}
    lines.append(
        "step RTF (mean): " + "  ".join(f"{k} {v:.4f}" for k, v in figures["step_rtf_mean"].items())
    )
    return {"figures": figures, "lines": lines}


if __name__ == "__main__":
    main()
