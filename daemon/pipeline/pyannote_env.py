"""pyannote.audio imported offline, with a torchaudio that loads: the one door to both.

pyannote.audio imports torchaudio itself: ``pyannote/audio/core/io.py`` (for resampling, at
import), ``pipelines/speaker_verification.py`` and the WeSpeaker model (for the Kaldi fbank).
The PyPI torchaudio wheel (2.11.1, the newest) links its C extension against CUDA libraries
that the CPU build of torch lacks, and its loader raises ``OSError`` at import.  pyannote and
:mod:`daemon.pipeline.campplus_model` need only torchaudio's pure-Python parts (the Kaldi
fbank), so where the extension cannot load it is replaced by a module that reports "not
available", the state torchaudio itself supports when built without it.

Every module of the daemon that imports pyannote or torchaudio calls :func:`load` before it
does (``tests/unit/test_imports.py`` checks that no other module imports torchaudio), so the
order in which modules happen to be imported no longer matters.
"""

from __future__ import annotations

import logging
import os
import sys
import types
import warnings
from functools import cache
from typing import Any

log = logging.getLogger(__name__)


@cache
def torchaudio() -> types.ModuleType:
    """The torchaudio module, with its C extension where it loads, else without it."""
    try:
        import torchaudio as module
    except OSError as exc:
        log.debug("torchaudio extension unavailable, using pure-Python parts: %s", exc)
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
        sys.modules["torchaudio._extension"] = _no_extension()
        import torchaudio as module
    loaded: types.ModuleType = module
    return loaded


def _no_extension() -> types.ModuleType:
    """A ``torchaudio._extension`` that says the extension is not built."""
    stub = types.ModuleType("torchaudio._extension")
    stub._IS_TORCHAUDIO_EXT_AVAILABLE = False  # type: ignore[attr-defined]
    stub._IS_ALIGN_AVAILABLE = False  # type: ignore[attr-defined]
    stub._load_lib = lambda _lib: False  # type: ignore[attr-defined]

    def fail_if_no_align(fn: Any) -> Any:
        def unavailable(*_a: Any, **_k: Any) -> Any:
            raise RuntimeError("torchaudio's alignment extension is not available")

        return unavailable

    stub.fail_if_no_align = fail_if_no_align  # type: ignore[attr-defined]
    return stub


@cache
def load() -> None:
    """Make ``import pyannote.audio`` work here: no hub, no telemetry, a torchaudio that
    loads (:func:`torchaudio`); then import it once."""
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torchaudio()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchcodec's "cannot load" warning: audio goes in memory
        import pyannote.audio  # noqa: F401
