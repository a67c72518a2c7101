"""Progress as a user sees it: ``transcribe`` with a bar on a terminal (a real pseudo-terminal)
and plain lines in a pipe; ``status --watch`` redrawn in place."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.cli import display
from daemon.config import Config
from daemon.pipeline.run import DECODE_SHARE
from tests.conftest import lj_clips, need_eval, speech_file, write_config, write_wav

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def interruptible() -> None:
    """In the child: Ctrl-C as at a terminal, even where the test run was started in the
    background (a shell's background jobs ignore SIGINT, and their children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_in_pty(cmd: list[str], seconds: float | None = None) -> tuple[int, str]:
    """Run ``cmd`` with a terminal as stdout and stderr; stop it with SIGINT after
    ``seconds`` (None: let it end).  Its exit code and everything it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        cmd, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, preexec_fn=interruptible
    )
    os.close(follower)
    chunks: list[bytes] = []
    start = time.monotonic()
    interrupted = False
    while time.monotonic() - start < (seconds or 0.0) + 120:  # never hang the test run
        if seconds is not None and not interrupted and time.monotonic() - start > seconds:
            proc.send_signal(signal.SIGINT)
            interrupted = True
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("elapsed", "fraction", "left"),
    [(10.0, 0.5, 10.0), (10.0, 0.25, 30.0), (5.0, 1.0, 0.0), (0.0, 0.5, None), (3.0, 0.0, None)],
)
def test_eta_at_a_steady_pace(elapsed: float, fraction: float, left: float | None) -> None:
    assert display.eta(elapsed, fraction) == left


@pytest.mark.parametrize(
    ("fraction", "shown", "due"),
    [(0.1, 0, [1]), (0.05, 0, []), (0.35, 1, [2, 3]), (0.35, 3, []), (0.4, 3, [4]),
     (1.0, 9, [10]), (1.0, 10, []), (0.3, 0, [1, 2, 3]), (0.1 + 0.65 + 0.25, 3, list(range(4, 11))),
     (0.999, 9, []), (1.2, 9, [10])],
)  # fmt: skip
def test_a_plain_line_at_each_tenth_crossed(fraction: float, shown: int, due: list[int]) -> None:
    assert list(display.tenths_crossed(fraction, shown)) == due


def test_plain_progress_lines_outside_a_terminal() -> None:
    out = io.StringIO()
    with display.progress("talk.wav", out, terminal=False) as report:
        for f in (0.02, 0.1, 0.12, 0.35, 0.5, 1.0, 1.0):
            report(f)
    lines = out.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [f"talk.wav: {t}%" for t in range(10, 101, 10)]
    assert all("left" in line for line in lines)


@pytest.mark.model
@pytest.mark.eval
def test_transcribe_shows_a_bar_with_eta_on_a_terminal_and_lines_in_a_pipe(
    tmp_path: Path, model_cache: Path
) -> None:
    cfg = write_config(tmp_path, model_cache, "[diarization]\nenabled = false\n")
    clip = need_eval("asr_en", "librivox-0870.wav")
    cmd = [sys.executable, "-m", "daemon", "--config", str(cfg), "transcribe", str(clip)]
    code, seen = run_in_pty(cmd)
    assert code == 0, seen
    text = ANSI.sub("", seen)
    assert "librivox-0870.wav" in text and "100%" in text and "eta" in text, text
    assert "━" in text  # the bar itself
    assert (tmp_path / "out" / "librivox-0870.txt").is_file()

    piped = subprocess.run(
        [*cmd, "-o", str(tmp_path / "piped")], capture_output=True, text=True, check=True
    )
    assert "\x1b[" not in piped.stderr  # no terminal codes in a pipe or a log
    assert piped.stderr.rstrip().endswith("librivox-0870.wav: 100%, about 0:00 left"), piped.stderr
    assert piped.stdout.split()[0].endswith("librivox-0870.txt")


@pytest.mark.slow  # among the longest: CI runs it with -m slow
@pytest.mark.model
@pytest.mark.eval
def test_a_minute_of_speech_off_a_terminal_prints_each_tenth(
    tmp_path: Path, model_cache: Path
) -> None:
    """A 60-s recording (real speech, diarized) through ``transcribe`` with stderr in a pipe:
    ten lines, 10 % to 100 % (it printed 10, 35 and 100 %: the pipeline's progress jumps, and
    the printer printed one line per jump)."""
    minute = a_minute_of_speech(tmp_path)
    cfg = write_config(tmp_path, model_cache)
    cmd = [sys.executable, "-m", "daemon", "--config", str(cfg), "transcribe", str(minute)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    seen = [(time.monotonic(), line.rstrip("\n")) for line in proc.stderr]
    out = proc.stdout.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, seen
    assert [line.split(",")[0] for _, line in seen] == [
        f"minute.wav: {tenth}%" for tenth in range(10, 101, 10)
    ], seen
    assert out.split()[0].endswith("minute.txt")


@pytest.mark.model
@pytest.mark.eval
def test_diarization_reports_its_batches_not_only_its_end(
    tmp_path: Path, make_config: Callable[..., Config]
) -> None:
    """One diarization window (a minute of real speech) reports each batch of segmentation and
    of embeddings as it goes (it reported only its end)."""
    from daemon.intake import hash_file
    from daemon.jobrun import speakers_of_file
    from daemon.store import open_store
    from daemon.warm import WarmModels

    config = make_config()
    minute = a_minute_of_speech(tmp_path)
    seen: list[float] = []
    store = open_store(config)
    found = speakers_of_file(
        config, WarmModels.of(config), store, minute, hash_file(minute)[0], seen.append
    )
    store.close()
    assert found.turns
    within = [f for f in seen if DECODE_SHARE < f < 1.0]  # after decoding, before the end
    assert len(set(within)) >= 8, seen
    assert within == sorted(within), seen


def a_minute_of_speech(tmp_path: Path) -> Path:
    """About 60 s of real speech: LJSpeech clips one after the other."""
    clips, seconds = [], 0.0
    for clip in lj_clips():
        with wave.open(str(clip)) as w:
            seconds += w.getnframes() / w.getframerate() + 0.8
        clips.append(clip)
        if seconds >= 59.0:
            break
    assert 58.0 <= seconds <= 70.0
    return speech_file(tmp_path / "minute.wav", clips)


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_status_watch_redraws_in_place_until_ctrl_c(tmp_path: Path, model_cache: Path) -> None:
    cfg = write_config(tmp_path, model_cache)
    base = [sys.executable, "-m", "daemon", "--config", str(cfg)]
    subprocess.run([*base, "add", str(write_wav(tmp_path / "a.wav", 0.5))], check=True)
    code, seen = run_in_pty([*base, "status", "--watch", "--interval", "0.3"], seconds=4.0)
    assert code == 0, seen  # Ctrl-C ends it quietly
    assert "Traceback" not in seen and "KeyboardInterrupt" not in seen, seen
    assert seen.count("a.wav") >= 3, seen  # redrawn several times ...
    assert "\x1b[" in seen  # ... in place, by moving the cursor back up

    piped = subprocess.Popen(
        [*base, "status", "--watch", "--interval", "0.3"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    time.sleep(3.0)
    piped.send_signal(signal.SIGINT)
    out, _ = piped.communicate(timeout=30)
    assert piped.returncode == 0
    blocks = out.split("--- ")[1:]
    assert len(blocks) >= 2 and all("a.wav" in b and "queued" in b for b in blocks), out
    assert "\x1b[" not in out


def test_status_watch_and_json_do_not_mix(tmp_path: Path, model_cache: Path) -> None:
    cfg = write_config(tmp_path, model_cache)
    res = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(cfg), "status", "--watch", "--json"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "--watch" in res.stderr
