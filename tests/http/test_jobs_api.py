"""The jobs API and what makes every request a job: an upload answered at once (202) and
followed, concurrent requests (distinct files all answered, one file four times computed once),
a request cut mid-way then asked again."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.conftest import lj_clips, need_eval
from tests.http.conftest import Live

pytestmark = [pytest.mark.model, pytest.mark.eval]


def auth(live: Live) -> dict[str, str]:
    return {"Authorization": f"Bearer {live.key}"}


def test_a_job_through_the_jobs_api(live: Live) -> None:
    clip = need_eval("asr_en", "LJ001-0003.wav")
    with httpx.Client(base_url=live.url, headers=auth(live), timeout=60) as http:
        r = http.post(
            "/v1/jobs", files={"file": (clip.name, clip.read_bytes())}, data={"profile": "fast"}
        )
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] in ("queued", "running") and job["options"]["profile"] == "fast"
        assert r.headers["location"] == f"/v1/jobs/{job['id']}"
        events = []
        with http.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=300) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                if line.startswith("data: ") and events and events[-1] == "end":
                    ended = json.loads(line.removeprefix("data: "))
                    break
        assert events[-1] == "end" and ended["status"] == "done"
        txt = http.get(f"/v1/jobs/{job['id']}/transcript.txt")
        assert txt.status_code == 200 and "wood blocks engraved in relief" in txt.text.lower()
        for fmt in ("srt", "vtt", "json", "rttm"):
            assert http.get(f"/v1/jobs/{job['id']}/transcript.{fmt}").status_code == 200
        assert http.get(f"/v1/jobs/{job['id']}/transcript.doc").status_code == 404
        one = http.get(f"/v1/jobs/{job['id']}").json()
        assert one["status"] == "done" and one["outputs"]
        assert all(str(live.root / "uploads") in out for out in one["outputs"])
        assert http.delete(f"/v1/jobs/{job['id']}").status_code == 409  # done: nothing to cancel
        again = http.post(f"/v1/jobs/{job['id']}/requeue")
        assert again.status_code == 200 and again.json()["status"] == "queued"
        assert http.get("/v1/jobs/99999").status_code == 404
        listed = http.get("/v1/jobs", params={"limit": 5}).json()
        assert listed[0]["id"] >= job["id"]


def test_a_queued_job_is_cancelled(live: Live) -> None:
    clip = need_eval("diarization", "trn01.wav")
    with httpx.Client(base_url=live.url, headers=auth(live), timeout=60) as http:
        busy = http.post(
            "/v1/jobs",
            files={"file": ("busy.wav", need_eval("diarization", "trn02.wav").read_bytes())},
        )
        r = http.post("/v1/jobs", files={"file": (clip.name, clip.read_bytes())})
        job = r.json()
        gone = http.delete(f"/v1/jobs/{job['id']}")
        assert gone.status_code == 200, gone.text
        assert (
            gone.json()["status"] == "cancelled"
            and "cancelled by http:tester" in gone.json()["error"]
        )
        assert busy.status_code == 202


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_eight_files_at_once_all_answered_and_one_file_four_times_computed_once(
    live: Live,
) -> None:
    clips = lj_clips()[4:12]
    with openai.OpenAI(base_url=live.api, api_key=live.key, max_retries=0, timeout=900) as c:

        def ask(path: object) -> str:
            with open(str(path), "rb") as f:
                return c.audio.transcriptions.create(
                    model="whisper-1", file=f, response_format="text"
                )

        with ThreadPoolExecutor(8) as pool:
            texts = list(pool.map(ask, clips))
        assert all(t.strip() for t in texts)
        for clip, text in zip(clips, texts, strict=True):
            truth = clip.with_suffix(".txt").read_text().lower().split()
            heard = text.lower()
            assert sum(w.strip(",.;") in heard for w in truth) >= 0.6 * len(truth), (clip, text)
        same = need_eval("asr_en", "librivox-0870.wav")
        with ThreadPoolExecutor(4) as pool:
            four = list(pool.map(ask, [same] * 4))
        assert len(set(four)) == 1
    jobs = [j for j in live.jobs() if j["name"] == same.name]
    assert len(jobs) == 1 and jobs[0]["status"] == "done"
    computed = jobs[0]["metrics"]["steps"]["computed"]
    assert computed.get("asr", 0) >= 1  # computed by the one job, once


def test_a_request_cut_midway_loses_nothing(live: Live) -> None:
    clip = need_eval("diarization", "dev01.wav")
    with httpx.Client(base_url=live.url, headers=auth(live)) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post(
                "/v1/audio/transcriptions",
                files={"file": (clip.name, clip.read_bytes())},
                data={"model": "whisper-1"},
                timeout=httpx.Timeout(60, read=0.5),
            )
        started = time.monotonic()
        r = http.post(
            "/v1/audio/transcriptions",
            files={"file": (clip.name, clip.read_bytes())},
            data={"model": "whisper-1"},
            timeout=600,
        )
    assert r.status_code == 200 and r.json()["text"].strip()
    jobs = [j for j in live.jobs() if j["name"] == clip.name]
    assert len(jobs) == 1 and jobs[0]["attempts"] == 1, jobs  # the same job, never restarted
    assert time.monotonic() - started < 300
