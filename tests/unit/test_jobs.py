"""Typed job options: what the store writes and reads back, old rows included."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.jobs import JobOptions


@pytest.mark.parametrize(
    ("options", "stored"),
    [
        (JobOptions(), {}),
        (JobOptions(profile="fast"), {"profile": "fast"}),
        (
            JobOptions(language="ru", num_speakers=2, min_speakers=1, max_speakers=3),
            {"language": "ru", "num_speakers": 2, "min_speakers": 1, "max_speakers": 3},
        ),
        (JobOptions(oom_profile="balanced"), {"oom_profile": "balanced"}),
        (
            JobOptions(speaker_names=(("SPEAKER_00", "Alice"), ("SPEAKER_01", "Bob"))),
            {"speaker_names": {"SPEAKER_00": "Alice", "SPEAKER_01": "Bob"}},
        ),
    ],
)
def test_round_trip(options: JobOptions, stored: dict[str, Any]) -> None:
    assert options.to_dict() == stored
    assert JobOptions.from_dict(stored) == options


@pytest.mark.parametrize(
    ("row", "options"),
    [
        (None, JobOptions()),
        ({}, JobOptions()),
        ({"output_dir": "/old", "profile": "quality"}, JobOptions(profile="quality")),
        ({"some_future_key": [1, 2]}, JobOptions()),
        ({"language": None, "num_speakers": 2}, JobOptions(num_speakers=2)),
    ],
)
def test_old_and_unknown_keys_are_tolerated(
    row: dict[str, Any] | None, options: JobOptions
) -> None:
    assert JobOptions.from_dict(row) == options


def test_names() -> None:
    assert JobOptions(speaker_names=(("A", "Alice"),)).names == {"A": "Alice"}
    assert JobOptions().names == {}
