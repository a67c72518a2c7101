"""Announcing a job's end: the pure parts (argv, signature, backoff, which announcements)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

import pytest

from daemon import hooks
from daemon.jobs import JobOptions, JobRecord, JobStatus

NOW = datetime(2026, 12, 1, 12, 0, 0)


def job(**changes: object) -> JobRecord:
    values: dict[str, object] = {
        "id": 7,
        "path": "/in/a talk; $(rm -rf ~) {json}.mp3",
        "sha256": "ab" * 32,
        "size": 1000,
        "duration": 11.0,
        "status": JobStatus.DONE,
        "duplicate_of": None,
        "profile": "fast",
        "options": JobOptions(),
        "attempts": 1,
        "error": None,
        "progress": 1.0,
        "outputs": ["/out/a.txt", "/out/a.json", "/out/a.srt"],
        "metrics": {"rtf": 0.1},
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": NOW,
        "finished_at": NOW + timedelta(seconds=3),
        "run_after": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "node": "n1",
        "runs": 3,
    }
    values.update(changes)
    return JobRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("announce", "event", "kinds"),
    [
        (hooks.Announce(), "done", ()),
        (hooks.Announce(on_done=True), "done", ("on_done",)),
        (hooks.Announce(on_done=True), "failed", ()),
        (hooks.Announce(on_failed=True, webhook=True), "failed", ("on_failed", "webhook")),
        (hooks.Announce(on_failed=True, webhook=True), "done", ("webhook",)),
        (hooks.Announce(True, True, True), "done", ("on_done", "webhook")),
    ],
)
def test_which_announcements_an_end_makes(
    announce: hooks.Announce, event: str, kinds: tuple[str, ...]
) -> None:
    assert announce.kinds(event) == kinds


def test_payload_names_the_end_for_ever() -> None:
    p = hooks.payload(job(), "done")
    assert p["event"] == "done" and p["idempotency_key"] == "7-3"  # job 7, its third run
    assert p["job"]["id"] == 7 and p["job"]["status"] == "done"
    assert p["files"] == {"txt": "/out/a.txt", "json": "/out/a.json", "srt": "/out/a.srt"}


def test_argv_fills_placeholders_and_keeps_each_file_name_one_argument() -> None:
    announced = hooks.payload(job(), "done")
    template = (
        "/bin/notify",
        "{json}",
        "--source={source}",
        "{vtt}",
        "#{job}:{status}",
        "{{x}}",
    )
    assert hooks.argv(template, announced) == [
        "/bin/notify",
        "/out/a.json",
        "--source=/in/a talk; $(rm -rf ~) {json}.mp3",  # data, never expanded again
        "",  # not written
        "#7:done",
        "{x}",
    ]
    failed = hooks.payload(job(status=JobStatus.FAILED, outputs=[]), "failed")
    assert hooks.argv(("x", "{txt}", "{status}"), failed) == ["x", "", "failed"]


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (("/bin/x", "{json}", "{txt}", "{source}", "{job}", "{status}", "{rttm}"), None),
        (("/bin/x", "{{literal}}"), None),
        ((), "the first item must be the program"),
        (("",), "the first item must be the program"),
        (("/bin/x", "{path}"), "unknown placeholder {path}"),
        (("/bin/x", "{json!r}"), "unknown placeholder {json}"),
        (("/bin/x", "{json:>9}"), "unknown placeholder {json}"),
        (("/bin/x", "{job.id}"), "unknown placeholder {job.id}"),
        (("/bin/x", "{json"), "expected '}'"),
    ],
)
def test_command_problems(argv: tuple[str, ...], why: str | None) -> None:
    found = hooks.problem(argv)
    assert found is None if why is None else (found is not None and why in found), found


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"event": "done"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hooks.signature("s3cret", body) == f"sha256={expected}"
    assert hooks.signature("other", body) != hooks.signature("s3cret", body)
    # RFC 4231 test case 2
    key_two = hooks.signature("Jefe", b"what do ya want for nothing?")
    assert key_two == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


@pytest.mark.parametrize(
    ("tries", "seconds"), [(1, 5), (2, 10), (3, 20), (6, 160), (12, 3600), (40, 3600)]
)
def test_retry_backs_off_to_an_hour(tries: int, seconds: float) -> None:
    assert hooks.retry_at(tries, NOW, 5.0) == NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("status", "final"),
    [(301, True), (302, True), (400, True), (401, True), (404, True), (410, True),
     (408, False), (425, False), (429, False), (500, False), (502, False), (503, False)],
)  # fmt: skip
def test_which_http_answers_are_final(status: int, final: bool) -> None:
    assert hooks.permanent_http(status) is final


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pw@hooks.example.com:8443/in?token=abc",
            "https://hooks.example.com:8443/in",
        ),
        ("http://127.0.0.1/hook", "http://127.0.0.1/hook"),
    ],
)
def test_printable_url_hides_secrets(url: str, shown: str) -> None:
    assert hooks.printable_url(url) == shown


@pytest.mark.parametrize(
    ("ok", "final", "tries", "attempts", "state"),
    [
        (True, False, 1, 8, "delivered"),
        (True, False, 8, 8, "delivered"),
        (False, False, 1, 8, "retry"),
        (False, False, 7, 8, "retry"),
        (False, False, 8, 8, "failed"),
        (False, True, 1, 8, "failed"),
        (False, False, 1, 1, "failed"),
    ],
)
def test_after_a_try(ok: bool, final: bool, tries: int, attempts: int, state: str) -> None:
    assert hooks.after_try(ok, final, tries, attempts) == state


def test_a_hook_gets_the_very_bytes_of_an_undecodable_source() -> None:
    raw = "/in/caf\udce9.wav"  # b"/in/caf\xe9.wav": not UTF-8
    announced = hooks.payload(job(path=raw), "done")
    assert "\udce9" not in announced["job"]["path"]  # shown with U+FFFD to people
    assert hooks.argv(("x", "{source}"), announced) == ["x", raw]
