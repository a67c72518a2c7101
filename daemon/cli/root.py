"""The ``transcribd`` group: its options (config file, log level), and every command."""

from __future__ import annotations

import os
from pathlib import Path

import click

from daemon import __version__, libdirs, logs
from daemon.cli import admin, http, jobs, people, search
from daemon.cli import cache as cache_cmd
from daemon.cli import oneshot as oneshot_cmd
from daemon.config import ConfigError, load
from daemon.sysload import bound_malloc_arenas


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    envvar="TRANSCRIBD_CONFIG",
    help="TOML config file (default: embedded defaults).",
)
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Logging level (default: daemon.log_level or INFO for run, WARNING otherwise).",
)
@click.version_option(__version__, prog_name="transcribd")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, log_level: str | None) -> None:
    """transcribd: drop audio or video into a folder, get transcripts."""
    running = ctx.invoked_subcommand in ("run", "serve")
    logs.setup(log_level or ("INFO" if running else "WARNING"))
    try:
        config = load(config_path)
    except ConfigError as exc:
        click.echo(f"transcribd: config: {exc}", err=True)
        ctx.exit(2)
    libdirs.confine(config.models.cache_dir)  # before any library loads; workers inherit it
    if running:
        level = (log_level or config.daemon.log_level or "INFO").upper()
        logs.set_level(level)
        os.environ["TRANSCRIBD_LOG_LEVEL"] = level  # the worker processes' level
    ctx.obj = {"config": config, "config_path": config_path}


def main() -> None:
    bound_malloc_arenas()
    cli(prog_name="transcribd")


for command in (
    jobs.run,
    jobs.status,
    jobs.nodes,
    jobs.add,
    jobs.requeue,
    oneshot_cmd.transcribe,
    people.speakers,
    people.voices,
    admin.config_cmd,
    admin.doctor,
    admin.db_group,
    cache_cmd.cache_group,
    http.serve,
    search.search,
    http.keys,
):
    cli.add_command(command)
