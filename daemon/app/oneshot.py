"""``transcribd transcribe``: one file through the same pipeline and cache, without a daemon
and without a job row."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import voices
from daemon.config import Config, with_device
from daemon.errors import UserError
from daemon.executor import run_metrics
from daemon.intake import hash_file
from daemon.jobrun import run_pipeline, spool_path
from daemon.jobs import JobOptions
from daemon.pipeline import spool
from daemon.pipeline.outputs import rename_speakers, write_outputs
from daemon.publish import cue_rules, output_place, voice_matches
from daemon.store import open_store
from daemon.warm import WarmModels


@dataclass(frozen=True)
class Transcribed:
    """What ``transcribd transcribe`` wrote, and where its time went."""

    outputs: list[str]
    metrics: dict[str, Any]
    """As a job's (``status --json``): wall, CPU and audio seconds, and the steps."""


def transcribe(
    config: Config,
    path: Path,
    out_dir: Path | None,
    options: JobOptions,
    on_progress: Callable[[float], None] = lambda _f: None,
) -> Transcribed:
    """One file through the same pipeline and cache, no daemon and no job row; ``on_progress``
    gets the fraction done."""
    if not path.is_file():
        raise UserError(f"not a file: {path}")
    started, cpu = time.perf_counter(), time.process_time()
    if options.device is not None:
        config = with_device(config, options.device)
    with closing(open_store(config)) as store:
        sha, _size = hash_file(path)
        models = WarmModels.of(config)
        result = run_pipeline(config, models, store, path, sha, options, on_progress=on_progress)
        on_progress(1.0)
        spool.drop(spool_path(config, sha))
        folder, name = output_place(config, path)
        matches = voice_matches(config, store, path, result.voiceprints)
        with result.stats.timed("outputs"):
            written = write_outputs(
                rename_speakers(result.transcript, voices.names(matches, {})),
                out_dir or folder,
                path.stem,
                config.output.formats,
                others=store.outputs_in_use(),
                timestamps_in_txt=config.output.timestamps_in_txt,
                cues=cue_rules(config),
                name=name,
            )
    return Transcribed(written, run_metrics(result, started, cpu, models.device.name))
