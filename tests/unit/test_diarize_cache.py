"""The diarize step's cache across earlier versions: a job finished before voice prints still
lists and renames its speakers from the cache (turns, no prints), one run on the CPU before the
key held the device keeps its speakers, one finished before CAM++'s front end was shared (no
``frame_block_chunks`` in its key), before clusters were merged (no ``merge_distance``) or
before lone voices were searched for (no ``lone_voice_share``) keeps its prints, and a
cache-only run never recomputes."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from daemon.config import SpeakerHints
from daemon.errors import CacheMiss
from daemon.pipeline import steps
from daemon.pipeline.cache import StepCache, params_hash
from daemon.pipeline.diarize import WEIGHTS_ID, DiarizeParams
from daemon.pipeline.spool import Spool
from daemon.pipeline.vad import Region, plan_windows
from tests.conftest import MemoryCacheStore

SPEECH = steps.Speech(samples=16000 * 20, regions=[Region(1.0, 19.0)])


def step_key(speech: steps.Speech, params: DiarizeParams, hints: SpeakerHints) -> dict[str, Any]:
    """The diarize step's cache key as a CPU run of one window wrote it before the key held the
    device (a run now adds ``"device"``)."""
    return {
        "diarization": asdict(params),
        "hints": asdict(hints),
        "windows": plan_windows(speech.duration, speech.regions, 600.0),
        "weights": WEIGHTS_ID,
    }


BEFORE_FRONT_SHARED = {
    "threshold": 0.7046,
    "min_cluster_size": 12,
    "min_duration_off": 0.0,
    "segmentation_step": 0.1,
    "chunked_embeddings": True,
    "shared_frames": True,
}
"""``asdict(DiarizeParams())`` as the version before the shared front end wrote it."""
BEFORE_MERGE = {**BEFORE_FRONT_SHARED, "frame_block_chunks": 2}
"""``asdict(DiarizeParams())`` as the version before clusters of one voice were merged wrote
it (those jobs were made without merging)."""
BEFORE_LONE_VOICES = {**BEFORE_MERGE, "merge_distance": 0.8}
"""``asdict(DiarizeParams())`` as the version before lone voices were searched for wrote it."""


def never_load() -> Any:
    raise AssertionError("cache-only: no model may be loaded")


def test_turns_cached_before_voice_prints_serve_a_cache_only_run(tmp_path: Path) -> None:
    speech, params, hints = SPEECH, DiarizeParams(), SpeakerHints()
    key = step_key(speech, params, hints)
    store = MemoryCacheStore()
    cache = StepCache(store, "abc", lambda: None, cache_only=True)
    spool = Spool(tmp_path / "spool", tmp_path / "in.wav")

    def run() -> Any:
        return steps.diarize(cache, spool, speech, params, hints, 600.0, never_load, lambda _: None)

    with pytest.raises(CacheMiss):  # nothing cached: a cache-only run says so
        run()
    old = [[1.0, 9.0, "SPEAKER_00"], [9.5, 19.0, "SPEAKER_01"]]
    before = {**key, "diarization": BEFORE_FRONT_SHARED}
    store.rows[("abc", "diarize", params_hash(before))] = old  # as the version before prints
    found = run()
    assert [(t.start, t.end, t.speaker) for t in found.turns] == [tuple(t) for t in old]
    assert found.centroids == {}
    new = {"turns": old[:1], "centroids": {"SPEAKER_00": [1.0, 0.0]}}
    store.rows[("abc", "diarize", params_hash({**key, "prints": True}))] = new
    assert run().centroids == {"SPEAKER_00": (1.0, 0.0)}  # the newer entry wins


def test_a_cpu_job_cached_before_the_key_held_the_device_serves_a_cache_only_run(
    tmp_path: Path,
) -> None:
    """The key holds the device, the CPU's too; a CPU job cached under the old device-less key
    still lists and renames its speakers, and a GPU's result is its own."""
    speech, params, hints = SPEECH, DiarizeParams(), SpeakerHints()
    key = {**step_key(speech, params, hints), "prints": True}
    store = MemoryCacheStore()
    on_cpu = {"turns": [[1.0, 19.0, "SPEAKER_00"]], "centroids": {}}
    store.rows[("abc", "diarize", params_hash(key))] = on_cpu  # before the key held the device
    spool = Spool(tmp_path / "spool", tmp_path / "in.wav")

    def run(device: str, cache_only: bool = True) -> Any:
        cache = StepCache(store, "abc", lambda: None, cache_only=cache_only)
        return steps.diarize(
            cache, spool, speech, params, hints, 600.0, never_load, lambda _: None, device
        )

    assert run("cpu").turns[0].speaker == "SPEAKER_00"  # found under the old device-less key
    with pytest.raises(CacheMiss):  # the GPU's result is its own
        run("cuda")
    with pytest.raises(AssertionError, match="no model may be loaded"):
        run("cpu", cache_only=False)  # a run that may compute does not take the old entry
    now = {"turns": [[1.0, 19.0, "SPEAKER_01"]], "centroids": {}}
    store.rows[("abc", "diarize", params_hash({**key, "device": "cpu"}))] = now
    assert run("cpu", cache_only=False).turns[0].speaker == "SPEAKER_01"  # the key holds it
    assert run("cpu").turns[0].speaker == "SPEAKER_01"  # and wins over the old entry


def test_prints_cached_before_the_front_end_was_shared_serve_a_cache_only_run(
    tmp_path: Path,
) -> None:
    speech, params, hints = SPEECH, DiarizeParams(), SpeakerHints()
    later = ("frame_block_chunks", "merge_distance", "lone_voice_share")
    assert {k: v for k, v in asdict(params).items() if k not in later} == BEFORE_FRONT_SHARED
    old_key = {**step_key(speech, params, hints), "diarization": BEFORE_FRONT_SHARED}
    store = MemoryCacheStore()
    cache = StepCache(store, "abc", lambda: None, cache_only=True)
    spool = Spool(tmp_path / "spool", tmp_path / "in.wav")

    def run(p: DiarizeParams = params) -> Any:
        return steps.diarize(cache, spool, speech, p, hints, 600.0, never_load, lambda _: None)

    made = {"turns": [[1.0, 19.0, "SPEAKER_00"]], "centroids": {"SPEAKER_00": [0.0, 1.0]}}
    store.rows[("abc", "diarize", params_hash({**old_key, "prints": True}))] = made
    found = run()
    assert found.turns[0].speaker == "SPEAKER_00"
    assert found.centroids == {"SPEAKER_00": (0.0, 1.0)}
    with pytest.raises(CacheMiss):  # other blocks are another computation: never the old one
        run(DiarizeParams(frame_block_chunks=3))
    # a run that may compute does not take the old entry: it recomputes (here: no model)
    computing = StepCache(store, "abc", lambda: None)
    with pytest.raises(AssertionError, match="no model may be loaded"):
        steps.diarize(computing, spool, speech, params, hints, 600.0, never_load, lambda _: None)


def test_prints_cached_before_clusters_were_merged_serve_a_cache_only_run(tmp_path: Path) -> None:
    speech, params, hints = SPEECH, DiarizeParams(), SpeakerHints()
    assert params.merge_distance > 0  # what a job is made with now differs from the old entry
    old_key = {**step_key(speech, params, hints), "diarization": BEFORE_MERGE, "prints": True}
    store = MemoryCacheStore()
    made = {"turns": [[1.0, 19.0, "SPEAKER_01"]], "centroids": {"SPEAKER_01": [1.0, 0.0]}}
    store.rows[("abc", "diarize", params_hash(old_key))] = made
    spool = Spool(tmp_path / "spool", tmp_path / "in.wav")

    def run(cache: StepCache, p: DiarizeParams = params) -> Any:
        return steps.diarize(cache, spool, speech, p, hints, 600.0, never_load, lambda _: None)

    found = run(StepCache(store, "abc", lambda: None, cache_only=True))
    assert found.turns[0].speaker == "SPEAKER_01"  # the job as it was made
    assert found.centroids == {"SPEAKER_01": (1.0, 0.0)}
    # with other blocks too (a job made with three-chunk blocks before merging)
    blocks = DiarizeParams(frame_block_chunks=3)
    old3 = {**step_key(speech, blocks, hints), "prints": True}
    old3["diarization"] = {
        k: v
        for k, v in old3["diarization"].items()
        if k not in ("merge_distance", "lone_voice_share")
    }
    store.rows[("abc", "diarize", params_hash(old3))] = made
    assert run(StepCache(store, "abc", lambda: None, cache_only=True), blocks).turns
    # a run that may compute does not take the old entry
    with pytest.raises(AssertionError, match="no model may be loaded"):
        run(StepCache(store, "abc", lambda: None))


def test_prints_cached_before_lone_voices_serve_a_cache_only_run(tmp_path: Path) -> None:
    speech, params, hints = SPEECH, DiarizeParams(), SpeakerHints()
    assert params.lone_voice_share > 0  # what a job is made with now differs from the old entry
    old_key = {
        **step_key(speech, params, hints),
        "diarization": BEFORE_LONE_VOICES,
        "prints": True,
    }
    store = MemoryCacheStore()
    made = {"turns": [[1.0, 19.0, "SPEAKER_02"]], "centroids": {"SPEAKER_02": [0.6, 0.8]}}
    store.rows[("abc", "diarize", params_hash(old_key))] = made
    spool = Spool(tmp_path / "spool", tmp_path / "in.wav")

    def run(cache: StepCache) -> Any:
        return steps.diarize(cache, spool, speech, params, hints, 600.0, never_load, lambda _: None)

    found = run(StepCache(store, "abc", lambda: None, cache_only=True))
    assert found.turns[0].speaker == "SPEAKER_02"  # the job as it was made
    assert found.centroids == {"SPEAKER_02": (0.6, 0.8)}
    with pytest.raises(AssertionError, match="no model may be loaded"):
        run(StepCache(store, "abc", lambda: None))  # a computing run never takes it
