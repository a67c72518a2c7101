"""``transcribd config`` prints TOML that ``--config`` reads back to the same configuration:
print it (a real process), load what it printed, compare."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from daemon.config import Config, load
from tests.conftest import REPO


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The same default folders here and in the printing process."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("TRANSCRIBD_CONFIG", "STATE_DIRECTORY", "CACHE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    return dict(os.environ)


def printed(env: dict[str, str], config: Path) -> str:
    """What ``transcribd --config FILE config`` prints."""
    res = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(config), "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return res.stdout


def read_back(tmp_path: Path, text: str) -> Config:
    """``text`` as a config file, loaded as ``--config`` loads it."""
    tomllib.loads(text)  # plain TOML (load would say so too, in its own words)
    again = tmp_path / "printed" / "config.toml"  # elsewhere: relative paths would show
    again.parent.mkdir(exist_ok=True)
    again.write_text(text, encoding="utf-8")
    return load(again)


def same(a: Config, b: Config) -> bool:
    return dataclasses.replace(a, source=None) == dataclasses.replace(b, source=None)


def test_the_defaults_print_as_toml_that_loads_back(tmp_path: Path, env: dict[str, str]) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    text = printed(env, empty)
    assert "null" not in text
    lines = text.splitlines()
    assert lines[0] == f"# config: {empty} (--config)"
    assert "# num_speakers = (unset)  # default" in lines  # was: num_speakers = null
    assert "max_line_chars = 42  # default" in lines
    assert same(read_back(tmp_path, text), load(empty))


def test_every_kind_of_value_loads_back_the_same(tmp_path: Path, env: dict[str, str]) -> None:
    odd = tmp_path / 'in "quoted" \\ back\tslash ünï'
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[watch]\nfolders = [{_basic(odd)}, "relative/inbox"]\nextensions = ["WAV", "mp3"]\n'
        "stable_seconds = 3\n"
        "[output]\nmax_cue_seconds = 6.5\nformats = []\n"
        '[pipeline]\ninitial_prompt = "Names: Okonkwo; a \\"quote\\" and a\\nnew line"\n'
        "[diarization]\nmin_speakers = 2\n"
        '[hooks]\non_done = ["/bin/true", "{json}"]\nwebhook = "https://h.lan/in"\n'
        '[daemon]\nnode = "box-3"\nlog_level = "DEBUG"\n'
        '[profiles.fast]\nbeam_size = 2\nenglish_model = ""\n'
        "[profiles.quality]\n"
        f'[folders.{_basic(odd / "standups")}]\nlanguage = "en"\nnum_speakers = 4\n'
        "voices = false\n"
        '[folders."relative/calls"]\nprofile = "fast"\n'
    )
    original = load(cfg)
    text = printed(env, cfg)
    assert "null" not in text and "None" not in text
    assert "num_speakers = 4  # file" in text and "# max_speakers = (unset)  # default" in text
    assert "[profiles.quality]" in text and "[profiles.fast]" in text
    again = read_back(tmp_path, text)
    assert again.folders == original.folders and again.profiles == original.profiles
    assert same(again, original)


def test_secrets_are_never_printed_and_say_so(tmp_path: Path, env: dict[str, str]) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[database]\nurl = "postgresql+psycopg://tx:hunter2@db.lan/tx"\n'
        '[hooks]\nwebhook = "https://u:pw@h.lan/in?token=t0k"\nwebhook_secret = "s3cret"\n'
    )
    text = printed(env, cfg)
    for secret in ("hunter2", "s3cret", "t0k", ":pw@"):
        assert secret not in text
    lines = text.splitlines()
    assert lines[1] == (
        "# not shown (secrets): database.url, hooks.webhook, hooks.webhook_secret; "
        "fill them in to use this file"
    )
    assert '# url = "postgresql+psycopg://tx:***@db.lan/tx"  # file; a secret, not shown' in lines
    again, original = read_back(tmp_path, text), load(cfg)
    assert again.database.url != original.database.url  # left to the reader to fill in
    filled_in = dataclasses.replace(
        again,
        database=original.database,
        hooks=dataclasses.replace(
            again.hooks, webhook=original.hooks.webhook, webhook_secret="s3cret"
        ),
    )
    assert same(filled_in, original)  # and nothing else differs


def _basic(text: object) -> str:
    """``text`` as a TOML basic string."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return f'"{escaped}"'
