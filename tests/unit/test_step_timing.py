"""Where a job's time goes: step stats and the diarization's parts told apart by pyannote's
progress hook."""

from __future__ import annotations

import threading
import time

from daemon.pipeline.cache import StepStats
from daemon.pipeline.diarize import _PartClock


def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_parts_follow_the_hook_steps_in_wall_and_cpu_seconds() -> None:
    clock = _PartClock()
    busy(0.05)
    for _ in range(2):
        clock.seen("segmentation")  # pyannote reports each segmentation batch
    clock.seen("speaker_counting")
    busy(0.1)
    for _ in range(3):
        clock.seen("embeddings")
    busy(0.02)
    parts = clock.parts()
    assert list(parts) == ["segmentation", "embeddings", "clustering"]
    (sw, sc), (ew, ec), (cw, cc) = parts.values()
    assert 0.04 <= sc <= sw + 0.01 and 0.09 <= ec <= ew + 0.01 and 0.015 <= cc <= cw + 0.01
    assert ec > sc > cc


def test_speechless_audio_has_no_embeddings_part() -> None:
    clock = _PartClock()
    clock.seen("speaker_counting")  # pyannote returns right after counting no one
    assert list(clock.parts()) == ["segmentation", "clustering"]


def test_stats_add_up_across_threads_and_blocks() -> None:
    stats = StepStats()

    def work() -> None:
        for _ in range(100):
            stats.record("asr", 0.01, 0.02)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with stats.timed("merge"):
        busy(0.02)
    out = stats.as_dict()
    assert out["seconds"]["asr"] == 4.0 and out["cpu"]["asr"] == 8.0
    assert out["cpu"]["merge"] >= 0.015 and out["seconds"]["merge"] >= out["cpu"]["merge"] - 0.01


def test_instances_running_at_once_count_once() -> None:
    """ASR chunks in two lanes at once: the step ran for the time either ran, not the sum."""
    stats = StepStats()
    both = threading.Barrier(2)

    def chunk(seconds: float) -> None:
        both.wait()
        with stats.timed("asr"):
            time.sleep(seconds)

    started = time.perf_counter()
    lanes = [threading.Thread(target=chunk, args=(s,)) for s in (0.2, 0.3)]
    for t in lanes:
        t.start()
    for t in lanes:
        t.join()
    elapsed = time.perf_counter() - started
    seconds = stats.as_dict()["seconds"]["asr"]
    assert 0.29 <= seconds <= elapsed
    with stats.timed("asr"):  # a later chunk adds its own time
        time.sleep(0.1)
    assert stats.as_dict()["seconds"]["asr"] >= seconds + 0.09
