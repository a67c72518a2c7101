"""The pages' server side, through a plain HTTP client: signing in, CSRF, audio served with
ranges (and as Opus where a browser cannot play the file), escaping, the security headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_video, need_eval
from tests.e2e.running import drop
from tests.http.conftest import Live

pytestmark = [pytest.mark.model, pytest.mark.eval]


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    """A client signed in with the test's key (closed after the test)."""
    with httpx.Client(base_url=live.url, timeout=60, follow_redirects=False) as client:
        yield signed_in(live, client)


def signed_in(live: Live, client: httpx.Client) -> httpx.Client:
    wrong = client.post("/login", data={"key": "tsk_nope", "next": "/"})
    assert wrong.status_code == 401 and "not known" in wrong.text
    r = client.post("/login", data={"key": live.key, "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"  # never another site
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    return client


def done(live: Live, src: Path, name: str) -> dict[str, object]:
    drop(src, live.root / "inbox" / name)
    return live.daemon.wait(
        lambda jobs: any(j["name"] == name and j["status"] == "done" for j in jobs), 300
    )[-1]


def job_id(live: Live, name: str) -> int:
    return int(next(j["id"] for j in live.jobs() if j["name"] == name))


def test_pages_need_a_session_and_changes_need_its_token(live: Live, client: httpx.Client) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as anonymous:
        assert anonymous.get("/").status_code == 303
        assert anonymous.get("/ui/queue.json").status_code == 401
    page = client.get("/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text.replace('<script src="/static/queue.js" defer></script>', "")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token
    done(live, need_eval("asr_en", "LJ001-0005.wav"), "five.wav")
    job = job_id(live, "five.wav")
    refused = client.post(f"/jobs/{job}/requeue", data={"csrf": "forged"})
    assert refused.status_code == 403
    ok = client.post(f"/jobs/{job}/requeue", data={"csrf": token.group(1)})
    assert ok.status_code == 303 and "requeued" in ok.headers["location"]


def test_audio_with_ranges_and_opus_for_what_browsers_cannot_play(
    live: Live, client: httpx.Client, tmp_path: Path
) -> None:
    done(live, need_eval("asr_en", "LJ001-0006.wav"), "six.wav")
    wav = job_id(live, "six.wav")
    part = client.get(f"/jobs/{wav}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"].startswith("bytes 100-199/")
    video = make_video(need_eval("asr_en", "LJ001-0007.wav"), tmp_path / "seven.mkv")
    done(live, video, "seven.mkv")
    mkv = job_id(live, "seven.mkv")
    played = client.get(f"/jobs/{mkv}/audio")
    assert played.status_code == 200 and played.headers["content-type"] == "audio/ogg"
    assert played.content[:4] == b"OggS"
    assert client.get(f"/jobs/{mkv}/audio", headers={"Range": "bytes=0-9"}).status_code == 206
    assert client.get("/jobs/99999/audio").status_code == 404
    for fmt in ("txt", "srt", "vtt", "json", "rttm"):
        assert client.get(f"/jobs/{wav}/download/{fmt}").status_code == 200


def test_names_from_files_are_escaped(live: Live, client: httpx.Client) -> None:
    hostile = "<b onmouseover=alert(1)>loud</b>.wav".replace("/", "")
    done(live, need_eval("asr_en", "LJ001-0008.wav"), hostile)
    page = client.get(f"/jobs/{job_id(live, hostile)}")
    assert "<b onmouseover" not in page.text
    assert "&lt;b onmouseover=alert(1)&gt;loud&lt;b&gt;.wav" in page.text
    rows = client.get("/ui/queue.json").json()["jobs"]
    assert any(r["name"] == hostile for r in rows)  # data for the script's textContent
