from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from daemon.jobs import JobOptions
from daemon.planner import (
    FileFacts,
    PlannerSettings,
    QueueFacts,
    choose,
    profile_to_run,
    requested_profile,
)
from daemon.sysload import LoadSnapshot

NOW = datetime(2026, 1, 1, 12)
GB = 1_000_000_000


def snap(cores: int = 2, other: float = 0.0, ram: float = 16, age: float = 0) -> LoadSnapshot:
    return LoadSnapshot(
        taken_at=NOW - timedelta(seconds=age),
        cores=cores,
        other_cores=other,
        available_ram=int(ram * GB),
        total_ram=24 * GB,
    )


def q(n: int = 1, minutes: float = 5) -> QueueFacts:
    return QueueFacts(queued=n, queued_audio_seconds=minutes * 60)


AUTO = PlannerSettings()
BIG = PlannerSettings(quality_pays=True)
"""quality runs a larger Whisper model than balanced (a user's folder): worth an idle machine"""
SHORT = FileFacts(duration=300)
LONG = FileFacts(duration=3 * 3600)

CASES = [
    # (snapshot, queue, file, settings, requested) -> (profile, workers, threads)
    (snap(), q(1), SHORT, BIG, None, ("quality", 1, 2)),
    (snap(), q(1), SHORT, AUTO, None, ("balanced", 1, 2)),  # bundled models: quality buys nothing
    (snap(), q(1, 180), LONG, AUTO, None, ("fast", 1, 2)),  # 3 h queued -> backlog
    (snap(), q(1, 40), FileFacts(duration=2400), AUTO, None, ("balanced", 1, 2)),
    (snap(), q(3), SHORT, AUTO, None, ("balanced", 2, 1)),
    (snap(), q(30, 200), SHORT, AUTO, None, ("fast", 2, 1)),
    (snap(other=1.0), q(1), SHORT, AUTO, None, ("balanced", 1, 1)),
    (snap(other=1.0), q(5), SHORT, AUTO, None, ("balanced", 1, 1)),
    (snap(other=2.0), q(5), SHORT, AUTO, None, ("balanced", 1, 1)),  # never 0 cores
    (snap(ram=1.0), q(1), SHORT, AUTO, None, ("fast", 1, 2)),
    (snap(ram=2.0), q(4), SHORT, AUTO, None, ("balanced", 1, 2)),  # RAM for one worker only
    (snap(cores=8), q(8), SHORT, AUTO, None, ("balanced", 8, 1)),
    (snap(cores=8), q(2), SHORT, AUTO, None, ("balanced", 2, 4)),
    (snap(cores=8, other=3.0), q(2), SHORT, AUTO, None, ("balanced", 2, 2)),
    (snap(cores=8), q(8), SHORT, PlannerSettings(max_workers=3), None, ("balanced", 3, 2)),
    (snap(), q(30, 500), LONG, AUTO, "quality", ("quality", 2, 1)),  # a request always wins
    (snap(ram=0.5), q(1), SHORT, AUTO, "balanced", ("balanced", 1, 2)),
    (snap(), q(1), SHORT, PlannerSettings(profile="fast"), None, ("fast", 1, 2)),
    (snap(age=300), q(1), SHORT, AUTO, None, ("balanced", 1, 1)),  # stale: assume busy
    # by what the file sounds like (facts measured at intake)
    (snap(), q(1, 40), FileFacts(2400), BIG, None, ("balanced", 1, 2)),  # too long for quality
    (snap(), q(1, 40), FileFacts(2400, speech_share=0.5), BIG, None, ("quality", 1, 2)),
    (snap(), q(1, 40), FileFacts(2400, speech_share=0.9), BIG, None, ("balanced", 1, 2)),
    (snap(), q(1, 40), FileFacts(2400, speech_share=0.5), AUTO, None, ("balanced", 1, 2)),
    (snap(), q(1), FileFacts(300, speech_share=0.0), AUTO, None, ("fast", 1, 2)),
    (snap(), q(1), FileFacts(300, speech_share=0.0), BIG, None, ("fast", 1, 2)),
    (snap(), q(1), FileFacts(300, speech_share=0.0), AUTO, "quality", ("quality", 1, 2)),
    (snap(other=1.0), q(1), FileFacts(300, 0.0), AUTO, None, ("fast", 1, 1)),
]


@pytest.mark.parametrize(("s", "queue", "file", "settings", "requested", "expected"), CASES)
def test_planner_table(
    s: LoadSnapshot,
    queue: QueueFacts,
    file: FileFacts,
    settings: PlannerSettings,
    requested: str | None,
    expected: tuple[str, int, int],
) -> None:
    plan = choose(s, queue, file, settings, NOW, requested)
    assert (plan.profile, plan.workers, plan.threads) == expected, plan.reason
    assert plan.reason


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("other", [0.0, 0.4, 1.0, 2.5, 7.9, 20.0])
@pytest.mark.parametrize("queued", [0, 1, 2, 5, 50])
@pytest.mark.parametrize("ram", [0.2, 1.6, 4, 64])
def test_threads_never_exceed_cores(cores: int, other: float, queued: int, ram: float) -> None:
    plan = choose(snap(cores=cores, other=other, ram=ram), q(queued), None, AUTO, NOW)
    assert plan.workers >= 1 and plan.threads >= 1
    assert plan.workers * plan.threads <= cores
    free = max(1.0, cores - other)
    assert plan.workers * plan.threads <= max(1, round(free + 0.25))


REQUESTS = [
    # (options, previous, original) -> the profile the job must run with (None: the planner's)
    (JobOptions(), None, None, None),
    (JobOptions(profile="fast"), None, None, "fast"),  # asked for (CLI or folder)
    (JobOptions(profile="fast", oom_profile="balanced"), "quality", None, "balanced"),  # OOM
    (JobOptions(oom_profile="fast"), "balanced", "quality", "fast"),
    (JobOptions(), None, "quality", "quality"),  # a duplicate reuses its original's steps
    (JobOptions(profile="fast"), None, "quality", "fast"),  # unless it asks for another
    (JobOptions(), "balanced", None, "balanced"),  # requeued: keeps the profile it ran with
    (JobOptions(), "balanced", "quality", "quality"),
    (JobOptions(profile="auto"), None, None, None),  # "auto" asks for nothing
]


@pytest.mark.parametrize(("options", "previous", "original", "expected"), REQUESTS)
def test_requested_profile_table(
    options: JobOptions, previous: str | None, original: str | None, expected: str | None
) -> None:
    assert requested_profile(options, previous, original) == expected


@pytest.mark.parametrize(
    ("requested", "configured", "expected"),
    [
        (None, "auto", "balanced"),
        (None, "fast", "fast"),
        ("quality", "auto", "quality"),
        ("quality", "fast", "quality"),
    ],
)
def test_profile_to_run_outside_the_planner(
    requested: str | None, configured: str, expected: str
) -> None:
    assert profile_to_run(requested, configured) == expected


@pytest.mark.parametrize(
    ("profiles", "pays"),
    [
        ({}, False),  # the bundled base model in both: quality's extra time buys nothing
        ({"quality": {"model": "/opt/whisper-small"}}, True),
        ({"quality": {"beam_size": 8}}, False),
    ],
)
def test_quality_pays_only_with_a_larger_model(profiles: dict[str, object], pays: bool) -> None:
    from daemon import config as config_mod
    from daemon.scheduler import planner_settings

    assert planner_settings(config_mod.from_mapping({"profiles": profiles})).quality_pays is pays
