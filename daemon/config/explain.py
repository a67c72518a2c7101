"""What ``transcribd config`` shows: every key's effective value and where it came from, with
secrets masked, as TOML that ``--config`` reads back to the same configuration."""

from __future__ import annotations

import dataclasses
import math
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
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
            key = f"{section.name}.{f.name}"
            out.append((key, _masked(key, getattr(value, f.name)), origin))
    return out


def as_toml(config: Config, raw: Mapping[str, Any]) -> list[str]:
    """The lines of ``transcribd config`` (pure): every section with each key's value and,
    in a comment, where it came from, then the ``[profiles.*]`` and ``[folders."..."]`` tables
    the file has.  ``--config`` reads them back to the same configuration: a key without a
    value (unset) is a comment, and so is a secret, shown masked (the first lines name those
    to fill in)."""
    body: list[str] = []
    hidden: list[str] = []
    section = ""
    for key, shown, origin in explain(config, raw):
        head, name = key.split(".", 1)
        if head != section:
            body += ["", f"[{head}]"]
            section = head
        actual = getattr(getattr(config, head), name)
        if shown != actual:
            hidden.append(key)
        body.append(_line(name, shown, origin, masked=shown != actual))
    for name, override in config.profiles.items():
        body += ["", f"[profiles.{name}]", *_set_keys(override)]
    for folder, options in config.folders.items():
        quoted = _toml_value(str(folder))
        if quoted is None:
            body += ["", f"# [folders.{folder!r}]: a path TOML cannot hold, left out"]
            continue
        body += ["", f"[folders.{quoted}]", *_set_keys(options)]
    if not hidden:
        return body[1:]
    note = f"# not shown (secrets): {', '.join(hidden)}; fill them in to use this file"
    return [note, *body]


def _masked(key: str, value: Any) -> Any:
    """``value`` as it may be shown: secrets replaced, passwords and tokens cut out."""
    if key in SECRET_KEYS and value:
        return "<set>"
    if key == "hooks.webhook" and value:
        return hooks.printable_url(value)
    if key == "database.url":
        return _hide_password(value)
    return value


def _line(name: str, value: Any, origin: str, masked: bool = False) -> str:
    """One ``key = value  # origin`` line; commented out where it cannot be read back."""
    text = _toml_value(value)
    if value is None:
        return f"# {name} = (unset)  # {origin}"
    if text is None:
        return f"# {name} = {value!r}  # {origin}; TOML cannot hold this value"
    if masked:
        return f"# {name} = {text}  # {origin}; a secret, not shown"
    return f"{name} = {text}  # {origin}"


def _set_keys(table: Any) -> list[str]:
    """The keys of a profile's or a folder's table that the file sets (unset ones are None)."""
    return [
        _line(f.name, value, "file")
        for f in dataclasses.fields(table)
        if (value := getattr(table, f.name)) is not None
    ]


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_value(value: Any) -> str | None:
    """``value`` as TOML writes it (paths as strings, tuples as arrays); None when TOML cannot
    hold it (no value, or a string that is not Unicode text: a path of undecodable bytes)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, tuple | list):
        items = [_toml_value(v) for v in value]
        if any(i is None for i in items):
            return None
        return "[" + ", ".join(str(i) for i in items) + "]"
    text = str(value) if isinstance(value, Path) else value
    if not isinstance(text, str):
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    out = [
        _ESCAPES.get(c) or (f"\\u{ord(c):04X}" if ord(c) < 0x20 or ord(c) == 0x7F else c)
        for c in text
    ]
    return '"' + "".join(out) + '"'


def _hide_password(url: str) -> str:
    """A database URL with its password shown as ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()
