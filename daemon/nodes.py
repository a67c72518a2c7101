"""What a node publishes for the others (its heartbeat and its plan, keyed by its name) and
how a node is judged from them: still running, stopped, or another machine's daemon using its
name; and which name a starting daemon may take."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon import db
from daemon.config import Config
from daemon.config.schema import NODE_MAX
from daemon.jobs import iso

PLAN_KEY = "plan"
DAEMON_KEY = "daemon"
"""Each node's heartbeat (host, pid, missing folders)."""
HOST = socket.gethostname()
HEARTBEAT_SECONDS = 5.0
"""How often the heartbeat is written (not every tick: a write contends with the workers')."""


def heartbeat(pid: int, missing: Sequence[str] = (), stopped: bool = False) -> dict[str, Any]:
    """A daemon's heartbeat (pure): this host, its ``pid``, the watched folders it misses,
    and, as it stops cleanly (its last), that it stopped."""
    beat: dict[str, Any] = {"host": HOST, "pid": pid, "missing_folders": list(missing)}
    return {**beat, "stopped": True} if stopped else beat


def heartbeat_limit(config: Config) -> float:
    """Seconds after its last heartbeat that a daemon still counts as running."""
    return max(30.0, 5 * config.daemon.tick_seconds)


def node_clash(
    node: str, stored: tuple[Any, datetime] | None, since: datetime, host: str
) -> str | None:
    """Why a daemon on ``host`` must not run as ``node`` (pure): the heartbeat stored for
    ``node`` was written after ``since`` by another machine that has not stopped; None when
    it was not."""
    if stored is None or stored[1] <= since or stored[0].get("host") == host:
        return None
    if stored[0].get("stopped"):
        return None
    return (
        f"node '{node}' is in use by a running daemon on {stored[0].get('host')} "
        f"(pid {stored[0].get('pid')}): give each machine its own [daemon] node"
    )


MAX_DAEMONS_PER_NAME = 64
"""How many daemons of one host may run on one database under one configured (or default)
name: ``name``, ``name-2`` … ``name-64``."""


def candidate_names(base: str) -> Iterator[str]:
    """The names a daemon configured (or defaulted) as ``base`` may run as, in order (pure):
    ``base`` itself, then ``base-2``, ``base-3`` … (``base`` shortened to keep them within
    :data:`NODE_MAX`)."""
    yield base
    for n in range(2, MAX_DAEMONS_PER_NAME + 1):
        suffix = f"-{n}"
        yield base[: NODE_MAX - len(suffix)] + suffix


def holder(
    stored: tuple[Any, datetime] | None,
    now: datetime,
    limit: float,
    alive: Callable[[int], bool],
    host: str = HOST,
) -> str | None:
    """The host of the running daemon that holds a node name, from the name's heartbeat
    (pure); None when no daemon holds it: never used, stopped cleanly, not heard from for
    ``limit`` seconds, or a daemon of this ``host`` (``alive`` asks its process table) whose
    process is gone (killed, and restarted at once)."""
    if stored is None:
        return None
    beat, at = stored
    if beat.get("stopped") or (now - at).total_seconds() > limit:
        return None
    pid = beat.get("pid")
    if beat.get("host") == host and isinstance(pid, int) and not alive(pid):
        return None
    return str(beat.get("host"))


def local_nodes(beats: dict[str, tuple[Any, datetime]], host: str = HOST) -> set[str]:
    """The node names whose last heartbeat came from ``host`` (pure): the daemons of this
    machine, whose workers' processes it can look up."""
    return {node for node, (beat, _at) in beats.items() if beat.get("host") == host}


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
    stopped: bool = False
    """It said so as it stopped cleanly (its heartbeat is its last)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "alive": self.alive,
            "stopped": self.stopped,
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
        stopped = bool(beat.get("stopped"))
        alive = not stopped and (now - at).total_seconds() <= heartbeat_limit(config)
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
                stopped=stopped,
            )
        )
    return out


def this_node(nodes: list[NodeView], name: str, host: str = HOST) -> NodeView | None:
    """The node this machine's daemon runs as (pure): ``name`` (``[daemon] node``) while it
    runs; else a running one of this host that took ``name-2``, ``name-3`` … because a daemon
    held ``name`` as it started; else ``name``, running or not (None: never seen)."""
    by_name = {n.node: n for n in nodes}
    here = by_name.get(name)
    if here is not None and here.alive:
        return here
    taken = [by_name[c] for c in candidate_names(name) if c != name and c in by_name]
    return next((n for n in taken if n.alive and n.host == host), here)


def daemon_line(nodes: list[NodeView], config: Config) -> str:
    """Whether this node's daemon uses this database, from the nodes' heartbeats, in one
    line (pure)."""
    where = db.printable_url(config.database.url)
    here = this_node(nodes, config.daemon.node)
    if here is None and nodes:  # an admin's machine looking at a fleet's database
        others = f"{len(nodes)} other node(s) use this database"
        return f"daemon: none on this node ({config.daemon.node}); {others}"
    if here is None:
        return f"daemon: none has used this database yet ({where})"
    who = f"pid {here.pid} on {here.host}"
    if here.alive:
        return f"daemon: running ({who})"
    if here.stopped:
        return (
            f"daemon: not running on this database ({where}); stopped "
            f"{here.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC ({who})"
        )
    return (
        f"daemon: not running on this database ({where}); last seen "
        f"{here.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC ({who})"
    )
