"""Nodes, the pure parts: which names a daemon may take, who holds a name, how a node that
stopped cleanly is shown, and which node ``status`` on this machine speaks of."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from daemon import config as config_mod
from daemon.nodes import (
    HOST,
    candidate_names,
    daemon_line,
    heartbeat,
    holder,
    local_nodes,
    node_clash,
    node_views,
    this_node,
)

NOW = datetime(2026, 12, 1, 12, 0, 0)
LIMIT = 30.0
ALIVE = {100}


def beat(host: str = "box", pid: int = 100, ago: float = 1.0, **more: Any) -> Any:
    return ({"host": host, "pid": pid, "missing_folders": [], **more}, NOW - timedelta(seconds=ago))


def test_a_name_and_its_next_ones_within_the_length_limit() -> None:
    names = list(candidate_names("box"))
    assert names[:4] == ["box", "box-2", "box-3", "box-4"] and len(set(names)) == len(names)
    long = list(candidate_names("n" * 64))
    assert long[0] == "n" * 64 and long[1] == "n" * 62 + "-2"
    assert all(len(n) <= 64 for n in long) and len(set(long)) == len(long)


@pytest.mark.parametrize(
    ("stored", "held_by"),
    [
        (None, None),  # never used
        (beat(), "box"),  # a daemon of this host, running
        (beat(pid=200), None),  # a daemon of this host whose process is gone
        (beat(stopped=True), None),  # stopped cleanly
        (beat(ago=LIMIT + 1), None),  # not heard from
        (beat(host="other", pid=200), "other"),  # another machine: its pids are not ours
        (beat(host="other", ago=LIMIT + 1), None),
        (beat(host="other", stopped=True), None),
    ],
)
def test_who_holds_a_name(stored: Any, held_by: str | None) -> None:
    assert holder(stored, NOW, LIMIT, lambda pid: pid in ALIVE, host="box") == held_by


def test_a_clean_stop_is_shown_at_once_and_frees_the_name_from_a_clash() -> None:
    config = config_mod.from_mapping({"daemon": {"node": "box"}})
    beats = {"box": beat(host=HOST, ago=2.0, stopped=True), "box-2": beat(host=HOST, pid=7)}
    views = node_views(beats, {}, NOW, config)
    assert [(v.node, v.alive, v.stopped) for v in views] == [
        ("box", False, True),
        ("box-2", True, False),
    ]
    assert views[0].as_dict()["stopped"] is True
    # this machine's daemon now runs as box-2: status speaks of it
    here = this_node(views, "box")
    assert here is not None and here.node == "box-2"
    assert daemon_line(views, config) == f"daemon: running (pid 7 on {HOST})"
    alone = node_views({"box": beats["box"]}, {}, NOW, config)
    assert daemon_line(alone, config).startswith("daemon: not running on this database")
    assert "stopped 2026-12-01 11:59:58 UTC" in daemon_line(alone, config)
    # another machine's stopped daemon does not clash with a daemon starting as its name
    since = NOW - timedelta(seconds=LIMIT)
    assert node_clash("box", beat(host="other", stopped=True), since, "mine") is None
    assert node_clash("box", beat(host="other"), since, "mine") is not None


def test_the_nodes_of_this_machine() -> None:
    beats = {"a": beat(host=HOST), "a-2": beat(host=HOST, ago=600), "b": beat(host="other")}
    assert local_nodes(beats) == {"a", "a-2"}
    assert heartbeat(5) == {"host": HOST, "pid": 5, "missing_folders": []}
    assert heartbeat(5, ["/x"], stopped=True)["stopped"] is True


def test_a_worker_of_another_daemon_of_this_machine_is_judged_by_its_pid() -> None:
    from daemon.pool import owner_gone

    here = {"box", "box-2"}  # this machine's daemons run as these
    assert owner_gone("box-2:100:7:w0:200", here, lambda pid: pid == 100)  # its worker died
    assert not owner_gone("box-2:100:7:w0:200", here, lambda pid: pid == 200)
    assert not owner_gone("other:100:7:w0:200", here, lambda pid: False)  # another machine's
    assert owner_gone("box:1:7:w0:2", "box", lambda pid: False)  # one name, as before
    assert not owner_gone("bo:1:7:w0:2", "box", lambda pid: False)  # never a substring
