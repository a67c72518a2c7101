"""The pool's pure helpers (its processes are tested in tests/e2e/test_pool.py)."""

from __future__ import annotations

import pytest

from daemon.pool import owner_gone


@pytest.mark.parametrize(
    ("owner", "alive", "gone"),
    [
        ("h:100:7:w0:200", {100, 200}, False),
        ("h:100:7:w0:200", {100}, True),  # the worker is gone
        ("h:100:7:w0:200", {200}, False),  # orphaned worker still alive: it releases itself
        ("other:100:7:w0:200", set(), False),  # another machine: wait for the lease
        ("h:100:7", set(), False),  # not a pool owner
        ("h:100:7:w0:x", set(), False),
    ],
)
def test_owner_gone(owner: str, alive: set[int], gone: bool) -> None:
    assert owner_gone(owner, "h", lambda pid: pid in alive) is gone
