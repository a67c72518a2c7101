from __future__ import annotations

from daemon import languages


def test_the_names_are_of_the_languages_faster_whisper_knows() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert set(languages.NAMES) == set(_LANGUAGE_CODES)
    assert len(set(languages.NAMES.values())) == len(languages.NAMES)


def test_codes_and_names_both_ways() -> None:
    assert languages.name("en") == "english" and languages.name("xx") == "xx"
    assert languages.code("English") == "en" and languages.code(" ru ") == "ru"
    assert languages.code("haitian creole") == "ht" and languages.code("klingon") is None
