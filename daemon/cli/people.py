"""Who speaks: a done job's ``speakers``, and the enrolled ``voices``."""

from __future__ import annotations

from pathlib import Path

import click

from daemon import fsnames
from daemon.app import speakers as speakers_app
from daemon.app import voices as voices_app
from daemon.cli.common import UsageError, config_of, handled


@click.command()
@click.argument("job", type=int)
@click.option(
    "--rename",
    "renames",
    multiple=True,
    metavar="OLD=NEW",
    help="Rename a speaker, e.g. SPEAKER_00=Alice (repeatable).",
)
@click.option(
    "--relabel",
    is_flag=True,
    help="Match the speakers against the voices enrolled now (after voices add/remove).",
)
@click.pass_context
@handled
def speakers(ctx: click.Context, job: int, renames: tuple[str, ...], relabel: bool) -> None:
    """List a done job's speakers; rename or relabel them (its outputs are rewritten from the
    cache, no model runs)."""
    mapping: dict[str, str] = {}
    for item in renames:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise UsageError(f"--rename takes OLD=NEW, got {item!r}")
        mapping[old.strip()] = new.strip()
    report = speakers_app.speakers(config_of(ctx), job, mapping, relabel)
    for written in report.written:
        click.echo(written)
    if report.written:
        return
    for label, name, distance in report.speakers:
        how = f"enrolled voice, distance {distance:.3f}" if distance is not None else ""
        shown = name if name == label else f"{name} ({label})"
        click.echo(f"{shown}{'  ' + how if how else ''}")
    if not report.speakers:
        click.echo("no speakers")


@click.group()
def voices() -> None:
    """Known people: enroll a voice once, and its name replaces SPEAKER_xx in transcripts."""


@voices.command("add")
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
@handled
def voices_add(ctx: click.Context, name: str, files: tuple[Path, ...]) -> None:
    """Enroll NAME from recordings of them speaking (alone, or most of the time); again with
    more recordings to improve the voice.  Finished jobs are relabelled only by
    `transcribd speakers JOB --relabel`."""
    result = voices_app.enroll(
        config_of(ctx),
        name,
        list(files),
        on_file=lambda p: click.echo(f"listening to {fsnames.printable(p)} ...", err=True),
    )
    for shown, main in result.files:
        note = ""
        if main.others:
            note = f"; {main.others} other voice(s) left out ({main.share:.0%} of the speech)"
        click.echo(f"{shown}: {main.seconds:.1f} s of speech{note}")
    voice = result.voice
    click.echo(
        f"enrolled {voice.name}: {voice.seconds:.1f} s of speech from {len(voice.files)} file(s)"
    )
    if voice.seconds < 20:
        click.echo(
            f"note: {voice.seconds:.0f} s is little; a minute or more names {name} more surely",
            err=True,
        )


@voices.command("list")
@click.pass_context
@handled
def voices_list(ctx: click.Context) -> None:
    """The enrolled voices."""
    listed = voices_app.list_voices(config_of(ctx))
    for voice, usable in listed:
        state = "" if usable else "  (made with other diarization weights: enroll again)"
        click.echo(f"{voice.name}: {voice.seconds:.1f} s from {len(voice.files)} file(s){state}")
    if not listed:
        click.echo("no voices enrolled (transcribd voices add NAME FILE...)")


@voices.command("remove")
@click.argument("name")
@click.pass_context
@handled
def voices_remove(ctx: click.Context, name: str) -> None:
    """Forget NAME's voice (finished jobs keep it until `speakers JOB --relabel`)."""
    voices_app.remove_voice(config_of(ctx), name)
    click.echo(f"removed {name}")
