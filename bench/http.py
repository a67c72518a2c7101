"""The HTTP face's cost: short clips through the OpenAI API against the same clips dropped into
the watched folder of the same running, warmed daemon, in the same run; then throughput with 1,
4 and 16 concurrent clients.

    python -m bench.http [--clips 20] [--profile fast]

The daemon (``transcribd run`` with ``[http] listen``) is started once, warmed with one job, and
each round gets copies of the clips made distinct by one trailing sample (their own sha256, so
no round is served from another's cached steps; the work is the same).  Folder round: all clips
dropped at once, timed from the first drop to the last job done (read from the database).
API round: all clips sent at once by as many clients, timed from the first request to the last
answer.  The overhead is the API round's time over the folder round's.  Throughput rounds: the
clips sent by 1, 4 and 16 clients, each client sending the next clip as soon as one is
answered.  Results go to bench/results/http.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"


def clips(count: int) -> list[Path]:
    found = sorted((EVAL / "asr_en").glob("LJ001-*.wav")) + sorted(
        (EVAL / "asr_en").glob("libri*.wav")
    )
    if not found:
        raise SystemExit(f"no short clips in {EVAL / 'asr_en'}")
    # fewer clips than asked: some used twice (each copy is made other content, see round_of)
    return [found[i % len(found)] for i in range(count)]


def variant(src: Path, dst: Path, tag: int) -> Path:
    """``src`` with one more sample (of value ``tag``): other content, the same work."""
    with wave.open(str(src)) as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    with wave.open(str(dst), "wb") as out:
        out.setparams(params)
        out.writeframes(frames + int(tag).to_bytes(2, "little", signed=True))
    return dst


def seconds_of(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, root: Path, profile: str) -> None:
        self.root, self.port = root, free_port()
        self.config = root / "config.toml"
        self.config.write_text(
            f'[database]\nurl = "sqlite:///{root / "jobs.db"}"\n'
            f'[watch]\nfolders = ["{root / "inbox"}"]\nstable_seconds = 0.3\n'
            f'[output]\ndir = "{root / "out"}"\n[pipeline]\nprofile = "{profile}"\n'
            f'[models]\ncache_dir = "{root / "models"}"\n'
            f'[daemon]\nwork_dir = "{root / "work"}"\ntick_seconds = 0.5\n'
            f'[http]\nlisten = "127.0.0.1:{self.port}"\nupload_dir = "{root / "uploads"}"\n'
            "max_waiting = 256\n"
        )
        cmd = [sys.executable, "-m", "daemon", "--config", str(self.config)]
        made = subprocess.run(
            [*cmd, "keys", "add", "bench"], capture_output=True, text=True, check=True
        )
        self.key = made.stdout.strip().splitlines()[-1]
        self.log = (root / "daemon.log").open("w")
        self.proc = subprocess.Popen([*cmd, "run"], stdout=subprocess.DEVNULL, stderr=self.log)
        self.url = f"http://127.0.0.1:{self.port}"
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise SystemExit("the daemon never answered")

    def done(self, names: set[str]) -> int:
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{self.root / 'jobs.db'}")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT path FROM jobs WHERE status = 'done'")).scalars().all()
        engine.dispose()
        return sum(1 for p in rows if Path(p).name in names)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)
        self.log.close()


def ask(daemon: Daemon, path: Path) -> float:
    from openai import OpenAI

    client = OpenAI(base_url=f"{daemon.url}/v1", api_key=daemon.key, max_retries=0, timeout=900)
    started = time.perf_counter()
    with path.open("rb") as f:
        client.audio.transcriptions.create(model="whisper-1", file=f, response_format="json")
    return time.perf_counter() - started


def folder_round(daemon: Daemon, files: list[Path]) -> float:
    names = {f.name for f in files}
    started = time.perf_counter()
    for f in files:
        temp = daemon.root / "inbox" / f".{f.name}.part"
        shutil.copy(f, temp)
        temp.rename(daemon.root / "inbox" / f.name)
    while daemon.done(names) < len(files):
        time.sleep(0.1)
    return time.perf_counter() - started


def api_round(daemon: Daemon, files: list[Path], clients: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda f: ask(daemon, f), files))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--profile", default="fast")
    args = parser.parse_args()
    sources = clips(args.clips)
    audio = sum(seconds_of(s) for s in sources)
    results: dict[str, Any] = {"clips": len(sources), "audio_seconds": round(audio, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "inbox").mkdir()
        daemon = Daemon(root, args.profile)
        try:
            made = root / "variants"
            made.mkdir()

            def round_of(tag: int) -> list[Path]:
                # each clip of a round its own content, even where one source is used twice
                return [
                    variant(s, made / f"r{tag}-{i}-{s.name}", tag * 100 + i)
                    for i, s in enumerate(sources)
                ]

            ask(daemon, variant(sources[0], made / "warm.wav", -1))  # models loaded, warm
            results["folder_seconds"] = round(folder_round(daemon, round_of(1)), 2)
            results["api_seconds"] = round(api_round(daemon, round_of(2), len(sources)), 2)
            results["api_over_folder"] = round(
                results["api_seconds"] / results["folder_seconds"], 3
            )
            for tag, clients in ((3, 1), (4, 4), (5, 16)):
                seconds = api_round(daemon, round_of(tag), clients)
                results[f"clients_{clients}"] = {
                    "seconds": round(seconds, 2),
                    "clips_per_minute": round(60 * len(sources) / seconds, 1),
                    "audio_realtime": round(audio / seconds, 1),
                }
        finally:
            daemon.stop()
    print(json.dumps(results, indent=2))
    out = REPO / "bench" / "results" / "http.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
