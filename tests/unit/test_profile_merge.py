"""A profile's merge after clustering and its search for a lone voice: on by default, tunable
and off by `[profiles.*]`."""

from __future__ import annotations

from daemon.config import ProfileOverride
from daemon.pipeline.clusters import LONE_VOICE_SHARE, MERGE_DISTANCE
from daemon.profiles import PROFILE_NAMES, resolve


def test_every_profile_merges_by_default_and_a_profile_can_turn_it_off() -> None:
    for name in PROFILE_NAMES:
        assert resolve(name, {}).diarization.merge_distance == MERGE_DISTANCE
    off = resolve("fast", {"fast": ProfileOverride(diarization_merge_distance=0.0)})
    assert off.diarization.merge_distance == 0.0
    tuned = resolve("balanced", {"balanced": ProfileOverride(diarization_merge_distance=0.9)})
    assert tuned.diarization.merge_distance == 0.9
    assert resolve("fast", {"balanced": ProfileOverride(diarization_merge_distance=0.0)}) == (
        resolve("fast", {})
    )


def test_every_profile_looks_for_a_lone_voice_by_default_and_a_profile_can_turn_it_off() -> None:
    for name in PROFILE_NAMES:
        assert resolve(name, {}).diarization.lone_voice_share == LONE_VOICE_SHARE
    off = resolve("quality", {"quality": ProfileOverride(diarization_lone_voice_share=0.0)})
    assert off.diarization.lone_voice_share == 0.0
    assert off.diarization.merge_distance == MERGE_DISTANCE  # the rest as it was
    assert resolve("fast", {"quality": ProfileOverride(diarization_lone_voice_share=0.0)}) == (
        resolve("fast", {})
    )
