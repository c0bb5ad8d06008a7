"""A ``requests`` transport adapter that throttles and retries every request pyairtable makes.

Mounted on ``Api.session`` (for ``http://`` and ``https://``) in place of pyairtable's own retrying
adapter, whose default gives up after about 3 s while Airtable's 429 penalty lasts 30 s. Because it
sits below pyairtable, *every* pyairtable call (``iterate``, ``get``, ``api.get`` on meta routes,
comments …) is throttled and retried, without wrapping each call site.

Per request:

- wait for the shared :class:`~snapstore.source.throttle.Throttle` (per base and per token);
- 429 → pause the base (or token) for the penalty (or ``Retry-After`` when given), then retry;
- 500/502/503/504, dropped connections, timeouts, truncated bodies → exponential backoff with full
  jitter, bounded; only for reads (GET/HEAD, and the ``POST …/listRecords`` read fallback);
- when the retries are exhausted the last response is returned (pyairtable raises ``HTTPError``) or
  the last connection error is raised — the caller turns both into a clear :mod:`errors` message.

Request statistics (requests per route and base, 429s, retries, bytes) are collected here, so they
count what actually went over the wire.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from snapstore.source.errors import Cancelled
from snapstore.source.throttle import Throttle

RETRY_STATUSES = frozenset({500, 502, 503, 504})

_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    Urllib3HTTPError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Backoff sleeps are ``uniform(0, min(backoff_max, backoff * 2**n))``."""

    max_retries: int = 8  # 5xx and network errors, per request
    max_429: int = 10  # 429s honoured (each waits the penalty) per request
    backoff: float = 0.5
    backoff_max: float = 30.0


def route_of(url: str) -> tuple[str, str | None]:
    """Classify an Airtable API URL: ``(route, base_id)``.

    Routes: whoami, list_bases, schema, list_records, get_record, comments, upload, other.
    The URL may carry a path prefix before ``/v0/``.
    """
    path = urlsplit(url).path
    i = path.find("/v0/")
    if i < 0:
        return "other", None
    parts = [unquote(p) for p in path[i + 4 :].split("/") if p != ""]
    if not parts:
        return "other", None
    if parts[0] == "meta":
        if parts[1:2] == ["whoami"]:
            return "whoami", None
        if parts[1:2] == ["bases"]:
            if len(parts) == 2:
                return "list_bases", None
            if len(parts) >= 4 and parts[3] == "tables":
                return "schema", parts[2]
            return "meta", parts[2]
        return "meta", None
    if parts[0] == "bases" and len(parts) >= 2:  # webhooks
        return "webhooks", parts[1]
    base = parts[0]
    n = len(parts)
    if n == 2:
        return "list_records", base
    if n == 3 and parts[2] == "listRecords":
        return "list_records", base
    if n == 3:
        return "get_record", base
    if n >= 4 and parts[3] == "comments":
        return "comments", base
    if n == 4 and parts[3] == "uploadAttachment":
        return "upload", base
    return "other", base


class RequestStats:
    """Thread-safe counters of what went over the wire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # per route
        self.by_base: Counter[str] = Counter()
        self.by_route_base: Counter[tuple[str, str]] = Counter()
        self.statuses: Counter[int] = Counter()
        self.rate_limited = 0  # 429s received
        self.retries = 0  # retries after 5xx / network errors
        self.network_errors = 0
        self.bytes = 0

    def count(self, route: str, base: str | None, status: int | None, nbytes: int = 0) -> None:
        with self._lock:
            self.requests[route] += 1
            if base:
                self.by_base[base] += 1
                self.by_route_base[(route, base)] += 1
            if status is not None:
                self.statuses[status] += 1
                if status == 429:
                    self.rate_limited += 1
            self.bytes += nbytes

    def retried(self, network: bool) -> None:
        with self._lock:
            self.retries += 1
            if network:
                self.network_errors += 1

    def count_for(self, route: str, base: str) -> int:
        """Requests so far on ``route`` for ``base`` (a snapshot's comments requests per table)."""
        with self._lock:
            return self.by_route_base[(route, base)]

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "requests": sum(self.requests.values()),
                "requests_by_route": dict(sorted(self.requests.items())),
                "requests_by_base": dict(sorted(self.by_base.items())),
                "rate_limited_429": self.rate_limited,
                "retries": self.retries,
                "network_errors": self.network_errors,
                "bytes_received": self.bytes,
            }


_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
_LIST_POST = re.compile(r"/listRecords/?$")


def _is_read(request: requests.PreparedRequest) -> bool:
    method = (request.method or "GET").upper()
    if method in _IDEMPOTENT:
        return True
    return method == "POST" and bool(_LIST_POST.search(urlsplit(request.url or "").path))


class ThrottledRetryAdapter(HTTPAdapter):
    """See the module docstring. ``throttle=None`` gives a retrying adapter without throttling
    (used for attachment downloads from the content host, which is not the API)."""

    def __init__(
        self,
        throttle: Throttle | None,
        *,
        policy: RetryPolicy | None = None,
        stats: RequestStats | None = None,
        cancel: threading.Event | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        pool_maxsize: int = 32,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
        self.throttle = throttle
        self._policy = policy or RetryPolicy()
        self._local = threading.local()  # a policy for this thread's requests only (fewer_retries)
        self.stats = stats or RequestStats()
        self.cancel = cancel
        self._sleep_fn = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._log = log

    @property
    def policy(self) -> RetryPolicy:
        return getattr(self._local, "policy", None) or self._policy

    @policy.setter
    def policy(self, value: RetryPolicy) -> None:
        self._policy = value

    def thread_policy(self, value: RetryPolicy | None) -> None:
        """Set (or with None, drop) the policy of the calling thread's requests."""
        self._local.policy = value

    def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._sleep_fn is not None:
            self._sleep_fn(seconds)
        elif self.cancel is not None:
            if self.cancel.wait(seconds):
                raise Cancelled("interrupted")
        else:
            time.sleep(seconds)

    def _backoff(self, attempt: int) -> float:
        p = self.policy
        cap = min(p.backoff_max, p.backoff * (2**attempt))
        with self._rng_lock:
            return self._rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never a stampede

    def build_response(self, req, resp):
        response = super().build_response(req, resp)
        response.__class__ = _OrjsonResponse
        return response

    def _note(self, msg: str) -> None:
        if self._log is not None:
            self._log(msg)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # noqa: D401
        route, base = route_of(request.url or "")
        read = _is_read(request)
        attempts = 0
        n429 = 0
        while True:
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled("interrupted")
            ticket = self.throttle.acquire(base) if self.throttle is not None else None
            try:
                resp = super().send(
                    request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
                )
                if not stream:
                    _ = resp.content  # read the body here, so a connection dropped mid-body is retried
            except _NETWORK_ERRORS as exc:
                if ticket is not None:
                    ticket.done()
                self.stats.count(route, base, None)
                # a request that never reached the server may always be retried
                sent = not isinstance(exc, (requests.exceptions.ConnectTimeout,))
                if (not read and sent) or attempts >= self.policy.max_retries:
                    raise
                delay = self._backoff(attempts)
                attempts += 1
                self.stats.retried(network=True)
                self._note(f"{route} {base or ''}: {type(exc).__name__}, retry {attempts} in {delay:.2f}s")
                self._sleep(delay)
                continue
            finally:
                if ticket is not None:
                    ticket.done()
            status = resp.status_code
            self.stats.count(route, base, status, len(resp.content) if not stream else 0)
            if status == 429 and n429 < self.policy.max_429:
                n429 += 1
                wait = _retry_after(resp)
                if self.throttle is not None:
                    self.throttle.penalize(base, wait)
                    penalty = wait if wait is not None else self.throttle.penalty
                else:
                    penalty = wait if wait is not None else self._backoff(n429)
                    self._sleep(penalty)
                self._note(f"{route} {base or ''}: 429, pausing {'base' if base else 'token'} {penalty:.2f}s")
                resp.close()
                continue
            if status in RETRY_STATUSES and read and attempts < self.policy.max_retries:
                delay = self._backoff(attempts)
                wait = _retry_after(resp)
                if wait is not None:
                    delay = max(delay, wait)
                attempts += 1
                self.stats.retried(network=False)
                self._note(f"{route} {base or ''}: {status}, retry {attempts} in {delay:.2f}s")
                resp.close()
                self._sleep(delay)
                continue
            return resp


class _OrjsonResponse(requests.Response):
    """``.json()`` with orjson: list pages are decoded about twice as fast as with the stdlib."""

    def json(self, **kwargs):
        if not kwargs and self.content:
            try:
                return orjson.loads(self.content)
            except orjson.JSONDecodeError:
                pass  # let requests raise its usual error (or decode what orjson refuses)
        return super().json(**kwargs)


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
