"""The server itself: limits (413 as the body passes the limit, 429 past the waiting requests),
no key no answer, a docs page that needs no internet, health, refusing an open door off
loopback, a SIGTERM while requests wait, and a fleet whose front node takes requests that
another node's workers run."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import need_eval, start_postgres, write_config
from tests.e2e.running import Daemon
from tests.http.conftest import free_port, make_key, start_live, wait_healthy


def test_no_key_no_answer_but_health_and_docs_work_offline(
    tmp_path: Path, model_cache: Path
) -> None:
    live = start_live(tmp_path, model_cache)
    try:
        r = httpx.post(f"{live.api}/audio/transcriptions", files={"file": ("a.wav", b"x")})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{live.url}/healthz").json()["database"] == "ok"
        docs = httpx.get(f"{live.url}/docs")
        assert docs.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text) + re.findall(
            r"url: '([^']+)'", docs.text
        )
        assert assets and all(a.startswith("/") for a in assets), assets
        for asset in assets:
            assert httpx.get(f"{live.url}{asset}").status_code == 200, asset
        spec = httpx.get(f"{live.url}/openapi.json").json()
        assert {"/v1/audio/transcriptions", "/asr", "/v1/jobs"} <= set(spec["paths"])
    finally:
        live.daemon.stop()


def test_auth_none_is_refused_off_loopback(tmp_path: Path, model_cache: Path) -> None:
    http = f'[http]\nlisten = "0.0.0.0:{free_port()}"\nauth = "none"\n'
    config = write_config(tmp_path, model_cache, http)
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "loopback" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.slow  # among the longest: CI runs it with -m slow
@pytest.mark.model
def test_upload_limit_and_waiting_limit(tmp_path: Path, model_cache: Path) -> None:
    long_clip = need_eval("diarization", "trn03.wav")  # before a daemon is started
    live = start_live(tmp_path, model_cache, http="max_upload_mb = 1\nmax_waiting = 1\n")
    headers = {"Authorization": f"Bearer {live.key}"}
    try:
        # 2 MB of a 50-MB body sent (chunked, no length declared), then nothing more: the
        # answer comes now, so the server stopped at the limit instead of reading on
        with socket.create_connection(("127.0.0.1", int(live.url.rsplit(":", 1)[1]))) as conn:
            conn.sendall(
                f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {live.key}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                "Transfer-Encoding: chunked\r\n\r\n".encode()
            )
            part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
            for piece in (part, *([b"\0" * (1 << 16)] * 32)):
                conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.settimeout(20)
            answer = conn.recv(4096).decode("latin-1")
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        deadline = time.monotonic() + 10
        while [p for p in (live.root / "uploads").rglob("*") if p.is_file()]:
            assert time.monotonic() < deadline, "the refused upload was left on disk"
            time.sleep(0.2)
        # declared too large: refused before a byte of it is read
        with socket.create_connection(("127.0.0.1", int(live.url.rsplit(":", 1)[1]))) as conn:
            conn.sendall(
                f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {live.key}\r\nContent-Length: {5 << 20}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n\r\n".encode()
            )
            conn.settimeout(20)
            assert conn.recv(4096).decode("latin-1").startswith("HTTP/1.1 413")
        # one request waits: a second is told to come back
        clip = long_clip.read_bytes()
        first: list[httpx.Response] = []
        waiter = threading.Thread(
            target=lambda: first.append(
                httpx.post(
                    f"{live.api}/audio/transcriptions",
                    files={"file": ("trn03.wav", clip)},
                    data={"model": "whisper-1"},
                    headers=headers,
                    timeout=600,
                )
            )
        )
        waiter.start()
        deadline = time.monotonic() + 30
        while not any(j["name"] == "trn03.wav" for j in live.jobs()):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        r = httpx.post(
            f"{live.api}/audio/transcriptions",
            files={"file": ("jfk.flac", b"y" * 100)},
            data={"model": "whisper-1"},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 429 and r.headers["retry-after"]
        waiter.join(600)
        assert first and first[0].status_code == 200
    finally:
        live.daemon.stop()


@pytest.mark.slow  # among the longest: CI runs it with -m slow
@pytest.mark.model
def test_a_sigterm_while_a_request_waits_loses_nothing(tmp_path: Path, model_cache: Path) -> None:
    clip = need_eval("diarization", "trn04.wav").read_bytes()  # before a daemon is started
    live = start_live(tmp_path, model_cache)
    headers = {"Authorization": f"Bearer {live.key}"}
    answers: list[httpx.Response | Exception] = []

    def ask() -> None:
        try:
            answers.append(
                httpx.post(
                    f"{live.api}/audio/transcriptions",
                    files={"file": ("trn04.wav", clip)},
                    data={"model": "whisper-1"},
                    headers=headers,
                    timeout=600,
                )
            )
        except httpx.HTTPError as exc:
            answers.append(exc)

    waiter = threading.Thread(target=ask)
    waiter.start()
    live.daemon.wait(lambda jobs: any(j["status"] == "running" for j in jobs), timeout=120)
    assert live.daemon.stop(signal.SIGTERM) == 0
    waiter.join(60)
    answer = answers[0]
    assert isinstance(answer, Exception) or answer.status_code == 503, answer
    # started again: the job goes on, and asking again gets it
    again = Daemon(live.config, "again")
    try:
        wait_healthy(live.url)
        r = httpx.post(
            f"{live.api}/audio/transcriptions",
            files={"file": ("trn04.wav", clip)},
            data={"model": "whisper-1"},
            headers=headers,
            timeout=600,
        )
        assert r.status_code == 200 and r.json()["text"].strip()
        assert len([j for j in again.jobs() if j["name"] == "trn04.wav"]) == 1
    finally:
        again.stop()


def on_database(config: Path, url: str) -> Path:
    """``config`` with its database at ``url``."""
    text = re.sub(r'(?m)^url = "sqlite:///.*"$', f'url = "{url}"', config.read_text())
    config.write_text(text)
    return config


@pytest.mark.slow  # among the longest: CI runs it with -m slow
@pytest.mark.model
def test_a_front_node_answers_with_another_nodes_work(tmp_path: Path, model_cache: Path) -> None:
    """PostgreSQL: ``transcribd serve`` takes the request (no workers), a ``run`` node without
    HTTP does the job, the front node learns of it from the database; /healthz says 503 while
    the database is down."""
    jfk = need_eval("asr_en", "jfk.flac")  # before a server is started
    server = start_postgres(own=True)
    try:
        url = server.database()
        for node in ("front", "worker"):
            (tmp_path / node).mkdir()
        port = free_port()
        uploads = tmp_path / "shared-uploads"
        front_cfg = on_database(
            write_config(
                tmp_path / "front",
                model_cache,
                # (the config's last table is [daemon]: a key here is the daemon's)
                f'node = "front"\n[http]\nlisten = "127.0.0.1:{port}"\nupload_dir = "{uploads}"\n',
            ),
            url,
        )
        worker_cfg = on_database(
            write_config(tmp_path / "worker", model_cache, 'node = "worker"\n'), url
        )
        subprocess.run(
            [sys.executable, "-m", "daemon", "--config", str(front_cfg), "db", "upgrade"],
            check=True,
            capture_output=True,
        )
        key = make_key(front_cfg)
        front_log = (tmp_path / "front.log").open("w")
        front = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(front_cfg), "serve"],
            stdout=front_log,
            stderr=front_log,
        )
        worker = Daemon(worker_cfg, "worker")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base)
            clip = jfk.read_bytes()
            r = httpx.post(
                f"{base}/v1/audio/transcriptions",
                files={"file": ("jfk.flac", clip)},
                data={"model": "whisper-1"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=600,
            )
            assert r.status_code == 200 and "ask not" in r.json()["text"].lower()
            job = next(j for j in worker.jobs() if j["name"] == "jfk.flac")
            assert job["node"] == "worker" and job["origin"] == "http:tester"
            server.stop()
            deadline = time.monotonic() + 60
            while httpx.get(f"{base}/healthz", timeout=40).status_code != 503:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        finally:
            front.send_signal(signal.SIGTERM)
            front.wait(60)
            front_log.close()
            worker.stop(signal.SIGKILL)
    finally:
        server.stop()
