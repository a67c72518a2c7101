"""Watched folders -> stable files -> content hash -> ``store.enqueue``.

A watchdog observer notices files; :meth:`Intake.poll` (called from the scheduler tick, with the
time passed in) enqueues each one once its size and mtime have not changed for
``watch.stable_seconds``.  A startup :meth:`Intake.rescan` finds files that arrived while the daemon
was down.  Outputs, work files, hidden and partial files never come back in as input.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEventHandler

from daemon import fsnames, placement
from daemon.config import OUTPUT_OPTIONS, Config
from daemon.jobs import AudioFacts, Enqueued, JobOptions
from daemon.store import Store, utcnow
from daemon.sysload import fs_type

log = logging.getLogger(__name__)

PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", "~")


def hash_file(path: Path) -> tuple[str, int]:
    """sha256 and size of a file's content, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    stable_since: datetime


def unmeasured(_path: Path) -> AudioFacts:
    return AudioFacts(duration=None)


class Intake:
    def __init__(
        self,
        config: Config,
        store: Store,
        measure: Callable[[Path], AudioFacts] = unmeasured,
    ) -> None:
        """``measure``: what a file sounds like, its length from its header above all (the
        planner's estimate of queued audio and its choice of profile; given by the caller so
        that intake needs no decoder)."""
        self.store = store
        self.measure = measure
        self._configure(config)
        self._pending: dict[Path, _Candidate] = {}
        self._lock = threading.Lock()
        self._observers: dict[str, Any] = {}
        self._watches: dict[Path, tuple[Any, Any, int]] = {}
        """Watched folder -> (its observer, watchdog's watch, a descriptor of the folder)."""
        self._started = False
        self.missing: set[Path] = set()
        """Watched folders that were deleted while the daemon ran (and are not back yet)."""

    def _configure(self, config: Config) -> None:
        self.config = config
        self.folders = [Path(f).expanduser() for f in config.watch.folders]
        self.extensions = {e.lower().lstrip(".") for e in config.watch.extensions}
        self.excluded = [
            _real(p) for p in (config.output.dir, config.daemon.work_dir, config.models.cache_dir)
        ]
        self.roots = [_real(f) for f in self.folders]

    def reconfigure(self, config: Config, now: datetime) -> None:
        """Take a reloaded config (watched folders, per-folder options): watch the folders it
        names, then rescan them."""
        started = self._started
        self.stop()
        self._configure(config)
        self.missing &= set(self.folders)
        if started:
            self.start()
        self.rescan(now)

    # ------------------------------------------------------------------ filters
    def accepts(self, path: Path) -> bool:
        name = path.name
        if self.config.watch.ignore_hidden and name.startswith("."):
            return False
        if name.lower().endswith(PARTIAL_SUFFIXES):
            return False
        if path.suffix.lower().lstrip(".") not in self.extensions:
            return False
        real = _real(path.parent)
        return not any(real == ex or ex in real.parents for ex in self.excluded)

    def refusal(self, path: Path) -> str | None:
        """Why an accepted file must not be read, or None: a symlink (of the file or a folder
        on its way) leading out of every watched folder, unless the config allows it."""
        if self.config.watch.allow_symlinks_outside:
            return None
        real = _real(path)
        if any(root in real.parents for root in self.roots):
            return None
        return (
            f"symlink to {fsnames.printable(real)}, outside the watched folders "
            "(set watch.allow_symlinks_outside = true to allow)"
        )

    def options_for(self, path: Path) -> JobOptions:
        """The ``[folders."..."]`` options of the innermost configured folder holding ``path``
        (those that place outputs are read when they are written)."""
        folders = {_real(f): opts for f, opts in self.config.folders.items()}
        inner = placement.innermost(_real(path), folders)
        if inner is None:
            return JobOptions()
        given = vars(folders[Path(inner)])
        return JobOptions.from_dict({k: v for k, v in given.items() if k not in OUTPUT_OPTIONS})

    # ------------------------------------------------------------------ noticing
    def notice(self, path: Path, now: datetime) -> None:
        """Remember a file that may be new or still growing."""
        if not self.accepts(path):
            return
        try:
            st = path.stat()
        except OSError:
            return
        if not _is_regular(st.st_mode):
            return
        mtime = datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC).replace(tzinfo=None)
        with self._lock:
            known = self._pending.get(path)
            if known is None:
                self._pending[path] = _Candidate(st.st_size, st.st_mtime_ns, min(now, mtime))
            elif (known.size, known.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._pending[path] = _Candidate(st.st_size, st.st_mtime_ns, now)

    def rescan(self, now: datetime) -> int:
        """Notice every file already in the watched folders; returns how many were seen."""
        seen = 0
        for folder in self.folders:
            for path in self._walk(folder):
                self.notice(path, now)
                seen += 1
        return seen

    def _walk(self, folder: Path) -> Iterable[Path]:
        if not folder.is_dir():
            return
        if not self.config.watch.recursive:
            yield from (p for p in folder.iterdir() if p.is_file())
            return
        for root, dirs, files in os.walk(folder):
            root_path = Path(root)
            dirs[:] = [
                d
                for d in dirs
                if not (self.config.watch.ignore_hidden and d.startswith("."))
                and _real(root_path / d) not in self.excluded
            ]
            yield from (root_path / f for f in files)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    # ------------------------------------------------------------------ enqueueing
    def poll(self, now: datetime) -> list[Enqueued]:
        """Enqueue the files that have been stable long enough (and look after the watched
        folders, see :meth:`check_folders`)."""
        self.check_folders(now)
        stable_for = timedelta(seconds=self.config.watch.stable_seconds)
        with self._lock:
            items = list(self._pending.items())
        ready: list[Path] = []
        for path, cand in items:
            try:
                st = path.stat()
            except OSError:
                self._forget(path, cand)
                continue
            if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                self.notice(path, now)
            elif now - cand.stable_since >= stable_for:
                ready.append(path)
        results = []
        for path in ready:
            with self._lock:
                if path not in self._pending:
                    continue
                cand = self._pending.pop(path)
            name = str(path.absolute())
            reason = self.refusal(path)
            if reason is not None:
                results.append(self.store.reject(name, cand.size, reason, now))
                continue
            try:
                sha, size = hash_file(path)
            except FileNotFoundError:
                continue  # gone before it could be read: nothing to do
            except OSError as exc:
                reason = f"cannot read the file: {exc.strerror or type(exc).__name__}"
                results.append(self.store.reject(name, cand.size, reason, now))
                continue
            if size != cand.size:  # changed while hashing: look again later
                self.notice(path, now)
                continue
            try:
                options, facts = self.options_for(path), self.measure(path)
                results.append(
                    self.store.enqueue(
                        name, sha, size, now, options, facts.duration, facts, origin="folder"
                    )
                )
            except Exception:
                self.notice(path, now)  # not lost: tried again at a later tick
                raise
        return results

    def _forget(self, path: Path, cand: _Candidate) -> None:
        with self._lock:
            if self._pending.get(path) is cand:
                del self._pending[path]

    # ------------------------------------------------------------------ watchdog
    def start(self) -> None:
        """Watch every folder with the observer its file system needs (see :func:`observer_for`)."""
        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._attach(folder)
        self._started = True

    def stop(self) -> None:
        for folder in list(self._watches):
            self._detach(folder)
        for observer in self._observers.values():
            observer.stop()
        for observer in self._observers.values():
            observer.join(timeout=5)
        self._observers = {}
        self._started = False

    def check_folders(self, now: datetime) -> None:
        """A watched folder deleted or replaced while the daemon runs: warn once, and watch it
        again as soon as a folder exists at its path; a rescan picks up what is there then."""
        if not self._started:
            return
        for folder in self.folders:
            identity = _folder_identity(folder)
            known = self._watches.get(folder)
            if known is not None and identity == _fd_identity(known[2]):
                continue
            if known is not None:
                self._detach(folder)
            if identity is None:
                if folder not in self.missing:
                    self.missing.add(folder)
                    log.warning(
                        "watched folder %s is missing; files put there are not seen until "
                        "it is back",
                        fsnames.printable(folder),
                        extra={"folder": str(folder)},
                    )
                continue
            try:
                self._attach(folder)
                for path in self._walk(folder):
                    self.notice(path, now)
            except OSError as exc:  # unreadable, or out of inotify watches: try next tick
                self._detach(folder)
                self.missing.add(folder)
                log.error(
                    "cannot watch %s: %s",
                    fsnames.printable(folder),
                    exc.strerror or exc,
                    extra={"folder": str(folder)},
                )
                continue
            if folder in self.missing:
                self.missing.discard(folder)
                log.warning(
                    "watched folder %s is there again; watching it",
                    fsnames.printable(folder),
                    extra={"folder": str(folder)},
                )

    def _detach(self, folder: Path) -> None:
        known = self._watches.pop(folder, None)
        if known is None:
            return
        observer, watch, fd = known
        with suppress(Exception):  # its emitter may have stopped with the folder
            observer.unschedule(watch)
        os.close(fd)

    def _attach(self, folder: Path) -> None:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        fstype = fs_type(folder)
        kind = observer_for(self.config.watch.observer, fstype)
        observer = self._observers.get(kind)
        if observer is None:
            poll = self.config.watch.poll_seconds
            observer = PollingObserver(timeout=poll) if kind == "polling" else Observer()
            observer.daemon = True
            observer.start()
            self._observers[kind] = observer
        # held open: the folder's inode cannot be reused by a folder made again at its path
        # before the next tick, which would otherwise look like the same folder
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            recursive = self.config.watch.recursive
            watch = observer.schedule(_Handler(self), str(folder), recursive=recursive)
        except BaseException:
            os.close(fd)
            raise
        self._watches[folder] = (observer, watch, fd)
        log.info(
            "watching %s (%s, %s)",
            fsnames.printable(folder),
            fstype or "unknown file system",
            kind,
            extra={"folder": str(folder), "fstype": fstype, "observer": kind},
        )


class _Handler(FileSystemEventHandler):
    def __init__(self, intake: Intake) -> None:
        super().__init__()
        self.intake = intake

    def on_any_event(self, event: Any) -> None:
        if event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        raw = event.dest_path if event.event_type == "moved" else event.src_path
        path = Path(os.fsdecode(raw))
        now = utcnow()
        if event.is_directory:
            if event.event_type in ("created", "moved") and self.intake.config.watch.recursive:
                for child in self.intake._walk(path):
                    self.intake.notice(child, now)
            return
        self.intake.notice(path, now)


NETWORK_FS = (
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "afs",
    "ceph",
    "glusterfs",
    "lustre",
    "gpfs",
    "davfs",
    "virtiofs",
    "vboxsf",
    "vmhgfs",
)


def observer_for(setting: str, fstype: str) -> str:
    """ "inotify" or "polling" for a folder on ``fstype`` (pure).  Kernel events do not see
    changes made by other machines on network shares, nor most changes on FUSE mounts; "auto"
    polls there."""
    if setting != "auto":
        return setting
    kind = fstype.lower()
    if kind in NETWORK_FS or kind == "fuse" or kind.startswith("fuse."):
        return "polling"
    return "inotify"


def _folder_identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, None when there is no folder at that path."""
    try:
        st = folder.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _fd_identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _real(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)
