"""``transcribd cache``: the step cache, where each pipeline step's result is kept by content."""

from __future__ import annotations

import sys

import click

from daemon.app import cache as cache_app
from daemon.cli.common import UsageError, config_of, handled


@click.group("cache")
def cache_group() -> None:
    """The step cache: each step's result, kept by content (shared by its jobs)."""


@cache_group.command("clear")
@click.argument("jobs", nargs=-1, type=int)
@click.option(
    "--step",
    "steps",
    multiple=True,
    type=click.Choice(cache_app.STEPS),
    help="Only this step (repeatable; default: every step).",
)
@click.option("--all", "everything", is_flag=True, help="Every content's, not only the JOBs'.")
@click.pass_context
@handled
def clear(
    ctx: click.Context, jobs: tuple[int, ...], steps: tuple[str, ...], everything: bool
) -> None:
    """Drop cached steps of the JOBs' content (or --all): computed again at the next run."""
    if bool(jobs) == everything:
        raise UsageError("give job ids or --all")
    res = cache_app.clear(config_of(ctx), list(jobs), list(steps), everything)
    which = ", ".join(steps) if steps else "every step"
    of = "" if everything else " of " + ", ".join(f"#{j}" for j in res.jobs)
    if everything or res.jobs:
        click.echo(f"dropped {res.rows} cached result(s){of} ({which})")
    for job_id, others in res.shared.items():
        same = ", ".join(f"#{j}" for j in others)
        click.echo(f"#{job_id} has the same content as {same}: theirs are dropped too")
    for job_id, why in res.skipped.items():
        click.echo(f"skipped #{job_id}: {why}", err=True)
    if res.skipped and not res.jobs:
        sys.exit(1)
