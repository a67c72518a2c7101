"""One failure, one page, through a real daemon: a slow writer's partial pieces (each found
truncated, each superseded by the next) announce nothing, the whole file announces ``done``
once, and a file that stays truncated announces ``failed`` once, when the hold has passed.
A real hook program and a real webhook receiver on 127.0.0.1; silent audio (no model runs)."""

from __future__ import annotations

import stat
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import write_wav
from tests.e2e.running import Daemon, Jobs
from tests.webhook_server import Receiver, serve

HOLD = 8.0


def hook_program(calls: Path) -> Path:
    """Appends "<event> <file name>" to ``calls`` for each call."""
    program = calls.parent / "hook.sh"
    program.write_text(f'#!/bin/sh\necho "$1 $(basename "$2")" >> "{calls}"\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


def config_text(tmp_path: Path, model_cache: Path, program: Path, url: str) -> str:
    hook = f'["{program}", "{{status}}", "{{source}}"]'
    return (
        f'[database]\nurl = "sqlite:///{tmp_path / "jobs.db"}"\n'
        f'[watch]\nfolders = ["{tmp_path / "inbox"}"]\nstable_seconds = 0.5\n'
        f'[output]\ndir = "{tmp_path / "out"}"\nformats = ["txt"]\n'
        '[pipeline]\nprofile = "fast"\nlanguage = "en"\n'
        f'[models]\ncache_dir = "{model_cache}"\n'
        "[diarization]\nenabled = false\n"
        f'[daemon]\nwork_dir = "{tmp_path / "work"}"\ntick_seconds = 0.5\nmax_workers = 1\n'
        f'[hooks]\non_done = {hook}\non_failed = {hook}\nwebhook = "{url}"\n'
        f"failure_hold_seconds = {HOLD}\n"
    )


def named(jobs: Jobs, name: str) -> Jobs:
    return [j for j in jobs if j["path"].endswith(name)]


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_a_slow_writers_pieces_page_nobody_and_a_broken_file_pages_once(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    receiver = Receiver()
    server = serve(receiver)
    url = next(server)
    calls = tmp_path / "calls"
    try:
        cfg = tmp_path / "config.toml"
        cfg.write_text(config_text(tmp_path, model_cache, hook_program(calls), url))
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        whole = write_wav(tmp_path / "whole.wav", 6.0, amplitude=0.0).read_bytes()
        daemons.append(d := Daemon(cfg))

        # the header declares 6 s from the first piece on: each piece but the last is truncated
        with (inbox / "slow.wav").open("wb") as f:
            third = len(whole) // 3
            for i in range(3):
                f.write(whole[i * third : None if i == 2 else (i + 1) * third])
                f.flush()
                time.sleep(2.5)  # longer than stable_seconds: intake takes each piece
        (inbox / "broken.wav").write_bytes(whole[: len(whole) // 2])  # its writer died

        def settled(jobs: Jobs) -> bool:
            hooks = [h for j in jobs for h in j["hooks"]]
            return (
                any(j["status"] == "done" for j in named(jobs, "slow.wav"))
                and any(j["status"] == "failed" for j in named(jobs, "broken.wav"))
                and bool(hooks)
                and all(h["status"] != "pending" for h in hooks)
            )

        jobs = d.wait(settled, timeout=120)
        time.sleep(2.0)  # a few ticks more: nothing else goes out
        assert d.stop() == 0
    finally:
        server.close()

    slow = named(jobs, "slow.wav")
    assert sorted(j["status"] for j in slow).count("done") == 1
    # the pieces that failed as truncated (each made announcements) were superseded: none sent
    failed_pieces = [j for j in slow if j["status"] == "superseded" and j["hooks"]]
    assert failed_pieces, slow
    for j in failed_pieces:
        assert {(h["kind"], h["status"]) for h in j["hooks"]} == {
            ("on_failed", "dropped"),
            ("webhook", "dropped"),
        }, j
    assert calls.read_text().splitlines() == ["done slow.wav", "failed broken.wav"]
    events = [(r.json["event"], Path(r.json["source"]).name) for r in receiver.delivered]
    assert sorted(events) == [("done", "slow.wav"), ("failed", "broken.wav")]
    [broken] = named(jobs, "broken.wav")
    assert "truncated" in broken["error"]
    paged = datetime.fromisoformat(broken["hooks"][0]["updated_at"])
    failed_at = datetime.fromisoformat(broken["finished_at"])
    assert (paged - failed_at).total_seconds() >= HOLD  # once the hold had passed
