"""Named voices: the pure decisions (who is whom, names, enrollment prints)."""

from __future__ import annotations

import pytest

from daemon.voices import (
    Match,
    Voice,
    distance,
    enrolled,
    main_speaker,
    match,
    name_problem,
    names,
    usable,
)

W = "weights-a"


def voice(name: str, *vec: float, weights: str = W, seconds: float = 10.0) -> Voice:
    return Voice(name, tuple(vec), weights, seconds, (f"{name}.wav",))


ALICE, BOB = voice("Alice", 1, 0, 0), voice("Bob", 0, 1, 0)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("Alice", False),
        ("Dr. Anna Okonkwo-Smith", False),
        ("Ёлка", False),
        ("", True),
        (" Alice", True),
        ("Alice\n", True),
        ("a\tb", True),
        ("x" * 65, True),
        ("SPEAKER_00", True),
        ("SPEAKER_12", True),
        ("SPEAKER_ONE", False),
    ],
)
def test_name_problem(name: str, bad: bool) -> None:
    assert (name_problem(name) is not None) is bad


def test_distance() -> None:
    assert distance((1, 0), (2, 0)) == pytest.approx(0.0)
    assert distance((1, 0), (0, 3)) == pytest.approx(1.0)
    assert distance((1, 0), (-1, 0)) == pytest.approx(2.0)
    assert distance((0, 0), (1, 0)) == 2.0


def test_each_speaker_gets_the_nearest_voice_within_the_threshold() -> None:
    prints = {"SPEAKER_00": (0.1, 1.0, 0), "SPEAKER_01": (1.0, 0.05, 0), "SPEAKER_02": (0, 0, 1)}
    got = match(prints, [ALICE, BOB], max_distance=0.2)
    assert [(m.speaker, m.name) for m in got] == [("SPEAKER_00", "Bob"), ("SPEAKER_01", "Alice")]
    assert all(0 <= m.distance <= 0.2 for m in got)


def test_no_name_beyond_the_threshold() -> None:
    assert match({"SPEAKER_00": (1.0, 1.0, 0)}, [ALICE], max_distance=0.2) == []
    assert match({"SPEAKER_00": (1.0, 1.0, 0)}, [ALICE], max_distance=0.3)[0].name == "Alice"


def test_two_speakers_never_get_one_name() -> None:
    # both are close to Alice; the closer one gets the name, the other stays unnamed
    prints = {"SPEAKER_00": (1.0, 0.3, 0), "SPEAKER_01": (1.0, 0.1, 0)}
    got = match(prints, [ALICE], max_distance=0.5)
    assert [(m.speaker, m.name) for m in got] == [("SPEAKER_01", "Alice")]


def test_one_to_one_prefers_more_matches_over_one_closest_pair() -> None:
    # S0 is closest to Alice, but S1 can only be Alice: both get a name when S0 takes Bob
    prints = {"SPEAKER_00": (1.0, 0.8, 0), "SPEAKER_01": (1.0, 0.0, 0)}
    got = {m.speaker: m.name for m in match(prints, [ALICE, BOB], max_distance=0.45)}
    assert got == {"SPEAKER_00": "Bob", "SPEAKER_01": "Alice"}


@pytest.mark.parametrize("prints", [{}, {"SPEAKER_00": (1.0, 0, 0)}])
def test_nothing_to_match(prints: dict[str, tuple[float, ...]]) -> None:
    assert match(prints, [] if prints else [ALICE], 0.5) == []


def test_voices_of_other_weights_are_not_usable() -> None:
    old = voice("Carol", 1, 0, 0, weights="weights-b")
    assert usable([ALICE, old, BOB], W) == [ALICE, BOB]


def test_users_renames_come_first_and_no_name_is_given_twice() -> None:
    matches = [Match("SPEAKER_00", "Alice", 0.1), Match("SPEAKER_01", "Bob", 0.2)]
    assert names(matches, {}) == {"SPEAKER_00": "Alice", "SPEAKER_01": "Bob"}
    # the user named SPEAKER_00 themselves: the voice match does not override it
    assert names(matches, {"SPEAKER_00": "Host"}) == {"SPEAKER_00": "Host", "SPEAKER_01": "Bob"}
    # the user gave "Bob" to another speaker: the voice's "Bob" is not given twice
    assert names(matches, {"SPEAKER_02": "Bob"}) == {"SPEAKER_00": "Alice", "SPEAKER_02": "Bob"}


def test_main_speaker_is_the_one_with_most_speech_and_a_print() -> None:
    speech = {"SPEAKER_00": 30.0, "SPEAKER_01": 5.0, "SPEAKER_02": 40.0}
    prints = {"SPEAKER_00": (1.0,), "SPEAKER_01": (0.5,)}  # SPEAKER_02 has no print
    main = main_speaker(speech, prints)
    assert main is not None
    assert main.label == "SPEAKER_00"
    assert main.seconds == 30.0
    assert main.share == pytest.approx(30 / 75)
    assert main.others == 2
    assert main_speaker({"SPEAKER_00": 3.0}, {}) is None
    assert main_speaker({}, {}) is None


def test_enrolled_is_the_speech_weighted_mean() -> None:
    v = enrolled("Alice", [((1.0, 0.0), 30.0, "a.wav"), ((0.0, 1.0), 10.0, "b.wav")], W)
    assert v.embedding == pytest.approx((0.75, 0.25))
    assert (v.name, v.weights, v.seconds, v.files) == ("Alice", W, 40.0, ("a.wav", "b.wav"))


def test_enrolling_again_adds_to_the_voice_of_the_same_weights() -> None:
    before = Voice("Alice", (1.0, 0.0), W, 10.0, ("a.wav",))
    v = enrolled("Alice", [((0.0, 1.0), 10.0, "b.wav")], W, before)
    assert v.embedding == pytest.approx((0.5, 0.5))
    assert v.seconds == 20.0
    assert v.files == ("a.wav", "b.wav")
    # made with other weights, the earlier print is not comparable: it is replaced
    stale = Voice("Alice", (1.0, 0.0), "weights-b", 10.0, ("a.wav",))
    v = enrolled("Alice", [((0.0, 1.0), 10.0, "b.wav")], W, stale)
    assert v.embedding == (0.0, 1.0)
    assert v.files == ("b.wav",)
