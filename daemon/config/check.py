"""Whether a configuration makes sense: :func:`check` raises :class:`ConfigError` naming the
first bad key, area by area, in a fixed order.

Reading the TOML already checked each value's type (daemon.config.reading); these are the checks
of what the values mean: known names, numbers in range, hooks that can run, places and names
outputs can take.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

from daemon import devices, hooks, languages, placement
from daemon.config.schema import (
    DIARIZATION_RUNTIMES,
    HTTP_AUTH,
    LOG_LEVELS,
    NODE_MAX,
    OBSERVERS,
    OUTPUT_FORMATS,
    PROFILE_CHOICES,
    PROFILE_NAMES,
    Config,
    ConfigError,
    HooksConfig,
    HttpConfig,
    SpeakerHints,
)


def check(config: Config) -> None:
    """Raise :class:`ConfigError` for the first problem of ``config`` (pure)."""
    _check_formats_and_profile(config)
    _check_placement(config)
    _check_vocabulary(config)
    _check_hooks(config.hooks)
    _check_voices_and_metrics(config)
    _check_http(config.http)
    _check_devices(config)
    _check_watch_and_daemon(config)
    _check_node(config.daemon.node)
    _check_positive(config)
    _check_speaker_hints(config)
    _check_folders(config)
    _check_profiles(config)


def _check_formats_and_profile(config: Config) -> None:
    """The output formats and the configured profile: names the daemon knows."""
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


def _check_placement(config: Config) -> None:
    """Outputs' layouts and names, in ``[output]`` and per folder; and no watched extension
    that is an output's."""
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


def _check_vocabulary(config: Config) -> None:
    """The forced language, here and per folder."""
    places: list[tuple[str, str | None]] = [("pipeline", config.pipeline.language)]
    places += [(f'folders."{p}"', o.language) for p, o in config.folders.items()]
    for where, code in places:
        problem = None if code is None else language_problem(code)
        if problem:
            raise ConfigError(f"{where}.language: {problem}")


def _check_hooks(h: HooksConfig) -> None:
    """Commands that can run, a webhook URL to post to, and numbers above 0."""
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
    if h.failure_hold_seconds < 0:
        raise ConfigError(
            f"hooks.failure_hold_seconds: 0 or more seconds, got {h.failure_hold_seconds:g}"
        )


def _check_http(h: HttpConfig) -> None:
    """The HTTP face: an address, a known auth, sane limits, and no open door off loopback."""
    if h.auth not in HTTP_AUTH:
        raise ConfigError(f"http.auth: unknown '{h.auth}' (known: {', '.join(HTTP_AUTH)})")
    if h.listen:
        try:
            host, _port = parse_listen(h.listen)
        except ValueError as exc:
            raise ConfigError(f"http.listen: {exc}") from None
        if h.auth == "none" and not loopback(host):
            raise ConfigError(
                f'http.auth = "none" is allowed only on a loopback address (127.0.0.1, ::1), '
                f"not {host}: make keys (transcribd keys add NAME) or listen on 127.0.0.1"
            )
    limits = {
        "http.max_upload_mb": h.max_upload_mb,
        "http.max_waiting": h.max_waiting,
        "http.read_timeout_seconds": h.read_timeout_seconds,
        "http.keep_uploads_days": h.keep_uploads_days,
    }
    for key, number in limits.items():
        if number <= 0:
            raise ConfigError(f"{key}: must be greater than 0, got {number}")


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (a loopback address or "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_voices_and_metrics(config: Config) -> None:
    """The voices' distance and the metrics' address."""
    if not 0 <= config.voices.max_distance <= 2:
        raise ConfigError(
            f"voices.max_distance: a cosine distance from 0 to 2, got {config.voices.max_distance}"
        )
    if config.metrics.listen:
        try:
            parse_listen(config.metrics.listen)
        except ValueError as exc:
            raise ConfigError(f"metrics.listen: {exc}") from None


def _check_devices(config: Config) -> None:
    """Where the models run: the diarization runtime and the compute device."""
    if config.models.diarization_runtime not in DIARIZATION_RUNTIMES:
        raise ConfigError(
            f"models.diarization_runtime: unknown runtime '{config.models.diarization_runtime}' "
            f"(known: {', '.join(DIARIZATION_RUNTIMES)})"
        )
    try:
        devices.parse(config.compute.device)
    except ValueError as exc:
        raise ConfigError(f"compute.device: {exc}") from None


def _check_watch_and_daemon(config: Config) -> None:
    """The observer, the log level, and at least one watched folder."""
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


def _check_node(node: str) -> None:
    """``[daemon] node``: a short, printable name."""
    if len(node) > NODE_MAX or not node.isprintable() or node != node.strip():
        raise ConfigError(
            f"daemon.node: a name of at most {NODE_MAX} printable characters without "
            f"surrounding spaces, got {node!r}"
        )


def _check_positive(config: Config) -> None:
    """Seconds, counts and sizes that must be above 0."""
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
        "daemon.model_idle_seconds": config.daemon.model_idle_seconds,
        "daemon.backoff_seconds": config.daemon.backoff_seconds,
        "daemon.resource_backoff_seconds": config.daemon.resource_backoff_seconds,
    }
    for key, number in positive.items():
        if number <= 0:
            raise ConfigError(f"{key}: must be greater than 0, got {number}")


def _check_speaker_hints(config: Config) -> None:
    """Speaker counts of ``[diarization]`` and of each folder: at least 1, min below max."""
    hinted: list[tuple[str, SpeakerHints]] = [("diarization", config.diarization)]
    hinted += [(f'folders."{p}"', o) for p, o in config.folders.items()]
    for where, hints in hinted:
        for key in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(hints, key)
            if value is not None and value < 1:
                raise ConfigError(f"{where}.{key}: must be at least 1, got {value}")
        if hints.min_speakers and hints.max_speakers and hints.min_speakers > hints.max_speakers:
            raise ConfigError(f"{where}: min_speakers is greater than max_speakers")


def _check_folders(config: Config) -> None:
    """Each folder's profile and device."""
    for path, opts in config.folders.items():
        where = f'folders."{path}"'
        if opts.profile is not None and opts.profile not in PROFILE_NAMES:
            raise ConfigError(f"{where}.profile: unknown profile '{opts.profile}'")
        if opts.device is not None:
            try:
                devices.parse(opts.device)
            except ValueError as exc:
                raise ConfigError(f"{where}.device: {exc}") from None


def _check_profiles(config: Config) -> None:
    """The overrides of ``[profiles.*]``: chunks, beams and the diarization's numbers."""
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
    """Why ``code`` cannot force the language, or None: "auto" or a code Whisper knows
    (:data:`daemon.languages.NAMES`, held to faster-whisper's own list by a test: importing
    faster-whisper would bring CTranslate2 into the daemon's main process)."""
    if code == "auto" or code in languages.NAMES:
        return None
    return f"unknown language '{code}' (a code Whisper knows, such as en, ru, de; or auto)"
