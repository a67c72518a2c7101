"""The ``transcribd`` command: thin click wrappers, each calling one function of :mod:`daemon.app`.

Exit codes: 0 ok, 1 failure, 2 usage (including configuration errors).  Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from daemon import __version__, app, db, devices, display, fsnames, logs
from daemon.config import PROFILE_NAMES, Config, ConfigError, language_problem, load
from daemon.errors import DecodeError, ModelError, SetupError, UserError
from daemon.jobs import JobOptions
from daemon.signals import StopSignals
from daemon.sysload import bound_malloc_arenas

F = TypeVar("F", bound=Callable[..., Any])


class UsageError(click.UsageError):
    exit_code = 2


def handled(fn: F) -> F:
    """Turn expected failures into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit):
            raise
        except SetupError as exc:  # a restart would not fix it: exit 2, systemd gives up
            click.echo(f"transcribd: {exc}", err=True)
            sys.exit(2)
        except (UserError, DecodeError, ModelError) as exc:
            click.echo(f"transcribd: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(
                f"transcribd: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True
            )
            sys.exit(1)
        except Exception as exc:  # database down, etc.: still one line
            if db.unreachable(exc):
                reason = db.reason(exc)
                click.echo(f"transcribd: cannot reach the database: {reason}", err=True)
            else:
                click.echo(f"transcribd: {type(exc).__name__}: {exc}".splitlines()[0], err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _config(ctx: click.Context) -> Config:
    cfg: Config = ctx.obj["config"]
    return cfg


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
    running = ctx.invoked_subcommand == "run"
    logs.setup(log_level or ("INFO" if running else "WARNING"))
    try:
        config = load(config_path)
    except ConfigError as exc:
        click.echo(f"transcribd: config: {exc}", err=True)
        ctx.exit(2)
    if running:
        level = (log_level or config.daemon.log_level or "INFO").upper()
        logs.set_level(level)
        os.environ["TRANSCRIBD_LOG_LEVEL"] = level  # the worker processes' level
    ctx.obj = {"config": config, "config_path": config_path}


@cli.command()
@click.option("--once", is_flag=True, help="Rescan, process everything pending, then exit.")
@click.pass_context
@handled
def run(ctx: click.Context, once: bool) -> None:
    """Run the daemon in the foreground."""
    config = _config(ctx)
    if once:
        summary = app.run_once(config)
        click.echo(
            f"processed {len(summary.done) + len(summary.failed)} job(s): "
            f"{len(summary.done)} done, {len(summary.failed)} failed"
        )
        return
    app.run_forever(config)


@cli.command()
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
    config = _config(ctx)
    if as_json and watch:
        raise UsageError("--watch shows the table; for scripts, poll --json")
    if watch:
        out = sys.stdout

        def render() -> str:
            return "\n".join(display.status_lines(app.status(config, job)))

        # Ctrl-C sets a flag the loop reads: as a KeyboardInterrupt it could land in a garbage
        # collector's callback, be reported as "ignored" there, and leave the loop running
        with StopSignals() as stop:
            display.watch(render, interval, out, out.isatty(), stop=stop.graceful.is_set)
        return
    report = app.status(config, job)
    if as_json:
        click.echo(json.dumps([v.as_dict() for v in report.jobs], indent=2, ensure_ascii=False))
        return
    for line in display.status_lines(report):
        click.echo(line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of node objects.")
@click.pass_context
@handled
def nodes(ctx: click.Context, as_json: bool) -> None:
    """Show the daemons (nodes) using this database: alive or last heartbeat, host, plan."""
    found = app.nodes(_config(ctx))
    if as_json:
        click.echo(json.dumps([n.as_dict() for n in found], indent=2, ensure_ascii=False))
    elif not found:
        click.echo("no daemon has used this database yet")
    else:
        for line in display.node_table(found):
            click.echo(line)


def job_options(fn: F) -> F:
    """The per-job options shared by ``add`` and ``transcribe``, gathered into ``options``
    (a :class:`~daemon.jobs.JobOptions`)."""
    decorators = [
        click.option(
            "--profile", type=click.Choice(PROFILE_NAMES), help="Force a processing profile."
        ),
        click.option("--language", help="Force the language (ISO code), skip detection."),
        click.option("--num-speakers", type=click.IntRange(min=1), help="Exact speaker count."),
        click.option("--min-speakers", type=click.IntRange(min=1), help="At least this many."),
        click.option("--max-speakers", type=click.IntRange(min=1), help="At most this many."),
        click.option(
            "--prompt",
            "initial_prompt",
            help="Text Whisper reads as what came before: names, terms, the style to follow.",
        ),
        click.option("--hotwords", help="Words and spellings Whisper should prefer."),
        click.option(
            "--device",
            metavar="cpu|cuda|cuda:N",
            help="Where the models run for these files (default: [compute] device).",
        ),
    ]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        keys = (
            "profile",
            "language",
            "num_speakers",
            "min_speakers",
            "max_speakers",
            "initial_prompt",
            "hotwords",
            "device",
        )
        language = kwargs["language"]
        problem = None if language is None else language_problem(language)
        if problem:
            raise click.BadParameter(problem, param_hint="--language")
        if kwargs["device"] is not None:
            try:
                devices.parse(kwargs["device"])
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--device") from None
        kwargs["options"] = JobOptions(**{k: kwargs.pop(k) for k in keys})
        return fn(*args, **kwargs)

    for decorate in reversed(decorators):
        wrapper = decorate(wrapper)
    return wrapper  # type: ignore[return-value]


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@job_options
@click.pass_context
@handled
def add(ctx: click.Context, paths: tuple[Path, ...], options: JobOptions) -> None:
    """Enqueue files (or folders) now."""
    for path, res in app.add(_config(ctx), list(paths), options):
        if not res.created:
            click.echo(f"#{res.job_id} already known: {path}")
        elif res.duplicate_of is not None:
            click.echo(f"#{res.job_id} queued: {path} (duplicate of #{res.duplicate_of})")
        else:
            click.echo(f"#{res.job_id} queued: {path}")


@cli.command()
@click.argument("jobs", nargs=-1, type=int)
@click.option("--failed", is_flag=True, help="Requeue every failed job.")
@click.pass_context
@handled
def requeue(ctx: click.Context, jobs: tuple[int, ...], failed: bool) -> None:
    """Put done or failed jobs back in the queue."""
    if not jobs and not failed:
        raise UsageError("give job ids or --failed")
    res = app.requeue(_config(ctx), list(jobs), failed)
    if res.requeued:
        click.echo("requeued " + ", ".join(f"#{j}" for j in res.requeued))
    elif not res.skipped:
        click.echo("nothing to requeue")
    for job_id, why in res.skipped.items():
        click.echo(f"skipped #{job_id}: {why}", err=True)
    if res.skipped and not res.requeued:
        sys.exit(1)


@cli.command()
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
        done = app.transcribe(_config(ctx), path, output_dir, options, on_progress)
    for name in done.outputs:
        click.echo(name)
    if metrics_file is not None:
        try:
            metrics_file.write_text(json.dumps(done.metrics, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {metrics_file}: {exc.strerror or exc}") from None


@cli.command()
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
    report = app.speakers(_config(ctx), job, mapping, relabel)
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


@cli.group()
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
    result = app.enroll(
        _config(ctx),
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
    listed = app.list_voices(_config(ctx))
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
    app.remove_voice(_config(ctx), name)
    click.echo(f"removed {name}")


@cli.command("config")
@click.pass_context
@handled
def config_cmd(ctx: click.Context) -> None:
    """Print the effective configuration and where each value came from."""
    report = app.show_config(_config(ctx), ctx.obj["config_path"])
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


@cli.command()
@click.pass_context
@handled
def doctor(ctx: click.Context) -> None:
    """Check config, database, folders, models, decoder, disk and machine; print fixes.

    Exit 1 when something would stop the daemon from working."""
    findings = app.doctor(_config(ctx))
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


@cli.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
@click.pass_context
@handled
def db_upgrade(ctx: click.Context) -> None:
    """Apply schema migrations up to the newest."""
    rev = app.db_upgrade(_config(ctx))
    click.echo(f"database at revision {rev}")


def main() -> None:
    bound_malloc_arenas()
    cli(prog_name="transcribd")
