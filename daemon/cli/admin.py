"""Looking after an installation: ``config``, ``doctor``, ``db upgrade``."""

from __future__ import annotations

import sys

import click

from daemon.app import admin as admin_app
from daemon.cli.common import config_of, handled


@click.command("config")
@click.pass_context
@handled
def config_cmd(ctx: click.Context) -> None:
    """Print the effective configuration and where each value came from, as TOML that
    --config reads back to the same configuration (secrets are masked and commented out)."""
    report = admin_app.show_config(config_of(ctx), ctx.obj["config_path"])
    click.echo(f"# config: {' '.join(report.source.splitlines())}")
    for line in report.toml:
        click.echo(line)


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
