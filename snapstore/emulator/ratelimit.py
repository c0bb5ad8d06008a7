"""Airtable's rate limits and the time a request takes.

Airtable documents 5 requests per second per base and 50 per token, and a 30-second wait after a
breach (reference §5.1); it does not document how the second is measured. Two models, switched by
``model``:

- ``"window"`` (default): a sliding one-second window; the 6th request of a base within any second
  is a 429 and starts the penalty. The strictest reading.
- ``"bucket"``: a token bucket per base and per token, refilled at the documented rate, holding up to
  ``burst`` requests (per base; the token's bucket holds as many seconds' worth). Clients that send
  requests one after another with their default retries pass against the service and fail the
  strict window, which says the service forgives short bursts; the bucket is that reading.

Either way a breach answers 429 RATE_LIMIT_REACHED for that base (or token) for ``penalty`` clock
seconds. ``latency_sampler`` turns a latency setting into the per-request delay the server adds."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

MODELS = ("window", "bucket")


class RateLimiter:
    def __init__(self, clock, per_base: int = 5, per_token: int = 50, penalty: float = 30.0,
                 enabled: bool = True, extend_penalty: bool = False, model: str = "window",
                 burst: int | None = None) -> None:
        if model not in MODELS:
            raise ValueError(f"rate-limit model must be one of {', '.join(MODELS)}")
        self.clock = clock
        self.per_base = per_base
        self.per_token = per_token
        self.penalty = penalty
        self.enabled = enabled
        self.model = model
        #: requests a base's bucket holds (default: two seconds' worth); the token's holds the same seconds
        self.burst = int(burst) if burst is not None else 2 * per_base
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        #: whether requests made during a penalty restart it (undocumented upstream; off by default)
        self.extend_penalty = extend_penalty
        self._windows: dict[tuple[str, str], deque] = {}
        self._buckets: dict[tuple[str, str], list[float]] = {}  # key -> [tokens, last refill]
        self._blocked: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _capacity(self, limit: int) -> float:
        return self.burst * limit / self.per_base

    def _allows(self, key: tuple[str, str], limit: int, now: float) -> bool:
        if self.model == "bucket":
            b = self._buckets.get(key)
            if b is None:
                return True
            tokens = min(self._capacity(limit), b[0] + (now - b[1]) * limit)
            return tokens >= 1.0
        w = self._windows.get(key)
        if w is None:
            return True
        while w and w[0] <= now - 1.0:
            w.popleft()
        return len(w) < limit

    def _take(self, key: tuple[str, str], limit: int, now: float) -> None:
        if self.model == "bucket":
            b = self._buckets.get(key)
            cap = self._capacity(limit)
            tokens = cap if b is None else min(cap, b[0] + (now - b[1]) * limit)
            self._buckets[key] = [tokens - 1.0, now]
        else:
            self._windows.setdefault(key, deque()).append(now)

    def check(self, token: str | None, base_id: str | None) -> str | None:
        """Count one request; returns None if allowed, else "base" or "token" (the limit hit)."""
        if not self.enabled:
            return None
        now = self.clock.now()
        keys = []
        if token is not None:
            keys.append((("token", token), self.per_token))
        if base_id is not None:
            keys.append((("base", base_id), self.per_base))
        with self._lock:
            for key, _limit in keys:
                until = self._blocked.get(key)
                if until is not None:
                    if now < until:
                        if self.extend_penalty:
                            self._blocked[key] = now + self.penalty
                        return key[0]
                    del self._blocked[key]
                    self._windows.pop(key, None)
                    self._buckets.pop(key, None)
            for key, limit in keys:
                if not self._allows(key, limit, now):
                    self._blocked[key] = now + self.penalty
                    return key[0]
            for key, limit in keys:
                self._take(key, limit, now)
        return None

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._buckets.clear()
            self._blocked.clear()

    def blocked_until(self, kind: str, ident: str) -> float | None:
        return self._blocked.get((kind, ident))


def latency_sampler(spec: Any, seed: int = 0) -> Callable[[], float] | None:
    """The per-request latency in clock seconds, from a setting: None or 0 (none), a number (fixed),
    or a string ``"0.2"``, ``"uniform:LO:HI"``, ``"normal:MEAN:SD"`` (clipped at 0) or
    ``"lognormal:MEDIAN:SIGMA"`` (a long tail, as measured round trips have). Seeded: one
    emulator run draws the same sequence every time."""
    if spec is None or spec == 0 or spec == "":
        return None
    if isinstance(spec, (int, float)):
        return _fixed(float(spec))
    if callable(spec):
        return spec
    text = str(spec).strip()
    kind, _, rest = text.partition(":")
    try:
        if not rest:
            return _fixed(float(kind))
        args = [float(x) for x in rest.split(":")]
    except ValueError:
        raise ValueError(f"latency {text!r}: expected SECONDS, uniform:LO:HI, normal:MEAN:SD or "
                         "lognormal:MEDIAN:SIGMA") from None
    if any(a != a or a < 0 or a == float("inf") for a in args) or len(args) != 2:
        raise ValueError(f"latency {text!r}: two finite, non-negative numbers after the distribution's name")
    rng = random.Random(seed)
    lock = threading.Lock()

    def draw(f: Callable[[], float]) -> Callable[[], float]:
        def sample() -> float:
            with lock:
                return max(0.0, f())
        return sample

    a, b = args
    if kind == "uniform":
        if b < a:
            raise ValueError(f"latency {text!r}: HI below LO")
        return draw(lambda: rng.uniform(a, b))
    if kind == "normal":
        return draw(lambda: rng.gauss(a, b))
    if kind == "lognormal":
        import math

        if a <= 0:
            raise ValueError(f"latency {text!r}: the median must be positive")
        return draw(lambda: rng.lognormvariate(math.log(a), b))
    raise ValueError(f"latency {text!r}: unknown distribution {kind!r} (uniform, normal, lognormal)")


def _fixed(seconds: float) -> Callable[[], float] | None:
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValueError(f"latency {seconds}: a finite, non-negative number of seconds")
    return (lambda: seconds) if seconds > 0 else None
