"""Where a config file is found, and how its TOML becomes a checked :class:`Config`.

Unknown keys and bad values raise :class:`ConfigError` with one line naming the key; the CLI
turns it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.config.check import check
from daemon.config.schema import (
    PROFILE_NAMES,
    ComputeConfig,
    Config,
    ConfigError,
    DaemonConfig,
    DatabaseConfig,
    DiarizationConfig,
    FolderOptions,
    HooksConfig,
    HttpConfig,
    MetricsConfig,
    ModelsConfig,
    OutputConfig,
    PipelineConfig,
    ProfileOverride,
    VoicesConfig,
    WatchConfig,
)

ENV_CONFIG = "TRANSCRIBD_CONFIG"
SYSTEM_CONFIG = Path("/etc/transcribd/config.toml")
"""The service's config (the systemd unit reads it; so does ``sudo -u transcribd transcribd
status``, which then finds the service's database)."""


def data_home() -> Path:
    """Where state lives: systemd's StateDirectory, else XDG_DATA_HOME, else ~/.local/share."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "transcribd"


def cache_home() -> Path:
    """Where derived files (the joined model) live: CacheDirectory, XDG_CACHE_HOME, ~/.cache."""
    cache = os.environ.get("CACHE_DIRECTORY")
    if cache:
        return Path(cache.split(":")[0])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "transcribd"


def defaults_for(home: Path, cache: Path) -> dict[str, dict[str, Any]]:
    """The embedded defaults, as TOML-shaped data (also used to render config.example.toml)."""
    return {
        "database": {"url": f"sqlite:///{home / 'jobs.db'}"},
        "watch": {"folders": [str(home / "inbox")]},
        "output": {"dir": str(home / "transcripts")},
        "models": {"cache_dir": str(cache / "models")},
        "daemon": {"work_dir": str(home / "work")},
        "http": {"upload_dir": str(home / "uploads")},
    }


def search_path() -> list[Path]:
    """Where a config file is looked for when neither ``--config`` nor ``$TRANSCRIBD_CONFIG``
    names one, in order: the user's, then the system's."""
    user = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path(user) / "transcribd" / "config.toml", SYSTEM_CONFIG]


def find(path: Path | None = None) -> tuple[Path | None, str]:
    """The config file to read and why: ``path`` (``--config``), else ``$TRANSCRIBD_CONFIG``,
    else the first file of :func:`search_path` that exists; (None, why) for the defaults."""
    if path is not None:
        return path, "--config"
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG]), f"${ENV_CONFIG}"
    for candidate in search_path():
        if candidate.is_file():
            return candidate, "found on the search path"
    looked = ", ".join(map(str, search_path()))
    return None, f"no config file ({looked} do not exist): built-in defaults"


def read_raw(path: Path) -> dict[str, Any]:
    """The TOML of a config file, as a mapping (ConfigError when it cannot be read)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load(path: Path | None = None) -> Config:
    """Load the config file :func:`find` finds, else the embedded defaults."""
    path, _why = find(path)
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_raw(path)
    return from_mapping(raw, source=path)


def from_mapping(raw: Mapping[str, Any], source: Path | None = None) -> Config:
    base = source.parent if source is not None else Path.cwd()
    merged: dict[str, dict[str, Any]] = defaults_for(data_home(), cache_home())
    sections: dict[str, type[Any]] = {
        "database": DatabaseConfig,
        "watch": WatchConfig,
        "output": OutputConfig,
        "pipeline": PipelineConfig,
        "models": ModelsConfig,
        "daemon": DaemonConfig,
        "diarization": DiarizationConfig,
        "metrics": MetricsConfig,
        "http": HttpConfig,
        "hooks": HooksConfig,
        "voices": VoicesConfig,
        "compute": ComputeConfig,
    }
    for key, value in raw.items():
        if key not in (*sections, "profiles", "folders"):
            raise ConfigError(f"unknown config section '{key}'")
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{key}' must be a table")
        if key not in ("profiles", "folders"):
            merged.setdefault(key, {}).update(value)
    built = {name: _build(cls, merged.get(name, {}), name, base) for name, cls in sections.items()}
    profiles: dict[str, ProfileOverride] = {}
    for name, table in dict(raw.get("profiles", {})).items():
        if name not in PROFILE_NAMES:
            raise ConfigError(
                f"unknown profile 'profiles.{name}' (known: {', '.join(PROFILE_NAMES)})"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(f"'profiles.{name}' must be a table")
        profiles[name] = _build(ProfileOverride, table, f"profiles.{name}", base)
    folders: dict[Path, FolderOptions] = {}
    for name, table in dict(raw.get("folders", {})).items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"'folders.\"{name}\"' must be a table")
        folder = _convert(Path, name, f'folders."{name}"', base)
        folders[folder] = _build(FolderOptions, table, f'folders."{name}"', base)
    daemon = built["daemon"]
    if not daemon.node:
        built["daemon"] = dataclasses.replace(daemon, node=socket.gethostname())
    config = Config(**built, profiles=profiles, folders=folders, source=source)
    check(config)
    return config


def _build(cls: type[Any], table: Mapping[str, Any], section: str, base: Path) -> Any:
    hints = typing.get_type_hints(cls)
    if not isinstance(table, Mapping):
        raise ConfigError(f"'{section}' must be a table")
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{section}.{key}'")
        values[key] = _convert(hints[key], value, f"{section}.{key}", base)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, base: Path) -> Any:
    """Check ``value`` against the field type ``hint`` and convert it (lists -> tuples, paths)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # X | None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key, base)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {_kind(value)}")
        return tuple(_convert(args[0], item, key, base) for item in value)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a path string, got {_kind(value)}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {_kind(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {_kind(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_kind(value)}")
        return value.lower().lstrip(".") if key.endswith("extensions") else value
    raise ConfigError(f"{key}: unsupported type")  # pragma: no cover - schema bug


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
