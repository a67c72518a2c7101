"""Where the libraries the daemon loads may write: in its own folders, never in ``$HOME``.

pyannote.audio imports torchmetrics, which imports matplotlib (for plots it never draws here);
matplotlib then makes ``~/.config/matplotlib`` and builds a font list in ``~/.cache/matplotlib``
(3-6 s on a fresh ``$HOME``).  Importing ONNX Runtime writes a telemetry device id and database
under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``.  Neither import can be avoided (pyannote
needs torchmetrics, whose import takes matplotlib when it is installed, and pyannote requires
it), so matplotlib's folder goes under the model cache, where its font list is built once and
kept, and ONNX Runtime's telemetry is off (then it writes nothing).

Set through the environment before either library is imported, so that the daemon's spawned
workers inherit it; a value the user set is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

MATPLOTLIB_FOLDER = "matplotlib"
"""matplotlib's config and cache folder, under ``[models] cache_dir``."""
QUIET = {"ORT_DISABLE_TELEMETRY": "1"}
"""ONNX Runtime's telemetry off: no device id, no database in ``$HOME``."""


def settings(cache_dir: Path) -> dict[str, str]:
    """The environment that keeps the libraries' files under ``cache_dir`` (pure)."""
    return {"MPLCONFIGDIR": str(cache_dir / MATPLOTLIB_FOLDER), **QUIET}


def confine(cache_dir: Path) -> None:
    """Apply :func:`settings` to this process (and the processes it starts), keeping any of
    those variables already set."""
    for name, value in settings(cache_dir).items():
        os.environ.setdefault(name, value)
