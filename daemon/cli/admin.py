"""Looking after an installation: ``config``, ``doctor``, ``db upgrade``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from daemon.app import admin as admin_app
from daemon.cli.common import config_of, handled


@click.command("config")
@click.pass_context
@handled
def config_cmd(ctx: click.Context) -> None:
    """Print the effective configuration and where each value came from."""
    report = admin_app.show_config(config_of(ctx), ctx.obj["config_path"])
    click.echo(f"# config: {report.source}")
    section = ""
    for key, value, origin in report.values:
        head, name = key.split(".", 1)
        if head != section:
            click.echo(f"\n[{head}]")
            section = head
        click.echo(f"{name} = {_toml(value)}  # {origin}")


def _toml(value: Any) -> str:
    """A value as TOML writes it (paths as strings)."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@click.command()
@click.pass_context
@handled
def doctor(ctx: click.Context) -> None:
    """Check config, database, folders, models, decoder, disk and machine; print fixes.

    Exit 1 when something would stop the daemon from working."""
    findings = admin_app.doctor(config_of(ctx))
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    for f in findings:
        click.echo(f"{marks[f.level]}  {f.check}: {f.detail}")
        if f.fix:
            click.echo(f"      fix: {f.fix}")
    failed = sum(f.level == "fail" for f in findings)
    warned = sum(f.level == "warn" for f in findings)
    click.echo(f"{failed} problem(s), {warned} warning(s)")
    if failed:
        sys.exit(1)


@click.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
@click.pass_context
@handled
def db_upgrade(ctx: click.Context) -> None:
    """Apply schema migrations up to the newest."""
    rev = admin_app.db_upgrade(config_of(ctx))
    click.echo(f"database at revision {rev}")
