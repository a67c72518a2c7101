"""The store a library call works on: the caller's own (a server keeps one open for all its
requests), or one opened for the call and closed after it (a command of the CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager

from daemon.config import Config
from daemon.store import Store, open_store


@contextmanager
def using(config: Config, store: Store | None = None) -> Iterator[Store]:
    if store is not None:
        yield store
        return
    with closing(open_store(config)) as opened:
        yield opened
