"""``transcribe``: one file now, without the daemon."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from daemon import fsnames
from daemon.app import oneshot
from daemon.cli import display
from daemon.cli.common import config_of, handled, job_options
from daemon.errors import UserError
from daemon.jobs import JobOptions


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the transcripts (default: output.dir).",
)
@click.option(
    "--metrics",
    "metrics_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write where the time went (wall and CPU seconds per step) to this JSON file.",
)
@job_options
@click.pass_context
@handled
def transcribe(
    ctx: click.Context,
    path: Path,
    output_dir: Path | None,
    metrics_file: Path | None,
    options: JobOptions,
) -> None:
    """Transcribe one file now, without the daemon (same pipeline and cache).  Shows a
    progress bar on a terminal, a line every tenth of the way otherwise (on stderr)."""
    if metrics_file is not None and not metrics_file.parent.is_dir():
        raise UserError(f"--metrics: no folder {fsnames.printable(str(metrics_file.parent))}")
    err = sys.stderr
    label = fsnames.printable(path.name)
    with display.progress(label, err, err.isatty()) as on_progress:
        done = oneshot.transcribe(config_of(ctx), path, output_dir, options, on_progress)
    for name in done.outputs:
        click.echo(name)
    if metrics_file is not None:
        try:
            metrics_file.write_text(json.dumps(done.metrics, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {metrics_file}: {exc.strerror or exc}") from None
