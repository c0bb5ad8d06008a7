"""One request budget per base for every snapstore process on this machine.

Airtable's 5 requests/s are the base's, whoever sends them: a snapshot and a restore of one base,
each throttling itself to 5/s, together sent 10/s and took ten 429s and eight 30-second pauses
(313 s). So the processes share the base's window through a small file per base under the cache
folder (``<cache>/rate/<endpoint>/<base>.json``, both names hashed), read and rewritten under an exclusive ``fcntl``
lock: the requests of the last window (in flight, or finished less than a window ago) and the end of
a pause. A request starts only when the file has room for it; a 429 seen by one process writes the
pause into the file, and every process waits it out.

What the file holds: ``{"paused_until": t, "slots": [[pid, until], ...]}`` with times on the
machine's monotonic clock (the same in every process). A slot's ``until`` is ``inf`` while its
request is in flight and ``finished + window`` after; a slot whose process died is dropped. Nothing
names the token. One lock, read and write per request start and per response: measured 1.6 ms a
request (reserve and release) on a busy 2-core machine, 0.65 ms with the file kept open, against
200 ms per request to the real API.

The per-token quota (50/s) is not shared: it is the token's across bases, and a machine whose
processes read many bases at once with one token should lower ``--rate-limit-token``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path

#: A slot in flight longer than this is taken for lost (its process hung or its clock jumped).
IN_FLIGHT_MAX = 300.0


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SharedBudget:
    """The files of one API endpoint's bases. Thread-safe and process-safe (every call locks the file)."""

    def __init__(self, folder: str | Path, api_url: str) -> None:
        self.folder = Path(folder) / hashlib.sha256(api_url.encode()).hexdigest()[:16]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pid = os.getpid()
        self._mutex = threading.Lock()
        self._fds: dict[str, int] = {}  # one open file per base, kept: opening it cost more than the rest

    def _path(self, key: str) -> Path:
        # hashed, as the endpoint is: the cache folder need not say which bases this machine reads
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".json")

    @contextlib.contextmanager
    def _state(self, key: str) -> Iterator[dict]:
        """The key's state, locked; what the block leaves in it is written back."""
        with self._mutex:  # flock excludes other processes; this, the other threads of this one
            fd = self._fds.get(key)
            if fd is None:
                fd = self._fds[key] = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(fd, 1 << 20, 0)
                try:
                    state = json.loads(raw) if raw.strip() else {}
                    if not isinstance(state, dict):
                        state = {}
                except ValueError:  # a torn write of a killed process: start afresh, it only costs a window
                    state = {}
                yield state
                after = json.dumps(state, sort_keys=True)
                if after.encode() != raw.rstrip():  # the file is always written by this line
                    # padded with blanks over the old text rather than truncated: ftruncate cost 4.5 ms a
                    # call here (overlay file system), a write in place 20 us; JSON ignores the blanks
                    os.pwrite(fd, after.encode().ljust(len(raw)), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._mutex:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    @staticmethod
    def _live(state: dict, now: float) -> list[list]:
        slots = []
        for s in state.get("slots") or []:
            try:
                pid, start, until = int(s[0]), float(s[1]), float(s[2])
            except (TypeError, ValueError, IndexError):
                continue
            if until <= now or (math.isinf(until) and now - start > IN_FLIGHT_MAX) or not _alive(pid):
                continue
            slots.append([pid, start, until])
        return slots

    def reserve(self, key: str, count: int, now: float) -> tuple[float, float | None]:
        """Take a slot for a request starting ``now`` when the window has one: ``(0, slot)``; else
        ``(seconds to wait, None)``."""
        with self._state(key) as state:
            slots = self._live(state, now)
            paused = float(state.get("paused_until") or 0.0) - now
            if paused > 0:
                state["slots"] = slots
                return paused, None
            if len(slots) >= count:
                state["slots"] = slots
                ends = sorted(s[2] for s in slots if not math.isinf(s[2]))
                excess = len(slots) - count
                if excess < len(ends):
                    return max(ends[excess] - now, 1e-6), None
                return 0.005, None  # every slot in flight: look again shortly
            slots.append([self.pid, now, math.inf])
            state["slots"] = slots
            return 0.0, now

    def release(self, key: str, slot: float, until: float) -> None:
        """The request that took ``slot`` is answered: it leaves the window at ``until``."""
        with self._state(key) as state:
            for s in state.get("slots") or []:
                if len(s) == 3 and s[0] == self.pid and s[1] == slot and (s[2] is None or s[2] > 1e300):
                    s[2] = until
                    break

    def pause(self, key: str, until: float) -> None:
        """A 429: nothing for ``key`` starts before ``until``, in any process."""
        with self._state(key) as state:
            if until > float(state.get("paused_until") or 0.0):
                state["paused_until"] = until
