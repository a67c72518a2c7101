"""What every command shares: one-line errors and exit codes, the loaded config, the per-job
options of ``add`` and ``transcribe``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from daemon import db, devices
from daemon.config import PROFILE_NAMES, Config, language_problem
from daemon.errors import DecodeError, ModelError, SetupError, UserError
from daemon.jobs import JobOptions

F = TypeVar("F", bound=Callable[..., Any])


class UsageError(click.UsageError):
    exit_code = 2


def handled(fn: F) -> F:
    """Turn expected failures into one line on stderr and exit code 1 (a closed pipe into
    none: ``transcribd status | head`` prints no "Broken pipe")."""

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
        except BrokenPipeError:  # the reader went away (`transcribd ... | head`): click
            raise  # ends quietly, exit 1, as for a pipe closed outside a command
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


def config_of(ctx: click.Context) -> Config:
    """The config loaded by the group (``--config``, else found, else the defaults)."""
    cfg: Config = ctx.obj["config"]
    return cfg


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
