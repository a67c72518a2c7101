"""What the daemon keeps besides job rows: the step-result cache (keyed by content, step and
parameters; see :mod:`daemon.pipeline.cache`), shared by every node, and small facts each node
publishes for ``status`` (its heartbeat, the plan in force)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select, update

from daemon import db
from daemon.models import DaemonState, StepResult


class Results:
    def __init__(self, engine: Engine, node: str = "") -> None:
        self.engine = engine
        self.node = node
        """The node whose facts :meth:`set_state` publishes."""

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
        """Store a step's result; when another worker (of any node) stored it first, keep
        that one (both are equal)."""
        with self.engine.begin() as conn:
            conn.execute(
                db.insert(conn)(StepResult)
                .values(
                    sha256=sha256,
                    step=step,
                    params_hash=params_hash,
                    payload=payload,
                    created_at=now,
                )
                .on_conflict_do_nothing()
            )

    def cache_drop(self, sha256: str, step: str, params_hash: str) -> None:
        """Remove one step result (found unsound where it was about to be served)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(StepResult).where(
                    StepResult.sha256 == sha256,
                    StepResult.step == step,
                    StepResult.params_hash == params_hash,
                )
            )

    def cache_clear(
        self, sha256s: Collection[str] | None = None, steps: Collection[str] = ()
    ) -> int:
        """Remove the cached results of the contents ``sha256s`` (None: of every content), of
        the steps ``steps`` (none named: of every step); how many were removed."""
        stmt = delete(StepResult)
        if sha256s is not None:
            stmt = stmt.where(StepResult.sha256.in_(list(sha256s)))
        if steps:
            stmt = stmt.where(StepResult.step.in_(list(steps)))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount or 0

    def set_state(self, key: str, value: Any, now: datetime) -> None:
        """Publish a small fact of this node (e.g. the plan in force) for ``status``."""
        with self.engine.begin() as conn:
            stmt = db.insert(conn)(DaemonState).values(
                node=self.node, key=key, value=value, updated_at=now
            )
            fresh = {"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}
            conn.execute(stmt.on_conflict_do_update(index_elements=["node", "key"], set_=fresh))

    def take_state(
        self, node: str, key: str, value: Any, now: datetime, seen: datetime | None
    ) -> bool:
        """Publish ``value`` as node ``node``'s fact ``key``, provided nobody wrote that fact
        since it was read (at ``seen``; None: it did not exist), in one statement: of two
        daemons taking one node name at once, one wins.  True when it was written."""
        with self.engine.begin() as conn:
            if seen is None:
                stmt = db.insert(conn)(DaemonState).values(
                    node=node, key=key, value=value, updated_at=now
                )
                taken = stmt.on_conflict_do_nothing().returning(DaemonState.node)
                return conn.execute(taken).first() is not None
            guarded = (
                update(DaemonState)
                .where(
                    DaemonState.node == node,
                    DaemonState.key == key,
                    DaemonState.updated_at == seen,
                )
                .values(value=value, updated_at=now)
            )
            return conn.execute(guarded).rowcount == 1

    def get_state(self, key: str) -> tuple[Any, datetime] | None:
        """This node's fact ``key`` and when it was published."""
        return self.states(key).get(self.node)

    def states(self, key: str) -> dict[str, tuple[Any, datetime]]:
        """Every node's fact ``key`` (and when it was published), by node."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(DaemonState.node, DaemonState.value, DaemonState.updated_at)
                .where(DaemonState.key == key)
                .order_by(DaemonState.node)
            ).all()
        return {node: (value, at) for node, value, at in rows}
