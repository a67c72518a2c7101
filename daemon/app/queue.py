"""Putting files in the queue by hand (``transcribd add``) and back in it (``requeue``)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from daemon import fsnames
from daemon.app.cache import drop_steps
from daemon.config import Config
from daemon.errors import UserError
from daemon.intake import Intake, hash_file
from daemon.jobs import Enqueued, JobOptions, JobStatus, Requeued
from daemon.pipeline import facts
from daemon.store import open_store, why_not_requeued


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
                        origin="cli",
                    ),
                )
            )
        return out


def requeue(config: Config, job_ids: list[int], failed: bool, recompute: bool = False) -> Requeued:
    """Done or failed jobs back in the queue; ``recompute``: their contents' cached steps are
    dropped first (:func:`daemon.app.cache.drop_steps`), so that every step runs again."""
    with closing(open_store(config)) as store:
        if recompute:
            ids = job_ids + ([j.id for j in store.jobs([JobStatus.FAILED])] if failed else [])
            drop_steps(store, [i for i in ids if why_not_requeued(store.get(i)) is None])
        return store.requeue(job_ids, failed=failed, now=store.now())
