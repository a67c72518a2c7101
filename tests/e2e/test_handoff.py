"""Transcripts handed to the tools people use: where they land and under which names (media
servers), through a real daemon on a real folder with real speech from ../shared/eval."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import need_eval
from tests.e2e.running import Daemon, all_ended, drop
from tests.webhook_server import Receiver, serve

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


@pytest.mark.slow  # among the longest: CI runs it with -m slow
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


CPU_FAST = (("device", "cpu"), ("profile", "fast"))
"""The labels of a fast job's figures on the CPU."""


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The daemon's /metrics, parsed by prometheus_client's own parser: sample name ->
    sorted labels -> value."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_prometheus_metrics_of_a_running_daemon(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    inbox = tmp_path / "inbox"
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_text(tmp_path, model_cache, '[metrics]\nlisten = "127.0.0.1:0"\n'))
    inbox.mkdir()
    daemons.append(d := Daemon(cfg))
    d.wait_log("metrics on http://127.0.0.1:")
    port = int(re.search(r"metrics on http://127\.0\.0\.1:(\d+)/", d.log()).group(1))  # type: ignore[union-attr]
    before = scrape(port)
    assert before["transcribd_database_up"][()] == 1.0
    assert before["transcribd_jobs"][(("status", "done"),)] == 0.0

    drop(need_eval("asr_en", "LJ001-0002.wav"), inbox / "one.wav")
    drop(need_eval("asr_en", "LJ001-0004.wav"), inbox / "two.wav")
    (inbox / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all" * 10)
    d.wait(all_ended(3))
    drop(need_eval("asr_en", "LJ001-0002.wav"), inbox / "copy-of-one.wav")  # from the cache
    jobs = d.wait(all_ended(4))
    assert sorted(j["status"] for j in jobs) == ["done", "done", "done", "failed"], jobs

    m = scrape(port)
    assert m["transcribd_jobs"][(("status", "done"),)] == 3.0
    assert m["transcribd_jobs"][(("status", "failed"),)] == 1.0
    assert m["transcribd_queue_depth"][()] == 0.0
    assert m["transcribd_job_duration_seconds_count"][CPU_FAST] == 3.0
    assert m["transcribd_job_real_time_factor_count"][CPU_FAST] == 3.0
    # the histogram holds each done job's own real-time factor (short clips: model loading
    # makes the first one's large, so no absolute bound)
    rtfs = [j["metrics"]["rtf"] for j in jobs if j["status"] == "done"]
    assert {(j["device"], j["metrics"]["device"]) for j in jobs if j["status"] == "done"} == {
        ("cpu", "cpu")
    }
    assert all(r > 0 for r in rtfs), rtfs
    rtf_sum = m["transcribd_job_real_time_factor_sum"][CPU_FAST]
    assert rtf_sum == pytest.approx(sum(rtfs), rel=1e-3)
    assert m["transcribd_audio_seconds_total"][CPU_FAST] > 5.0
    assert m["transcribd_steps_computed_total"][(("step", "asr"),)] == 2.0
    assert m["transcribd_step_cache_hits_total"][(("step", "asr"),)] == 1.0  # the copy
    assert m["transcribd_step_seconds_total"][(("step", "asr"),)] > 0.0
    assert m["transcribd_attempt_failures_total"][(("reason", "bad_input"),)] == 1.0
    assert m["transcribd_model_loads_total"][()] >= 1.0
    assert m["transcribd_workers"][()] == 1.0 and m["transcribd_worker_threads"][()] >= 1.0

    drop(need_eval("asr_en", "LJ001-0006.wav"), inbox / "three.wav")
    d.stop()  # a job may be queued or running; the gauges come from the database
    assert d.proc.returncode == 0


def test_a_metrics_port_in_use_stops_the_start_with_one_line(
    tmp_path: Path, model_cache: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "config.toml"
        cfg.write_text(
            config_text(tmp_path, model_cache, f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        )
        res = subprocess.run(
            [sys.executable, "-m", "daemon", "--config", str(cfg), "run"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode == 2, res.stderr
    assert f"metrics.listen 127.0.0.1:{port}: Address already in use" in res.stderr
    assert "Traceback" not in res.stderr


def hook_script(folder: Path) -> Path:
    """A real hook program: each call leaves its argv and stdin in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hook.sh"
    path.write_text(
        "#!/bin/sh\n"
        f'd="{folder}"\n'
        'n=$(ls "$d"/call-*.json 2>/dev/null | wc -l)\n'
        'for a in "$@"; do printf "%s\\n" "$a"; done > "$d/call-$n.argv"\n'
        'cat > "$d/call-$n.json"\n'
    )
    path.chmod(0o755)
    return path


def wait_until(test: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow  # two daemon starts: CI runs it with -m slow
def test_webhook_and_hooks_survive_a_daemon_restart_delivered_once(
    tmp_path: Path, model_cache: Path, daemons: list[Daemon]
) -> None:
    receiver = Receiver(answers=[503, 503])  # the first two deliveries fail
    server = serve(receiver)
    url = next(server)
    try:
        script = hook_script(tmp_path / "calls")
        hooks_toml = (
            f'[hooks]\non_done = ["{script}", "{{txt}}", "{{status}}", "{{source}}"]\n'
            f'on_failed = ["{script}", "{{status}}", "{{job}}"]\n'
            f'webhook = "{url}"\nwebhook_secret = "s3cret"\nbackoff_seconds = 3.0\n'
            "failure_hold_seconds = 1.0\n"  # broken.wav's failure: announced after 1 s
        )
        cfg = tmp_path / "config.toml"
        cfg.write_text(config_text(tmp_path, model_cache, hooks_toml))
        inbox = tmp_path / "inbox"
        drop(need_eval("asr_en", "LJ001-0002.wav"), inbox / "my talk.wav")
        daemons.append(first := Daemon(cfg, "first"))
        [job] = first.wait(all_ended(1))
        wait_until(lambda: len(receiver.received) >= 1, 30, "the first delivery")
        assert first.stop() == 0  # a restart while the webhook still owes a delivery
        assert not receiver.delivered

        daemons.append(second := Daemon(cfg, "second"))
        wait_until(lambda: len(receiver.delivered) == 1, 60, "the delivery after the restart")
        (inbox / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio" * 10)
        jobs = second.wait(all_ended(2))
        wait_until(lambda: len(receiver.delivered) == 2, 30, "the failed job's delivery")
        shown = second.status(str(job["id"]))
        assert second.stop() == 0

        daemons.append(third := Daemon(cfg, "third"))  # nothing delivered is delivered again
        time.sleep(3.0)
        assert third.stop() == 0
    finally:
        server.close()

    done = [r for r in receiver.received if r.json["event"] == "done"]
    assert [r.answered for r in done] == [503, 503, 200]
    assert len({r.body for r in done}) == 1  # the same announcement each time
    assert {r.headers["Idempotency-Key"] for r in done} == {f"{job['id']}-1"}
    for r in receiver.received:
        mac = hmac.new(b"s3cret", r.body, hashlib.sha256).hexdigest()
        assert r.headers["X-Transcribd-Signature-256"] == f"sha256={mac}"
    record = done[0].json
    assert record["job"]["status"] == "done" and record["job"]["path"].endswith("my talk.wav")
    assert "comparatively modern" in Path(record["files"]["txt"]).read_text()
    (failed,) = [j for j in jobs if j["status"] == "failed"]
    assert receiver.delivered[1].json["job"]["id"] == failed["id"]

    # the hooks ran once per end, each file name one argument, the record on stdin
    calls = sorted((tmp_path / "calls").glob("call-*.argv"))
    argvs = sorted(c.read_text().splitlines() for c in calls)
    assert argvs == sorted(
        [
            [str(tmp_path / "out" / "my talk.txt"), "done", str(inbox / "my talk.wav")],
            ["failed", str(failed["id"])],
        ]
    )
    assert len(list((tmp_path / "calls").glob("call-*.json"))) == 2

    # status JOB shows how the announcements went; the job's own status is untouched
    assert "webhook" in shown and "delivered" in shown and "HTTP 200" in shown, shown
    assert re.search(r"on_done\s+done\s+delivered\s+1\s+exit 0", shown), shown
    assert re.search(r"webhook\s+done\s+delivered\s+3\s+HTTP 200", shown), shown
    assert job["status"] == "done"
