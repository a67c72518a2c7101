"""``search``: the lines of every transcript that hold the words asked for."""

from __future__ import annotations

import json

import click

from daemon.app import search as search_app
from daemon.cli.common import config_of, handled
from daemon.readable import duration


@click.command()
@click.argument("words", nargs=-1, required=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=search_app.LIMIT, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of hits.")
@click.pass_context
@handled
def search(ctx: click.Context, words: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Find WORDS (all of them; "a phrase" in quotes) in every done job's transcript: each
    line found with its job, file, speaker and time (open it at that moment with the pages:
    /jobs/JOB?t=SECONDS)."""
    hits = search_app.search(config_of(ctx), " ".join(words), limit)
    if as_json:
        shown = [
            {
                "job": h.job_id,
                "name": h.name,
                "speaker": h.speaker,
                "start": round(h.start, 3),
                "end": round(h.end, 3),
                "text": search_app.plain(h.snippet, "", ""),
            }
            for h in hits
        ]
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    for h in hits:
        who = f" {h.speaker}:" if h.speaker else ""
        click.echo(f"#{h.job_id} {h.name} {duration(h.start)}{who} {search_app.plain(h.snippet)}")
    if not hits:
        click.echo("nothing found")
