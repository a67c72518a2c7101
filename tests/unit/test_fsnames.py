from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon import fsnames
from daemon.placement import safe_stem
from daemon.store import Store, utcnow

ODD = [
    "/in/plain.wav",
    "/in/with spaces and 'quotes' \"too\".wav",
    "/in/$(rm -rf ~);echo.wav",
    "/in/line\nbreak.wav",
    "/in/запись.wav",
    os.fsdecode(b"/in/bad-\xff\xfe.wav"),
    "/in/fsbytes:looks-like-the-prefix.wav",
]


@pytest.mark.parametrize("path", ODD)
def test_db_text_round_trips_and_is_utf8(path: str) -> None:
    text = fsnames.to_db(path)
    text.encode("utf-8")
    assert fsnames.from_db(text) == path


@pytest.mark.parametrize("path", ODD)
def test_printable_is_one_encodable_line(path: str) -> None:
    shown = fsnames.printable(path)
    shown.encode("utf-8")
    assert "\n" not in shown


@pytest.mark.parametrize("path", ODD)
def test_job_path_survives_the_database(store: Store, path: str) -> None:
    res = store.enqueue(path, "a" * 64, 1, utcnow())
    job = store.get(res.job_id)
    assert job is not None and job.path == path
    assert store.enqueue(path, "a" * 64, 1, utcnow()).created is False


@pytest.mark.parametrize("path", ODD)
def test_safe_stem_is_one_short_valid_name(path: str) -> None:
    stem = safe_stem(Path(path).stem * 40)
    raw = stem.encode("utf-8")
    assert 0 < len(raw) <= 200 and "/" not in stem and "\n" not in stem
    assert not stem.startswith(".")


def test_reject_is_recorded_once_and_never_requeued(store: Store) -> None:
    first = store.reject("/in/x.wav", 10, "cannot read the file: Permission denied", utcnow())
    again = store.reject("/in/x.wav", 10, "cannot read the file: Permission denied", utcnow())
    assert first.created and not again.created and again.job_id == first.job_id
    job = store.get(first.job_id)
    assert job is not None and job.status.value == "failed" and job.error
    res = store.requeue(failed=True, now=utcnow())
    assert res.requeued == [] and "refused at intake" in res.skipped[first.job_id]
