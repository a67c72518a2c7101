"""Transcripts handed to the tools people use: where they land and under which names (media
servers), through a real daemon on a real folder with real speech from ../shared/eval."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import need_eval
from tests.e2e.running import Daemon, all_ended, drop

pytestmark = [pytest.mark.model, pytest.mark.eval]


def config_text(tmp_path: Path, model_cache: Path, extra: str = "") -> str:
    """The fast profile without diarization: seconds per clip."""
    return (
        f'[database]\nurl = "sqlite:///{tmp_path / "jobs.db"}"\n'
        f'[watch]\nfolders = ["{tmp_path / "inbox"}"]\nstable_seconds = 0.5\n'
        f'[output]\ndir = "{tmp_path / "out"}"\nformats = ["txt", "srt", "json"]\n'
        '[pipeline]\nprofile = "fast"\n'
        f'[models]\ncache_dir = "{model_cache}"\n'
        "[diarization]\nenabled = false\n"
        f'[daemon]\nwork_dir = "{tmp_path / "work"}"\ntick_seconds = 0.5\nmax_workers = 1\n' + extra
    )


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_mirror_layout_and_media_server_names_beside_the_media(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    media = inbox / "movies"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        config_text(tmp_path, model_cache)
        + f'[folders."{media}"]\nlayout = "beside"\nname = "{{stem}}.{{lang}}"\n'
    )
    drop(need_eval("asr_en", "LJ001-0002.wav"), inbox / "a" / "talk.wav")
    drop(need_eval("asr_en", "LJ001-0004.wav"), inbox / "b" / "talk.wav")
    drop(need_eval("asr_en", "LJ001-0006.wav"), inbox / "top.wav")
    drop(need_eval("asr_ru", "podlodka_test_0.wav"), media / "Film (2020)" / "film.wav")
    daemons.append(d := Daemon(cfg))
    jobs = d.wait(all_ended(4), timeout=240)
    assert {j["status"] for j in jobs} == {"done"}, jobs

    # mirror (the default): a/talk and b/talk no longer collide; the top stays at the top
    assert names(out / "a") == ["talk.json", "talk.srt", "talk.txt"]
    assert names(out / "b") == ["talk.json", "talk.srt", "talk.txt"]
    assert names(out) == ["top.json", "top.srt", "top.txt"]
    assert json.loads((out / "a" / "talk.json").read_text())["source"].endswith("a/talk.wav")
    assert "comparatively modern" in (out / "a" / "talk.txt").read_text()  # LJ001-0002
    # beside the media, named as Plex/Jellyfin/Bazarr expect, the detected language in the name
    film = media / "Film (2020)"
    assert names(film) == ["film.ru.json", "film.ru.srt", "film.ru.txt", "film.wav"]
    assert not (out / "movies").exists()

    # outputs written into a watched folder are never taken back as input
    time.sleep(3.0)  # several ticks and stability windows
    assert len(d.jobs()) == 4

    # a requeued job replaces its own files in place: no film-1.ru.*
    (film_job,) = [j for j in jobs if j["path"].endswith("film.wav")]
    subprocess.run([*d.cmd, "requeue", str(film_job["id"])], check=True, capture_output=True)
    d.wait(lambda js: any(j["id"] == film_job["id"] and j["status"] == "done" for j in js))
    assert d.stop() == 0
    assert names(film) == ["film.ru.json", "film.ru.srt", "film.ru.txt", "film.wav"]
    assert len(d.jobs()) == 4
