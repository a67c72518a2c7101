"""Looking after an installation: the effective config, the doctor's checks, the database's
schema."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import db
from daemon import doctor as doctor_mod
from daemon.config import Config, explain, read_raw
from daemon.config import find as find_config
from daemon.config.explain import as_toml
from daemon.doctor import Finding


def db_upgrade(config: Config) -> str | None:
    engine = db.make_engine(config.database.url)
    try:
        return db.upgrade(engine)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class ConfigReport:
    source: str
    """Which file was read and why, or why none was."""
    values: list[tuple[str, Any, str]]
    """(section.key, effective value, "file" or "default")."""
    toml: list[str]
    """The same as TOML that ``--config`` reads back to the same configuration (secrets
    masked and commented out), each value's origin in a comment."""


def show_config(config: Config, given: Path | None) -> ConfigReport:
    """The effective configuration and where each value came from (``transcribd config``)."""
    path, why = find_config(given)
    raw = read_raw(path) if path is not None else {}
    source = f"{path} ({why})" if path is not None else why
    return ConfigReport(source, explain(config, raw), as_toml(config, raw))


def doctor(config: Config) -> list[Finding]:
    return doctor_mod.run(config)
