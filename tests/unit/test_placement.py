"""Where transcripts go and what they are called: pure tables."""

from __future__ import annotations

from pathlib import PurePosixPath as P

import pytest

from daemon.placement import check_name, file_name, innermost, output_folder

WATCHED = [P("/srv/in"), P("/srv/in/nested"), P("/media/tv")]


@pytest.mark.parametrize(
    ("source", "layout", "expected"),
    [
        # mirror: the input's folders below its watched folder, under the output folder
        ("/srv/in/talk.mp3", "mirror", "/out"),
        ("/srv/in/a/talk.mp3", "mirror", "/out/a"),
        ("/srv/in/b/talk.mp3", "mirror", "/out/b"),
        ("/srv/in/a/b/c/talk.mp3", "mirror", "/out/a/b/c"),
        # a watched folder inside another: mirrored from the outer one (no collisions)
        ("/srv/in/nested/talk.mp3", "mirror", "/out/nested"),
        ("/media/tv/Show/S01/e1.mkv", "mirror", "/out/Show/S01"),
        # added from outside every watched folder: the top of the output folder
        ("/home/u/x.wav", "mirror", "/out"),
        # a name that only starts like a watched folder is not inside it
        ("/srv/inbox/a/x.wav", "mirror", "/out"),
        # folder names as safe as file names: valid UTF-8, no control characters
        ("/srv/in/caf\udce9/x\nz/talk.mp3", "mirror", "/out/caf\ufffd/x_z"),
        ("/srv/in/a/talk.mp3", "beside", "/srv/in/a"),
        ("/home/u/x.wav", "beside", "/home/u"),
        ("/srv/in/a/b/talk.mp3", "flat", "/out"),
    ],
)
def test_output_folder(source: str, layout: str, expected: str) -> None:
    assert output_folder(P(source), layout, P("/out"), WATCHED) == P(expected)


def test_unknown_layout_is_an_error() -> None:
    with pytest.raises(ValueError, match="layout"):
        output_folder(P("/srv/in/a.wav"), "tree", P("/out"), WATCHED)


@pytest.mark.parametrize(
    ("template", "stem", "lang", "n", "expected"),
    [
        ("{stem}", "talk", "en", 0, "talk"),
        ("{stem}", "talk", "en", 2, "talk-2"),
        ("{stem}.{lang}", "movie", "en", 0, "movie.en"),
        ("{stem}.{lang}", "movie", "ru", 1, "movie-1.ru"),  # the language stays last
        ("{stem}.{lang}", "silence", "", 0, "silence.und"),
        ("{lang}-{stem}", "a.b", "de", 0, "de-a.b"),
        ("{stem}.transcript", "t", "en", 0, "t.transcript"),
    ],
)
def test_file_name(template: str, stem: str, lang: str, n: int, expected: str) -> None:
    assert file_name(template, stem, lang, n) == expected


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{stem}", None),
        ("{stem}.{lang}", None),
        ("{lang}", "lacks {stem}"),
        ("transcript", "lacks {stem}"),
        ("{stem}.{language}", "{language} is not a placeholder"),
        ("{stem!r}", "{stem} is not a placeholder"),
        ("{stem:>10}", "{stem} is not a placeholder"),
        ("{0}", "{0} is not a placeholder"),
        ("{stem", "not a valid template"),
        ("subs/{stem}", "path separator"),
        ("{stem}\\x", "path separator"),
    ],
)
def test_check_name(template: str, problem: str | None) -> None:
    found = check_name(template)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_innermost() -> None:
    assert innermost(P("/srv/in/nested/a.wav"), WATCHED) == P("/srv/in/nested")
    assert innermost(P("/srv/in/a/a.wav"), WATCHED) == P("/srv/in")
    assert innermost(P("/elsewhere/a.wav"), WATCHED) is None
