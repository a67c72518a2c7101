"""``transcribd serve``: a face (the HTTP server) alone, without workers, against the same
database as the daemons: a front node of a fleet, or an API beside a ``run`` on one machine."""

from __future__ import annotations

import logging

from daemon.app.running import Face, open_when_reachable
from daemon.config import Config
from daemon.signals import Notifier, StopSignals

log = logging.getLogger(__name__)


def serve_forever(config: Config, face: Face, notifier: Notifier | None = None) -> None:
    """Serve ``face`` until SIGTERM, SIGINT or SIGQUIT; a database that is down at start is
    waited for, as ``run`` waits for it."""
    notify = notifier or Notifier()
    with StopSignals() as stop:
        store = open_when_reachable(config, stop, notify)
        if store is None:
            return
        service = face(config, store)
        try:
            service.start()
            print(f"transcribd: serving HTTP on {config.http.listen}", flush=True)
            notify.ready("serving HTTP")
            while not stop.graceful.wait(1.0):
                notify.watchdog()
        finally:
            notify.stopping("stopping")
            service.stop()
            notify.close()
            store.close()
    log.info("stopped serving")
