from __future__ import annotations

from daemon.pipeline.asr import Segment, Word
from daemon.pipeline.segments import SplitRules, split


def seg(*words: tuple[float, float, str]) -> Segment:
    ws = tuple(Word(a, b, w, 0.9) for a, b, w in words)
    return Segment(ws[0].start if ws else 0.0, ws[-1].end if ws else 30.0, "x", ws)


def texts(segments: list[Segment]) -> list[str]:
    return [s.text for s in segments]


def test_cuts_after_sentence_ends_and_keeps_every_word_in_order() -> None:
    s = seg(
        (0.0, 0.4, " Hello"), (0.4, 1.2, " there."), (1.3, 1.6, " How"), (1.6, 1.8, " are"),
        (1.8, 2.5, " you?"), (2.6, 3.0, " Fine"),
    )  # fmt: skip
    out = split(s)
    assert texts(out) == ["Hello there.", "How are you?", "Fine"]
    assert [w for o in out for w in o.words] == list(s.words)
    assert [(o.start, o.end) for o in out] == [(0.0, 1.2), (1.3, 2.5), (2.6, 3.0)]


def test_short_sentences_stay_with_the_next_words() -> None:
    out = split(seg((0.0, 0.3, " Yes."), (0.4, 0.8, " I"), (0.8, 1.6, " agree.")))
    assert texts(out) == ["Yes. I agree."]


def test_pause_and_length_cut_without_punctuation() -> None:
    words = [(i * 1.0, i * 1.0 + 0.5, f" w{i}") for i in range(30)]
    words[5] = (5.0 + 1.0, 6.4, " w5")  # a 1.5-s pause before w5
    out = split(seg(*words), SplitRules(max_seconds=10.0, pause_seconds=0.8))
    assert texts(out)[0] == "w0 w1 w2 w3 w4"
    assert all(o.end - o.start <= 10.0 for o in out)
    assert sum(len(o.words) for o in out) == 30


def test_segments_without_words_are_kept_whole() -> None:
    s = seg()
    assert split(s) == [s]
