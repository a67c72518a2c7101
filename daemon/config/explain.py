"""What ``transcribd config`` shows: every key's effective value and where it came from, with
secrets masked."""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping
from typing import Any

from daemon import hooks
from daemon.config.schema import Config

SECRET_KEYS = ("hooks.webhook_secret",)
"""Keys whose values are never shown (``transcribd config`` prints "<set>")."""


def explain(config: Config, raw: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """(key, effective value, where it came from) for every key of every section (pure):
    "file" when ``raw`` (the config file's TOML) sets it, else "default".  Secrets are
    masked: :data:`SECRET_KEYS`, the database's password, the webhook URL's user, password
    and query."""
    out: list[tuple[str, Any, str]] = []
    for section in dataclasses.fields(Config):
        value = getattr(config, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        given = raw.get(section.name, {})
        for f in dataclasses.fields(value):
            origin = "file" if f.name in given else "default"
            key, shown = f"{section.name}.{f.name}", getattr(value, f.name)
            if key in SECRET_KEYS and shown:
                shown = "<set>"
            elif key == "hooks.webhook" and shown:
                shown = hooks.printable_url(shown)
            elif key == "database.url":
                shown = _hide_password(shown)
            out.append((key, shown, origin))
    return out


def _hide_password(url: str) -> str:
    """A database URL with its password shown as ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()
