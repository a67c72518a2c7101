"""CAM++ as a pyannote.audio ``Model``: the interface SpeakerDiarization expects of an embedding.

pyannote (and with it torchaudio) is imported through :mod:`daemon.pipeline.pyannote_env`, first
of all, so this module may be the first of the diarization code a process imports.
Input: (batch, 1, samples) waveforms and optional (batch, frames) weights; output: (batch, 192).
Features: 80-bin Kaldi fbank (25 ms / 10 ms, povey window, no dither), mean-normalised over
time, as 3D-Speaker computes them; weighted (masked) statistics pooling for the batched path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from daemon.pipeline import pyannote_env

pyannote_env.load()  # pyannote.audio imports torchaudio: that import is made safe first

import torch  # noqa: E402
from pyannote.audio.core.model import Model  # noqa: E402
from pyannote.audio.models.blocks.pooling import StatsPool  # noqa: E402

from daemon.pipeline.campplus import CAMPPlus  # noqa: E402

FBANK_WINDOW, FBANK_HOP = 400, 160
"""The fbank's window and hop in samples at 16 kHz (25 ms and 10 ms)."""


class CamPlusPlusEmbedding(Model):
    def __init__(self, sample_rate: int = 16000, num_channels: int = 1) -> None:
        super().__init__(sample_rate=sample_rate, num_channels=num_channels, task=None)
        self.net = CAMPPlus()
        self.front_network: Callable[[torch.Tensor], torch.Tensor] = self.net.front
        """(batch, frames, 80) fbank -> (batch, 320, frames): the network's front end itself,
        or the same on ONNX Runtime (:mod:`daemon.pipeline.onnx`)."""
        self.back_network: Callable[[torch.Tensor], torch.Tensor] = self.net.back
        """(batch, 320, frames) -> (batch, 512, frames / 2): the rest, likewise."""
        self.pool = StatsPool()
        self._fbank = partial(
            pyannote_env.torchaudio().compliance.kaldi.fbank,
            num_mel_bins=80,
            frame_length=25.0,
            frame_shift=10.0,
            dither=0.0,
            sample_frequency=sample_rate,
            window_type="povey",
        )

    def forget_frame_network(self) -> None:
        """Free the torch weights of the front end and the TDNN layers once both run elsewhere
        (:meth:`daemon.pipeline.onnx.OnnxNetworks.attach`): 27 MB a worker held beside the
        ONNX Runtime session's own copy.  Only the pooling and the dense layer stay in torch."""
        del self.net.head, self.net.xvector

    def frames_network(self, fbank: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 80) fbank -> (batch, 512, frames / 2)."""
        return self.back_network(self.front_network(fbank))

    @classmethod
    def from_reference(cls, path: Path) -> CamPlusPlusEmbedding:
        model = cls()
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.net.load_reference_state(state)
        model.eval()
        return model

    @property
    def dimension(self) -> int:
        return int(self.net.dimension)

    @property
    def dimension_frames(self) -> int:
        """Channels of the frame features that pooling takes (512)."""
        return int(self.net.dense.linear.in_channels // 2)

    def num_frames(self, num_samples: int) -> int:
        """Frame features (50 per second) that ``num_samples`` samples give."""
        return (fbank_frames(num_samples) + 1) // 2

    def compute_fbank(self, waveforms: torch.Tensor, context: int = 0) -> torch.Tensor:
        """Mean-normalised fbank: over the whole input, or with ``context`` > 0 over the
        ``context`` frames centred on each frame (a long block then looks, frame by frame, like
        the chunk around it)."""
        return normalise(self.raw_fbank(waveforms), context)

    def raw_fbank(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) -> (batch, frames, 80) fbank, not normalised: each frame depends
        only on its own 25 ms, so pieces of a stretch give the stretch's frames
        (:func:`fbank_frames` each)."""
        feats: torch.Tensor = torch.vmap(self._fbank)(waveforms)
        return feats

    def embed_frames(self, frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(batch, channels, frames) frame features x (batch, speakers, mask frames) masks ->
        (batch, speakers, dim): each local speaker's frames pooled with its own mask."""
        stats = self.pool(frames, weights=masks)  # (batch, speakers, 2 * channels)
        batch, speakers, width = stats.shape
        out: torch.Tensor = self.net.dense(stats.reshape(batch * speakers, width))
        return out.reshape(batch, speakers, -1)

    def forward(  # type: ignore[override]
        self, waveforms: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        frames = self.frames_network(self.compute_fbank(waveforms))
        stats = self.pool(frames, weights=weights)
        out: torch.Tensor = self.net.dense(stats)
        return out

    def embed_chunks(self, waveforms: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) chunks x (batch, speakers, frames) masks -> (batch, speakers, dim).

        The frame-level network runs once per chunk; each local speaker's embedding pools those
        frames with its own mask.  Same result as one forward per (chunk, speaker) pair, since
        the mask only enters at the pooling layer.
        """
        return self.embed_frames(self.frames_network(self.compute_fbank(waveforms)), masks)


def fbank_frames(samples: int) -> int:
    """How many fbank frames ``samples`` samples give (Kaldi's, edges snipped)."""
    return 0 if samples < FBANK_WINDOW else 1 + (samples - FBANK_WINDOW) // FBANK_HOP


def normalise(feats: torch.Tensor, context: int = 0) -> torch.Tensor:
    """(batch, frames, 80) fbank minus its mean: over all frames, or with ``context`` > 0 (and
    more frames than that) over the ``context`` frames centred on each frame."""
    out = feats.clone()
    normalise_in_place(out, context)
    return out


def normalise_in_place(feats: torch.Tensor, context: int = 0) -> None:
    """:func:`normalise` in ``feats`` itself, the moving mean subtracted a piece at a time:
    no second tensor of its size (a window's fbank is 19 MB per 10 minutes)."""
    if context <= 0 or feats.shape[1] <= context:
        feats -= feats.mean(dim=1, keepdim=True)
        return
    for first, mean in _moving_means(feats, context):
        feats[:, first : first + mean.shape[1]] -= mean


MEAN_PIECE_FRAMES = 4096
"""The moving mean is computed this many frames at a time (a 10-min window's temporaries of
the whole length in float64 were ~0.2 GB)."""


class RunningSums:
    """``torch.cumsum(x, dim=1, dtype=torch.float64)`` (sums[i]: frames 0..i), the same sums
    to the bit, computed forward a piece at a time and kept only from the frame last asked
    for: a 10-min window's whole sums were 38 MB, and their float64 copy of ``x`` as much
    again.  Each piece's first frame takes the running sum before it (the addition the whole
    scan makes there)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.sums = torch.zeros((x.shape[0], 0, x.shape[2]), dtype=torch.float64)
        self.base = 0
        """The frame ``sums[:, 0]`` belongs to."""

    def span(self, first: int, end: int) -> torch.Tensor:
        """The sums of frames [first, end), ``first`` never below an earlier call's."""
        have = self.base + self.sums.shape[1]
        if end > have:
            piece = self.x[:, have:end].to(torch.float64, copy=True)  # changed below
            if have:
                piece[:, 0] += self.sums[:, -1]
            self.sums = torch.cat([self.sums[:, first - self.base :], torch.cumsum(piece, 1)], 1)
        else:
            self.sums = self.sums[:, first - self.base :]
        self.base = first
        return self.sums[:, : end - first]


def _moving_means(x: torch.Tensor, width: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(first frame, the mean over dim 1 of the ``width`` frames centred on each of the
    :data:`MEAN_PIECE_FRAMES` frames from it; fewer at the edges, where the window is cut to
    the input), in order, from running sums in float64.  The frames of ``x`` a piece reads are
    those from it on, so a caller may change a piece's frames once it has it
    (:func:`normalise_in_place`)."""
    frames = x.shape[1]
    sums = RunningSums(x)
    for first in range(0, frames, MEAN_PIECE_FRAMES):
        index = torch.arange(first, min(frames, first + MEAN_PIECE_FRAMES))
        lo = (index - width // 2).clamp(0, frames)
        hi = (index - width // 2 + width).clamp(1, frames)
        base = max(0, int(lo[0]) - 1)
        part = sums.span(base, int(hi[-1]))
        below = torch.where((lo > 0)[None, :, None], part[:, (lo - 1).clamp(min=0) - base], 0.0)
        mean = (part[:, hi - 1 - base] - below) / (hi - lo).to(part.dtype)[None, :, None]
        yield first, mean.to(x.dtype)
