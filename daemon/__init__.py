"""transcribd: a CPU-first, offline, folder-watching transcription daemon."""

from __future__ import annotations

import os

from daemon.threads import DETERMINISTIC_ENV

__version__ = "0.1.0"

# before numpy loads anywhere (spawned workers inherit it): see daemon.threads
os.environ.update(DETERMINISTIC_ENV)
