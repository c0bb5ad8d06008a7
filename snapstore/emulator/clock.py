"""Clocks for the emulator: rate-limit windows, penalties, iterator TTLs and attachment URL expiry
all read time from one of these, so tests can move time without sleeping."""

from __future__ import annotations

import threading
import time


class SystemClock:
    """Real wall-clock time (seconds since the epoch)."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ManualClock:
    """A clock that only moves when told to: ``advance(seconds)`` or ``set(t)``. For unit tests."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._t += float(seconds)
            return self._t

    def sleep(self, seconds: float) -> None:
        """Time passing on this clock (a request's latency): it moves, nobody waits."""
        self.advance(max(0.0, seconds))

    def set(self, t: float) -> None:
        with self._lock:
            self._t = float(t)


class ScaledClock:
    """Real time running ``scale`` times faster: one real second is ``scale`` clock seconds.

    With scale=50 a 30 s rate-limit penalty lasts 0.6 real seconds, and the limits of
    5 requests per clock second become 250 per real second."""

    def __init__(self, scale: float = 1.0, start: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = float(scale)
        self._start = time.time() if start is None else float(start)
        self._m0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._m0) * self.scale

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` clock seconds: ``seconds / scale`` real ones."""
        time.sleep(seconds / self.scale)

    def advance(self, seconds: float) -> float:
        """Jump ahead by ``seconds`` clock seconds (on top of the scaled flow)."""
        self._start += float(seconds)
        return self.now()
