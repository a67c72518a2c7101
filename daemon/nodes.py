"""What a node publishes for the others (its heartbeat and its plan, keyed by its name) and
how a node is judged from them: still running, or another machine's daemon using its name."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon import db
from daemon.config import Config
from daemon.jobs import iso

PLAN_KEY = "plan"
DAEMON_KEY = "daemon"
"""Each node's heartbeat (host, pid, missing folders)."""
HOST = socket.gethostname()
HEARTBEAT_SECONDS = 5.0
"""How often the heartbeat is written (not every tick: a write contends with the workers')."""


def heartbeat_limit(config: Config) -> float:
    """Seconds after its last heartbeat that a daemon still counts as running."""
    return max(30.0, 5 * config.daemon.tick_seconds)


def node_clash(
    node: str, stored: tuple[Any, datetime] | None, since: datetime, host: str
) -> str | None:
    """Why a daemon on ``host`` must not run as ``node`` (pure): the heartbeat stored for
    ``node`` was written after ``since`` by another machine; None when it was not."""
    if stored is None or stored[1] <= since or stored[0].get("host") == host:
        return None
    return (
        f"node '{node}' is in use by a running daemon on {stored[0].get('host')} "
        f"(pid {stored[0].get('pid')}): give each machine its own [daemon] node"
    )


@dataclass(frozen=True)
class NodeView:
    """A daemon that has used this database, from its heartbeat and published plan."""

    node: str
    alive: bool
    heartbeat_at: datetime
    host: str | None
    pid: int | None
    plan: dict[str, Any] | None
    plan_at: datetime | None
    missing_folders: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "alive": self.alive,
            "heartbeat_at": iso(self.heartbeat_at),
            "host": self.host,
            "pid": self.pid,
            "plan": self.plan,
            "plan_at": iso(self.plan_at),
            "missing_folders": self.missing_folders,
        }


def node_views(
    beats: dict[str, tuple[Any, datetime]],
    plans: dict[str, tuple[Any, datetime]],
    now: datetime,
    config: Config,
) -> list[NodeView]:
    """Each node's state from the heartbeats and plans the nodes published (pure)."""
    out = []
    for node, (beat, at) in sorted(beats.items()):
        plan, plan_at = plans.get(node, (None, None))
        alive = (now - at).total_seconds() <= heartbeat_limit(config)
        out.append(
            NodeView(
                node=node,
                alive=alive,
                heartbeat_at=at,
                host=beat.get("host"),
                pid=beat.get("pid"),
                plan=plan,
                plan_at=plan_at,
                missing_folders=list(beat.get("missing_folders", [])) if alive else [],
            )
        )
    return out


def daemon_line(nodes: list[NodeView], config: Config) -> str:
    """Whether this node's daemon uses this database, from the nodes' heartbeats, in one
    line (pure)."""
    where = db.printable_url(config.database.url)
    here = next((n for n in nodes if n.node == config.daemon.node), None)
    if here is None and nodes:  # an admin's machine looking at a fleet's database
        others = f"{len(nodes)} other node(s) use this database"
        return f"daemon: none on this node ({config.daemon.node}); {others}"
    if here is None:
        return f"daemon: none has used this database yet ({where})"
    who = f"pid {here.pid} on {here.host}"
    if here.alive:
        return f"daemon: running ({who})"
    return (
        f"daemon: not running on this database ({where}); last seen "
        f"{here.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC ({who})"
    )
