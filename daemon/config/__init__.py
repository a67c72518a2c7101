"""TOML configuration -> frozen, validated dataclasses.

Every key has a default, so the daemon runs with no file at all.  Unknown keys and bad values raise
:class:`ConfigError` with one line naming the key; the CLI turns it into exit code 2.

This package's face: the names the rest of the daemon uses.  Inside, each module owns one idea:
``schema`` (the sections' dataclasses), ``reading`` (finding the file and reading it),
``check`` (whether the values make sense), ``explain`` (what ``transcribd config`` shows) and
``reloading`` (SIGHUP).
"""

from __future__ import annotations

from daemon.config.check import language_problem, parse_listen
from daemon.config.explain import explain
from daemon.config.reading import cache_home, find, from_mapping, load, read_raw
from daemon.config.reloading import reload
from daemon.config.schema import (
    OUTPUT_OPTIONS,
    PROFILE_NAMES,
    ComputeConfig,
    Config,
    ConfigError,
    DaemonConfig,
    DatabaseConfig,
    FolderOptions,
    HooksConfig,
    ModelsConfig,
    OutputConfig,
    PipelineConfig,
    ProfileOverride,
    SpeakerHints,
    Vocabulary,
    WatchConfig,
    with_device,
)

__all__ = [
    "OUTPUT_OPTIONS",
    "PROFILE_NAMES",
    "ComputeConfig",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "DatabaseConfig",
    "FolderOptions",
    "HooksConfig",
    "ModelsConfig",
    "OutputConfig",
    "PipelineConfig",
    "ProfileOverride",
    "SpeakerHints",
    "Vocabulary",
    "WatchConfig",
    "cache_home",
    "explain",
    "find",
    "from_mapping",
    "language_problem",
    "load",
    "parse_listen",
    "read_raw",
    "reload",
    "with_device",
]
