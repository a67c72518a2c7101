"""transcribd: a CPU-first, offline, folder-watching transcription daemon."""

from __future__ import annotations

import os

__version__ = "0.1.0"

# before numpy loads anywhere: transcripts must not depend on BLAS thread counts (daemon.pool)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
