"""Full-text search over every done job's transcript (``transcribd search``, the pages'
``/search``): the lines that hold every word (and "phrase") asked for, best first, each with
its job, file, speaker and time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from daemon import fsnames
from daemon.app.session import using
from daemon.config import Config
from daemon.store import Store
from daemon.transcripts import MARK

LIMIT = 50


@dataclass(frozen=True)
class Found:
    job_id: int
    name: str
    """The file's name (an upload's own)."""
    speaker: str | None
    start: float
    end: float
    snippet: str
    """The line's words around the match, the matching ones between :data:`MARK`."""


def search(
    config: Config, words: str, limit: int = LIMIT, store: Store | None = None
) -> list[Found]:
    with using(config, store) as store:
        hits = store.transcripts.search(words, limit)
    return [
        Found(
            h.job_id,
            h.upload_name or fsnames.printable(Path(h.path).name),
            h.speaker,
            h.start,
            h.end,
            h.snippet,
        )
        for h in hits
    ]


def plain(snippet: str, left: str = "[", right: str = "]") -> str:
    """A snippet with its matching words between ``left`` and ``right`` (for a terminal)."""
    return snippet.replace(MARK[0], left).replace(MARK[1], right)
