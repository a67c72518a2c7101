"""The shape of a configuration: one frozen dataclass per TOML section, the values some keys
may take, and the error a bad configuration raises.

Every key has a default, so the daemon runs with no file at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
    """A worker idle for this long (no job) exits, giving its memory back; the next job
    starts one, which loads its models again."""
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
    """This daemon's name among those sharing one database ("": the host name); a second
    daemon of this machine running on the same database takes ``<node>-2`` (see
    :func:`daemon.app.running.claim_node`)."""


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
    failure_hold_seconds: float = 60.0
    """A failure of the file's content (undecodable, truncated, empty: what a file still being
    written looks like) is announced only after this long; if newer content at its path
    supersedes the job meanwhile, its announcements are dropped."""


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


HTTP_AUTH = ("keys", "none")


@dataclass(frozen=True)
class HttpConfig:
    listen: str = ""
    """Serve the HTTP face (OpenAI audio API, /asr, jobs API, pages) on this "host:port"
    ("": off).  ``transcribd serve`` serves it without workers."""
    auth: str = "keys"
    """"keys": every request gives a key of ``transcribd keys``; "none": no key (allowed only
    on a loopback address)."""
    upload_dir: Path = Path()
    """Where uploads and the outputs of API jobs go (on a fleet: storage every node shares)."""
    max_upload_mb: int = 2048
    """Largest upload; a larger body is refused (413) as it passes the limit."""
    max_waiting: int = 64
    """Requests waiting for their job at once (each node); past it 429 with Retry-After."""
    read_timeout_seconds: float = 60.0
    """A client that sends nothing for this long mid-request is cut off (408)."""
    keep_uploads_days: float = 7.0
    """An upload (and its outputs in upload_dir) is removed this many days after its job
    ended; asking again with the same audio stores it again (its steps are cached)."""
    cors_origins: tuple[str, ...] = ()
    """Origins a browser page may call the API from ("*" for any); none by default."""


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
    http: HttpConfig = field(default_factory=HttpConfig)
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
