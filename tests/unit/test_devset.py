"""The diarization dev set's construction (pure plans, recordings strung together) and the
speaker metrics and pooling of bench/speakers.py, on hand-made tables."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from bench import devset, speakers
from bench.speakers import Scored, bootstrap_diff, pooled, word_accuracy


def voices(n: int) -> list[devset.Voice]:
    return [
        devset.Voice(
            f"v{i}",
            "en",
            tuple(devset.Piece(Path(f"/v{i}-{k}.wav"), 0.0, 3.0 + 4 * k) for k in range(3)),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("people", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", range(5))
def test_a_planned_conversation_is_what_its_rttm_says(people: int, seed: int) -> None:
    recipe = devset.Recipe(people, 50.0, turn=(2.0, 6.0))
    conv = devset.plan(recipe, voices(8), random.Random(seed), "c")
    assert len(conv.speakers) == people  # everyone speaks
    assert conv.turns[-1].end >= 50.0 - 6.0 and conv.duration >= conv.turns[-1].end
    for a, b in zip(conv.turns, conv.turns[1:], strict=False):
        assert a.speaker != b.speaker  # turns change hands
        assert b.start > a.start
        assert b.start >= a.end - 1.0  # an overlap is at most 1 s
    for t in conv.turns:
        assert (t.length <= 6.0 and t.length >= 0.8) or t.length == t.piece.length
        assert t.piece.start <= t.offset and t.offset + t.length <= t.piece.end + 1e-9
    overlaps = sum(b.start < a.end for a, b in zip(conv.turns, conv.turns[1:], strict=False))
    assert overlaps < len(conv.turns) / 2
    again = devset.plan(recipe, voices(8), random.Random(seed), "c")
    assert again == conv  # the same seed, the same conversation


@pytest.mark.parametrize("seed", range(5))
def test_a_monologue_is_one_voice_with_pauses(seed: int) -> None:
    voice = voices(3)[1]
    conv = devset.plan(devset.MONOLOGUE, [voice], random.Random(seed), "alone")
    assert conv.speakers == [voice.name]
    assert conv.turns[-1].end >= devset.MONOLOGUE.seconds - 10.0
    for a, b in zip(conv.turns, conv.turns[1:], strict=False):
        assert b.start >= a.end + 0.099  # a pause between turns, never an overlap


def test_minus_cuts_overlaps_out() -> None:
    assert devset._minus((0.0, 10.0), [(2.0, 3.0), (5.0, 6.0)]) == [
        (0.0, 2.0),
        (3.0, 5.0),
        (6.0, 10.0),
    ]
    assert devset._minus((0.0, 1.0), [(0.0, 2.0)]) == []


REF = [(0.0, 4.0, "alice"), (4.0, 8.0, "bob")]


@pytest.mark.parametrize(
    ("words", "hyp", "expected"),
    [
        # labels are mapped: B is alice, A is bob; every word right
        ([(0.5, 1.0, "B"), (5.0, 5.5, "A")], [(0.0, 4.0, "B"), (4.0, 8.0, "A")], (2, 2, 2, 2)),
        # the turns are right but the second word was given to the wrong speaker (a merge error)
        ([(0.5, 1.0, "B"), (5.0, 5.5, "B")], [(0.0, 4.0, "B"), (4.0, 8.0, "A")], (1, 2, 1, 2)),
        # a word straddling the change belongs to whoever said most of it (bob here)
        ([(3.8, 4.6, "A")], [(0.0, 4.0, "B"), (4.0, 8.0, "A")], (1, 1, 1, 1)),
        # where the diarization itself is wrong, the word is not counted "where right"
        ([(5.0, 5.5, "B")], [(0.0, 8.0, "B")], (0, 1, 0, 0)),
        # a word in no reference turn is not counted at all
        ([(9.0, 9.5, "A")], [(0.0, 4.0, "B"), (4.0, 8.0, "A")], (0, 0, 0, 0)),
    ],
)
def test_word_speaker_accuracy(
    words: list[tuple[float, float, str]],
    hyp: list[tuple[float, float, str]],
    expected: tuple[int, int, int, int],
) -> None:
    assert word_accuracy(words, REF, hyp) == expected


def scored(error: float, total: float = 10.0) -> Scored:
    c = {"total": total, "missed detection": error, "false alarm": 0.0, "confusion": 0.0}
    return Scored(
        components={0.0: c, 0.25: c}, speakers=2, words=(0, 0, 0, 0), seconds=1.0, duration=total
    )


def test_pooled_der_and_its_bootstrap_interval() -> None:
    a = {f"f{i}": scored(1.0) for i in range(20)}  # 10 % everywhere
    b = {f"f{i}": scored(2.0 if i % 2 else 0.0) for i in range(20)}  # 10 % pooled, varying
    assert pooled(a, sorted(a), 0.0) == pytest.approx(0.1)
    diff, lo, hi = bootstrap_diff(a, b, 0.0, resamples=500)
    assert diff == pytest.approx(0.0)
    assert lo < 0.0 < hi  # no difference: the interval holds 0
    worse = {f: scored(3.0) for f in a}
    diff, lo, hi = bootstrap_diff(worse, b, 0.0, resamples=500)
    assert diff == pytest.approx(0.2) and lo > 0.1  # clearly worse: the interval excludes 0


def _recording(path: Path, seconds: float, turns: list[tuple[float, float, str]]) -> Path:
    import soundfile

    soundfile.write(path, np.zeros(int(seconds * devset.RATE), np.float32), devset.RATE)
    path.with_suffix(".rttm").write_text(
        "".join(f"SPEAKER x 1 {a} {b - a} <NA> <NA> {w} <NA> <NA>\n" for a, b, w in turns)
    )
    return path


def test_recordings_strung_together_keep_one_person_one_speaker(tmp_path: Path) -> None:
    a = _recording(tmp_path / "a.wav", 2.0, [(0.0, 1.0, "MEE068"), (1.0, 1.5, "FEO066")])
    b = _recording(tmp_path / "b.wav", 3.0, [(0.5, 2.5, "MEE068"), (2.0, 3.5, "late")])
    out = tmp_path / "out.wav"
    # a turn past its recording's end is dropped; the names stay as the RTTMs give them
    expected = [(0.0, 1.0, "MEE068"), (1.0, 1.5, "FEO066"), (2.5, 4.5, "MEE068")]
    for seconds in (4.0, 5.0):  # whole recordings until that much is written: a and b
        assert devset.string_together([a, b, a], out, seconds=seconds) == expected
        assert len(devset.decode(out)) == 5 * devset.RATE
    assert devset.string_together([a, b, a], out, seconds=5.5)[-2:] == [
        (5.0, 6.0, "MEE068"),
        (6.0, 6.5, "FEO066"),
    ]
    assert devset.string_together([a, b, a], out) == devset.string_together([a, b, a], out, 99)


def test_strung_recordings_must_be_16_khz_mono(tmp_path: Path) -> None:
    import soundfile

    soundfile.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 8000)
    with pytest.raises(ValueError, match="not 16 kHz mono"):
        devset.string_together([tmp_path / "a.wav"], tmp_path / "out.wav")


def _run(path: Path, seed: int, found: int, systems: tuple[str, ...] = ("fast",)) -> Path:
    row = {
        "components": {"0.0": {"total": 10.0, "missed detection": 1.0}},
        "speakers": found,
        "words": [1, 1, 1, 1],
        "seconds": 1.0,
        "duration": 30.0,
    }
    items = {
        "conv00-2spk": {"kind": "synthetic", "speakers": 2, "turn": [2.0, 6.0]},
        "trn00": {"kind": "ami", "speakers": 3, "turn": None},
    }
    files = {system: {name: row for name in items} for system in systems}
    path.write_text(json.dumps({"seed": seed, "items": items, "files": files}))
    return path


def test_pooled_seeds_count_the_shared_recordings_once(tmp_path: Path) -> None:
    a = _run(tmp_path / "a.json", 0, 2)
    b = _run(tmp_path / "b.json", 1, 3, ("fast", "balanced"))
    results, items = speakers.pool([a, b])
    assert [i.name for i in items] == ["s0/conv00-2spk", "s0/trn00", "s1/conv00-2spk"]
    assert sorted(results.rows["fast"]) == ["s0/conv00-2spk", "s0/trn00", "s1/conv00-2spk"]
    assert results.rows["fast"]["s1/conv00-2spk"].speakers == 3
    assert results.rows["fast"]["s0/trn00"].speakers == 2  # the first run's
    # a system the first run did not have takes the shared recording from the run that has it
    assert sorted(results.rows["balanced"]) == ["s0/trn00", "s1/conv00-2spk"]
    assert results.rows["balanced"]["s0/trn00"].speakers == 3
    with pytest.raises(SystemExit, match="already in the pool"):
        speakers.pool([a, a])
