"""A config re-read on SIGHUP: which of its changes a running daemon takes at once, and which
wait for a restart."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from daemon.config.schema import Config


@dataclass(frozen=True)
class Reload:
    """What a reloaded config changes in a running daemon (see :func:`reload`)."""

    config: Config
    """The config in force from now on: the old one with the reloadable parts of the new."""
    applied: tuple[str, ...]
    """Keys that changed and took effect."""
    need_restart: tuple[str, ...]
    """Keys that changed but only take effect after a restart."""


RELOADABLE = ("watch", "folders", "daemon.log_level")


def reload(old: Config, new: Config) -> Reload:
    """Apply a re-read config (SIGHUP) to a running daemon's (pure): the watched folders and
    their options, per-folder options and the log level change at once; every other key that
    changed is named as needing a restart."""
    changed = _changed_keys(old, new)
    applied = tuple(k for k in changed if k.startswith(RELOADABLE))
    effective = dataclasses.replace(
        old,
        watch=new.watch,
        folders=new.folders,
        daemon=dataclasses.replace(old.daemon, log_level=new.daemon.log_level),
    )
    return Reload(effective, applied, tuple(k for k in changed if k not in applied))


def _changed_keys(old: Config, new: Config) -> list[str]:
    out: list[str] = []
    for f in dataclasses.fields(Config):
        if f.name == "source":
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a == b:
            continue
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            out += [
                f"{f.name}.{g.name}"
                for g in dataclasses.fields(a)
                if getattr(a, g.name) != getattr(b, g.name)
            ]
        else:
            out.append(f.name)
    return out
