"""The planner under real load: another process burning a core takes that core off the grant."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from daemon.planner import PlannerSettings, QueueFacts, choose
from daemon.store import utcnow
from daemon.sysload import LoadSampler, usable_cores

LAUNCH = (
    "import subprocess, sys\n"
    "p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], stdout=subprocess.DEVNULL,"
    " stderr=subprocess.DEVNULL)\n"
    "print(p.pid)\n"
)
BURN = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"


def plan_now(sampler: LoadSampler, seconds: float = 1.5) -> tuple[float, int, str]:
    sampler.snapshot(utcnow())
    time.sleep(seconds)
    snap = sampler.snapshot(utcnow())
    plan = choose(snap, QueueFacts(3, 600.0), None, PlannerSettings(), utcnow())
    return snap.other_cores, plan.workers * plan.threads, plan.profile


def test_a_competing_process_shrinks_the_grant_and_no_quality() -> None:
    cores = usable_cores()
    sampler = LoadSampler(window=1.0)
    before, granted_before, _ = plan_now(sampler)
    if before > cores - 1.2:
        pytest.skip(f"other programs already use {before:.1f} of {cores} cores: no room to measure")
    # started through a launcher that exits at once, so that the burner is not our child (the
    # sampler counts this process's children as the daemon's own CPU)
    launcher = subprocess.run(
        [sys.executable, "-c", LAUNCH, BURN], capture_output=True, text=True, check=True
    )
    burner = int(launcher.stdout)
    try:
        time.sleep(0.5)
        other, granted, profile = plan_now(sampler)
    finally:
        os.kill(burner, signal.SIGKILL)
    assert other >= before + 0.7, (before, other)  # the burner's core is seen
    assert granted <= max(1, cores - 1) and granted <= granted_before, (granted, granted_before)
    assert profile != "quality"  # not an idle machine


def test_other_programs_are_measured_over_a_window_not_between_ticks() -> None:
    sampler = LoadSampler(window=3.0)
    first = sampler.snapshot(utcnow())
    launcher = subprocess.run(
        [sys.executable, "-c", LAUNCH, BURN], capture_output=True, text=True, check=True
    )
    burner = int(launcher.stdout)
    try:
        time.sleep(1.0)
        within = sampler.snapshot(utcnow())  # inside the window: the figure in force
        time.sleep(2.5)
        after = sampler.snapshot(utcnow())  # a new window, over which the burner ran
    finally:
        os.kill(burner, signal.SIGKILL)
    assert within.other_cores == first.other_cores
    assert after.other_cores >= 0.7, after
