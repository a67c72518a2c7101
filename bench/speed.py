"""Speed benchmark: transcribd against the seed's approach, side by side in one run.

    python -m bench.speed [--long-minutes 14] [--profiles fast balanced quality]
        [--runtimes onnxruntime torch] [--no-steps] [--short 20] [--memory-minutes 15 180]
        [--device auto|cpu|cuda|cuda:N]

1. A long recording (AMI excerpts and the phone call from ../shared/eval, concatenated, with their
   RTTMs shifted): the baseline (bench/baseline.py: a fresh process, whole-file faster-whisper
   with chunk_length=15, beam 1, no VAD, then pyannote's stock pipeline) against
   ``transcribd transcribe`` with each profile, each in a fresh process with an empty cache:
   wall time, real-time factor, CPU seconds, peak RSS, DER, and the speed-up over the baseline,
   with the diarization networks on each runtime; then each profile again with ASR and
   diarization one after the other, for a table of where the time goes (wall and CPU seconds
   per step, each step's own) and ASR's time alone.
2. Warm throughput: N short files dropped into the folder of a running, warmed daemon
   (``transcribd run``), and through ``transcribd run --once`` (start-up and model loading
   included), against N baseline processes.
3. Memory against length: peak RSS of the fast profile on files of the given lengths.

``--device`` runs everything, the baseline included, on that device (``cuda``: the same
comparison on a GPU; it stops at once, in one line, where there is none).  Figures are ratios
against the baseline measured in the same run; absolute times vary with the
machine's mood.  Results go to bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.devset import string_together
from bench.metrics import der, load_rttm

REPO = Path(__file__).resolve().parents[1]


def build_long(eval_dir: Path, minutes: float, out: Path) -> list[tuple[float, float, str]]:
    """Concatenate the 30 s diarization recordings until ``minutes``; returns the shifted RTTM
    (one person one speaker: :func:`bench.devset.string_together`; until 2026-12-05 the names
    were prefixed with their excerpt, which counted 26 speakers for 19 people and charged a
    diarization that joined one person's excerpts with confusion)."""
    pieces = sorted((eval_dir / "diarization").glob("*.wav"))
    if not pieces:
        raise SystemExit(f"no diarization recordings in {eval_dir / 'diarization'}")
    return string_together(itertools.cycle(pieces), out, minutes * 60)


STEP_ORDER = (
    "probe",
    "vad",
    "language",
    "asr",
    "diarize.segmentation",
    "diarize.embeddings",
    "diarize.clustering",
    "diarize",
    "merge",
    "outputs",
)


def step_rows(metrics: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """(step, wall s, share of the job's wall time, CPU s) per step of a ``transcribe
    --metrics`` report; "diarize" is the whole step (its parts, window linking and caching),
    "other" what no step holds (start-up, model loading, hashing).  ASR and diarization may
    overlap (they share the cores), so the shares need not add up to 100 %."""
    wall = float(metrics["wall_seconds"])
    seconds, cpu = metrics["steps"]["seconds"], metrics["steps"].get("cpu", {})
    names = [n for n in STEP_ORDER if n in seconds] + sorted(set(seconds) - set(STEP_ORDER))
    rows = [(n, seconds[n], seconds[n] / wall, cpu.get(n, 0.0)) for n in names]
    top = [n for n in names if "." not in n]
    other = wall - sum(seconds[n] for n in top)
    other_cpu = float(metrics["cpu_seconds"]) - sum(cpu.get(n, 0.0) for n in top)
    rows.append(("other", other, other / wall, other_cpu))
    return rows


def run_baseline(path: Path, device: str = "cpu") -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.baseline", str(path), device],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def config_for(
    tmp: Path, name: str, runtime: str = "onnxruntime", overlap: bool = True, device: str = "cpu"
) -> Path:
    home = tmp / name
    cfg = home / "config.toml"
    home.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{home / "jobs.db"}"\n'
        f'[watch]\nfolders = ["{home / "inbox"}"]\nstable_seconds = 0.2\n'
        f'[output]\ndir = "{home / "out"}"\n'
        f'[daemon]\nwork_dir = "{home / "work"}"\ntick_seconds = 0.5\n'
        f"overlap_diarization = {str(overlap).lower()}\n"
        f'[models]\ndiarization_runtime = "{runtime}"\n'
        f'[compute]\ndevice = "{device}"\n'
    )
    return cfg


def run_transcribd(cfg: Path, *args: str) -> dict[str, Any]:
    report = cfg.parent / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run_one",
            str(report),
            "--",
            "--config",
            str(cfg),
            "--log-level",
            "WARNING",
            *args,
        ],
        cwd=REPO,
        check=True,
    )
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def _drop(src: Path, inbox: Path, name: str) -> None:
    part = inbox / f".{name}.part"
    part.write_bytes(src.read_bytes())
    part.rename(inbox / name)


def run_daemon(cfg: Path, clips: list[Path], timeout: float = 1800.0) -> dict[str, Any]:
    """``transcribd run`` as a service: warmed by two files of its own (its two workers load
    their models), then the clips dropped at once; wall seconds from the drop until every job
    is done, and the peak RSS of the daemon with its workers (sampled)."""
    import numpy as np
    import soundfile

    from daemon import config as config_mod
    from daemon.app import status as status_app
    from daemon.errors import UserError
    from daemon.jobs import JobStatus
    from daemon.sysload import tree_rss

    inbox = cfg.parent / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    config = config_mod.load(cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--config", str(cfg), "--log-level", "WARNING", "run"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    peak = 0

    def wait_done(count: int) -> None:
        nonlocal peak
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            peak = max(peak, tree_rss(proc.pid))
            try:
                jobs = status_app.status(config).jobs
            except UserError:  # the daemon has not created its database yet
                jobs = []
            if len(jobs) >= count and all(
                j.job.status in (JobStatus.DONE, JobStatus.FAILED) for j in jobs
            ):
                return
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited with {proc.returncode}")
            time.sleep(0.2)
        raise SystemExit("the daemon did not finish in time")

    try:
        for i in range(2):  # warm-up files, not counted: other content than the clips
            audio, rate = soundfile.read(clips[i])
            soundfile.write(inbox / f"warmup-{i}.wav", np.asarray(audio) * 0.5, rate)
        wait_done(2)
        started = time.perf_counter()
        for clip in clips:
            _drop(clip, inbox, clip.name)
        wait_done(2 + len(clips))
        wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    return {"wall": wall, "peak_rss": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--long-minutes", type=float, default=14.0)
    parser.add_argument("--profiles", nargs="+", default=["fast", "balanced", "quality"])
    parser.add_argument(
        "--runtimes",
        nargs="+",
        default=["onnxruntime", "torch"],
        help="diarization runtimes, each profile run with each (the first is the default's)",
    )
    parser.add_argument(
        "--no-steps",
        dest="steps",
        action="store_false",
        help="skip the runs without overlap that give the per-step table",
    )
    parser.add_argument("--short", type=int, default=20)
    parser.add_argument("--memory-minutes", type=float, nargs="*", default=[15.0, 180.0])
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or cuda:N (the baseline's too)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")
    from daemon import devices

    try:
        chosen = devices.resolve(args.device)
    except (ValueError, devices.DeviceError) as exc:
        raise SystemExit(f"--device {args.device}: {exc}") from None
    device = chosen.name
    print(f"models run on {device}: {chosen.reason}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="transcribd-speed-"))
    results: dict[str, Any] = {"device": device}

    if args.long_minutes > 0:
        long_wav = tmp / "long.wav"
        ref = build_long(args.eval, args.long_minutes, long_wav)
        steps: dict[str, dict[str, Any]] = {}
        base = run_baseline(long_wav, device)
        duration = base["duration"]
        rows = [
            {
                "run": "baseline",
                "wall": base["wall"],
                "rtf": base["wall"] / duration,
                "cpu": base["cpu"],
                "peak_rss": base["peak_rss"],
                "der": der(ref, [tuple(t) for t in base["turns"]]),
                "speedup": 1.0,
            }
        ]

        def transcribe(name: str, profile: str, runtime: str, overlap: bool) -> dict[str, Any]:
            cfg = config_for(tmp, name, runtime, overlap, device)
            rep = run_transcribd(
                cfg,
                "transcribe",
                str(long_wav),
                "-o",
                str(cfg.parent / "out"),
                "--profile",
                profile,
                "--metrics",
                str(cfg.parent / "metrics.json"),
            )
            rep["metrics"] = json.loads((cfg.parent / "metrics.json").read_text())
            rep["der"] = der(ref, load_rttm(str(cfg.parent / "out" / "long.rttm")))
            return rep

        for profile in args.profiles:
            for runtime in args.runtimes:
                run = profile if runtime == args.runtimes[0] else f"{profile}/{runtime}"
                rep = transcribe(f"long-{profile}-{runtime}", profile, runtime, True)
                rows.append(
                    {
                        "run": run,
                        "wall": rep["wall"],
                        "rtf": rep["wall"] / duration,
                        "cpu": rep["cpu"],
                        "peak_rss": rep["peak_rss"],
                        "der": rep["der"],
                        "speedup": base["wall"] / rep["wall"],
                    }
                )
                if args.steps:
                    # one after the other: each step's wall and CPU seconds are its own
                    seq = transcribe(f"steps-{profile}-{runtime}", profile, runtime, False)
                    steps[run] = seq["metrics"]
        results["long"] = {"minutes": duration / 60, "rows": rows, "steps": steps}
        print(f"\nlong file: {duration / 60:.1f} min")
        print(
            f"{'run':<10} {'wall s':>8} {'RTF':>7} {'CPU s':>8} {'peak RSS':>9} "
            f"{'DER':>6} {'speed-up':>8}"
        )
        for r in rows:
            print(
                f"{r['run']:<10} {r['wall']:8.1f} {r['rtf']:7.3f} {r['cpu']:8.1f} "
                f"{r['peak_rss'] / 1e9:8.2f}G {r['der']:6.3f} {r['speedup']:7.2f}x",
                flush=True,
            )
        for run, metrics in steps.items():
            print(
                f"\nwhere {run}'s time went, steps one after the other "
                f"(overlap_diarization = false; wall {metrics['wall_seconds']:.1f} s)"
            )
            print(f"{'step':<24} {'wall s':>8} {'share':>6} {'CPU s':>8}")
            for name, wall, share, cpu in step_rows(metrics):
                print(f"{name:<24} {wall:8.1f} {share * 100:5.1f}% {cpu:8.1f}", flush=True)
        for row in rows[1:]:
            seq = steps.get(row["run"])
            if seq is None:
                continue
            asr = seq["steps"]["seconds"].get("asr", 0.0)
            alone = seq["steps"]["seconds"].get("diarize", 0.0)
            print(
                f"{row['run']}: ASR alone {asr:.1f} s; the job with diarization beside it "
                f"{row['wall']:.1f} s (+{(row['wall'] / asr - 1) * 100:.0f} % over ASR alone, "
                f"start-up included); diarization alone {alone:.1f} s "
                f"({alone / asr * 100:.0f} % of ASR alone)",
                flush=True,
            )

    if args.short > 0:
        clips = sorted((args.eval / "asr_en").glob("*.wav"))[: args.short]
        started = time.perf_counter()
        for clip in clips:
            run_baseline(clip, device)
        base_wall = time.perf_counter() - started
        cfg = config_for(tmp, "warm", device=device)
        inbox = cfg.parent / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        for clip in clips:
            (inbox / clip.name).write_bytes(clip.read_bytes())
        rep = run_transcribd(cfg, "run", "--once")
        daemon = run_daemon(config_for(tmp, "daemon", device=device), clips)
        results["warm"] = {
            "files": len(clips),
            "baseline_wall": base_wall,
            "transcribd_wall": rep["wall"],
            "speedup": base_wall / rep["wall"],
            "transcribd_peak_rss": rep["peak_rss"],
            "daemon_wall": daemon["wall"],
            "daemon_speedup": base_wall / daemon["wall"],
            "daemon_peak_rss": daemon["peak_rss"],
        }
        print(
            f"\nwarm throughput, {len(clips)} short files: baseline {base_wall:.1f} s; "
            f"running daemon (warm) {daemon['wall']:.1f} s -> x{base_wall / daemon['wall']:.2f}; "
            f"transcribd run --once (start-up included) {rep['wall']:.1f} s "
            f"-> x{base_wall / rep['wall']:.2f}",
            flush=True,
        )

    memory = []
    for minutes in args.memory_minutes:
        wav = tmp / f"mem-{minutes:g}.wav"
        build_long(args.eval, minutes, wav)
        cfg = config_for(tmp, f"mem-{minutes:g}", device=device)
        rep = run_transcribd(
            cfg, "transcribe", str(wav), "-o", str(cfg.parent / "out"), "--profile", "fast"
        )
        memory.append(
            {
                "minutes": minutes,
                "peak_rss": rep["peak_rss"],
                "wall": rep["wall"],
                "rtf": rep["wall"] / (minutes * 60),
            }
        )
        print(
            f"memory: {minutes:g} min -> peak RSS {rep['peak_rss'] / 1e9:.2f} GB "
            f"(RTF {rep['wall'] / (minutes * 60):.3f})",
            flush=True,
        )
    if memory:
        results["memory"] = memory
        if len(memory) > 1:
            ratio = memory[-1]["peak_rss"] / memory[0]["peak_rss"]
            print(
                f"memory growth {memory[-1]['minutes']:g} min / {memory[0]['minutes']:g} min:"
                f" x{ratio:.2f}"
            )

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten {args.out / 'speed.json'}")


if __name__ == "__main__":
    main()
