"""How far a diarization window is, from pyannote's progress hook (daemon.pipeline.diarize)."""

from __future__ import annotations

import pytest

from daemon.pipeline.diarize import PART_SHARES, window_progress

SEG_END = PART_SHARES["segmentation"][1]
EMB_END = PART_SHARES["embeddings"][1]


@pytest.mark.parametrize(
    ("name", "completed", "total", "done"),
    [
        ("segmentation", 0, 17, 0.0),
        ("segmentation", 16, 17, SEG_END * 16 / 17),
        ("segmentation", 32, 17, SEG_END),  # pyannote counts a whole last batch
        ("segmentation", None, None, None),  # the step's artefact: nothing new
        ("speaker_counting", None, None, SEG_END),
        ("embeddings", 0, 9, SEG_END),
        ("embeddings", 3, 9, SEG_END + (EMB_END - SEG_END) / 3),
        ("embeddings", 9, 9, EMB_END),
        ("embeddings", 4, 0, None),
        ("discrete_diarization", None, None, EMB_END),
        ("something_new", 1, 2, None),
    ],
)
def test_each_batch_moves_the_window_on(
    name: str, completed: int | None, total: int | None, done: float | None
) -> None:
    got = window_progress(name, completed, total)
    assert got == (None if done is None else pytest.approx(done))


def test_the_parts_follow_each_other_and_leave_room_for_clustering() -> None:
    assert PART_SHARES["segmentation"][0] == 0.0 and PART_SHARES["embeddings"][0] == SEG_END
    assert SEG_END < EMB_END < 1.0
