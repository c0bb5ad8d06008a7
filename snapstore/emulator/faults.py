"""Fault injection: per route (and optionally per base), at a rate or on exactly the Nth matching
request. Kinds: "500", "502", "503", "429" (error responses with Airtable bodies), "drop" (close the
connection without a response) and "slow" (delay, then answer normally)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

KINDS = ("500", "502", "503", "429", "drop", "slow")


@dataclass
class FaultRule:
    route: str = "*"
    kind: str = "503"
    rate: float = 0.05
    nth: int | None = None
    seed: int = 0
    delay: float = 0.5
    base_id: str | None = None
    matched: int = 0
    fired: int = 0
    _rng: random.Random = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.nth is None and not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if self.nth is not None and int(self.nth) < 1:
            raise ValueError("nth counts from 1")
        self._rng = random.Random(self.seed)

    def matches(self, route: str, base_id: str | None) -> bool:
        return (self.route in ("*", route)) and (self.base_id is None or self.base_id == base_id)

    def to_dict(self) -> dict:
        return {"route": self.route, "kind": self.kind, "rate": self.rate, "nth": self.nth, "seed": self.seed,
                "delay": self.delay, "base_id": self.base_id, "matched": self.matched, "fired": self.fired}


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, route: str = "*", kind: str = "503", rate: float = 0.05, nth: int | None = None, seed: int = 0,
            delay: float = 0.5, base_id: str | None = None) -> FaultRule:
        """Inject ``kind`` on requests to ``route`` ("*" = every API route): each matching request with
        probability ``rate`` (seeded), or exactly the ``nth`` matching request (counted from 1)."""
        rule = FaultRule(route=route, kind=str(kind), rate=float(rate), nth=None if nth is None else int(nth),
                         seed=seed, delay=float(delay), base_id=base_id)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def pick(self, route: str, base_id: str | None) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(route, base_id):
                    continue
                rule.matched += 1
                hit = rule.matched == rule.nth if rule.nth is not None else rule._rng.random() < rule.rate
                if hit:
                    rule.fired += 1
                    return rule
        return None

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [r.to_dict() for r in self.rules]
