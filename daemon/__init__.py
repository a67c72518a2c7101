"""transcribd: a CPU-first, offline, folder-watching transcription daemon."""

from __future__ import annotations

__version__ = "0.1.0"
