"""The client-side throttle, with a fake clock: no real waiting."""

from __future__ import annotations

import threading

import pytest

from snapstore.source.errors import Cancelled
from snapstore.source.throttle import TOKEN_KEY, Limit, Throttle, limits_for


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.t

    def sleep(self, s: float) -> None:
        with self.lock:
            self.t += s


def make(**kw) -> tuple[Throttle, FakeClock]:
    clock = FakeClock()
    kw.setdefault("margin", 0.0)
    kw.setdefault("cold_start", False)
    return Throttle(clock=clock, sleep=clock.sleep, **kw), clock


def hit(th: Throttle, base: str | None) -> float:
    """One request answered instantly; returns the seconds it waited."""
    before = sum(th.waited.values())
    th.acquire(base).done()
    return sum(th.waited.values()) - before


def starts_in_window(starts: list[float], window: float) -> int:
    """The largest number of starts inside any half-open window of that length, (t-window, t]."""
    starts = sorted(starts)
    best = 0
    j = 0
    for i, t in enumerate(starts):
        while starts[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_limits_for_real_api_and_accelerated_emulator():
    assert limits_for(5, 50) == (Limit(5, 1.0), Limit(50, 1.0))
    # an emulator whose clock runs 50x: same quotas, window of 1/50 s
    base, token = limits_for(250, 2500)
    assert (base.count, token.count) == (5, 50)
    assert base.window == pytest.approx(0.02) and token.window == pytest.approx(0.02)
    # gentler than Airtable: fewer per second
    assert limits_for(4, 40) == (Limit(4, 1.0), Limit(40, 1.0))
    with pytest.raises(ValueError):
        limits_for(0, 50)


def test_base_limit_is_a_sliding_window_burst_then_wait():
    th, clock = make()
    starts = []
    for _ in range(23):
        hit(th, "appA")
        starts.append(clock())
    # first five immediately, then one window later, etc.
    assert starts[:5] == [1000.0] * 5
    assert starts[5] == pytest.approx(1001.0)
    assert starts_in_window(starts, 1.0) == 5
    # rate reached: 23 requests need 4 full windows
    assert starts[-1] - starts[0] == pytest.approx(4.0)


def test_margin_widens_the_window():
    th, clock = make(margin=0.05)
    starts = []
    for _ in range(11):
        hit(th, "appA")
        starts.append(clock())
    assert starts[5] - starts[0] == pytest.approx(1.05)
    assert starts_in_window(starts, 1.05) == 5


def test_bases_are_independent_but_share_the_token_limit():
    th, clock = make(rate_base=5, rate_token=12)
    starts = {"a": [], "b": [], "c": []}
    for _ in range(10):
        for key in starts:
            hit(th, "app" + key)
            starts[key].append(clock())
    allstarts = [t for v in starts.values() for t in v]
    assert starts_in_window(allstarts, 1.0) <= 12
    for v in starts.values():
        assert starts_in_window(v, 1.0) <= 5
    # 30 requests at 12 per window: at least two more windows after the first
    assert max(allstarts) - min(allstarts) >= 2.0 - 1e-9


def test_two_bases_in_parallel_each_get_the_full_base_rate():
    th, clock = make(rate_base=5, rate_token=50)
    for _ in range(5):
        hit(th, "appA")
        hit(th, "appB")
    assert clock() == 1000.0  # 10 requests, no waiting: each base has its own 5


def test_token_wide_routes_only_count_against_the_token():
    th, clock = make(rate_base=5, rate_token=50)
    for _ in range(20):
        hit(th, None)  # whoami / list bases
    assert clock() == 1000.0
    hit(th, "appA")
    assert clock() == 1000.0


def test_429_pauses_the_base_for_the_penalty():
    th, clock = make(penalty=30.0)
    hit(th, "appA")
    th.penalize("appA")
    assert th.paused_for("appA") == pytest.approx(30.0)
    waited = hit(th, "appA")
    assert waited == pytest.approx(30.0)
    assert clock() == pytest.approx(1030.0)
    # other bases are not paused
    before = clock()
    hit(th, "appB")
    assert clock() == before
    assert th.penalties == {"appA": 1}


def test_429_on_token_route_pauses_everything():
    th, clock = make(penalty=2.0)
    th.penalize(None)
    hit(th, "appB")
    assert clock() == pytest.approx(1002.0)
    assert th.penalties == {TOKEN_KEY: 1}


def test_retry_after_overrides_the_penalty():
    th, clock = make(penalty=30.0)
    th.penalize("appA", 1.5)
    hit(th, "appA")
    assert clock() == pytest.approx(1001.5)


def test_a_shorter_penalty_never_shortens_a_longer_one():
    th, clock = make(penalty=30.0)
    th.penalize("appA")
    th.penalize("appA", 1.0)
    assert th.paused_for("appA") == pytest.approx(30.0)


class WatchedEvent(threading.Event):
    """A cancel event that says when someone starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_cancel_interrupts_waiting():
    """A request waiting out an hour's penalty stops as soon as cancel is set, from another thread:
    the wait itself is interrupted (a plain time.sleep would hold the thread for the hour)."""
    cancel = WatchedEvent()
    th = Throttle(rate_base=5, rate_token=50, penalty=3600.0, cancel=cancel, cold_start=False)
    th.penalize("appA")
    raised: list[BaseException] = []

    def request() -> None:
        try:
            th.acquire("appA")
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            raised.append(e)

    waiter = threading.Thread(target=request, daemon=True)
    waiter.start()
    cancel.waiting.wait(timeout=30)  # the request is inside its wait (not checked: see below)
    cancel.set()
    waiter.join(timeout=30)  # a generous bound against an hour: holds on a loaded machine
    assert not waiter.is_alive(), "cancel did not interrupt the throttle's wait"
    assert len(raised) == 1 and isinstance(raised[0], Cancelled)


def test_thread_safety_under_real_concurrency():
    """Many threads, one fake-free tiny window: starts per window never exceed the quota."""
    th = Throttle(rate_base=500, rate_token=2000, window=0.01, margin=0.0, cold_start=False)  # 5 per 10 ms per base
    starts: dict[str, list[float]] = {"appA": [], "appB": []}
    lock = threading.Lock()
    import time

    def worker(base: str) -> None:
        for _ in range(15):
            with th.acquire(base):
                with lock:
                    starts[base].append(time.monotonic())

    threads = [threading.Thread(target=worker, args=(b,)) for b in ("appA", "appB") for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for v in starts.values():
        assert len(v) == 45
        # recorded after acquire returns, so allow a hair of scheduling slack
        assert starts_in_window(v, 0.0095) <= 5


def test_a_request_counts_until_a_window_after_its_response():
    """The server counts a request when it arrives, up to when we get the response: a slow
    response keeps its place in the window longer."""
    th, clock = make()
    slow = th.acquire("appA")  # in flight
    for _ in range(4):
        hit(th, "appA")
    clock.sleep(0.5)
    slow.done()  # answered at t+0.5: the server may have counted it as late as that
    hit(th, "appA")  # 6th request: must wait for the oldest *answered* one, at t+1.0
    assert clock() == pytest.approx(1001.0)
    hit(th, "appA")
    hit(th, "appA")
    hit(th, "appA")
    hit(th, "appA")  # the slow one leaves the window only at t+1.5
    assert clock() == pytest.approx(1001.5)


def test_a_window_full_of_requests_in_flight_waits_for_responses():
    th, clock = make()
    tickets = [th.acquire("appA") for _ in range(5)]
    done_at = {}

    def answer_later():
        # answer one request when the waiter has polled a few times
        while clock() < 1000.05:
            pass
        done_at["t"] = clock()
        tickets[0].done()

    t = threading.Thread(target=answer_later)
    t.start()
    th.acquire("appA").done()
    t.join()
    assert clock() >= done_at["t"] + 1.0 - 1e-9


def test_cold_start_waits_one_window_for_a_predecessor():
    """A run killed a moment ago may have used the current window: the first request waits it out."""
    th, clock = make(cold_start=True, margin=0.02)
    hit(th, "appA")
    assert clock() == pytest.approx(1001.02)
    for _ in range(4):
        hit(th, "appA")
    assert clock() == pytest.approx(1001.02)
