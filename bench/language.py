"""Language detection of short clips: faster-whisper's (each clip padded to a 30-s window)
against transcribd's (a clip shorter than a window encoded at its own length, at least 10 s).

    python -m bench.language [--eval ../shared/eval]

Clips: the English and Russian recordings of the eval set and its 30-s diarization excerpts
(English), plus, where espeak-ng is installed, four sentences each in eight other languages
spoken by espeak-ng (made at run time, never committed; synthetic and 2-3 s long, so hard for
Whisper).  Whisper base, int8, one thread.  Prints the share detected right by each method,
how often they agree, and their time.  Results go to bench/results/language.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

SENTENCES = {
    "de": [
        "Guten Morgen, wie geht es Ihnen heute?",
        "Wir treffen uns morgen um zehn Uhr im Büro.",
        "Das Wetter ist heute sehr schön und warm.",
        "Ich habe das Buch gestern Abend gelesen.",
    ],
    "fr": [
        "Bonjour, comment allez-vous aujourd'hui?",
        "Nous nous retrouvons demain à dix heures au bureau.",
        "Le temps est très beau et chaud aujourd'hui.",
        "J'ai lu ce livre hier soir avant de dormir.",
    ],
    "es": [
        "Buenos días, ¿cómo está usted hoy?",
        "Nos vemos mañana a las diez en la oficina.",
        "El tiempo está muy bonito y cálido hoy.",
        "Leí el libro anoche antes de dormir.",
    ],
    "ru": [
        "Доброе утро, как у вас дела сегодня?",
        "Мы встретимся завтра в десять часов в офисе.",
        "Сегодня очень хорошая и тёплая погода.",
        "Я прочитал эту книгу вчера вечером.",
    ],
    "it": [
        "Buongiorno, come sta oggi?",
        "Ci vediamo domani alle dieci in ufficio.",
        "Oggi il tempo è molto bello e caldo.",
        "Ho letto il libro ieri sera prima di dormire.",
    ],
    "pt": [
        "Bom dia, como você está hoje?",
        "Nos encontramos amanhã às dez horas no escritório.",
        "O tempo está muito bonito e quente hoje.",
        "Eu li o livro ontem à noite antes de dormir.",
    ],
    "nl": [
        "Goedemorgen, hoe gaat het vandaag met u?",
        "We zien elkaar morgen om tien uur op kantoor.",
        "Het weer is vandaag erg mooi en warm.",
        "Ik heb het boek gisteravond gelezen.",
    ],
    "pl": [
        "Dzień dobry, jak się pan dzisiaj czuje?",
        "Spotkamy się jutro o dziesiątej w biurze.",
        "Pogoda jest dzisiaj bardzo ładna i ciepła.",
        "Przeczytałem tę książkę wczoraj wieczorem.",
    ],
}


def clips(eval_dir: Path, tmp: Path) -> list[tuple[str, str, Path]]:
    """(set, language, file) for every clip."""
    out = [("eval", "en", p) for p in sorted((eval_dir / "asr_en").glob("*.wav"))]
    out += [("eval", "en", eval_dir / "asr_en" / "jfk.flac")]
    out += [("eval", "ru", p) for p in sorted((eval_dir / "asr_ru").glob("*.wav"))]
    out += [("eval", "en", p) for p in sorted((eval_dir / "diarization").glob("*.wav"))]
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not installed: the eval set's clips only")
        return out
    for language, sentences in SENTENCES.items():
        for i, text in enumerate(sentences):
            wav = tmp / f"{language}-{i}.wav"
            subprocess.run(["espeak-ng", "-v", language, "-w", str(wav), text], check=True)
            out.append(("espeak-ng", language, wav))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    if not args.eval.is_dir():
        raise SystemExit(f"evaluation data not found at {args.eval}")
    from daemon import modelstore
    from daemon.config import cache_home
    from daemon.pipeline import audio
    from daemon.pipeline.asr import AsrModel

    model = AsrModel(modelstore.resolve("base", cache_home() / "models"), "int8", 1)
    whisper = model._model  # faster-whisper's own detection, as transcribd called it before
    rows: list[dict[str, Any]] = []
    spent = {"faster-whisper": 0.0, "transcribd": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for group, truth, path in clips(args.eval, Path(tmp)):
            samples = np.concatenate(list(audio.decode_blocks(path)))[: 90 * audio.SAMPLE_RATE]
            started = time.perf_counter()
            theirs, _, _ = whisper.detect_language(audio=samples, language_detection_segments=3)
            spent["faster-whisper"] += time.perf_counter() - started
            started = time.perf_counter()
            ours, _ = model.detect_language(samples)
            spent["transcribd"] += time.perf_counter() - started
            rows.append(
                {"set": group, "truth": truth, "file": path.name, "theirs": theirs, "ours": ours}
            )
    print(f"{'set':<10} {'clips':>5} {'faster-whisper':>15} {'transcribd':>11} {'agree':>6}")
    for group in sorted({r["set"] for r in rows}):
        sub = [r for r in rows if r["set"] == group]
        print(
            f"{group:<10} {len(sub):5d} "
            f"{sum(r['theirs'] == r['truth'] for r in sub):>10d}/{len(sub):<4d}"
            f"{sum(r['ours'] == r['truth'] for r in sub):>6d}/{len(sub):<4d}"
            f"{sum(r['ours'] == r['theirs'] for r in sub):>4d}/{len(sub)}"
        )
    print(
        f"time: faster-whisper {spent['faster-whisper']:.1f} s, transcribd "
        f"{spent['transcribd']:.1f} s ({spent['faster-whisper'] / spent['transcribd']:.1f}x)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "language.json").write_text(json.dumps({"rows": rows, "seconds": spent}, indent=2))


if __name__ == "__main__":
    main()
