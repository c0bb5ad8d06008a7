"""The store's writer lock: one writer at a time, readers never wait for it.

A lock is a small JSON file created with O_EXCL, naming its holder (host, pid, command, time), so a
second writer can say who holds the store. A lock whose process is gone (same host, pid not
running) is stale: it is reported and broken; a lock from another host is only broken on request
(``snapstore unlock``), since we cannot see whether that process still runs.

A lock file that cannot be read (empty or cut short: a full disk, a crash between creating and
writing it) and is older than :data:`UNREADABLE_STALE_AFTER` is stale too: its holder writes and
fsyncs its few bytes right after creating it, so a file still unreadable after that long names
no live process, and it must not stop every writer until someone runs ``unlock``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from snapstore.errors import Locked
from snapstore.store.crypto import Damaged, box_of

log = logging.getLogger("snapstore.lock")

LOCK_NAME = "locks/writer.json"
#: An unreadable lock file older than this (seconds) is stale. Writing it takes a millisecond; the
#: margin covers a holder stopped between creating and writing it (a loaded machine, a slow NAS).
UNREADABLE_STALE_AFTER = 60.0


class LockError(Locked):
    """Another process holds the store (exit 11)."""


@dataclass
class LockInfo:
    host: str
    pid: int
    command: str
    time: str
    #: an unreadable lock file: how old it is (seconds), else None
    unreadable_age: float | None = field(default=None, kw_only=True)

    def describe(self) -> str:
        if self.unreadable_age is not None:
            return f"an unreadable lock file ({self.command}, written {self.unreadable_age:.0f} s ago)"
        return f"{self.command!r} (pid {self.pid} on {self.host}, since {self.time})"

    def is_stale(self) -> bool:
        if self.unreadable_age is not None:
            return self.unreadable_age > UNREADABLE_STALE_AFTER
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def read_lock(root: Path) -> LockInfo | None:
    path = root / LOCK_NAME
    try:
        data = path.read_bytes()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(data)
        return LockInfo(doc["host"], int(doc["pid"]), doc.get("command", "?"), doc.get("time", "?"))
    except (ValueError, KeyError, TypeError):
        return LockInfo("?", -1, f"{len(data)} bytes", "?", unreadable_age=max(age, 0.0))


class WriterLock:
    def __init__(self, root: Path, command: str) -> None:
        self.root = root
        self.path = root / LOCK_NAME
        self.command = command
        self.held = False
        self.broke_stale: LockInfo | None = None

    def acquire(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": self.command,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = read_lock(self.root)
                if holder is None:
                    continue  # released between our attempts
                if holder.pid == os.getpid() and holder.host == doc["host"]:
                    raise LockError(f"the store is already locked by this process ({holder.describe()})") from None
                if holder.is_stale():
                    log.warning("breaking stale lock held by %s: that process is gone", holder.describe())
                    self.broke_stale = holder
                    self.path.unlink(missing_ok=True)
                    continue
                raise LockError(
                    f"the store {self.root} is locked by {holder.describe()}; wait for it to finish, "
                    "or if that process is gone, run `snapstore unlock`"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            return self
        raise LockError(f"could not take the lock on {self.root}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def break_lock(root: Path) -> LockInfo | None:
    """Remove the lock whoever holds it; returns what it named."""
    holder = read_lock(root)
    (root / LOCK_NAME).unlink(missing_ok=True)
    return holder


# ---- locks in a bucket (S3 stores) ---------------------------------------------------------------

#: A lock object not refreshed for this long is stale (its holder crashed or lost the network).
REMOTE_STALE_AFTER = 30 * 60
#: Holders rewrite their lock object this often.
REMOTE_REFRESH_EVERY = 5 * 60
REMOTE_LOCKS = "locks"


@dataclass
class RemoteLockInfo(LockInfo):
    exclusive: bool = False
    refreshed: str = "?"
    key: str = ""

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return f"{self.command!r} (pid {self.pid} on {self.host}, since {self.time}, {kind} lock {self.key})"

    def is_stale(self) -> bool:
        try:
            refreshed = datetime.fromisoformat(self.refreshed)
        except ValueError:
            return True
        if (datetime.now(UTC) - refreshed).total_seconds() > REMOTE_STALE_AFTER:
            return True
        return super().is_stale()


def read_remote_locks(backend) -> list[RemoteLockInfo]:
    """Every lock object in the bucket (``locks/<uuid>.json``)."""
    from snapstore.store.backend import ObjectMissing

    out = []
    for key, _size in backend.list(REMOTE_LOCKS):
        if not key.endswith(".json"):
            continue
        try:
            doc = json.loads(box_of(backend).open(backend.get(key), "lock object"))
            out.append(RemoteLockInfo(doc["host"], int(doc["pid"]), doc.get("command", "?"), doc.get("time", "?"),
                                      bool(doc.get("exclusive")), doc.get("refreshed", "?"), key))
        except ObjectMissing:
            continue  # released meanwhile
        except (ValueError, KeyError, Damaged):
            out.append(RemoteLockInfo("?", -1, "unreadable lock object", "?", True, "?", key))
    return out


class RemoteLock:
    """A restic-style lock object in the bucket: ``locks/<uuid>.json`` naming its holder, shared
    (snapshot writers: several may run, each on its own bases) or exclusive (prune, forget, tag).

    Taking it: create our object, then list the others; if one conflicts (an exclusive lock, or any
    lock when we want an exclusive one) and is not stale, remove ours and raise. Two takers racing
    may both back off; neither ever proceeds with a conflict. A thread refreshes the object every
    5 minutes; one not refreshed for 30 minutes (or whose process is gone, on this host) is stale
    and removed. The local cache folder's lock (``local``) is taken first: one writer per cache."""

    def __init__(self, backend, command: str, *, exclusive: bool, local: WriterLock | None = None,
                 label: str = "") -> None:
        self.backend = backend
        self.command = command
        self.exclusive = exclusive
        self.local = local
        self.label = label or getattr(backend, "url", "the store")
        self.key = f"{REMOTE_LOCKS}/{uuid.uuid4().hex}.json"
        self.held = False
        self.broke_stale: LockInfo | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._doc: dict = {}

    def _body(self) -> bytes:
        self._doc["refreshed"] = datetime.now(UTC).isoformat(timespec="seconds")
        return box_of(self.backend).seal(json.dumps(self._doc).encode())

    def acquire(self) -> RemoteLock:
        if self.local is not None:
            self.local.acquire()
        try:
            now = datetime.now(UTC).isoformat(timespec="seconds")
            self._doc = {"host": socket.gethostname(), "pid": os.getpid(), "command": self.command,
                         "time": now, "exclusive": self.exclusive}
            self.backend.put(self.key, self._body())
            try:
                for other in read_remote_locks(self.backend):
                    if other.key == self.key:
                        continue
                    if other.is_stale():
                        log.warning("removing stale lock object held by %s", other.describe())
                        self.broke_stale = other
                        self.backend.delete(other.key)
                        continue
                    if self.exclusive or other.exclusive:
                        raise LockError(
                            f"the store {self.label} is locked by {other.describe()}; wait for it to finish, "
                            "or if that process is gone, run `snapstore unlock` (locks expire after 30 minutes)"
                        )
            except BaseException:
                self.backend.delete(self.key)
                raise
        except BaseException:
            if self.local is not None:
                self.local.release()
            raise
        self.held = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._refresh, name="snapstore-lock-refresh", daemon=True)
        self._thread.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(REMOTE_REFRESH_EVERY):
            try:
                self.backend.overwrite(self.key, self._body())
            except Exception as e:  # noqa: BLE001 - retried at the next tick; staleness is 6 ticks away
                log.warning("could not refresh the lock object %s: %s", self.key, e)

    def release(self) -> None:
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.backend.delete(self.key)
        finally:
            self.held = False
            if self.local is not None:
                self.local.release()

    def __enter__(self) -> RemoteLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
