"""How the CLI shows things: the status tables, a status that refreshes in place, and the
progress of a one-shot transcription (a bar on a terminal, plain lines otherwise)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from daemon.hooks import DeliveryStatus
from daemon.jobs import AudioFacts, JobStatus
from daemon.readable import duration

if TYPE_CHECKING:
    from daemon.app.status import StatusReport
    from daemon.hooks import DeliveryRecord
    from daemon.nodes import NodeView


def plan_text(p: dict[str, Any]) -> str:
    return f"{p['profile']}, {p['workers']} worker(s) x {p['threads']} thread(s) ({p['reason']})"


def table(rows: Sequence[tuple[str, ...]], indent: str = "") -> list[str]:
    """Rows as left-aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        f"{indent}{'  '.join(c.ljust(w) for c, w in zip(r, widths, strict=True))}".rstrip()
        for r in rows
    ]


def node_table(nodes: Sequence[NodeView], indent: str = "") -> list[str]:
    rows = [("NODE", "STATE", "HOST", "PID", "HEARTBEAT", "PLAN")]
    for n in nodes:
        rows.append(
            (
                n.node,
                "running" if n.alive else "not running",
                n.host or "-",
                str(n.pid or "-"),
                f"{n.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC",
                plan_text(n.plan) if n.plan and n.alive else "-",
            )
        )
    return table(rows, indent)


ERROR_WIDTH = 80
"""Characters of an error the status table shows (the view of one job shows all of it)."""


def shortened(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis (pure)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def status_lines(report: StatusReport) -> list[str]:
    """``transcribd status``: the daemon, the plan (or each node), then one row per job."""
    lines = [report.daemon]
    for folder in report.missing_folders:
        lines.append(
            f"warning: watched folder {folder} is missing (the daemon watches it again "
            "once it exists)"
        )
    fleet = report.fleet
    if fleet:  # several nodes share this database: each one's state
        lines += ["nodes:", *node_table(report.nodes, indent="  ")]
    elif report.plan is not None and report.plan_at is not None:
        lines.append(
            f"plan: {plan_text(report.plan)}, as of {report.plan_at:%Y-%m-%d %H:%M:%S} UTC"
        )
    if not report.jobs:
        return [*lines, "no jobs yet"]
    rows = [("ID", "FILE", "STATUS", "PROGRESS", "ELAPSED/ETA", *(("NODE",) * fleet), "ERROR")]
    for v in report.jobs:
        j = v.job
        state = j.status.value
        if j.duplicate_of is not None:
            state += f" (duplicate of #{j.duplicate_of})"
        if j.status is JobStatus.RUNNING and j.device is not None:
            state += f" on {j.device}"
        rows.append(
            (
                str(j.id),
                j.name,
                state,
                f"{j.progress * 100:.0f}%",
                f"{duration(v.elapsed)}/{duration(v.eta)}",
                *((j.node or "-",) * fleet),
                shortened(j.error or "", ERROR_WIDTH),
            )
        )
    lines += table(rows)
    if len(report.jobs) == 1:
        job = report.jobs[0]
        if job.job.origin:
            lines.append(f"from: {job.job.origin}")
        if job.job.error and shortened(job.job.error, ERROR_WIDTH) != job.job.error:
            lines.append(f"error: {job.job.error}")  # the whole of it
        if job.job.facts is not None and job.job.facts.speech_share is not None:
            lines.append(f"sounds like: {facts_text(job.job.facts)}")
        named = job.job.metrics.get("voices") or {}
        if named:
            lines.append("enrolled voices heard:")
            lines += [
                f"  {label} = {v['name']} (distance {v['distance']:.3f})"
                for label, v in sorted(named.items())
            ]
        if job.hooks:
            lines += ["hooks:", *hook_lines(job.hooks, indent="  ")]
    return lines


def facts_text(f: AudioFacts) -> str:
    """What a file sounded like at intake, in a few words."""
    share = f.speech_share or 0.0
    if f.snr_db is None or f.speech_db is None:
        return f"{share * 100:.0f}% speech"
    return f"{share * 100:.0f}% speech at {f.speech_db:.0f} dBFS, {f.snr_db:.0f} dB over the noise"


def hook_lines(deliveries: Sequence[DeliveryRecord], indent: str = "") -> list[str]:
    """How the announcements of a job's ends went: one row each."""
    rows = [("RUN", "HOOK", "EVENT", "STATE", "TRIES", "LAST RESULT")]
    for d in deliveries:
        state = d.status.value
        if d.status is DeliveryStatus.PENDING:
            state += f" (next {d.next_at:%H:%M:%S} UTC)"
        rows.append((str(d.run), d.kind, d.event, state, str(d.tries), d.result or "-"))
    return table(rows, indent)


def watch(
    render: Callable[[], str],
    interval: float,
    out: TextIO,
    terminal: bool,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Show ``render()`` every ``interval`` seconds until Ctrl-C (or ``stop()``): redrawn in
    place on a terminal, one block after another, each headed by the time, elsewhere."""
    if not terminal:
        while not stop():
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{render()}\n")
            out.flush()
            if _sleep(interval, stop):
                return
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(file=out, force_terminal=True)
    with Live(Text(render()), console=console, auto_refresh=False, screen=False) as live:  # plain
        while not _sleep(interval, stop):
            live.update(Text(render()), refresh=True)


def _sleep(seconds: float, stop: Callable[[], bool]) -> bool:
    """Sleep ``seconds`` in small steps; True as soon as ``stop()`` is."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop():
            return True
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    return stop()


def eta(elapsed: float, fraction: float) -> float | None:
    """Seconds left at a steady pace (pure); None before there is anything to go by."""
    if fraction <= 0.0 or elapsed <= 0.0:
        return None
    return max(0.0, elapsed * (1.0 - fraction) / fraction)


def tenths_crossed(fraction: float, shown: int) -> range:
    """The tenths of the way reached at ``fraction`` beyond the ``shown`` ones (pure): a plain
    progress line is printed for each, so a jump from 10 % to 35 % prints 20 % and 30 %."""
    reached = min(10, int(fraction * 10 + 1e-6))
    return range(shown + 1, reached + 1)


@contextmanager
def progress(label: str, out: TextIO, terminal: bool) -> Iterator[Callable[[float], None]]:
    """A callback taking the fraction done (0..1, from any thread): a bar with the elapsed time
    and an ETA on a terminal, else a line at each tenth of the way (10 %, 20 %, ... 100 %)."""
    if terminal:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("{task.description}", markup=False),  # a file name, never markup
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        console = Console(file=out, force_terminal=True)
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(label, total=1.0)
            yield lambda f: bar.update(task, completed=min(1.0, max(0.0, f)))
        return
    lock = threading.Lock()
    start, shown = time.monotonic(), [0]

    def line(fraction: float) -> None:
        with lock:
            due = tenths_crossed(fraction, shown[0])
            if not due:
                return
            shown[0] = due[-1]
            left = eta(time.monotonic() - start, fraction)
            out.writelines(
                f"{label}: {tenth * 10}%, about {duration(left)} left\n" for tenth in due
            )
            out.flush()

    yield line
