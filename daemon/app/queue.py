"""Putting files in the queue by hand (``transcribd add``) and back in it (``requeue``)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from daemon import fsnames
from daemon.config import Config
from daemon.errors import UserError
from daemon.intake import Intake, hash_file
from daemon.jobs import Enqueued, JobOptions, Requeued
from daemon.pipeline import facts
from daemon.store import open_store


def add(config: Config, paths: list[Path], options: JobOptions) -> list[tuple[Path, Enqueued]]:
    """Enqueue files (folders are walked) now, without waiting for them to settle."""
    with closing(open_store(config)) as store:
        intake = Intake(config, store, measure=facts.measure)
        files: list[Path] = []
        for p in paths:
            if p.is_dir():
                files.extend(sorted(f for f in p.rglob("*") if f.is_file() and intake.accepts(f)))
            elif p.is_file():
                files.append(p)
            else:
                raise UserError(f"not a file or folder: {p}")
        out = []
        now = store.now()
        for f in files:
            try:
                sha, size = hash_file(f)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise UserError(f"cannot read {fsnames.printable(f)}: {reason}") from None
            measured = facts.measure(f)
            out.append(
                (
                    f,
                    store.enqueue(
                        str(f.absolute()),
                        sha,
                        size,
                        now,
                        options=options,
                        duration=measured.duration,
                        facts=measured,
                    ),
                )
            )
        return out


def requeue(config: Config, job_ids: list[int], failed: bool) -> Requeued:
    with closing(open_store(config)) as store:
        return store.requeue(job_ids, failed=failed, now=store.now())
