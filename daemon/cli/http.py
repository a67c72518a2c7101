"""The HTTP face from the command line: ``serve`` (the server alone, no workers) and ``keys``
(the keys its clients give)."""

from __future__ import annotations

import click

from daemon.app import keys as keys_app
from daemon.app import serving
from daemon.cli.common import config_of, handled
from daemon.errors import SetupError


@click.command()
@click.pass_context
@handled
def serve(ctx: click.Context) -> None:
    """Serve the HTTP face alone ([http] listen), without workers, against the same database."""
    config = config_of(ctx)
    if not config.http.listen:
        raise SetupError('nothing to serve: set [http] listen = "HOST:PORT" in the config')
    from daemon.http.server import Server

    serving.serve_forever(config, Server)


@click.group()
def keys() -> None:
    """The keys HTTP clients give (as Bearer token, or Basic auth's password)."""


@keys.command("add")
@click.argument("name")
@click.pass_context
@handled
def keys_add(ctx: click.Context, name: str) -> None:
    """Make a key named NAME; it is printed once, alone on the last line (only its hash is
    kept)."""
    key = keys_app.add(config_of(ctx), name)
    click.echo(f"key '{name}' made; it is shown only now:", err=True)
    click.echo(key)


@keys.command("list")
@click.pass_context
@handled
def keys_list(ctx: click.Context) -> None:
    """The keys, with when each was made and last used."""
    listed = keys_app.listed(config_of(ctx))
    for k in listed:
        used = f"last used {k.used_at:%Y-%m-%d %H:%M} UTC" if k.used_at else "never used"
        click.echo(f"{k.name}  made {k.created_at:%Y-%m-%d %H:%M} UTC, {used}")
    if not listed:
        click.echo("no keys (transcribd keys add NAME)")


@keys.command("remove")
@click.argument("name")
@click.pass_context
@handled
def keys_remove(ctx: click.Context, name: str) -> None:
    """Remove the key NAME: requests giving it are refused from now on."""
    keys_app.remove(config_of(ctx), name)
    click.echo(f"removed key '{name}'")
