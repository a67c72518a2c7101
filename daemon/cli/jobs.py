"""The daemon and its queue: ``run``, ``status``, ``nodes``, ``add``, ``requeue``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from daemon.app import queue, running
from daemon.app import status as status_app
from daemon.cli import display
from daemon.cli.common import UsageError, config_of, handled, job_options
from daemon.config import Config
from daemon.jobs import JobOptions
from daemon.signals import StopSignals


@click.command()
@click.option("--once", is_flag=True, help="Rescan, process everything pending, then exit.")
@click.pass_context
@handled
def run(ctx: click.Context, once: bool) -> None:
    """Run the daemon in the foreground."""
    config = config_of(ctx)
    if once:
        summary = running.run_once(config)
        click.echo(
            f"processed {len(summary.done) + len(summary.failed)} job(s): "
            f"{len(summary.done)} done, {len(summary.failed)} failed"
        )
        return
    running.run_forever(config, faces=faces(config))


def faces(config: Config) -> list[running.Face]:
    """What ``run`` serves beside its work: the HTTP face when ``[http] listen`` is set."""
    if not config.http.listen:
        return []
    from daemon.http.server import Server

    return [Server]


@click.command()
@click.argument("job", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of job objects.")
@click.option("--watch", "watch", is_flag=True, help="Refresh in place until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.pass_context
@handled
def status(
    ctx: click.Context, job: int | None, as_json: bool, watch: bool, interval: float
) -> None:
    """Show jobs: id, file, status, progress, elapsed/ETA, error."""
    config = config_of(ctx)
    if as_json and watch:
        raise UsageError("--watch shows the table; for scripts, poll --json")
    if watch:
        out = sys.stdout

        def render() -> str:
            return "\n".join(display.status_lines(status_app.status(config, job)))

        # Ctrl-C sets a flag the loop reads: as a KeyboardInterrupt it could land in a garbage
        # collector's callback, be reported as "ignored" there, and leave the loop running
        with StopSignals() as stop:
            display.watch(render, interval, out, out.isatty(), stop=stop.graceful.is_set)
        return
    report = status_app.status(config, job)
    if as_json:
        click.echo(json.dumps([v.as_dict() for v in report.jobs], indent=2, ensure_ascii=False))
        return
    for line in display.status_lines(report):
        click.echo(line)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of node objects.")
@click.pass_context
@handled
def nodes(ctx: click.Context, as_json: bool) -> None:
    """Show the daemons (nodes) using this database: alive or last heartbeat, host, plan."""
    found = status_app.nodes(config_of(ctx))
    if as_json:
        click.echo(json.dumps([n.as_dict() for n in found], indent=2, ensure_ascii=False))
    elif not found:
        click.echo("no daemon has used this database yet")
    else:
        for line in display.node_table(found):
            click.echo(line)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@job_options
@click.pass_context
@handled
def add(ctx: click.Context, paths: tuple[Path, ...], options: JobOptions) -> None:
    """Enqueue files (or folders) now."""
    for path, res in queue.add(config_of(ctx), list(paths), options):
        if not res.created:
            click.echo(f"#{res.job_id} already known: {path}")
        elif res.duplicate_of is not None:
            click.echo(f"#{res.job_id} queued: {path} (duplicate of #{res.duplicate_of})")
        else:
            click.echo(f"#{res.job_id} queued: {path}")


@click.command()
@click.argument("jobs", nargs=-1, type=int)
@click.option("--failed", is_flag=True, help="Requeue every failed job.")
@click.option(
    "--recompute",
    is_flag=True,
    help="Drop the jobs' cached steps first: every step is computed again.",
)
@click.pass_context
@handled
def requeue(ctx: click.Context, jobs: tuple[int, ...], failed: bool, recompute: bool) -> None:
    """Put done or failed jobs back in the queue."""
    if not jobs and not failed:
        raise UsageError("give job ids or --failed")
    res = queue.requeue(config_of(ctx), list(jobs), failed, recompute=recompute)
    if res.requeued:
        again = " (cached steps dropped: computed again)" if recompute else ""
        click.echo("requeued " + ", ".join(f"#{j}" for j in res.requeued) + again)
    elif not res.skipped:
        click.echo("nothing to requeue")
    for job_id, why in res.skipped.items():
        click.echo(f"skipped #{job_id}: {why}", err=True)
    if res.skipped and not res.requeued:
        sys.exit(1)
