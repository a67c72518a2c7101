"""Delivering the announcements of jobs' ends (:mod:`daemon.outbox`): a hook command run
without a shell, or a signed POST to the webhook.  One try per claim; a failed try is due again
after a growing pause (:func:`daemon.hooks.retry_at`) until ``[hooks] attempts`` are spent.  The
outcome is recorded with the announcement (``status JOB`` shows it); the job's own status never
changes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon import __version__, hooks
from daemon.config import HooksConfig
from daemon.hooks import DeliveryRecord
from daemon.outbox import Outbox

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
    """The bytes every try of one announcement sends (the same each time; ASCII, so that no
    file name can make them unencodable)."""
    return json.dumps(d.payload, sort_keys=True).encode("ascii")


HOOK_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
"""What a hook command inherits of the daemon's environment (not its secrets, such as a
database password), besides the TRANSCRIBD_* variables of the announcement."""


def run_command(template: tuple[str, ...], d: DeliveryRecord, timeout: float) -> Outcome:
    """The hook command with its placeholders filled, the announcement as JSON on stdin, in a
    session of its own: on a timeout the whole group is killed, and a child it leaves behind
    does not hold up the outcome (only the exit status is awaited)."""
    argv = hooks.argv(template, d.payload)
    env = {k: os.environ[k] for k in HOOK_ENV if k in os.environ}
    env |= {
        "TRANSCRIBD_EVENT": d.event,
        "TRANSCRIBD_JOB": str(d.job_id),
        "TRANSCRIBD_IDEMPOTENCY_KEY": hooks.key(d.job_id, d.run),
    }
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as data:
        data.write(body_of(d))
        data.seek(0)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=data,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:  # no such program, not executable
            return Outcome(False, f"cannot run {argv[0]}: {exc.strerror or exc}")
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Outcome(False, f"timed out after {timeout:g} s")
        err.seek(0)
        said = err.read(64_000).decode("utf-8", "replace").strip().splitlines()
    if code == 0:
        return Outcome(True, "exit 0")
    return Outcome(False, f"exit {code}" + (f": {said[-1][:200]}" if said else ""))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not followed: urllib would resend the POST as a GET without
    its body (and the signature and key to another host)."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


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
        with _OPENER.open(request, timeout=HTTP_TIMEOUT_SECONDS) as answer:
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
        longest = max(self.config.timeout_seconds, HTTP_TIMEOUT_SECONDS)
        kinds = self.kinds()
        while not self._stop.is_set() and kinds:
            claimed = self.outbox.claim(
                self.owner, self.clock(), longest + LEASE_MARGIN_SECONDS, kinds
            )
            if not claimed:
                return tried
            self._try(claimed[0])
            tried += 1
        return tried

    def kinds(self) -> tuple[str, ...]:
        """The announcements this daemon can deliver (another node's config may have more:
        those are left to it)."""
        c = self.config
        given = {"on_done": c.on_done, "on_failed": c.on_failed, "webhook": c.webhook}
        return tuple(k for k in hooks.KINDS if given[k])

    def _try(self, d: DeliveryRecord) -> None:
        if d.tries > self.config.attempts:  # the last try was cut off (its daemon died)
            outcome = Outcome(False, d.result or "the last try was cut off", final=True)
        else:
            try:
                outcome = self._deliver(d)
            except Exception as exc:  # never a stuck announcement: the try failed
                outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
        now = self.clock()
        extra = {"job": d.job_id, "kind": d.kind, "try": d.tries, "result": outcome.result}
        state = hooks.after_try(outcome.ok, outcome.final, d.tries, self.config.attempts)
        if not self._record(d, state, now, outcome.result):
            log.warning(
                "job %s: %s tried (%s), but it was dropped (the job was superseded) or taken "
                "over meanwhile; this try is not recorded",
                d.job_id,
                d.kind,
                outcome.result,
                extra=extra,
            )
        elif state == "delivered":
            log.info("job %s: %s delivered (%s)", d.job_id, d.kind, outcome.result, extra=extra)
        elif state == "failed":
            log.error(
                "job %s: %s not delivered after %d tries: %s",
                d.job_id,
                d.kind,
                d.tries,
                outcome.result,
                extra=extra,
            )
        else:
            log.warning(
                "job %s: %s failed (%s); trying again at %s UTC",
                d.job_id,
                d.kind,
                outcome.result,
                f"{self._again_at(d, now):%H:%M:%S}",
                extra=extra,
            )
        self.on_outcome(d.kind, state)

    def _again_at(self, d: DeliveryRecord, now: datetime) -> datetime:
        return hooks.retry_at(d.tries, now, self.config.backoff_seconds)

    def _record(self, d: DeliveryRecord, state: str, now: datetime, result: str) -> bool:
        """Record a try's outcome; False when the announcement is no longer this try's (it
        was dropped, or another node took it over after this lease ran out)."""
        if state == "delivered":
            return self.outbox.delivered(d, self.owner, now, result)
        if state == "failed":
            return self.outbox.give_up(d, self.owner, now, result)
        return self.outbox.again(d, self.owner, now, result, self._again_at(d, now))

    def _deliver(self, d: DeliveryRecord) -> Outcome:
        c = self.config
        if d.kind == "webhook":
            return post(c.webhook, c.webhook_secret, d)
        command = c.on_done if d.kind == "on_done" else c.on_failed
        return run_command(command, d, c.timeout_seconds)

    # ------------------------------------------------------------------ the daemon's thread
    def start(self, every: float) -> None:
        """Deliver in a thread: when woken (a job ended) and every ``every`` seconds."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_due()
                except Exception as exc:  # the database is away: later
                    log.warning(
                        "hooks: cannot deliver now: %s",
                        type(exc).__name__,
                        extra={"error": str(exc)[:200]},
                    )
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
