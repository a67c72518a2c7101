"""What a worker's memory is made of: RSS after each import and each model load, then idle after
real jobs (issue 16, item 3).

    python -m bench.worker_memory [--profile fast] [--threads 2] [--clip SECONDS]

One fresh process, set up as a worker is (:func:`daemon.threads.worker_env`, bounded malloc
arenas): RSS after importing the worker's own code, then each heavy library, then loading each
model the profile uses, then after two jobs (an English clip and a two-speaker conversation
from ../shared/eval) and once more after glibc has been asked to give freed memory back: the
idle warm worker.  Last, "idle after unload": its models dropped (:meth:`WarmModels.unload`)
and freed memory given back, what a worker that unloaded its idle models held before issue
35 (since then an idle worker exits: ``python -m bench.idle_memory`` measures the daemon).
Results go to bench/results/worker_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, os, sys, tempfile, time
from pathlib import Path
stages = []
from daemon.sysload import tree_rss as rss
def mark(name, started):
    stages.append({"stage": name, "rss": rss(), "seconds": time.perf_counter() - started})
profile_name, threads, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
from daemon.threads import worker_env
os.environ.update(worker_env(threads))
t = time.perf_counter(); mark("python", t)
t = time.perf_counter()
from daemon import jobrun, sysload
sysload.bound_malloc_arenas()
mark("import daemon.jobrun", t)
from daemon.pipeline import pyannote_env
for module in ("numpy", "ctranslate2", "faster_whisper", "onnxruntime", "torch"):
    t = time.perf_counter(); __import__(module); mark(f"import {module}", t)
t = time.perf_counter(); pyannote_env.torchaudio(); mark("import torchaudio", t)
for module in ("lightning", "pyannote.audio"):
    t = time.perf_counter(); __import__(module); mark(f"import {module}", t)
from daemon.config import from_mapping
from daemon.jobs import JobOptions
from daemon.intake import hash_file
from daemon.profiles import resolve
from daemon.store import open_store
from daemon.warm import WarmModels
home = Path(tempfile.mkdtemp())
config = from_mapping({
    "database": {"url": f"sqlite:///{home / 'jobs.db'}"},
    "daemon": {"work_dir": str(home / "work")},
    "output": {"dir": str(home / "out")},
    "watch": {"folders": [str(home / "in")]},
    "compute": {"device": "cpu"},
})
store = open_store(config, migrate=True)
models = WarmModels.of(config)
profile = resolve(profile_name, config.profiles)
t = time.perf_counter()
models.asr(models.resolve(profile.model), profile.compute_type, threads)
mark(f"load whisper {profile.model}", t)
if profile.english_model:
    t = time.perf_counter()
    models.asr(models.resolve(profile.english_model), profile.compute_type, threads)
    mark(f"load whisper {profile.english_model}", t)
t = time.perf_counter()
models.diarizer(profile.diarization, threads)
mark("load diarization", t)
for i, f in enumerate(files):
    t = time.perf_counter()
    sha, _ = hash_file(Path(f))
    jobrun.run_pipeline(config, models, store, Path(f), sha, JobOptions(profile=profile_name),
                         threads=threads)
    mark(f"job {i + 1}: {Path(f).name}", t)
t = time.perf_counter(); sysload.release_free_memory(); mark("idle (malloc_trim)", t)
t = time.perf_counter(); models.unload(); sysload.release_free_memory()
mark("idle after unload", t)
print(json.dumps({"stages": stages, "peak": sysload.peak_rss()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    files = [args.eval / "asr_en" / "jfk.flac", args.eval / "diarization" / "sample.wav"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"evaluation data not found: {', '.join(missing)}")
    env = {**os.environ, "TRANSCRIBD_LOG_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, args.profile, str(args.threads), *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"worker memory, profile {args.profile}, {args.threads} threads")
    print(f"{'stage':<36} {'RSS':>8} {'added':>8} {'s':>6}")
    last = 0
    for s in data["stages"]:
        print(
            f"{s['stage']:<36} {s['rss'] / 1e9:7.3f}G {(s['rss'] - last) / 1e6:7.0f}M "
            f"{s['seconds']:6.2f}"
        )
        last = s["rss"]
    print(f"peak RSS {data['peak'] / 1e9:.3f} GB")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"worker_memory-{args.profile}.json").write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
