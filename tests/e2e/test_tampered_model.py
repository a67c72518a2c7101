"""A corrupted model never transcribes: the joined Whisper base model with bytes flipped for
real inside its model.bin (its size and mtime kept, so the cheap size check passes), then real
jobs and ``transcribe`` runs on real speech (jfk.flac of ../shared/eval).

A bundled model is re-hashed when a process first loads it and joined again from its packages;
where the packages do not verify either, or where the model is a local folder that nothing can
rebuild, the job fails permanently naming the model: never a done job with garbage."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from daemon import modelstore, retry
from daemon.app import oneshot
from daemon.config import Config
from daemon.errors import DegenerateTranscript, ModelError
from daemon.jobs import JobOptions
from daemon.modelstore import BUNDLED, BundledModel, ResolvedModel, Resource
from daemon.pipeline.asr import AsrModel, AsrOptions
from daemon.pipeline.audio import decode_blocks
from daemon.pipeline.degenerate import degenerate_windows, transcribe_checked
from daemon.warm import WarmModels
from tests.conftest import need_eval

pytestmark = [pytest.mark.model, pytest.mark.eval]

SPEECH = "ask not what your country can do for you"
BASE = BUNDLED["base"]


def flip_bytes(path: Path, count: int = 200, seed: int = 0, start: int = 1 << 16) -> None:
    """Flip ``count`` scattered bytes of ``path`` past its first ``start`` (its header of
    variable names), then put its mtime back: size and mtime as they were."""
    before = path.stat()
    rng = random.Random(seed)
    with path.open("r+b") as f:
        for pos in [rng.randrange(start, before.st_size) for _ in range(count)]:
            f.seek(pos)
            byte = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([byte ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def tampered_cache(tmp_path: Path, model_cache: Path) -> Path:
    """A model cache of the test's own holding the joined base model, bytes flipped."""
    joined = modelstore.resolve("base", model_cache).path
    cache = tmp_path / "models"
    shutil.copytree(joined, cache / joined.name)
    flip_bytes(cache / joined.name / "model.bin")
    assert modelstore.file_sha256(cache / joined.name / "model.bin") != BASE.sha256
    assert modelstore.resolve("base", cache).path == cache / joined.name  # not joined again
    assert modelstore.file_sha256(cache / joined.name / "model.bin") != BASE.sha256
    return cache


def write_config(tmp_path: Path, cache: Path, extra: str = "") -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "jobs.db"}"\n'
        f'[watch]\nfolders = ["{tmp_path / "inbox"}"]\nstable_seconds = 0.2\n'
        f'[output]\ndir = "{tmp_path / "out"}"\nformats = ["txt", "json"]\n'
        '[pipeline]\nprofile = "balanced"\nlanguage = "en"\n'
        f'[models]\ncache_dir = "{cache}"\n'
        "[diarization]\nenabled = false\n"
        f'[daemon]\nwork_dir = "{tmp_path / "work"}"\ntick_seconds = 0.5\nmax_workers = 1\n' + extra
    )
    return cfg


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def jobs(cfg: Path) -> list[dict[str, object]]:
    out = cli(cfg, "status", "--json")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def jfk() -> np.ndarray:
    return np.concatenate(list(decode_blocks(need_eval("asr_en", "jfk.flac"))))


@pytest.mark.slow  # a damaged model decodes to its token limit: minutes
def test_the_flipped_bytes_make_whisper_write_garbage(tmp_path: Path, model_cache: Path) -> None:
    """The damage is real: loaded as it is (no verification), the model writes a loop where
    the speech is, and the safeguard that does not depend on the hash catches it, decoding
    again included."""
    folder = (
        tampered_cache(tmp_path, model_cache) / modelstore.resolve("base", model_cache).path.name
    )
    model = AsrModel(ResolvedModel("base", folder, "test", True), "int8", 2)
    found, _ = model.transcribe(jfk(), "en", AsrOptions(beam_size=2))
    text = " ".join(s.text for s in found).lower()
    assert SPEECH not in text and degenerate_windows(s.text for s in found) is not None
    with pytest.raises(DegenerateTranscript, match="model 'base'"):
        transcribe_checked(model, "base", jfk(), (0.0, 11.0), "en", AsrOptions(beam_size=2))


def test_transcribe_repairs_a_tampered_model_before_loading_it(
    tmp_path: Path, model_cache: Path
) -> None:
    cache = tampered_cache(tmp_path, model_cache)
    cfg = write_config(tmp_path, cache)
    out = cli(cfg, "transcribe", str(need_eval("asr_en", "jfk.flac")), "-o", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    assert SPEECH in (tmp_path / "o" / "jfk.txt").read_text().lower()
    assert "does not verify" in out.stderr and "joining it again from its packages" in out.stderr
    folder = modelstore.resolve("base", cache).path
    assert modelstore.file_sha256(folder / "model.bin") == BASE.sha256


def test_a_job_in_a_worker_process_repairs_a_tampered_model(
    tmp_path: Path, model_cache: Path
) -> None:
    cache = tampered_cache(tmp_path, model_cache)
    cfg = write_config(tmp_path, cache)
    (tmp_path / "inbox").mkdir()
    shutil.copy(need_eval("asr_en", "jfk.flac"), tmp_path / "inbox" / "jfk.flac")
    out = cli(cfg, "run", "--once")
    assert out.returncode == 0 and "1 done, 0 failed" in out.stdout, out.stderr[-3000:]
    [job] = jobs(cfg)
    assert job["status"] == "done"
    assert SPEECH in (tmp_path / "out" / "jfk.txt").read_text().lower()
    assert "does not verify" in out.stderr and "repaired from its packages" in out.stderr
    folder = modelstore.resolve("base", cache).path
    assert modelstore.file_sha256(folder / "model.bin") == BASE.sha256


def test_damaged_packages_fail_the_run_permanently_naming_the_model(
    tmp_path: Path,
    model_cache: Path,
    make_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the packages the model is joined from do not verify either (here a package of the
    test's own holding the damaged weights), nothing can repair it: a ModelError naming the
    model, the cache and the reinstall command, not retried, and nothing written."""
    cache = tampered_cache(tmp_path, model_cache)
    folder = modelstore.resolve("base", cache).path
    package = tmp_path / "site" / "damaged_whisper_base"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(folder / name, package / "data" / name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    damaged = BundledModel(
        name="base",
        model_parts=(Resource("damaged_whisper_base", "data/model.bin"),),
        extras=tuple(
            Resource("damaged_whisper_base", f"data/{n}")
            for n in ("config.json", "tokenizer.json", "vocabulary.json")
        ),
        sha256=BASE.sha256,
        multilingual=True,
    )
    monkeypatch.setitem(BUNDLED, "base", damaged)
    config = make_config(
        models={"cache_dir": str(cache)},
        diarization={"enabled": False},
        pipeline={"profile": "balanced", "language": "en"},
    )
    with pytest.raises(ModelError) as caught:
        oneshot.transcribe(config, need_eval("asr_en", "jfk.flac"), tmp_path / "o", JobOptions())
    message = str(caught.value)
    assert f"model 'base' in {cache} does not verify and cannot be rebuilt" in message
    assert "pip install --force-reinstall damaged-whisper-base" in message
    assert not (tmp_path / "o").exists()
    decision = retry.decide(caught.value, 1, 3, datetime.now(UTC))
    assert not decision.retry and retry.failure_class(caught.value) == "model"


@pytest.mark.slow  # a damaged model decodes to its token limit: minutes
def test_a_damaged_local_model_fails_the_job_permanently(tmp_path: Path, model_cache: Path) -> None:
    """A local folder has no pinned hash and cannot be rebuilt: the degenerate transcript its
    damaged weights write fails the job (once, not retried), naming the model; no outputs."""
    local = tmp_path / "my-whisper"
    shutil.copytree(modelstore.resolve("base", model_cache).path, local)
    flip_bytes(local / "model.bin")
    cfg = write_config(tmp_path, tmp_path / "models", f'[profiles.balanced]\nmodel = "{local}"\n')
    (tmp_path / "inbox").mkdir()
    shutil.copy(need_eval("asr_en", "jfk.flac"), tmp_path / "inbox" / "jfk.flac")
    out = cli(cfg, "run", "--once")
    assert out.returncode == 0 and "0 done, 1 failed" in out.stdout, out.stderr[-3000:]
    [job] = jobs(cfg)
    assert job["status"] == "failed" and job["attempts"] == 1
    assert f"model '{local}'" in str(job["error"]) and "degenerate" in str(job["error"])
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_local_model_that_does_not_load_is_a_model_error(
    tmp_path: Path, model_cache: Path
) -> None:
    """Heavier damage: CTranslate2 raises UnicodeDecodeError while it reads the header (here
    the spec's name, no longer UTF-8); the error names the model and says it cannot be rebuilt,
    in one line, and a job with it is not retried."""
    local = tmp_path / "my-whisper"
    shutil.copytree(modelstore.resolve("base", model_cache).path, local)
    with (local / "model.bin").open("r+b") as f:
        f.seek(6)
        f.write(b"\xa8")
    models = WarmModels(cache_dir=tmp_path / "models")
    with pytest.raises(ModelError) as caught:
        models.asr(models.resolve(str(local)), "int8", 1)
    assert "UnicodeDecodeError" in str(caught.value)
    assert not retry.decide(caught.value, 1, 3, datetime.now(UTC)).retry
    cfg = write_config(tmp_path, tmp_path / "models", f'[profiles.balanced]\nmodel = "{local}"\n')
    out = cli(cfg, "transcribe", str(need_eval("asr_en", "jfk.flac")), "-o", str(tmp_path / "o"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    [line] = [x for x in out.stderr.splitlines() if x.startswith("transcribd:")]
    assert line.startswith(f"transcribd: model '{local}' does not load (UnicodeDecodeError")
    assert "cannot be rebuilt by transcribd" in line


@pytest.mark.slow  # among the longest: CI runs it with -m slow
def test_garbage_cached_under_a_model_is_not_served_on_requeue(
    tmp_path: Path, model_cache: Path
) -> None:
    """The ASR result a damaged model left in the step cache (before models were verified),
    under the model's verified identity: a requeued job computes it again instead of
    publishing it."""
    cfg = write_config(tmp_path, model_cache)
    (tmp_path / "inbox").mkdir()
    shutil.copy(need_eval("asr_en", "jfk.flac"), tmp_path / "inbox" / "jfk.flac")
    assert "1 done" in cli(cfg, "run", "--once").stdout
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    garbage = {"language": "en", "segments": [{"start": 0.0, "end": 11.0, "text": '"' * 224}]}
    with engine.begin() as conn:
        changed = conn.execute(
            sa.text("UPDATE step_results SET payload = :p WHERE step = 'asr'"),
            {"p": json.dumps(garbage)},
        ).rowcount
    engine.dispose()
    assert changed == 1
    assert cli(cfg, "requeue", "1").returncode == 0
    out = cli(cfg, "run", "--once")
    assert "1 done" in out.stdout, out.stderr[-3000:]
    assert "dropped a cached asr result" in out.stderr
    assert SPEECH in (tmp_path / "out" / "jfk.txt").read_text().lower()


def test_doctor_finds_a_tampered_model(tmp_path: Path, model_cache: Path) -> None:
    """``doctor`` re-hashes: the flipped bytes are found, and since the packages verify, the
    fix is the repair at the next load."""
    cfg = write_config(tmp_path, tampered_cache(tmp_path, model_cache))
    out = cli(cfg, "doctor")
    [line] = [x for x in out.stdout.splitlines() if "model base" in x]
    assert "does not verify (model.bin has sha256" in line, out.stdout
    assert "joined again from its packages when it is next loaded" in out.stdout
