"""Delivering the announcements of jobs' ends (:mod:`daemon.outbox`): a hook command run
without a shell, or a signed POST to the webhook.  One try per claim; a failed try is due again
after a growing pause (:func:`daemon.hooks.retry_at`) until ``[hooks] attempts`` are spent.  The
outcome is recorded with the announcement (``status JOB`` shows it); the job's own status never
changes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from daemon import __version__, hooks
from daemon.config import HooksConfig
from daemon.outbox import DeliveryRecord, Outbox

log = logging.getLogger(__name__)

HTTP_TIMEOUT_SECONDS = 30.0
LEASE_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class Outcome:
    ok: bool
    result: str
    """One line: "exit 0", "HTTP 200", "HTTP 503: Service Unavailable", "timed out after 60 s"."""
    final: bool = False
    """A failure that another try would meet again (the receiver refused it for good)."""


def body_of(d: DeliveryRecord) -> bytes:
    """The bytes every try of one announcement sends (the same each time)."""
    return json.dumps(d.payload, ensure_ascii=False, sort_keys=True).encode("utf-8")


def run_command(template: tuple[str, ...], d: DeliveryRecord, timeout: float) -> Outcome:
    """The hook command with its placeholders filled, the announcement as JSON on stdin."""
    argv = hooks.argv(template, d.payload)
    env = {
        **os.environ,
        "TRANSCRIBD_EVENT": d.event,
        "TRANSCRIBD_JOB": str(d.job_id),
        "TRANSCRIBD_IDEMPOTENCY_KEY": hooks.key(d.job_id, d.run),
    }
    try:
        done = subprocess.run(
            argv, input=body_of(d), capture_output=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return Outcome(False, f"timed out after {timeout:g} s")
    except OSError as exc:  # no such program, not executable
        return Outcome(False, f"cannot run {argv[0]}: {exc.strerror or exc}")
    if done.returncode == 0:
        return Outcome(True, "exit 0")
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return Outcome(False, f"exit {done.returncode}" + (f": {said[-1][:200]}" if said else ""))


def post(url: str, secret: str, d: DeliveryRecord) -> Outcome:
    """POST the announcement; 2xx is delivered."""
    body = body_of(d)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"transcribd/{__version__}",
        "Idempotency-Key": hooks.key(d.job_id, d.run),
        "X-Transcribd-Event": d.event,
        "X-Transcribd-Delivery": str(d.id),
    }
    if secret:
        headers[hooks.SIGNATURE_HEADER] = hooks.signature(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as answer:
            return Outcome(True, f"HTTP {answer.status}")
    except urllib.error.HTTPError as exc:
        return Outcome(False, f"HTTP {exc.code}: {exc.reason}", hooks.permanent_http(exc.code))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(False, f"cannot reach {hooks.printable_url(url)}: {reason}")


class Deliverer:
    """Delivers due announcements, one at a time, from :meth:`run_due` (a thread calls it in a
    running daemon; burst mode calls it once at the end)."""

    def __init__(
        self,
        config: HooksConfig,
        outbox: Outbox,
        owner: str,
        clock: Callable[[], datetime],
        on_outcome: Callable[[str, str], None] = lambda _kind, _outcome: None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.owner = owner
        self.clock = clock
        self.on_outcome = on_outcome
        """Told (kind, "delivered" | "retry" | "failed") of each try (the metrics)."""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> int:
        """Try every announcement due now, once; how many were tried."""
        tried = 0
        lease = self.config.timeout_seconds + LEASE_MARGIN_SECONDS
        while not self._stop.is_set():
            claimed = self.outbox.claim(self.owner, self.clock(), lease)
            if not claimed:
                return tried
            self._try(claimed[0])
            tried += 1
        return tried

    def _try(self, d: DeliveryRecord) -> None:
        outcome = self._deliver(d)
        now = self.clock()
        extra = {"job": d.job_id, "kind": d.kind, "try": d.tries, "result": outcome.result}
        if outcome.ok:
            self.outbox.delivered(d, self.owner, now, outcome.result)
            log.info("job %s: %s delivered (%s)", d.job_id, d.kind, outcome.result, extra=extra)
            state = "delivered"
        elif outcome.final or d.tries >= self.config.attempts:
            self.outbox.give_up(d, self.owner, now, outcome.result)
            log.error(
                "job %s: %s not delivered after %d tries: %s",
                d.job_id,
                d.kind,
                d.tries,
                outcome.result,
                extra=extra,
            )
            state = "failed"
        else:
            at = hooks.retry_at(d.tries, now, self.config.backoff_seconds)
            self.outbox.again(d, self.owner, now, outcome.result, at)
            log.warning(
                "job %s: %s failed (%s); trying again at %s UTC",
                d.job_id,
                d.kind,
                outcome.result,
                f"{at:%H:%M:%S}",
                extra=extra,
            )
            state = "retry"
        self.on_outcome(d.kind, state)

    def _deliver(self, d: DeliveryRecord) -> Outcome:
        c = self.config
        gone = Outcome(False, f"no [hooks] {d.kind} is configured any more", final=True)
        if d.kind == "webhook":  # the config may have changed since the job ended
            return post(c.webhook, c.webhook_secret, d) if c.webhook else gone
        command = c.on_done if d.kind == "on_done" else c.on_failed
        return run_command(command, d, c.timeout_seconds) if command else gone

    # ------------------------------------------------------------------ the daemon's thread
    def start(self, every: float) -> None:
        """Deliver in a thread: when woken (a job ended) and every ``every`` seconds."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_due()
                except Exception as exc:  # the database is away: later
                    log.warning("hooks: cannot deliver now: %s", type(exc).__name__)
                self._wake.wait(every)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="deliveries", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """No new try after this; the one under way gets ``timeout`` seconds (if it is cut
        off, its lease runs out and it is tried again: at least once)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
