"""What a running daemon holds once it is idle, and what the first job after the idle time
costs (issue 35).

    python -m bench.idle_memory [--idle-seconds 20] [--after 60] [--profile fast]

``transcribd run`` in a fresh folder with ``[daemon] model_idle_seconds`` set short.  Three
copies of one English clip, each a few samples longer than the last (new content, so nothing
comes from the step cache), are dropped in turn: the first starts a worker, the second runs on
the warm one, the third only after the idle time has passed and ``--after`` seconds more.  For
each: the seconds from the drop to its transcript.  Meanwhile the RSS of the daemon's process
tree (its main process, multiprocessing's resource tracker, the workers) is sampled, and the
main process's shared libraries are looked at for the ML runtimes.  Results go to
bench/results/idle_memory.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile

REPO = Path(__file__).resolve().parents[1]

RUNTIMES = ("libctranslate2", "libtorch", "libonnxruntime", "libtorch_cpu")


def variants(clip: Path, out: Path, count: int) -> list[Path]:
    """``count`` mono WAV copies of ``clip``, the n-th with n + 1 samples of silence added."""
    audio, rate = soundfile.read(str(clip), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = out / f"{clip.stem}-{n}.wav"
        soundfile.write(str(path), np.concatenate([audio, np.zeros(n + 1, np.float32)]), rate)
        paths.append(path)
    return paths


def tree(pid: int) -> list[dict[str, Any]]:
    """The process and its descendants: pid, RSS and what each is."""
    out = []
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    for proc in procs:
        try:
            cmd = " ".join(proc.cmdline())
            rss = proc.memory_info().rss
        except psutil.Error:
            continue
        kind = "main" if proc.pid == pid else "worker"
        if "resource_tracker" in cmd:
            kind = "resource tracker"
        out.append({"pid": proc.pid, "kind": kind, "rss": rss})
    return out


def runtimes_mapped(pid: int) -> list[str]:
    """Which ML runtimes' shared libraries the process has mapped."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return []
    return sorted({name for name in RUNTIMES if f"/{name}" in maps})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--after", type=float, default=60.0, help="seconds watched past it")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--clip", default="asr_en/jfk.flac")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    clip = args.eval / args.clip
    if not clip.is_file():
        raise SystemExit(f"evaluation data not found: {clip}")
    home = Path(tempfile.mkdtemp(prefix="transcribd-idle-"))
    cfg = home / "config.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{home / "jobs.db"}"\n'
        f'[watch]\nfolders = ["{home / "inbox"}"]\nstable_seconds = 0.2\n'
        f'[output]\ndir = "{home / "out"}"\n'
        f'[pipeline]\nprofile = "{args.profile}"\n'
        f'[compute]\ndevice = "cpu"\n'
        f'[daemon]\nwork_dir = "{home / "work"}"\ntick_seconds = 0.5\n'
        f"model_idle_seconds = {args.idle_seconds}\n"
    )
    files = variants(clip, home / "clips", 3)
    log = (home / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--config", str(cfg), "run"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    samples: list[dict[str, Any]] = []
    began = time.monotonic()

    def sample(label: str = "") -> dict[str, Any]:
        procs = tree(proc.pid)
        row = {
            "t": round(time.monotonic() - began, 1),
            "label": label,
            "tree": sum(p["rss"] for p in procs),
            "procs": procs,
        }
        samples.append(row)
        return row

    def transcribe(path: Path) -> float:
        """Seconds from dropping ``path`` to its transcript (the tree sampled meanwhile)."""
        inbox = home / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        part = inbox / f".{path.name}.part"
        part.write_bytes(path.read_bytes())
        part.rename(inbox / path.name)
        while not list((home / "out").rglob(f"{path.stem}.txt")):
            if time.monotonic() - started > 600 or proc.poll() is not None:
                raise SystemExit(f"no transcript of {path.name}: see {home / 'daemon.log'}")
            sample()
            time.sleep(0.1)
        return time.monotonic() - started

    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "watching" not in line:
            raise SystemExit(f"the daemon did not start: see {home / 'daemon.log'}")
        time.sleep(2.0)
        started = sample("started")
        first = transcribe(files[0])
        warm = transcribe(files[1])
        done = sample("after two jobs")
        until = time.monotonic() + args.idle_seconds + args.after
        while time.monotonic() < until:
            sample()
            time.sleep(1.0)
        idle = sample("idle")
        main_libs = runtimes_mapped(proc.pid)
        after_idle = transcribe(files[2])
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    peak = max(s["tree"] for s in samples)
    result = {
        "idle_seconds": args.idle_seconds,
        "profile": args.profile,
        "first_job": first,
        "warm_job": warm,
        "after_idle_job": after_idle,
        "started": started,
        "after_jobs": done,
        "idle": idle,
        "peak_tree": peak,
        "main_runtimes": main_libs,
        "samples": [{k: s[k] for k in ("t", "label", "tree")} for s in samples],
    }

    def row(name: str, s: dict[str, Any]) -> str:
        parts = ", ".join(f"{p['kind']} {p['rss'] / 1e6:.0f} MB" for p in s["procs"])
        return f"{name:<28} tree {s['tree'] / 1e6:6.0f} MB   ({parts})"

    print(f"daemon, profile {args.profile}, model_idle_seconds {args.idle_seconds:g}")
    print(row("started", started))
    print(row("after two jobs", done))
    print(row(f"idle {args.idle_seconds + args.after:g} s later", idle))
    print(f"peak tree RSS {peak / 1e6:.0f} MB")
    print(f"the main process maps: {', '.join(main_libs) or 'no ML runtime'}")
    print(
        f"drop to transcript: first job {first:.1f} s, warm {warm:.1f} s, "
        f"after the idle time {after_idle:.1f} s ({after_idle - warm:+.1f} s over warm)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "idle_memory.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
