"""Request counters per route and per base: requests, 429s and bytes sent (bodies)."""

from __future__ import annotations

import threading
from collections import defaultdict


def _zero() -> dict:
    return {"requests": 0, "429s": 0, "bytes_sent": 0}


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.routes: dict[str, dict] = defaultdict(_zero)
            self.bases: dict[str, dict] = defaultdict(_zero)
            self.statuses: dict[int, int] = defaultdict(int)
            self.total = _zero()

    def record(self, route: str, base_id: str | None, status: int | None, nbytes: int) -> None:
        with self._lock:
            targets = [self.routes[route], self.total]
            if base_id:
                targets.append(self.bases[base_id])
            for t in targets:
                t["requests"] += 1
                t["bytes_sent"] += nbytes
                if status == 429:
                    t["429s"] += 1
            self.statuses[status if status is not None else 0] += 1

    def requests(self, route: str | None = None, base_id: str | None = None) -> int:
        with self._lock:
            if route is not None:
                return self.routes[route]["requests"] if route in self.routes else 0
            if base_id is not None:
                return self.bases[base_id]["requests"] if base_id in self.bases else 0
            return self.total["requests"]

    def snapshot(self) -> dict:
        """{"routes": {route: {...}}, "bases": {base: {...}}, "total": {...}, "statuses": {code: n}}"""
        with self._lock:
            return {
                "routes": {k: dict(v) for k, v in sorted(self.routes.items())},
                "bases": {k: dict(v) for k, v in sorted(self.bases.items())},
                "total": dict(self.total),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            }
