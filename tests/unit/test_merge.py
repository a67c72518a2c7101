from __future__ import annotations

import pytest

from daemon.pipeline.asr import Segment, Word
from daemon.pipeline.merge import (
    Turn,
    WindowDiarization,
    attribute,
    link_windows,
    relabel,
    speakers_of,
)


def words(*spec: tuple[float, float, str]) -> tuple[Word, ...]:
    return tuple(Word(a, b, w, 0.9) for a, b, w in spec)


def seg(*spec: tuple[float, float, str]) -> Segment:
    ws = words(*spec)
    return Segment(ws[0].start, ws[-1].end, "".join(w.word for w in ws).strip(), ws)


def test_relabel_in_order_of_first_appearance() -> None:
    turns = [Turn(5, 6, "B"), Turn(0, 1, "C"), Turn(2, 3, "A"), Turn(7, 8, "C")]
    assert [(t.start, t.speaker) for t in relabel(turns)] == [
        (0, "SPEAKER_00"),
        (2, "SPEAKER_01"),
        (5, "SPEAKER_02"),
        (7, "SPEAKER_00"),
    ]
    assert speakers_of(relabel(turns)) == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"]


def test_word_gets_speaker_with_most_overlap() -> None:
    turns = [Turn(0, 1.2, "A"), Turn(1.2, 3, "B")]
    [out] = attribute([seg((1.0, 1.6, " hello"))], turns)  # 0.2 with A, 0.4 with B
    assert out.speaker == "B" and out.words == words((1.0, 1.6, " hello"))


def test_overlap_sums_over_turns_of_one_speaker() -> None:
    turns = [Turn(0, 0.3, "A"), Turn(0.3, 0.5, "B"), Turn(0.5, 0.8, "A")]
    assert attribute([seg((0.0, 0.8, " x"))], turns)[0].speaker == "A"


def test_nearest_turn_when_none_overlaps() -> None:
    turns = [Turn(0, 1, "A"), Turn(5, 6, "B")]
    out = attribute([seg((1.5, 1.8, " a")), seg((4.0, 4.5, " b"))], turns)
    assert [s.speaker for s in out] == ["A", "B"]


def test_segment_split_where_speaker_changes() -> None:
    turns = [Turn(0, 2, "A"), Turn(2, 4, "B"), Turn(4, 6, "A")]
    s = seg((0.1, 0.5, " Hi"), (0.6, 1.0, " there."), (2.1, 2.5, " Hello"), (4.2, 4.6, " Bye."))
    out = attribute([s], turns)
    assert [(o.speaker, o.text, o.start, o.end) for o in out] == [
        ("A", "Hi there.", 0.1, 1.0),
        ("B", "Hello", 2.1, 2.5),
        ("A", "Bye.", 4.2, 4.6),
    ]


def test_no_turns_means_no_speaker() -> None:
    assert attribute([seg((0, 1, " x"))], [])[0].speaker is None


def test_segment_without_words_uses_its_span() -> None:
    s = Segment(3.0, 4.0, "…", ())
    assert attribute([s], [Turn(0, 3.2, "A"), Turn(3.2, 5, "B")])[0].speaker == "B"


V1, V2, V3 = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def window(
    turns: list[tuple[float, float, str]], cents: dict[str, tuple[float, ...]]
) -> WindowDiarization:
    return WindowDiarization(tuple(Turn(a, b, s) for a, b, s in turns), cents)


def test_link_same_voice_across_windows() -> None:
    w1 = window([(0, 5, "x"), (5, 9, "y")], {"x": V1, "y": V2})
    # the second window's local labels come out in the other order
    w2 = window([(10, 14, "p"), (14, 20, "q")], {"p": (0.1, 0.99, 0.0), "q": (0.98, 0.1, 0.0)})
    out = link_windows([w1, w2], threshold=0.5).turns
    assert [t.speaker for t in out] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_01", "SPEAKER_00"]


def test_two_voices_of_one_window_never_merge() -> None:
    w1 = window([(0, 5, "x")], {"x": V1})
    # both close to V1, but they are two voices in the same window
    w2 = window([(10, 12, "a"), (12, 14, "b")], {"a": (0.9, 0.1, 0), "b": (0.8, 0.2, 0)})
    out = link_windows([w1, w2], threshold=0.5).turns
    assert len({t.speaker for t in out}) == 2


def test_far_voice_becomes_new_speaker_and_max_speakers_merges() -> None:
    w1 = window([(0, 5, "x")], {"x": V1})
    w2 = window([(10, 12, "a")], {"a": V3})
    w3 = window([(20, 22, "b")], {"b": (0.7, 0.0, 0.7)})
    assert len({t.speaker for t in link_windows([w1, w2, w3], threshold=0.2).turns}) == 3
    out = link_windows([w1, w2, w3], threshold=0.2, max_speakers=2).turns
    assert len({t.speaker for t in out}) == 2


def test_link_single_window_is_relabel() -> None:
    w = window([(3, 4, "b"), (0, 1, "a")], {"a": V1, "b": V2})
    assert [(t.start, t.speaker) for t in link_windows([w], 0.5).turns] == [
        (0, "SPEAKER_00"),
        (3, "SPEAKER_01"),
    ]


@pytest.mark.parametrize("n", [0, 1])
def test_link_empty(n: int) -> None:
    assert link_windows([window([], {})] * n, 0.5) == WindowDiarization((), {})


def test_voice_without_embedding_keeps_its_turns() -> None:
    w = window([(0, 5, "x"), (20, 20.7, "y")], {"x": V1})  # "y" too short to embed
    out = link_windows([w], 0.5)
    assert [(t.start, t.speaker) for t in out.turns] == [(0, "SPEAKER_00"), (20, "SPEAKER_01")]
    assert out.centroids == {"SPEAKER_00": V1}  # no print for the voice too short to embed
    assert len({t.speaker for t in link_windows([w], 0.5, max_speakers=1).turns}) == 1


def test_linked_voice_prints_are_speech_weighted_means_by_final_label() -> None:
    w1 = window([(0, 3, "x"), (3, 4, "y")], {"x": (1.0, 0.0, 0.0), "y": V3})
    w2 = window([(10, 11, "p")], {"p": (0.0, 1.0, 0.0)})  # a new voice: far from both
    w3 = window([(20, 21, "q")], {"q": (1.0, 0.2, 0.0)})  # x again, 1 s against its 3 s
    out = link_windows([w1, w2, w3], threshold=0.3)
    assert out.centroids["SPEAKER_00"] == pytest.approx((1.0, 0.05, 0.0))
    assert out.centroids["SPEAKER_01"] == V3
    assert out.centroids["SPEAKER_02"] == (0.0, 1.0, 0.0)
    merged = link_windows([w1, w2, w3], threshold=0.3, max_speakers=1)
    assert set(merged.centroids) == {t.speaker for t in merged.turns} == {"SPEAKER_00"}
