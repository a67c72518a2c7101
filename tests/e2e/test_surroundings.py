"""The promises hold when the surroundings change: real daemon processes on a real folder and
SQLite file, real speech (LJSpeech clips of ../shared/eval), asserting on ``status --json``,
``status`` and the output folder.

All of them run the fast profile on English with diarization off: one small model per worker,
so that each scenario takes seconds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import need_eval
from tests.e2e.running import Daemon, all_ended, drop

pytestmark = [pytest.mark.model, pytest.mark.eval]


def config_text(tmp_path: Path, model_cache: Path, daemon: str = "", extra: str = "") -> str:
    return (
        f'[database]\nurl = "sqlite:///{tmp_path / "jobs.db"}"\n'
        f'[watch]\nfolders = ["{tmp_path / "inbox"}"]\nstable_seconds = 0.5\n'
        f'[output]\ndir = "{tmp_path / "out"}"\nformats = ["txt", "json"]\n'
        '[pipeline]\nprofile = "fast"\nlanguage = "en"\n'
        f'[models]\ncache_dir = "{model_cache}"\n'
        "[diarization]\nenabled = false\n"
        f'[daemon]\nwork_dir = "{tmp_path / "work"}"\ntick_seconds = 0.5\nmax_workers = 1\n'
        + daemon
        + extra
    )


def reference(name: str) -> str:
    return need_eval("asr_en", f"{name}.txt").read_text().lower()


def words_of(text: str) -> set[str]:
    return {w.strip(".,;:!?\"'").lower() for w in text.split()} - {""}


def heard(text: str, clip: str) -> float:
    """Share of the clip's reference words found in ``text``."""
    ref = words_of(reference(clip))
    return len(ref & words_of(text)) / len(ref)


def test_two_daemons_on_one_database_do_each_file_once(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    clips = [f"LJ001-{n:04d}" for n in (2, 4, 6, 8, 9, 10)]
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(tmp_path, model_cache))
    (tmp_path / "inbox").mkdir()
    daemons += [Daemon(cfg, "first"), Daemon(cfg, "second")]
    for clip in clips:
        drop(need_eval("asr_en", f"{clip}.wav"), tmp_path / "inbox" / f"{clip}.wav")
    jobs = daemons[0].wait(all_ended(len(clips)), timeout=240)
    assert [d.stop() for d in daemons] == [0, 0]
    assert sorted(Path(j["path"]).stem for j in jobs) == clips  # one job per file
    assert {j["status"] for j in jobs} == {"done"}, jobs
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{c}.{ext}" for c in clips for ext in ("json", "txt")
    )  # one set of outputs each, no "-1" copies
    for clip in clips:
        assert heard((tmp_path / "out" / f"{clip}.txt").read_text(), clip) > 0.7, clip
    logs = daemons[0].log() + daemons[1].log()
    assert "No such file" not in logs and "Traceback" not in logs, logs[-3000:]
    assert not list((tmp_path / "work").glob("*.pcm*"))  # every attempt's spool is gone


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_new_content_at_a_path_replaces_its_transcript(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(tmp_path, model_cache))
    talk = tmp_path / "inbox" / "talk.wav"
    drop(need_eval("asr_en", "LJ001-0002.wav"), talk)
    daemons.append(d := Daemon(cfg))
    d.wait(lambda jobs: len(jobs) == 1 and jobs[0]["status"] == "done")
    assert heard((tmp_path / "out" / "talk.txt").read_text(), "LJ001-0002") > 0.7

    drop(need_eval("asr_en", "LJ001-0004.wav"), talk)  # a new recording, the same name
    jobs = d.wait(lambda jobs: len(jobs) == 2 and jobs[1]["status"] == "done")
    assert heard((tmp_path / "out" / "talk.txt").read_text(), "LJ001-0004") > 0.7
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["talk.json", "talk.txt"]
    assert jobs[0]["status"] == "superseded" and f"#{jobs[1]['id']}" in jobs[0]["error"]
    assert "superseded" in d.status()

    # a slow writer: three pieces with pauses longer than stable_seconds
    data = need_eval("asr_en", "LJ001-0006.wav").read_bytes()
    slow = tmp_path / "inbox" / "slow.wav"
    third = len(data) // 3
    with slow.open("wb") as f:
        for i in range(3):
            f.write(data[i * third : None if i == 2 else (i + 1) * third])
            f.flush()
            time.sleep(2.5)
    jobs = d.wait(
        lambda jobs: any(j["path"].endswith("slow.wav") and j["status"] == "done" for j in jobs)
    )
    assert d.stop() == 0
    ended = [j for j in jobs if j["path"].endswith("slow.wav")]
    assert [j["status"] for j in ended].count("done") == 1
    assert {j["status"] for j in ended} <= {"done", "superseded"}, ended  # no failed leftovers
    assert heard((tmp_path / "out" / "slow.txt").read_text(), "LJ001-0006") > 0.7
    requeued = subprocess.run([*d.cmd, "requeue", "--failed"], capture_output=True, text=True)
    assert "nothing to requeue" in requeued.stdout, requeued


def test_a_deleted_database_stops_the_daemon(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(tmp_path, model_cache))
    drop(need_eval("asr_en", "LJ001-0002.wav"), tmp_path / "inbox" / "a.wav")
    daemons.append(d := Daemon(cfg))
    d.wait(lambda jobs: len(jobs) == 1 and jobs[0]["status"] == "done")
    assert "daemon: running" in d.status()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'jobs.db'}{suffix}").unlink(missing_ok=True)
    code = d.proc.wait(timeout=30)  # noticed within a tick or two
    assert code == 1, d.log()[-3000:]
    assert "jobs.db was deleted while the daemon ran" in d.log()
    d.stop()
    # status never makes a database: it says there is none (a restart begins on a fresh one)
    after = subprocess.run([*d.cmd, "status"], capture_output=True, text=True, check=False)
    assert after.returncode == 1 and "no database at" in after.stderr
    assert not (tmp_path / "jobs.db").exists()


def test_sighup_reloads_folders_and_signals_never_kill_without_a_graceful_stop(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(tmp_path, model_cache))
    daemons.append(d := Daemon(cfg))
    calls = tmp_path / "calls"
    calls.mkdir()
    text = config_text(tmp_path, model_cache, 'log_level = "DEBUG"\n')
    text = text.replace(
        f'folders = ["{tmp_path / "inbox"}"]', f'folders = ["{tmp_path / "inbox"}", "{calls}"]'
    )
    text = text.replace('profile = "fast"', 'profile = "balanced"')
    cfg.write_text(text + f'[folders."{calls}"]\nprofile = "fast"\n')
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("reload: watch.folders, daemon.log_level, folders")
    d.wait_log("applied only after a restart: pipeline.profile")
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        d.proc.send_signal(sig)
    drop(need_eval("asr_en", "LJ001-0002.wav"), calls / "call.wav")
    jobs = d.wait(lambda jobs: len(jobs) == 1 and jobs[0]["status"] == "done")
    assert jobs[0]["profile"] == "fast" and jobs[0]["options"] == {"profile": "fast"}
    assert d.proc.poll() is None  # alive after SIGHUP, SIGUSR1, SIGUSR2
    assert d.stop(signal.SIGQUIT) == 0  # graceful too
    assert "stopped" in d.log()


def test_a_watched_folder_deleted_and_recreated(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(tmp_path, model_cache))
    daemons.append(d := Daemon(cfg))
    inbox = tmp_path / "inbox"
    shutil.rmtree(inbox)
    d.wait_log("is missing")
    deadline = time.monotonic() + 10
    while "is missing" not in (shown := d.status()) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert f"warning: watched folder {inbox} is missing" in shown
    inbox.mkdir()
    drop(need_eval("asr_en", "LJ001-0002.wav"), inbox / "back.wav")
    d.wait(lambda jobs: len(jobs) == 1 and jobs[0]["status"] == "done")
    assert "is there again" in d.log()
    assert d.stop() == 0


def test_disk_full_backs_off_and_says_what_to_do(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs as a full disk")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(out)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        filler = out / "filler.bin"
        with pytest.raises(OSError), filler.open("wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
        cfg = tmp_path / "config.toml"
        backoff = "max_attempts = 2\nresource_backoff_seconds = 2.0\n"
        cfg.write_text(config_text(tmp_path, model_cache, backoff))
        drop(need_eval("asr_en", "LJ001-0002.wav"), tmp_path / "inbox" / "a.wav")
        daemons.append(d := Daemon(cfg))
        jobs = d.wait(lambda jobs: len(jobs) == 1 and jobs[0]["status"] == "failed")
        error = jobs[0]["error"]
        assert "No space left on device" in error, error
        assert "free some space, then run: transcribd requeue --failed" in error, error
        assert "retries" not in error and jobs[0]["attempts"] == 2
        assert "the job retries in 2 s" in d.log()
        filler.unlink()  # the user frees space and requeues
        subprocess.run([*d.cmd, "requeue", "--failed"], check=True, capture_output=True)
        jobs = d.wait(lambda jobs: jobs[0]["status"] == "done")
        assert heard((out / "a.txt").read_text(), "LJ001-0002") > 0.7
        assert d.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


def test_a_deleted_input_cancels_its_job(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(tmp_path, model_cache))
    keep = drop(need_eval("asr_en", "LJ001-0002.wav"), tmp_path / "elsewhere" / "keep.wav")
    gone = drop(need_eval("asr_en", "LJ001-0004.wav"), tmp_path / "elsewhere" / "gone.wav")
    cmd = [sys.executable, "-m", "daemon", "--config", str(cfg)]
    subprocess.run([*cmd, "add", str(keep), str(gone)], check=True, capture_output=True)
    gone.unlink()  # removed while its job waits
    daemons.append(d := Daemon(cfg))
    jobs = d.wait(all_ended(2))
    assert d.stop() == 0
    assert [j["status"] for j in jobs] == ["done", "cancelled"], jobs
    assert "input removed" in jobs[1]["error"] and "gone.wav no longer exists" in jobs[1]["error"]
    assert "cancelled" in d.status()
    assert not (tmp_path / "out" / "gone.txt").exists()
