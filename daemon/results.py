"""What the daemon keeps besides job rows: the step-result cache (keyed by content, step and
parameters; see :mod:`daemon.pipeline.cache`), shared by every node, and small facts each node
publishes for ``status`` (its heartbeat, the plan in force)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

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

    def set_state(self, key: str, value: Any, now: datetime) -> None:
        """Publish a small fact of this node (e.g. the plan in force) for ``status``."""
        with self.engine.begin() as conn:
            stmt = db.insert(conn)(DaemonState).values(
                node=self.node, key=key, value=value, updated_at=now
            )
            fresh = {"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}
            conn.execute(stmt.on_conflict_do_update(index_elements=["node", "key"], set_=fresh))

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
