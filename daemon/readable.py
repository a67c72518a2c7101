"""Numbers as people read them (pure), the same in the CLI and the pages."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; "-" for unknown."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )
