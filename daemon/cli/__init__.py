"""The ``transcribd`` command: thin click wrappers, each calling one function of :mod:`daemon.app`.

Exit codes: 0 ok, 1 failure, 2 usage (including configuration errors).  Errors are one line on
stderr, never a traceback.  The group and its options are in :mod:`daemon.cli.root`; the
commands, by what they act on, in ``jobs``, ``oneshot``, ``people`` and ``admin``.
"""

from __future__ import annotations

from daemon.cli.root import cli, main

__all__ = ["cli", "main"]
