"""The fbank's moving mean (computed a piece at a time, subtracted by ``normalise``) against
the plain definition."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize(("frames", "width"), [(5000, 1000), (9000, 999), (4096, 7), (300, 1000)])
def test_moving_mean_is_the_mean_of_the_frames_centred_on_each(frames: int, width: int) -> None:
    import torch

    from daemon.pipeline.campplus_model import MEAN_PIECE_FRAMES, normalise

    x = np.random.default_rng(frames).normal(5.0, 3.0, (1, frames, 3))
    feats = torch.from_numpy(x.astype(np.float32))
    got = (feats - normalise(feats, width)).numpy()  # the mean normalise took away
    for i in [0, 1, width // 2, frames // 2, MEAN_PIECE_FRAMES - 1, MEAN_PIECE_FRAMES, frames - 1]:
        if i >= frames:
            continue
        lo, hi = max(0, i - width // 2), min(frames, i - width // 2 + width)
        assert got[0, i] == pytest.approx(x[0, lo:hi].mean(axis=0), abs=1e-4)
