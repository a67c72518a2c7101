"""A diarization dev set, built at run time from ../shared/eval (never committed):

- conversations of 2 to 5 people made of the single-speaker recordings of different people
  (English and Russian readers, and the AMI meeting participants' turns that overlap no one),
  turns of 1-10 s (2-6 s in a set of two-person ones), pauses and some overlaps, each voice at
  its own level over a faint noise floor; the RTTM is exact, from the construction;
- the AMI meeting excerpts and the phone call as they are, with their own RTTM and UEM.

Apart from it, :func:`monologues` (each voice alone) and :func:`crowded` (8-19 voices in one
diarization window) check rules that change how many voices are found.

    python -m bench.devset [--eval ../shared/eval] [--out DIR] [--seed 0]

The plan of a conversation is a pure function of the voices and a seeded random generator
(:func:`plan`); rendering it writes a 16 kHz WAV and its RTTM.
"""

from __future__ import annotations

import argparse
import math
import random
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.metrics import load_rttm
from daemon.pipeline import audio

RATE = audio.SAMPLE_RATE
REPO = Path(__file__).resolve().parents[1]

SINGLE_SPEAKER = {
    # voice: (language, files under eval/)
    "kennedy": ("en", ("asr_en/jfk.flac",)),
    "ljspeech": ("en", tuple(f"asr_en/LJ001-{i:04d}.wav" for i in range(1, 17))),
    "librispeech-1995": ("en", ("asr_en/librispeech-1995-1837-0001.wav",)),
    "librivox": ("en", tuple(f"asr_en/librivox-0{n}.wav" for n in (870, 880, 890))),
    "multilingual": ("en", ("asr_en/multilingual_en_de.mp3",)),
    "golos": ("ru", ("asr_ru/golos-001ce26c.wav",)),
    "podlodka": ("ru", ("asr_ru/podlodka_test_0.wav",)),
    "pisets": ("ru", ("asr_ru/pisets_test_sound_ru.wav",)),
}
MIN_PIECE = 0.8
"""Shortest stretch of one voice worth a turn (seconds)."""
MIN_VOICE = {"en": 6.0, "ru": 3.0}
"""Least speech a voice needs to take part (seconds): less would repeat one word all along.
Russian material is scarce in the evaluation data (three short readings), hence its lower bar."""


@dataclass(frozen=True)
class Piece:
    """A stretch of one voice alone in a recording."""

    path: Path
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Voice:
    name: str
    language: str
    pieces: tuple[Piece, ...]


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    """Where the turn starts in the conversation."""
    piece: Piece
    offset: float
    """Where in the piece the turn's audio starts."""
    length: float

    @property
    def end(self) -> float:
        return self.start + self.length


@dataclass(frozen=True)
class Conversation:
    name: str
    turns: tuple[Turn, ...]
    gains: tuple[tuple[str, float], ...]
    """Each voice's level, in dB."""

    @property
    def duration(self) -> float:
        return max(t.end for t in self.turns) + 0.5

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})


@dataclass(frozen=True)
class Recipe:
    """What kind of conversation to plan."""

    speakers: int
    seconds: float
    turn: tuple[float, float] = (1.0, 10.0)
    language: str = "en"
    """"en", "ru" or "mixed"."""
    overlap_share: float = 0.15
    """Share of turns that start before the previous one ended."""


@dataclass(frozen=True)
class Item:
    """One file of the dev set with its truth."""

    name: str
    wav: Path
    rttm: Path
    uem: Path | None
    kind: str
    """"synthetic", "ami" or "phone"."""
    speakers: int
    turn: tuple[float, float] | None = None


def decode(path: Path) -> np.ndarray:
    return np.concatenate(list(audio.decode_blocks(path))).astype(np.float32)


def voices(eval_dir: Path) -> list[Voice]:
    """Every voice of the evaluation data with the stretches where it speaks alone: the
    single-speaker recordings cut at their silences, and each AMI participant's (and the phone
    call's) turns that overlap no one else's."""
    import librosa

    out: list[Voice] = []
    for name, (language, files) in SINGLE_SPEAKER.items():
        pieces: list[Piece] = []
        for rel in files:
            path = eval_dir / rel
            if not path.is_file():
                continue
            samples = decode(path)
            for a, b in librosa.effects.split(
                samples, top_db=35, frame_length=1024, hop_length=256
            ):
                if (b - a) / RATE >= MIN_PIECE:
                    pieces.append(Piece(path, a / RATE, b / RATE))
        out.append(Voice(name, language, tuple(pieces)))
    alone: dict[str, list[Piece]] = {}
    for rttm in sorted((eval_dir / "diarization").glob("*.rttm")):
        turns = load_rttm(str(rttm))
        for s, e, who in turns:
            others = [(s2, e2) for s2, e2, w2 in turns if w2 != who and s2 < e and e2 > s]
            for a, b in _minus((s, e), others):
                if b - a >= MIN_PIECE:
                    alone.setdefault(who, []).append(Piece(rttm.with_suffix(".wav"), a, b))
    out += [Voice(f"ami-{who}", "en", tuple(p)) for who, p in sorted(alone.items())]
    return [v for v in out if sum(p.length for p in v.pieces) >= MIN_VOICE[v.language]]


def _minus(
    span: tuple[float, float], holes: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    parts = [span]
    for hs, he in holes:
        parts = [q for a, b in parts for q in ((a, min(b, hs)), (max(a, he), b)) if q[1] > q[0]]
    return parts


def plan(recipe: Recipe, pool: Sequence[Voice], rng: random.Random, name: str) -> Conversation:
    """A conversation of ``recipe.speakers`` voices drawn from ``pool`` (pure, given ``rng``):
    each next turn goes to another voice, the least heard first on ties; a turn is a random
    stretch of one of its pieces, as long as the recipe's range allows and the piece holds."""
    chosen = rng.sample(list(pool), recipe.speakers)
    heard = {v.name: 0.0 for v in chosen}
    turns: list[Turn] = []
    t, current = 0.3, None
    while t < recipe.seconds or len({x.speaker for x in turns}) < recipe.speakers:
        candidates = [v for v in chosen if v.name != current] or chosen  # one voice: again
        least = min(heard[v.name] for v in candidates)
        quiet = [v for v in candidates if heard[v.name] <= least + 3.0]
        voice = rng.choice(quiet)
        piece = rng.choice(voice.pieces)
        want = rng.uniform(*recipe.turn)
        length = min(want, piece.length)
        offset = piece.start + rng.uniform(0.0, piece.length - length)
        if turns and rng.random() < recipe.overlap_share:
            prev = turns[-1]
            start = max(prev.start + 0.3, prev.end - rng.uniform(0.2, min(1.0, prev.length / 2)))
        else:
            start = (turns[-1].end if turns else t) + rng.uniform(0.1, 1.0)
        turns.append(Turn(voice.name, round(start, 3), piece, offset, round(length, 3)))
        heard[voice.name] += length
        current, t = voice.name, start + length
    gains = tuple((v.name, round(rng.uniform(-6.0, 3.0), 1)) for v in chosen)
    return Conversation(name, tuple(turns), gains)


def render(conv: Conversation, out_dir: Path, rng: random.Random) -> tuple[Path, Path]:
    """Write the conversation's WAV (the turns mixed at their voices' levels over a noise
    floor at -60 dBFS) and its RTTM (one line per turn, exact)."""
    import soundfile

    mix = np.zeros(int(conv.duration * RATE) + 1, dtype=np.float32)
    gains = dict(conv.gains)
    sources: dict[Path, np.ndarray] = {}
    for turn in conv.turns:
        samples = sources.setdefault(turn.piece.path, decode(turn.piece.path))
        a = int(turn.offset * RATE)
        clip = samples[a : a + int(turn.length * RATE)]
        peak = float(np.max(np.abs(clip))) or 1.0
        clip = clip / peak * 0.5 * 10 ** (gains[turn.speaker] / 20)
        s = int(turn.start * RATE)
        mix[s : s + clip.size] += clip
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, 1e-3, mix.size)
    mix = np.clip(mix + noise.astype(np.float32), -1.0, 1.0)
    wav = out_dir / f"{conv.name}.wav"
    soundfile.write(wav, mix, RATE, subtype="PCM_16")
    rttm = out_dir / f"{conv.name}.rttm"
    rttm.write_text(
        "".join(
            f"SPEAKER {conv.name} 1 {t.start:.3f} {t.length:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
            for t in sorted(conv.turns, key=lambda x: x.start)
        )
    )
    return wav, rttm


RECIPES: tuple[tuple[int, Recipe], ...] = (
    # (how many, recipe): 36 conversations of about 45-60 s, about 31 minutes
    (12, Recipe(2, 50.0, turn=(2.0, 6.0))),
    (4, Recipe(2, 50.0, turn=(2.0, 6.0), language="ru")),
    (6, Recipe(2, 55.0)),
    (6, Recipe(3, 55.0)),
    (2, Recipe(3, 55.0, language="mixed")),
    (4, Recipe(4, 60.0)),
    (2, Recipe(5, 60.0)),
)


def build(eval_dir: Path, out_dir: Path, seed: int = 0) -> list[Item]:
    """The dev set under ``out_dir`` (rebuilt each time: it is cheap, and never committed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pool = voices(eval_dir)
    rng = random.Random(seed)
    items: list[Item] = []
    n = 0
    for count, recipe in RECIPES:
        for _ in range(count):
            langs = ("en", "ru") if recipe.language == "mixed" else (recipe.language,)
            eligible = [v for v in pool if v.language in langs]
            if len(eligible) < recipe.speakers:
                continue
            conv = plan(recipe, eligible, rng, f"conv{n:02d}-{recipe.speakers}spk")
            wav, rttm = render(conv, out_dir, rng)
            items.append(
                Item(conv.name, wav, rttm, None, "synthetic", recipe.speakers, recipe.turn)
            )
            n += 1
    for rttm in sorted((eval_dir / "diarization").glob("*.rttm")):
        uem = rttm.with_suffix(".uem")
        kind = "phone" if rttm.stem == "sample" else "ami"
        truth = {w for *_, w in load_rttm(str(rttm))}
        items.append(
            Item(
                rttm.stem,
                rttm.with_suffix(".wav"),
                rttm,
                uem if uem.exists() else None,
                kind,
                len(truth),
            )
        )
    return items


MONOLOGUE = Recipe(1, 40.0, overlap_share=0.0)
"""One voice alone, turns of 1-10 s with pauses: a file that must be found as one speaker."""


def monologues(eval_dir: Path, out_dir: Path, seed: int = 0) -> list[Item]:
    """One file per voice of the evaluation data, that voice alone (:data:`MONOLOGUE`): where a
    rule that finds more voices would split one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    items: list[Item] = []
    for voice in voices(eval_dir):
        conv = plan(MONOLOGUE, [voice], rng, f"alone-{voice.name}")
        wav, rttm = render(conv, out_dir, rng)
        items.append(Item(conv.name, wav, rttm, None, "monologue", 1, MONOLOGUE.turn))
    return items


def string_together(
    wavs: Iterable[Path], out: Path, seconds: float = math.inf
) -> list[tuple[float, float, str]]:
    """Write 16 kHz mono WAVs one after another to ``out`` until ``seconds`` (or the last) and
    return their RTTMs' turns (where one sits beside its WAV) shifted to where each starts.
    Speaker names stay as the RTTMs give them: AMI's are its participants' own across meetings
    (MÉO069 speaks in trn00, trn01 and trn03), so one person is one speaker."""
    turns: list[tuple[float, float, str]] = []
    offset = 0.0
    with wave.open(str(out), "wb") as dst:
        dst.setnchannels(1)
        dst.setsampwidth(2)
        dst.setframerate(RATE)
        for src in wavs:
            if offset >= seconds:
                break
            with wave.open(str(src)) as w:
                if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
                    raise ValueError(f"{src}: not 16 kHz mono 16-bit PCM")
                dst.writeframes(w.readframes(w.getnframes()))
                length = w.getnframes() / RATE
            rttm = src.with_suffix(".rttm")
            if rttm.exists():
                turns += [
                    (a + offset, b + offset, who)
                    for a, b, who in load_rttm(str(rttm))
                    if b <= length
                ]
            offset += length
    return turns


CROWDED: tuple[tuple[int, Recipe], ...] = (
    # (how many, recipe): windows with many voices, as a long meeting's are; the voices are
    # drawn from every voice of the evaluation data, English and Russian
    (3, Recipe(8, 240.0)),
    (1, Recipe(12, 300.0)),
)
MEETING_STRINGS = 2
"""Files made of every AMI excerpt and the phone call, one after the other in a seeded order."""


def crowded(eval_dir: Path, out_dir: Path, seed: int = 0) -> list[Item]:
    """Files with many voices in one diarization window, where the dev set has 2-5: synthetic
    conversations of 8-12 of its voices (:data:`CROWDED`), and the 30-s diarization
    recordings strung together (19 people in 5 minutes: AMI's speaker names are its
    participants' own across meetings, so one person is one speaker)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pool = voices(eval_dir)
    rng = random.Random(seed)
    items: list[Item] = []
    for count, recipe in CROWDED:
        for _ in range(count):
            if len(pool) < recipe.speakers:
                continue
            conv = plan(recipe, pool, rng, f"crowd{len(items):02d}-{recipe.speakers}spk")
            wav, rttm = render(conv, out_dir, rng)
            items.append(Item(conv.name, wav, rttm, None, "crowded", recipe.speakers, recipe.turn))
    sources = sorted((eval_dir / "diarization").glob("*.wav"))
    for n in range(MEETING_STRINGS if sources else 0):
        name = f"meetings{n:02d}"
        wav, ref = out_dir / f"{name}.wav", out_dir / f"{name}.rttm"
        turns = string_together(rng.sample(sources, len(sources)), wav)
        ref.write_text(
            "".join(
                f"SPEAKER {name} 1 {a:.3f} {b - a:.3f} <NA> <NA> {who} <NA> <NA>\n"
                for a, b, who in turns
            )
        )
        items.append(Item(name, wav, ref, None, "crowded", len({w for *_, w in turns})))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "devset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    items = build(args.eval, args.out, args.seed)
    minutes = sum(float(len(decode(i.wav))) / RATE for i in items) / 60
    by_kind: dict[str, int] = {}
    for i in items:
        by_kind[i.kind] = by_kind.get(i.kind, 0) + 1
    print(f"{len(items)} files, {minutes:.1f} min: {by_kind} in {args.out}")


if __name__ == "__main__":
    main()
