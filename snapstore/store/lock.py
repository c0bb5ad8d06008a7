"""The store's writer lock: one writer at a time, readers never wait for it.

A lock is a small JSON file created with O_EXCL, naming its holder (host, pid, command, time), so a
second writer can say who holds the store. A lock whose process is gone (same host, pid not
running) is stale: it is reported and broken; a lock from another host is only broken on request
(``snapstore unlock``), since we cannot see whether that process still runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("snapstore.lock")

LOCK_NAME = "locks/writer.json"


class LockError(Exception):
    """Another process holds the store."""


@dataclass
class LockInfo:
    host: str
    pid: int
    command: str
    time: str

    def describe(self) -> str:
        return f"{self.command!r} (pid {self.pid} on {self.host}, since {self.time})"

    def is_stale(self) -> bool:
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
    try:
        doc = json.loads((root / LOCK_NAME).read_text())
        return LockInfo(doc["host"], int(doc["pid"]), doc.get("command", "?"), doc.get("time", "?"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError):
        return LockInfo("?", -1, "unreadable lock file", "?")


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
