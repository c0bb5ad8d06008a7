"""A client-side rate limiter shared by every thread talking to one Airtable token.

Airtable allows 5 requests per second per base and 50 per second per token, counted (as far as
anyone can tell, and as the emulator does) over a sliding one-second window; going over earns a 429
and a 30-second penalty for the whole base. pyairtable does no throttling, so every request passes
through :meth:`Throttle.acquire` first.

Model: for each key (a base id, and the token) at most ``count`` requests may be in flight or have
finished within the last ``window × (1 + margin)`` seconds. A sliding window with the server's own window length
and quota is the only shape that both reaches the limit (bursts of ``count``) and never exceeds it;
a shorter window with a smaller quota does not compose with the server's window.

A request occupies its place in the window from its start until ``window`` after its *response*
(see :class:`Throttle`), which absorbs any delay between our clock and the server's counting.

A 429 pauses the key for the penalty (:meth:`Throttle.penalize`): nothing for that base is sent
until it is over, so we never extend the penalty by knocking on the door.

The clock and the sleep are injectable: unit tests use a fake clock, and the accelerated emulator
is matched by shortening the window (see :func:`limits_for`).

Processes: with ``shared`` (a :class:`~snapstore.source.shared_budget.SharedBudget`), each base's
window and its 429 pauses are also kept in a file every snapstore process on the machine reads, so
two processes reading or writing one base share its 5 requests/s instead of sending 10. The clock
must then be the machine's monotonic clock (the default).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from snapstore.source.errors import Cancelled

#: Airtable's documented quotas per one-second window.
AIRTABLE_BASE_QUOTA = 5
AIRTABLE_TOKEN_QUOTA = 50
AIRTABLE_PENALTY = 30.0

TOKEN_KEY = "<token>"


@dataclass(frozen=True)
class Limit:
    """At most ``count`` request starts per ``window`` seconds."""

    count: int
    window: float

    @property
    def rate(self) -> float:
        return self.count / self.window


def limits_for(rate_base: float, rate_token: float, window: float | None = None) -> tuple[Limit, Limit]:
    """Turn requests-per-second figures into sliding-window limits.

    With the real API (``rate_base <= 5``) the window is Airtable's one second and the quota is the
    rate. Above 5/s the server can only be a time-accelerated emulator (its clock running k× real
    time): its one-second window then lasts ``1/k`` real seconds and the quota stays 5 (and 50), so
    the window is derived from the base rate: ``window = 5 / rate_base``. An explicit ``window``
    overrides this.
    """
    if rate_base <= 0 or rate_token <= 0:
        raise ValueError("rates must be positive")
    if window is None:
        window = 1.0 if rate_base <= AIRTABLE_BASE_QUOTA else AIRTABLE_BASE_QUOTA / rate_base
    base = Limit(max(1, math.floor(rate_base * window + 1e-9)), window)
    token = Limit(max(1, math.floor(rate_token * window + 1e-9)), window)
    return base, token


class Ticket:
    """One request's place in the windows of its keys, from ``acquire`` to ``done``."""

    __slots__ = ("_throttle", "finished", "keys", "shared_slot")

    def __init__(self, throttle: Throttle, keys: tuple[str, ...], shared_slot: float | None = None) -> None:
        self._throttle = throttle
        self.keys = keys
        self.shared_slot = shared_slot  # its place in the machine-wide window of its base
        #: when the response arrived (None while in flight)
        self.finished: float | None = None

    def done(self) -> None:
        """The response (or the error) is back: from now on the request ages out of the window."""
        self._throttle._done(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc) -> None:
        self.done()


class Throttle:
    """Thread-safe sliding-window limiter per base and per token, with 429 penalties.

    ``acquire(base_id)`` blocks until a request for that base (``None`` for token-wide routes such as
    ``meta/whoami`` and ``meta/bases``) may start without exceeding either limit, and returns a
    :class:`Ticket`; call ``ticket.done()`` when the response is back.

    Why the ticket: the server counts a request when it *arrives*, somewhere between our send and
    our receipt of the response, and that delay varies (network, a busy server, the GIL). Timing a
    request by its start would let an old request that arrived late and a new one that arrives early
    land in the same server window (observed as 429s with a 20 % margin). So a request stays in our
    window from its start until ``span`` after its response: the server has certainly counted it by
    then. The cost is one latency per window (≈2 % against a local emulator, more across the
    internet, where a listing's pages are latency-bound anyway).
    """

    def __init__(
        self,
        *,
        rate_base: float = AIRTABLE_BASE_QUOTA,
        rate_token: float = AIRTABLE_TOKEN_QUOTA,
        penalty: float = AIRTABLE_PENALTY,
        window: float | None = None,
        margin: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
        cold_start: bool = True,
        shared=None,
    ) -> None:
        self.base_limit, self.token_limit = limits_for(rate_base, rate_token, window)
        self.shared = shared  # SharedBudget: the bases' windows shared with the machine's other processes
        self.penalty = float(penalty)
        self.margin = float(margin)
        self._clock = clock
        self._cancel = cancel
        self._sleep = sleep or self._default_sleep
        self._lock = threading.Lock()
        self._tickets: dict[str, list[Ticket]] = {}
        self._paused_until: dict[str, float] = {}
        #: seconds spent waiting, per key (for the run's statistics)
        self.waited: dict[str, float] = {}
        self.penalties: dict[str, int] = {}
        if cold_start:
            # Start as if the last window had been used up: a run killed a moment ago (or started
            # just before us) may have spent it, and one window of waiting is cheaper than a penalty.
            self._paused_until[TOKEN_KEY] = clock() + self._span(self.token_limit)

    # -- internals -------------------------------------------------------------------------

    def _default_sleep(self, seconds: float) -> None:
        if self._cancel is not None:
            if self._cancel.wait(seconds):
                raise Cancelled("interrupted")
        else:
            time.sleep(seconds)

    def _span(self, limit: Limit) -> float:
        return limit.window * (1.0 + self.margin)

    def _wait_for(self, key: str, limit: Limit, now: float) -> float:
        paused = self._paused_until.get(key, 0.0) - now
        tickets = self._tickets.get(key)
        if not tickets:
            return max(paused, 0.0)
        span = self._span(limit)
        # forget requests whose response is older than the window
        live = [t for t in tickets if t.finished is None or t.finished > now - span]
        if len(live) != len(tickets):
            self._tickets[key] = live
        if len(live) < limit.count:
            return max(paused, 0.0)
        finished = sorted(t.finished for t in live if t.finished is not None)
        excess = len(live) - limit.count  # this many must age out before one more may start
        if excess < len(finished):
            wait = finished[excess] + span - now
        else:  # the window is full of requests still in flight: look again shortly
            wait = min(span / 20.0, 0.01)
        return max(paused, wait, 1e-6)

    def _done(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket.finished is not None:
                return
            ticket.finished = self._clock()
        if ticket.shared_slot is not None:
            self.shared.release(ticket.keys[-1], ticket.shared_slot, ticket.finished + self._span(self.base_limit))

    # -- public ----------------------------------------------------------------------------

    def acquire(self, base_id: str | None) -> Ticket:
        waited = 0.0
        keys = (TOKEN_KEY,) if base_id is None else (TOKEN_KEY, base_id)
        while True:
            if self._cancel is not None and self._cancel.is_set():
                raise Cancelled("interrupted")
            with self._lock:
                now = self._clock()
                wait = self._wait_for(TOKEN_KEY, self.token_limit, now)
                if base_id is not None:
                    wait = max(wait, self._wait_for(base_id, self.base_limit, now))
                slot = None
                if wait <= 0 and base_id is not None and self.shared is not None:
                    wait, slot = self.shared.reserve(base_id, self.base_limit.count, now)
                if wait <= 0:
                    ticket = Ticket(self, keys, slot)
                    for k in keys:
                        self._tickets.setdefault(k, []).append(ticket)
                    if waited:
                        key = base_id or TOKEN_KEY
                        self.waited[key] = self.waited.get(key, 0.0) + waited
                    return ticket
            self._sleep(wait)
            waited += wait

    def penalize(self, base_id: str | None, seconds: float | None = None) -> None:
        """A 429 was received for ``base_id`` (or a token-wide route when ``None``): pause that key.

        Airtable does not say whether a 429 came from the base or the token quota. Pausing the base
        is enough: if the token quota was hit, every base gets its own 429 and pauses in turn, and a
        token-wide route pauses the token.
        """
        seconds = self.penalty if seconds is None else max(float(seconds), 0.0)
        key = base_id or TOKEN_KEY
        with self._lock:
            now = self._clock()
            # a little extra so the first request after the penalty is not counted inside it
            until = now + seconds + self._span(self.base_limit) * self.margin
            if until > self._paused_until.get(key, 0.0):
                self._paused_until[key] = until
            self.penalties[key] = self.penalties.get(key, 0) + 1
        if base_id is not None and self.shared is not None:
            self.shared.pause(base_id, until)

    def paused_for(self, base_id: str | None) -> float:
        with self._lock:
            return max(self._paused_until.get(base_id or TOKEN_KEY, 0.0) - self._clock(), 0.0)
