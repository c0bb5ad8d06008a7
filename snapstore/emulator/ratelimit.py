"""Airtable's rate limits: a sliding one-second window per base (5 requests) and per token (50);
a breach answers 429 RATE_LIMIT_REACHED for that base (or token) for ``penalty`` clock seconds."""

from __future__ import annotations

import threading
from collections import deque


class RateLimiter:
    def __init__(self, clock, per_base: int = 5, per_token: int = 50, penalty: float = 30.0,
                 enabled: bool = True, extend_penalty: bool = False) -> None:
        self.clock = clock
        self.per_base = per_base
        self.per_token = per_token
        self.penalty = penalty
        self.enabled = enabled
        #: whether requests made during a penalty restart it (undocumented upstream; off by default)
        self.extend_penalty = extend_penalty
        self._windows: dict[tuple[str, str], deque] = {}
        self._blocked: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

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
            for key, limit in keys:
                w = self._windows.get(key)
                if w is None:
                    continue
                while w and w[0] <= now - 1.0:
                    w.popleft()
                if len(w) >= limit:
                    self._blocked[key] = now + self.penalty
                    return key[0]
            for key, _limit in keys:
                self._windows.setdefault(key, deque()).append(now)
        return None

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._blocked.clear()
