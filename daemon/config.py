"""TOML configuration -> frozen, validated dataclasses.

Every key has a default, so the daemon runs with no file at all.  Unknown keys and bad values raise
:class:`ConfigError` with one line naming the key; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon import devices, hooks, placement

ENV_CONFIG = "TRANSCRIBD_CONFIG"
SYSTEM_CONFIG = Path("/etc/transcribd/config.toml")
"""The service's config (the systemd unit reads it; so does ``sudo -u transcribd transcribd
status``, which then finds the service's database)."""

AUDIO_EXTENSIONS = (
    "wav",
    "flac",
    "mp3",
    "m4a",
    "aac",
    "ogg",
    "opus",
    "wma",
    "webm",
    "mp4",
    "mkv",
    "mov",
    "avi",
)
OUTPUT_FORMATS = ("txt", "srt", "vtt", "json", "rttm")
PROFILE_NAMES = ("fast", "balanced", "quality")
PROFILE_CHOICES = ("auto", *PROFILE_NAMES)


NODE_MAX = 64
"""Longest ``[daemon] node`` name (it is stored with every job a node claims)."""


class ConfigError(ValueError):
    """A configuration problem, described in one line."""


def data_home() -> Path:
    """Where state lives: systemd's StateDirectory, else XDG_DATA_HOME, else ~/.local/share."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "transcribd"


def cache_home() -> Path:
    """Where derived files (the joined model) live: CacheDirectory, XDG_CACHE_HOME, ~/.cache."""
    cache = os.environ.get("CACHE_DIRECTORY")
    if cache:
        return Path(cache.split(":")[0])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "transcribd"


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""


@dataclass(frozen=True)
class WatchConfig:
    folders: tuple[Path, ...] = ()
    recursive: bool = True
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS
    stable_seconds: float = 2.0
    """A file is enqueued once its size and mtime have not changed for this long."""
    ignore_hidden: bool = True
    allow_symlinks_outside: bool = False
    """Take files whose real location is outside every watched folder (via symlinks)."""
    observer: str = "auto"
    """"inotify" (the kernel's events), "polling" (rescans; for NFS/SMB/FUSE shares, where
    changes made by other machines raise no events) or "auto" (polling on network and FUSE
    file systems, the kernel's events elsewhere)."""
    poll_seconds: float = 5.0
    """How often the polling observer looks at the folders."""


OBSERVERS = ("auto", "inotify", "polling")
LOG_LEVELS = ("", "DEBUG", "INFO", "WARNING", "ERROR")
DIARIZATION_RUNTIMES = ("onnxruntime", "torch")


@dataclass(frozen=True)
class OutputConfig:
    dir: Path = Path()
    formats: tuple[str, ...] = OUTPUT_FORMATS
    timestamps_in_txt: bool = False
    max_line_chars: int = 42
    """Subtitles (srt, vtt): characters per line at most (broadcast convention: 42)."""
    max_lines: int = 2
    """Subtitles: lines per cue at most."""
    max_cue_seconds: float = 7.0
    """Subtitles: seconds a cue stays on screen at most (and 1 s at least)."""
    layout: str = "mirror"
    """"mirror" (under ``dir``, the input's folders below its watched folder mirrored),
    "beside" (next to the input) or "flat" (all directly in ``dir``); see daemon.placement."""
    name: str = "{stem}"
    """Output file name without its suffix: ``{stem}`` and ``{lang}`` (ISO 639-1)."""


@dataclass(frozen=True)
class PipelineConfig:
    profile: str = "auto"
    """"auto": chosen per file from load, queue and file length; or fast, balanced, quality."""
    language: str = "auto"
    """An ISO code such as "en" forces the language; "auto" detects it once per file."""
    initial_prompt: str = ""
    """Text Whisper reads as what came before: names, terms and the style to follow."""
    hotwords: str = ""
    """Words and spellings Whisper should prefer."""


@dataclass(frozen=True)
class ModelsConfig:
    cache_dir: Path = Path()
    allow_download: bool = False
    """Let faster-whisper fetch a hub model named in a profile. Off: everything is offline."""
    diarization_runtime: str = "onnxruntime"
    """Where the diarization networks run: "onnxruntime" (exported once from the packaged
    checkpoints into cache_dir) or "torch" (the checkpoints as they are)."""


@dataclass(frozen=True)
class ComputeConfig:
    device: str = "auto"
    """Where the models run: "auto" (an NVIDIA GPU where CTranslate2 sees one, else the CPU),
    "cpu", "cuda" (the first GPU) or "cuda:N"."""


@dataclass(frozen=True)
class DaemonConfig:
    tick_seconds: float = 2.0
    lease_seconds: float = 120.0
    max_attempts: int = 3
    work_dir: Path = Path()
    max_workers: int = 0
    """Worker processes at most, GPU workers included; 0: as many as the planner grants (never
    more threads than cores)."""
    overlap_diarization: bool = True
    """Run diarization beside ASR, splitting a worker's threads, instead of after it."""
    model_idle_seconds: float = 600.0
    """A worker unloads models it has not used for this long."""
    stop_seconds: float = 30.0
    """On SIGTERM/SIGINT, running jobs get this long to finish; then they stop where they are
    (finished chunks are cached), their leases are released and the daemon exits 0."""
    backoff_seconds: float = 5.0
    """First wait before a transient error is retried; doubled each attempt (at most 10 min)."""
    resource_backoff_seconds: float = 300.0
    """First wait after a full disk or an output folder that cannot be written: such problems
    take a person minutes to fix; doubled each attempt (at most 1 h)."""
    log_level: str = ""
    """DEBUG, INFO, WARNING or ERROR ("": INFO for ``run``; ``--log-level`` wins at start); a
    SIGHUP applies it."""
    node: str = ""
    """This daemon's name among those sharing one database ("": the host name)."""


@dataclass(frozen=True)
class HooksConfig:
    on_done: tuple[str, ...] = ()
    """A command (argv, no shell) run when a job is done; placeholders, JSON on stdin."""
    on_failed: tuple[str, ...] = ()
    """A command run when a job has failed for good."""
    timeout_seconds: float = 60.0
    """A hook command still running after this long is killed (and tried again)."""
    webhook: str = ""
    """An http(s) URL the job's record is POSTed to as JSON when it is done or failed."""
    webhook_secret: str = ""
    """Signs each POST: HMAC-SHA256 of the body, in X-Transcribd-Signature-256."""
    attempts: int = 8
    """Tries of each announcement before it is given up."""
    backoff_seconds: float = 5.0
    """Wait after a failed try; doubled after each (at most an hour)."""


@dataclass(frozen=True)
class VoicesConfig:
    enabled: bool = True
    """Name the speakers whose voice is enrolled (``transcribd voices add``)."""
    max_distance: float = 0.22
    """A speaker is an enrolled voice when their voice prints are at most this far apart
    (cosine distance).  Calibrated on the speakers dev set (bench/voices.py): the largest
    threshold at which at most 1 % of diarized speakers whose voice is not enrolled get a name,
    in every profile (0.26 before clusters were merged after clustering, 0.24 before lone
    voices were looked for: clusters that mix two voices lie nearer other voices)."""


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = ""
    """Serve Prometheus metrics on this "host:port" ("": off)."""


@dataclass(frozen=True)
class ProfileOverride:
    """Per-profile overrides; unset (None) keys keep the built-in bundle's value."""

    model: str | None = None
    english_model: str | None = None
    """Model for English speech ("" for none: ``model`` transcribes everything)."""
    compute_type: str | None = None
    cuda_compute_type: str | None = None
    """Whisper's compute type on an NVIDIA GPU (compute_type is the CPU's)."""
    beam_size: int | None = None
    max_chunk_seconds: float | None = None
    vad_threshold: float | None = None
    min_silence_ms: int | None = None
    speech_pad_ms: int | None = None
    diarization_threshold: float | None = None
    diarization_merge_distance: float | None = None
    """Clusters whose centroids lie closer than this are merged after clustering (0: not)."""
    diarization_lone_voice_share: float | None = None
    """Where one voice was found, a second is looked for among embeddings whose speaker speaks
    alone for this share of a chunk (0: not)."""
    segmentation_step: float | None = None


@dataclass(frozen=True)
class Vocabulary:
    """What Whisper is told before it listens (faster-whisper's options of the same names)."""

    initial_prompt: str = ""
    hotwords: str = ""


@dataclass(frozen=True)
class SpeakerHints:
    """Speaker-count hints for diarization; unset means unknown."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None


@dataclass(frozen=True)
class DiarizationConfig(SpeakerHints):
    enabled: bool = True
    window_seconds: float = 600.0
    """Long files are diarized in windows of about this much speech, linked by voice."""


@dataclass(frozen=True)
class FolderOptions(SpeakerHints):
    """Per watched folder: overrides for the files that arrive there."""

    profile: str | None = None
    language: str | None = None
    initial_prompt: str | None = None
    hotwords: str | None = None
    layout: str | None = None
    """``[output] layout`` for the files of this folder."""
    name: str | None = None
    """``[output] name`` for the files of this folder."""
    voices: bool | None = None
    """``[voices] enabled`` for the files of this folder."""
    device: str | None = None
    """Where the files of this folder run ("cpu", "cuda", "cuda:N"; unset: any worker)."""


OUTPUT_OPTIONS = ("layout", "name", "voices")
"""Folder options read when the outputs are written (where, and with which names), not
options of the job."""


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig
    watch: WatchConfig
    output: OutputConfig
    pipeline: PipelineConfig
    models: ModelsConfig
    daemon: DaemonConfig
    diarization: DiarizationConfig = field(default_factory=DiarizationConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    voices: VoicesConfig = field(default_factory=VoicesConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    profiles: Mapping[str, ProfileOverride] = field(default_factory=dict)
    folders: Mapping[Path, FolderOptions] = field(default_factory=dict)
    source: Path | None = None


def with_device(config: Config, device: str) -> Config:
    """``config`` with its models on ``device`` ("cpu", "cuda:N": a worker's, or a job's
    own request)."""
    if device == config.compute.device:
        return config
    return dataclasses.replace(config, compute=dataclasses.replace(config.compute, device=device))


def defaults_for(home: Path, cache: Path) -> dict[str, dict[str, Any]]:
    """The embedded defaults, as TOML-shaped data (also used to render config.example.toml)."""
    return {
        "database": {"url": f"sqlite:///{home / 'jobs.db'}"},
        "watch": {"folders": [str(home / "inbox")]},
        "output": {"dir": str(home / "transcripts")},
        "models": {"cache_dir": str(cache / "models")},
        "daemon": {"work_dir": str(home / "work")},
    }


def search_path() -> list[Path]:
    """Where a config file is looked for when neither ``--config`` nor ``$TRANSCRIBD_CONFIG``
    names one, in order: the user's, then the system's."""
    user = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path(user) / "transcribd" / "config.toml", SYSTEM_CONFIG]


def find(path: Path | None = None) -> tuple[Path | None, str]:
    """The config file to read and why: ``path`` (``--config``), else ``$TRANSCRIBD_CONFIG``,
    else the first file of :func:`search_path` that exists; (None, why) for the defaults."""
    if path is not None:
        return path, "--config"
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG]), f"${ENV_CONFIG}"
    for candidate in search_path():
        if candidate.is_file():
            return candidate, "found on the search path"
    looked = ", ".join(map(str, search_path()))
    return None, f"no config file ({looked} do not exist): built-in defaults"


def read_raw(path: Path) -> dict[str, Any]:
    """The TOML of a config file, as a mapping (ConfigError when it cannot be read)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


SECRET_KEYS = ("hooks.webhook_secret",)
"""Keys whose values are never shown (``transcribd config`` prints "<set>")."""


def explain(config: Config, raw: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """(key, effective value, where it came from) for every key of every section (pure):
    "file" when ``raw`` (the config file's TOML) sets it, else "default".  Secrets are
    masked: :data:`SECRET_KEYS`, the database's password, the webhook URL's user, password
    and query."""
    out: list[tuple[str, Any, str]] = []
    for section in dataclasses.fields(Config):
        value = getattr(config, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        given = raw.get(section.name, {})
        for f in dataclasses.fields(value):
            origin = "file" if f.name in given else "default"
            key, shown = f"{section.name}.{f.name}", getattr(value, f.name)
            if key in SECRET_KEYS and shown:
                shown = "<set>"
            elif key == "hooks.webhook" and shown:
                shown = hooks.printable_url(shown)
            elif key == "database.url":
                shown = _hide_password(shown)
            out.append((key, shown, origin))
    return out


def _hide_password(url: str) -> str:
    """A database URL with its password shown as ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}").geturl()


def load(path: Path | None = None) -> Config:
    """Load the config file :func:`find` finds, else the embedded defaults."""
    path, _why = find(path)
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_raw(path)
    return from_mapping(raw, source=path)


def from_mapping(raw: Mapping[str, Any], source: Path | None = None) -> Config:
    base = source.parent if source is not None else Path.cwd()
    merged: dict[str, dict[str, Any]] = defaults_for(data_home(), cache_home())
    sections: dict[str, type[Any]] = {
        "database": DatabaseConfig,
        "watch": WatchConfig,
        "output": OutputConfig,
        "pipeline": PipelineConfig,
        "models": ModelsConfig,
        "daemon": DaemonConfig,
        "diarization": DiarizationConfig,
        "metrics": MetricsConfig,
        "hooks": HooksConfig,
        "voices": VoicesConfig,
        "compute": ComputeConfig,
    }
    for key, value in raw.items():
        if key not in (*sections, "profiles", "folders"):
            raise ConfigError(f"unknown config section '{key}'")
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{key}' must be a table")
        if key not in ("profiles", "folders"):
            merged.setdefault(key, {}).update(value)
    built = {name: _build(cls, merged.get(name, {}), name, base) for name, cls in sections.items()}
    profiles: dict[str, ProfileOverride] = {}
    for name, table in dict(raw.get("profiles", {})).items():
        if name not in PROFILE_NAMES:
            raise ConfigError(
                f"unknown profile 'profiles.{name}' (known: {', '.join(PROFILE_NAMES)})"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(f"'profiles.{name}' must be a table")
        profiles[name] = _build(ProfileOverride, table, f"profiles.{name}", base)
    folders: dict[Path, FolderOptions] = {}
    for name, table in dict(raw.get("folders", {})).items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"'folders.\"{name}\"' must be a table")
        folder = _convert(Path, name, f'folders."{name}"', base)
        folders[folder] = _build(FolderOptions, table, f'folders."{name}"', base)
    daemon = built["daemon"]
    if not daemon.node:
        built["daemon"] = dataclasses.replace(daemon, node=socket.gethostname())
    config = Config(**built, profiles=profiles, folders=folders, source=source)
    _check(config)
    return config


def _check(config: Config) -> None:
    for fmt in config.output.formats:
        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(
                f"output.formats: unknown format '{fmt}' (known: {', '.join(OUTPUT_FORMATS)})"
            )
    if config.pipeline.profile not in PROFILE_CHOICES:
        raise ConfigError(
            f"pipeline.profile: unknown profile '{config.pipeline.profile}' "
            f"(known: {', '.join(PROFILE_CHOICES)})"
        )
    _check_placement(config)
    _check_vocabulary(config)
    _check_hooks(config.hooks)
    if not 0 <= config.voices.max_distance <= 2:
        raise ConfigError(
            f"voices.max_distance: a cosine distance from 0 to 2, got {config.voices.max_distance}"
        )
    if config.metrics.listen:
        try:
            parse_listen(config.metrics.listen)
        except ValueError as exc:
            raise ConfigError(f"metrics.listen: {exc}") from None
    if config.models.diarization_runtime not in DIARIZATION_RUNTIMES:
        raise ConfigError(
            f"models.diarization_runtime: unknown runtime '{config.models.diarization_runtime}' "
            f"(known: {', '.join(DIARIZATION_RUNTIMES)})"
        )
    try:
        devices.parse(config.compute.device)
    except ValueError as exc:
        raise ConfigError(f"compute.device: {exc}") from None
    if config.watch.observer not in OBSERVERS:
        raise ConfigError(
            f"watch.observer: unknown observer '{config.watch.observer}' "
            f"(known: {', '.join(OBSERVERS)})"
        )
    if config.daemon.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"daemon.log_level: unknown level '{config.daemon.log_level}' "
            f"(known: {', '.join(LOG_LEVELS[1:])})"
        )
    if not config.watch.folders:
        raise ConfigError("watch.folders: at least one folder is needed")
    node = config.daemon.node
    if len(node) > NODE_MAX or not node.isprintable() or node != node.strip():
        raise ConfigError(
            f"daemon.node: a name of at most {NODE_MAX} printable characters without "
            f"surrounding spaces, got {node!r}"
        )
    positive = {
        "watch.stable_seconds": config.watch.stable_seconds,
        "watch.poll_seconds": config.watch.poll_seconds,
        "daemon.tick_seconds": config.daemon.tick_seconds,
        "output.max_line_chars": config.output.max_line_chars,
        "output.max_lines": config.output.max_lines,
        "output.max_cue_seconds": config.output.max_cue_seconds,
        "daemon.lease_seconds": config.daemon.lease_seconds,
        "daemon.max_attempts": config.daemon.max_attempts,
        "daemon.stop_seconds": config.daemon.stop_seconds,
        "daemon.backoff_seconds": config.daemon.backoff_seconds,
        "daemon.resource_backoff_seconds": config.daemon.resource_backoff_seconds,
    }
    for key, number in positive.items():
        if number <= 0:
            raise ConfigError(f"{key}: must be greater than 0, got {number}")
    hinted: list[tuple[str, SpeakerHints]] = [("diarization", config.diarization)]
    hinted += [(f'folders."{p}"', o) for p, o in config.folders.items()]
    for where, hints in hinted:
        for key in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(hints, key)
            if value is not None and value < 1:
                raise ConfigError(f"{where}.{key}: must be at least 1, got {value}")
        if hints.min_speakers and hints.max_speakers and hints.min_speakers > hints.max_speakers:
            raise ConfigError(f"{where}: min_speakers is greater than max_speakers")
    for where, opts in hinted[1:]:
        assert isinstance(opts, FolderOptions)
        if opts.profile is not None and opts.profile not in PROFILE_NAMES:
            raise ConfigError(f"{where}.profile: unknown profile '{opts.profile}'")
        if opts.device is not None:
            try:
                devices.parse(opts.device)
            except ValueError as exc:
                raise ConfigError(f"{where}.device: {exc}") from None
    for name, override in config.profiles.items():
        if override.max_chunk_seconds is not None and override.max_chunk_seconds < 5:
            raise ConfigError(f"profiles.{name}.max_chunk_seconds: must be at least 5")
        if override.beam_size is not None and override.beam_size < 1:
            raise ConfigError(f"profiles.{name}.beam_size: must be at least 1")
        step = override.segmentation_step
        if step is not None and not 0.05 <= step <= 1.0:
            raise ConfigError(f"profiles.{name}.segmentation_step: must be in [0.05, 1]")
        merge = override.diarization_merge_distance
        if merge is not None and not 0.0 <= merge <= 2.0:
            raise ConfigError(
                f"profiles.{name}.diarization_merge_distance: must be in [0, 2] (0: no merging)"
            )
        share = override.diarization_lone_voice_share
        if share is not None and not 0.0 <= share <= 1.0:
            raise ConfigError(
                f"profiles.{name}.diarization_lone_voice_share: must be in [0, 1] "
                "(0: no search for a second voice)"
            )


def parse_listen(text: str) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or ``":port"`` (every interface) -> (host, port);
    ValueError saying why not (pure).  Port 0 takes any free port (the log says which)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"expected host:port, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"the port must be 0-65535 (0: any free one), got {port!r}")
    return host or "0.0.0.0", int(port)


def language_problem(code: str) -> str | None:
    """Why ``code`` cannot force the language, or None: "auto" or a code Whisper knows (read
    from faster-whisper only when one is given, so a plain config load stays light)."""
    if code == "auto":
        return None
    from faster_whisper.tokenizer import _LANGUAGE_CODES  # the pinned version's own list

    if code in _LANGUAGE_CODES:
        return None
    return f"unknown language '{code}' (a code Whisper knows, such as en, ru, de; or auto)"


def _check_hooks(h: HooksConfig) -> None:
    for name in ("on_done", "on_failed"):
        command = getattr(h, name)
        why = hooks.problem(command) if command else None
        if why:
            raise ConfigError(f"hooks.{name}: {why}")
    url = urllib.parse.urlsplit(h.webhook)
    try:
        port_ok = url.port is None or url.port > 0
    except ValueError:
        port_ok = False
    if h.webhook and (url.scheme not in ("http", "https") or not url.hostname or not port_ok):
        raise ConfigError(f"hooks.webhook: an http:// or https:// URL, got {h.webhook!r}")
    if h.webhook_secret and not h.webhook:
        raise ConfigError("hooks.webhook_secret: set, but there is no hooks.webhook to sign")
    if h.attempts < 1 or h.timeout_seconds <= 0 or h.backoff_seconds <= 0:
        raise ConfigError(
            "hooks: attempts must be at least 1, timeout_seconds and backoff_seconds above 0"
        )


def _check_vocabulary(config: Config) -> None:
    places: list[tuple[str, str | None]] = [("pipeline", config.pipeline.language)]
    places += [(f'folders."{p}"', o.language) for p, o in config.folders.items()]
    for where, code in places:
        problem = None if code is None else language_problem(code)
        if problem:
            raise ConfigError(f"{where}.language: {problem}")


def _check_placement(config: Config) -> None:
    places: list[tuple[str, str | None, str | None]]
    places = [("output", config.output.layout, config.output.name)]
    places += [(f'folders."{p}"', o.layout, o.name) for p, o in config.folders.items()]
    for where, layout, name in places:
        if layout is not None and layout not in placement.LAYOUTS:
            raise ConfigError(
                f"{where}.layout: unknown layout '{layout}' (known: {', '.join(placement.LAYOUTS)})"
            )
        problem = None if name is None else placement.check_name(name)
        if problem:
            raise ConfigError(f"{where}.name: {problem}")
    clash = sorted(set(config.watch.extensions) & set(OUTPUT_FORMATS))
    if clash:
        raise ConfigError(
            f"watch.extensions: {', '.join(clash)} would take transcripts back as input"
        )


def _build(cls: type[Any], table: Mapping[str, Any], section: str, base: Path) -> Any:
    hints = typing.get_type_hints(cls)
    if not isinstance(table, Mapping):
        raise ConfigError(f"'{section}' must be a table")
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{section}.{key}'")
        values[key] = _convert(hints[key], value, f"{section}.{key}", base)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, base: Path) -> Any:
    """Check ``value`` against the field type ``hint`` and convert it (lists -> tuples, paths)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # X | None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key, base)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {_kind(value)}")
        return tuple(_convert(args[0], item, key, base) for item in value)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a path string, got {_kind(value)}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {_kind(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {_kind(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_kind(value)}")
        return value.lower().lstrip(".") if key.endswith("extensions") else value
    raise ConfigError(f"{key}: unsupported type")  # pragma: no cover - schema bug


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


@dataclass(frozen=True)
class Reload:
    """What a reloaded config changes in a running daemon (see :func:`reload`)."""

    config: Config
    """The config in force from now on: the old one with the reloadable parts of the new."""
    applied: tuple[str, ...]
    """Keys that changed and took effect."""
    need_restart: tuple[str, ...]
    """Keys that changed but only take effect after a restart."""


RELOADABLE = ("watch", "folders", "daemon.log_level")


def reload(old: Config, new: Config) -> Reload:
    """Apply a re-read config (SIGHUP) to a running daemon's (pure): the watched folders and
    their options, per-folder options and the log level change at once; every other key that
    changed is named as needing a restart."""
    changed = _changed_keys(old, new)
    applied = tuple(k for k in changed if k.startswith(RELOADABLE))
    effective = dataclasses.replace(
        old,
        watch=new.watch,
        folders=new.folders,
        daemon=dataclasses.replace(old.daemon, log_level=new.daemon.log_level),
    )
    return Reload(effective, applied, tuple(k for k in changed if k not in applied))


def _changed_keys(old: Config, new: Config) -> list[str]:
    out: list[str] = []
    for f in dataclasses.fields(Config):
        if f.name == "source":
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a == b:
            continue
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            out += [
                f"{f.name}.{g.name}"
                for g in dataclasses.fields(a)
                if getattr(a, g.name) != getattr(b, g.name)
            ]
        else:
            out.append(f.name)
    return out
