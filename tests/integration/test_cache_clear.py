"""Dropping cached steps from the command line (``cache clear``, ``requeue --recompute``) on a
real SQLite file: jobs made by a real ``run --once`` on files that fail at once (no model
needed), their contents' step results stored through the store's own rows module."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from daemon.cli import cli
from daemon.config import Config
from daemon.store import open_store

STEPS = ("probe", "vad", "asr", "diarize")


@pytest.fixture
def invoke(config_file: Path) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(config_file), *args])

    return run


def failed_jobs(invoke: Callable[..., Result], tmp_path: Path, names: list[str]) -> list[str]:
    """One failed job per name (text with an audio suffix), ids in order; their sha256s."""
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    for name in names:
        (inbox / name).write_text(f"{name} is not audio\n" * 50)
    res = invoke("run", "--once")
    assert res.exit_code == 0 and f"{len(names)} failed" in res.output, res.output
    jobs = json.loads(invoke("status", "--json").output)
    assert [j["status"] for j in jobs] == ["failed"] * len(names)
    return [str(j["sha256"]) for j in sorted(jobs, key=lambda j: j["id"])]


def fill(config: Config, sha256s: list[str]) -> None:
    store = open_store(config)
    now = datetime.now(UTC)
    for sha in sha256s:
        for step in STEPS:
            store.results.cache_put(sha, step, f"{step}-params", {"step": step}, now)
    store.close()


def cached(config: Config, sha256: str) -> list[str]:
    store = open_store(config)
    try:
        found = [s for s in STEPS if store.results.cache_get(sha256, s, f"{s}-params")]
    finally:
        store.close()
    return found


def test_cache_clear_drops_a_jobs_steps(
    invoke: Callable[..., Result], tmp_path: Path, config: Config
) -> None:
    a, b = failed_jobs(invoke, tmp_path, ["a.mp3", "b.mp3"])
    fill(config, [a, b])
    res = invoke("cache", "clear", "--step", "asr", "--step", "diarize", "1")
    assert res.exit_code == 0, res.output
    assert res.output.strip() == "dropped 2 cached result(s) of #1 (asr, diarize)"
    assert cached(config, a) == ["probe", "vad"] and cached(config, b) == list(STEPS)
    res = invoke("cache", "clear", "1", "7")
    assert res.exit_code == 0
    assert "dropped 2 cached result(s) of #1 (every step)" in res.output
    assert "skipped #7: no such job" in res.output
    assert cached(config, a) == [] and cached(config, b) == list(STEPS)
    assert invoke("cache", "clear", "7").exit_code == 1


def test_cache_clear_all_and_usage(
    invoke: Callable[..., Result], tmp_path: Path, config: Config
) -> None:
    a, b = failed_jobs(invoke, tmp_path, ["a.mp3", "b.mp3"])
    fill(config, [a, b])
    assert invoke("cache", "clear").exit_code == 2  # neither jobs nor --all: nothing guessed
    assert invoke("cache", "clear", "--all", "1").exit_code == 2
    assert invoke("cache", "clear", "--step", "nonsense", "1").exit_code == 2
    assert cached(config, a) == list(STEPS)
    res = invoke("cache", "clear", "--all", "--step", "vad")
    assert res.exit_code == 0 and res.output.strip() == "dropped 2 cached result(s) (vad)"
    assert cached(config, a) == cached(config, b) == ["probe", "asr", "diarize"]


def test_requeue_recompute_drops_the_steps_of_what_it_requeues(
    invoke: Callable[..., Result], tmp_path: Path, config: Config
) -> None:
    a, b = failed_jobs(invoke, tmp_path, ["a.mp3", "b.mp3"])
    fill(config, [a, b])
    res = invoke("requeue", "1")
    assert res.exit_code == 0 and res.output.strip() == "requeued #1"
    assert cached(config, a) == list(STEPS)  # a plain requeue keeps the cache
    res = invoke("requeue", "--recompute", "1", "2")
    assert res.exit_code == 0
    assert "requeued #2 (cached steps dropped: computed again)" in res.output
    assert "skipped #1: job is queued" in res.output
    assert cached(config, a) == list(STEPS)  # not requeued: its steps stay
    assert cached(config, b) == []


def test_cache_clear_says_which_jobs_share_the_content(
    invoke: Callable[..., Result], tmp_path: Path, config: Config
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.mp3").write_text("not audio\n" * 50)
    (inbox / "copy.mp3").write_text("not audio\n" * 50)
    assert invoke("run", "--once").exit_code == 0
    jobs = json.loads(invoke("status", "--json").output)
    assert len(jobs) == 2 and jobs[0]["sha256"] == jobs[1]["sha256"]
    fill(config, [jobs[0]["sha256"]])
    res = invoke("cache", "clear", "1")
    assert res.exit_code == 0
    assert "dropped 4 cached result(s) of #1 (every step)" in res.output
    assert "#1 has the same content as #2: theirs are dropped too" in res.output
