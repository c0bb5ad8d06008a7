"""Readers and prune: a reader registers in the store while it reads; prune deletes nothing while
one is registered.

Prune rewrites the catalog in one transaction and only then deletes the packs and objects it
replaced or found dead. A reader (export, diff, find, cat, show, restore...) that located its
blobs before that transaction would read packs prune is deleting: of 6 exports started during a
``prune --max-unused 0%``, 1 failed ("pack ... is missing") and 1 came out incomplete. restic's
answer is a shared lock per reader that an exclusive prune respects; here, in the same spirit:

- a reader puts ``readers/<uuid>.json`` (its host, pid and time, sealed like a lock object) in the
  store before it reads the catalog, and deletes it when it is done;
- prune, before its deletion phase, puts ``readers/prune-gate.json`` and waits until no other
  reader is registered (at most ``SNAPSTORE_PRUNE_READER_WAIT`` seconds, 600 by default); if
  readers remain, it deletes nothing (the store is complete either way: what it left is deleted
  by the next prune) and says so; then it removes the gate;
- a reader that finds the gate after registering withdraws and waits for the gate to go (at most
  the same time, then exit 11), so it reads the catalog as prune left it.

Each side writes its own file before it looks at the other's, so at least one of them sees the
other: a reader never reads a pack prune deletes. An entry whose process is gone (same host,
pid not running) or older than :data:`STALE_AFTER` is stale and ignored; ``snapstore unlock``
removes every entry.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from snapstore.errors import Locked
from snapstore.store.backend import BackendError, ObjectMissing
from snapstore.store.crypto import Damaged, box_of

log = logging.getLogger("snapstore.readers")

PREFIX = "readers"
GATE = f"{PREFIX}/prune-gate.json"
#: A registration older than this (seconds) is stale: its reader died on another machine (one on
#: this machine is stale as soon as its pid is gone). 6 h: longer than any export measured.
STALE_AFTER = 6 * 3600.0
#: ...and the gate of a prune killed on another machine (as a lock object not refreshed).
GATE_STALE_AFTER = 30 * 60.0
WAIT_ENV = "SNAPSTORE_PRUNE_READER_WAIT"
DEFAULT_WAIT = 600.0
POLL = 0.05


def wait_limit() -> float:
    try:
        v = float(os.environ.get(WAIT_ENV, DEFAULT_WAIT))
    except ValueError:
        return DEFAULT_WAIT
    return v if 0 <= v < float("inf") else DEFAULT_WAIT


def _body(what: str) -> dict:
    return {"what": what, "host": socket.gethostname(), "pid": os.getpid(),
            "time": datetime.now(UTC).isoformat(timespec="seconds")}


def _put(backend, key: str, doc: dict) -> None:
    backend.put(key, box_of(backend).seal(json.dumps(doc).encode()))


def _live(backend, key: str, stale_after: float = STALE_AFTER) -> dict | None:
    """An entry's document if it names a live holder; a stale one is removed (None)."""
    try:
        doc = json.loads(box_of(backend).open(backend.get(key), "reader entry"))
        age = (datetime.now(UTC) - datetime.fromisoformat(doc["time"])).total_seconds()
        pid, host = int(doc["pid"]), doc["host"]
    except ObjectMissing:
        return None
    except (ValueError, KeyError, TypeError, Damaged):
        return {"what": "unreadable entry", "host": "?", "pid": -1}  # being written, or damaged: unlock
    stale = age > stale_after
    if host == socket.gethostname() and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stale = True
        except PermissionError:
            pass
    if stale:
        log.warning("removing a stale reader entry (%s, pid %s on %s)", doc.get("what"), pid, host)
        backend.delete(key)
        return None
    return doc


def registered(backend, mine: str | None = None) -> list[dict]:
    """The live readers registered now (but ``mine``); stale entries are removed on the way."""
    out = []
    for key, _size in list(backend.list(PREFIX)):
        if key == mine or key == GATE or not key.endswith(".json"):
            continue
        doc = _live(backend, key)
        if doc is not None:
            out.append(doc)
    return out


def _wait(until: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not until():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def register(backend, command: str, *, limit: float | None = None) -> str | None:
    """Register a reader (before it reads the catalog); returns its key, for :func:`unregister`.
    Waits while a prune deletes. A store this process cannot write (read-only) is read
    unregistered: None."""
    limit = wait_limit() if limit is None else limit
    key = f"{PREFIX}/{uuid.uuid4().hex}.json"
    deadline = time.monotonic() + limit
    while True:
        try:
            _put(backend, key, _body(command))
        except (OSError, BackendError) as e:
            log.debug("reading without a reader entry (%s)", e)
            return None
        if not backend.exists(GATE) or _live(backend, GATE, GATE_STALE_AFTER) is None:
            return key
        backend.delete(key)  # a prune is deleting: let it finish, then read what it left
        if not _wait(lambda: not backend.exists(GATE) or _live(backend, GATE, GATE_STALE_AFTER) is None,
                     max(deadline - time.monotonic(), 0)):
            raise Locked("a prune is deleting data from the store; try again when it is done "
                         "(or, if it is gone, run `snapstore unlock`)")


def unregister(backend, key: str | None) -> None:
    if key is not None:
        try:
            backend.delete(key)
        except (OSError, BackendError) as e:  # stale after its time; unlock removes it
            log.warning("could not remove the reader entry %s: %s", key, e)


@contextmanager
def reading(backend, command: str) -> Iterator[None]:
    key = register(backend, command)
    try:
        yield
    finally:
        unregister(backend, key)


@contextmanager
def deleting(backend, *, limit: float | None = None,
             waiting: Callable[[int], None] | None = None) -> Iterator[bool]:
    """Prune's deletion phase: yields True once no reader is registered (delete now), or False
    when readers remained for ``limit`` seconds (delete nothing: the next prune does)."""
    limit = wait_limit() if limit is None else limit
    backend.delete(GATE)  # a killed prune's (objects are written create-only)
    _put(backend, GATE, _body("prune"))
    try:
        first = registered(backend, None)
        if first and waiting is not None:
            waiting(len(first))
        yield not first or _wait(lambda: not registered(backend, None), limit)
    finally:
        backend.delete(GATE)


def remove_all(backend) -> int:
    """Every reader entry and the gate (``snapstore unlock``)."""
    keys = [k for k, _s in list(backend.list(PREFIX))]
    for k in keys:
        backend.delete(k)
    return len(keys)
