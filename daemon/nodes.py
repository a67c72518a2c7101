"""What a node publishes for the others (its heartbeat and its plan, keyed by its name) and
how a node is judged from them: still running, or another machine's daemon using its name."""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

from daemon.config import Config

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
