"""What the daemon keeps besides job rows: the step-result cache (keyed by content, step and
parameters; see :mod:`daemon.pipeline.cache`) and small facts it publishes for ``status`` (the
plan in force, its heartbeat)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from daemon.models import DaemonState, StepResult


class Results:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def cache_get(self, sha256: str, step: str, params_hash: str) -> Any | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(StepResult.payload).where(
                    StepResult.sha256 == sha256,
                    StepResult.step == step,
                    StepResult.params_hash == params_hash,
                )
            ).first()
        return None if row is None else row[0]

    def cache_put(
        self, sha256: str, step: str, params_hash: str, payload: Any, now: datetime
    ) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(StepResult).values(
                        sha256=sha256,
                        step=step,
                        params_hash=params_hash,
                        payload=payload,
                        created_at=now,
                    )
                )
        except IntegrityError:
            pass  # another worker stored the same result first; both are equal

    def set_state(self, key: str, value: Any, now: datetime) -> None:
        """Publish a small fact (e.g. the plan in force) for ``status``."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(DaemonState)
                .where(DaemonState.key == key)
                .values(value=value, updated_at=now)
            )
            if res.rowcount == 0:
                conn.execute(insert(DaemonState).values(key=key, value=value, updated_at=now))

    def get_state(self, key: str) -> tuple[Any, datetime] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(DaemonState.value, DaemonState.updated_at).where(DaemonState.key == key)
            ).first()
        return None if row is None else (row[0], row[1])
