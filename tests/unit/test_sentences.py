"""Sentence ends, and the full stops that are not one (a table, English and Russian)."""

from __future__ import annotations

import pytest

from daemon.pipeline.asr import Segment, Word
from daemon.pipeline.segments import split
from daemon.pipeline.sentences import ends_sentence

CASES = [
    # (word, next word, ends a sentence?)
    (" there.", " How", True),
    (" you?", " Fine", True),
    (" stop!", " and", True),
    (" well...", " So", True),
    (" Mr.", " Smith", False),
    (" Mrs.", " Jones", False),
    (" Dr.", " Who", False),
    (" St.", " Claude,", False),
    (" Prof.", " Higgins", False),
    (" e.g.", " apples", False),
    (" i.e.", " the", False),
    (" vs.", " Chicago", False),
    (" cf.", " chapter", False),
    (" J.", " R.", False),  # initials
    (" R.", " Tolkien", False),
    (" 3.", " apples", False),  # a list, an ordinal
    (" 1.", " 5", False),  # a decimal split in two
    (" 1999.", " Then", True),  # a year that ends a sentence
    (" etc.", " The", True),
    (" etc.", " and", False),
    (" p.m.", " We", True),
    (" p.m.", " tomorrow", False),
    (" U.S.", " Army", True),  # ambiguous: a capital follows
    (" U.S.", " troops", False),
    (" Inc.", " is", False),
    (" no.", " Then", True),  # "I said no."
    (" No.", " 5", False),  # "No. 5"
    (" et", " al.", False),
    (" al.", " found", False),
    (' done."', " She", True),
    (" done.", None, True),  # the last word
    (" Mr.", None, False),  # a title never ends, not even last
    (" т.", " е.", False),  # т. е.
    (" е.", " это", False),
    (" т.", " к.", False),
    (" ул.", " Ленина", False),
    (" г.", " он", False),  # в 1999 г. он …
    (" г.", " Потом", True),
    (" и.о.", " директора", False),
    (" А.", " С.", False),  # А. С. Пушкин
    (" С.", " Пушкин", False),
    (" д.", " Потом", True),  # и т. д. Потом …
    (" д.", " и", False),
    (" рис.", " 3", False),
    (" конец.", " Начало", True),
    (" вопрос?", " Да", True),
    (" «Да.»", " Он", True),
    (" word", " Next", False),  # no punctuation at all
    (" word,", " next", False),
]


@pytest.mark.parametrize(("word", "following", "expected"), CASES)
def test_sentence_ends(word: str, following: str | None, expected: bool) -> None:
    assert ends_sentence(word, following) is expected


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 30


def test_a_saint_does_not_split_a_segment() -> None:
    """The case that was reported: "I'm from St. Claude, Minnesota" was cut after "St."."""
    text = " I'm from St. Claude, Minnesota, and I like it. Really."
    words = tuple(Word(i * 0.4, i * 0.4 + 0.35, f" {w}", 0.9) for i, w in enumerate(text.split()))
    out = split(Segment(0.0, words[-1].end, text, words))
    assert [s.text for s in out] == [
        "I'm from St. Claude, Minnesota, and I like it.",
        "Really.",
    ]
