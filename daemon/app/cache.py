"""Dropping cached steps (``transcribd cache clear``, ``requeue --recompute``): the next job of
that content computes them again."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field

from daemon.config import Config
from daemon.errors import UserError
from daemon.pipeline.cache import STEPS

__all__ = ["STEPS", "Cleared", "clear", "drop_steps"]
from daemon.store import UNREAD, Store, open_store


@dataclass(frozen=True)
class Cleared:
    """What :func:`clear` dropped."""

    rows: int
    """Cached step results removed."""
    jobs: list[int] = field(default_factory=list)
    """The jobs whose content's steps were dropped (empty for every content)."""
    skipped: dict[int, str] = field(default_factory=dict)
    """Job id -> why nothing was dropped for it."""
    shared: dict[int, list[int]] = field(default_factory=dict)
    """Job id -> the other jobs of the same content (their steps were the same rows)."""


def clear(
    config: Config, job_ids: list[int], steps: list[str], everything: bool = False
) -> Cleared:
    """Drop the cached results of the jobs' contents (``everything``: of every content), of
    ``steps`` (none: of every step)."""
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise UserError(f"unknown step {unknown[0]!r}; the cached steps: {', '.join(STEPS)}")
    with closing(open_store(config)) as store:
        if everything:
            return Cleared(rows=store.results.cache_clear(None, steps))
        return drop_steps(store, job_ids, steps)


def drop_steps(store: Store, job_ids: Sequence[int], steps: Sequence[str] = ()) -> Cleared:
    """Drop the cached ``steps`` (none: every step) of the contents of ``job_ids``."""
    contents: dict[str, list[int]] = {}
    skipped: dict[int, str] = {}
    for job_id in dict.fromkeys(job_ids):
        job = store.get(job_id)
        if job is None:
            skipped[job_id] = "no such job"
        elif job.sha256 == UNREAD:
            skipped[job_id] = "refused at intake: nothing of it is cached"
        else:
            contents.setdefault(job.sha256, []).append(job_id)
    rows = store.results.cache_clear(list(contents), steps) if contents else 0
    dropped = [j for ids in contents.values() for j in ids]
    shared: dict[int, list[int]] = {}
    if contents:
        for other in store.jobs():
            if other.sha256 in contents and other.id not in dropped:
                for job_id in contents[other.sha256]:
                    shared.setdefault(job_id, []).append(other.id)
    return Cleared(rows=rows, jobs=dropped, skipped=skipped, shared=shared)
