"""The HTTP face's keys (``transcribd keys``): made, listed, removed.  A key is shown once,
when it is made; the database keeps only its hash, so every node of a fleet knows it."""

from __future__ import annotations

import re
from contextlib import closing

from daemon.config import Config
from daemon.errors import UserError
from daemon.keybook import KeyRecord, new_key
from daemon.store import open_store

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
"""A key's name: what ``status`` shows as a job's origin (``http:NAME``)."""


def add(config: Config, name: str) -> str:
    """A new key named ``name`` (returned: the only time it is seen)."""
    if not NAME.fullmatch(name):
        raise UserError(
            f"a key's name is 1 to 64 letters, digits or . _ @ - (starting with a letter or "
            f"digit), got {name!r}"
        )
    key = new_key()
    with closing(open_store(config)) as store:
        if not store.keys.add(name, key, store.now()):
            raise UserError(f"a key named '{name}' exists: remove it first, or pick another name")
    return key


def listed(config: Config) -> list[KeyRecord]:
    with closing(open_store(config)) as store:
        return store.keys.all()


def remove(config: Config, name: str) -> None:
    with closing(open_store(config)) as store:
        if not store.keys.remove(name):
            known = ", ".join(k.name for k in store.keys.all()) or "none"
            raise UserError(f"no key '{name}' (keys: {known})")
