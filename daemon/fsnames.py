"""File names as data: any name the file system allows survives the database and the screen.

POSIX names are bytes; Python gives undecodable bytes as lone surrogates (``surrogateescape``),
which SQLite (UTF-8 text) and a strict terminal cannot take.  A path that is valid UTF-8 is
stored as itself; any other is stored as ``fsbytes:`` and the hex of its bytes.  Stored paths are
absolute, so they start with ``/`` and the prefix cannot be confused with a real path.
"""

from __future__ import annotations

import os

_PREFIX = "fsbytes:"


def to_db(path: str) -> str:
    """The text stored for ``path`` (reversible with :func:`from_db`)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return _PREFIX + os.fsencode(path).hex()
    return path


def from_db(text: str) -> str:
    """The path (as Python's file functions expect it) of stored ``text``."""
    if text.startswith(_PREFIX):
        return os.fsdecode(bytes.fromhex(text[len(_PREFIX) :]))
    return text


def printable(path: str | os.PathLike[str]) -> str:
    """``path`` for people: undecodable bytes shown as U+FFFD, control characters escaped."""
    text = os.fsencode(path).decode("utf-8", "replace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
