"""Reading Airtable with pyairtable: the raw JSON a backup needs, throttled and retried.

:class:`AirtableSource` wraps one ``pyairtable.Api`` pointed at ``api_url`` (the real service or the
emulator). Its session carries a :class:`~snapstore.source.adapter.ThrottledRetryAdapter` instead of
pyairtable's own retry, so every call is throttled per base and per token and retried.

Everything returned is the raw JSON the API sent (no pydantic models, which drop unknown keys): the
schema of ``GET meta/bases/{id}/tables``, record pages keyed by field id, comment objects.

Attachment files are fetched with a *separate* session that never carries the token (the signed
content URLs are public; the PAT must not leak to the content host).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import requests
from pyairtable import Api

from snapstore import ledger
from snapstore.constants import DEFAULT_API_URL
from snapstore.source.adapter import RequestStats, RetryPolicy, ThrottledRetryAdapter
from snapstore.source.errors import (
    AttachmentExpired,
    SourceError,
    TransientError,
    Unreachable,
    translate,
)
from snapstore.source.throttle import (
    AIRTABLE_BASE_QUOTA,
    AIRTABLE_PENALTY,
    AIRTABLE_TOKEN_QUOTA,
    Throttle,
)

PAGE_SIZE = 100


class _CountingReader:
    """A read-only file object over a streamed response body that counts what it returns."""

    def __init__(self, resp: requests.Response, on_bytes: Callable[[int], None] | None = None) -> None:
        self._resp = resp
        self._raw = resp.raw
        self._raw.decode_content = True
        self._on_bytes = on_bytes
        self.bytes_read = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(None if n is None or n < 0 else n)
        except (requests.RequestException, OSError) as exc:
            raise TransientError(f"attachment download interrupted: {type(exc).__name__}") from exc
        except Exception as exc:  # urllib3 ProtocolError / ReadTimeoutError and friends
            raise TransientError(f"attachment download interrupted: {type(exc).__name__}") from exc
        self.bytes_read += len(data)
        if self._on_bytes is not None and data:
            self._on_bytes(len(data))
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._resp.close()


class AirtableSource:
    """One token, one endpoint, one shared throttle. Thread-safe: bases are read in parallel."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        rate_base: float = AIRTABLE_BASE_QUOTA,
        rate_token: float = AIRTABLE_TOKEN_QUOTA,
        penalty: float = AIRTABLE_PENALTY,
        window: float | None = None,
        margin: float = 0.03,
        policy: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        download_timeout: tuple[float, float] = (10.0, 120.0),
        cancel: threading.Event | None = None,
        throttle: Throttle | None = None,
        log: Callable[[str], None] | None = None,
        pool_size: int = 32,
        shared_budget: str | Path | None = None,
    ) -> None:
        """``shared_budget``: a folder (the CLI gives ``<cache>/rate``) through which every snapstore
        process on this machine shares each base's rate and its 429 pauses (snapstore.source.shared_budget)."""
        if not token or not token.strip():
            raise SourceError("no Airtable token: set AIRTABLE_TOKEN, or pass --token / --token-file")
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self.cancel = cancel or threading.Event()
        if log is None:
            _logger = logging.getLogger("snapstore.source")
            log = lambda m: _logger.info("%s", m)  # noqa: E731
        self.throttle = throttle or Throttle(
            rate_base=rate_base,
            rate_token=rate_token,
            penalty=penalty,
            window=window,
            margin=margin,
            cancel=self.cancel,
            shared=_shared(shared_budget, self.api_url, log),
        )
        self.policy = policy or RetryPolicy()
        self.stats = RequestStats()
        ledger.track(self.stats)  # every API request is counted in the store's ledger (snapstore/ledger.py)
        self.download_stats = RequestStats()
        self.api = Api(
            token.strip(),
            timeout=timeout,
            retry_strategy=None,
            endpoint_url=self.api_url,
            use_field_ids=True,
        )
        adapter = ThrottledRetryAdapter(
            self.throttle,
            policy=self.policy,
            stats=self.stats,
            cancel=self.cancel,
            log=log,
            pool_maxsize=pool_size,
        )
        self._adapter = adapter
        self.api.session.mount("http://", adapter)
        self.api.session.mount("https://", adapter)
        # attachment downloads: no token, no API throttle, same retries
        self.downloads = requests.Session()
        dl = ThrottledRetryAdapter(
            None,
            policy=self.policy,
            stats=self.download_stats,
            cancel=self.cancel,
            log=log,
            pool_maxsize=pool_size,
        )
        self.downloads.mount("http://", dl)
        self.downloads.mount("https://", dl)
        self.downloads.trust_env = True
        self.download_timeout = download_timeout

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        self.api.session.close()
        self.downloads.close()
        if getattr(self.throttle, "shared", None) is not None:
            self.throttle.shared.close()  # its files (opened again if the source is used again)

    def __enter__(self) -> AirtableSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:  # never show the token
        return f"AirtableSource({self.api_url!r})"

    def _call(self, context: str, fn: Callable, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SourceError:
            raise
        except Exception as exc:  # requests / pyairtable errors
            raise translate(exc, context, self.api_url) from None

    # -- metadata ----------------------------------------------------------------------------

    def whoami(self) -> dict:
        """``GET meta/whoami``: proves the token works (401 → :class:`AuthError`)."""
        return self._call("whoami", self.api.get, self.api.urls.whoami)

    def preflight(self, retries: int = 2) -> dict:
        """``whoami`` with few retries: a wrong URL or a dead network is reported in seconds rather
        than after the full backoff a running snapshot deserves. Single-threaded, before anything else."""
        with self.quick_retries(retries):
            return self.whoami()

    @contextlib.contextmanager
    def quick_retries(self, retries: int = 2) -> Iterator[None]:
        """Few, short retries for the first request of a run (``whoami``, or the hook listing of a
        feed run that needs no whoami). Single-threaded: the policy is the adapter's."""
        full = self._adapter.policy
        self._adapter.policy = RetryPolicy(
            max_retries=min(retries, full.max_retries), max_429=full.max_429,
            backoff=min(full.backoff, 0.5), backoff_max=full.backoff_max,
        )
        try:
            yield
        finally:
            self._adapter.policy = full

    @contextlib.contextmanager
    def fewer_retries(self, retries: int = 1) -> Iterator[None]:
        """At most ``retries`` retries of 5xx/network errors for the calling thread's requests: a
        route that already failed after the full retries (comments of a base whose endpoint fails)
        costs seconds per request, not a minute. 429s are still honoured in full."""
        full = self._adapter.policy
        self._adapter.thread_policy(RetryPolicy(max_retries=min(retries, full.max_retries), max_429=full.max_429,
                                                backoff=full.backoff, backoff_max=full.backoff_max))
        try:
            yield
        finally:
            self._adapter.thread_policy(None)

    def bases(self) -> list[dict]:
        """Every base the token can see, raw (``id``, ``name``, ``permissionLevel``)."""

        def run() -> list[dict]:
            out: list[dict] = []
            for page in self.api.iterate_requests("GET", self.api.urls.bases):
                out.extend(page.get("bases") or [])
            return out

        return self._call("list bases", run)

    def schema(self, base_id: str) -> dict:
        """The raw JSON of ``GET meta/bases/{base_id}/tables?include=visibleFieldIds``."""
        url = self.api.build_url("meta/bases", base_id, "tables")
        return self._call(
            f"schema of base {base_id}", self.api.get, url, params={"include": ["visibleFieldIds"]}
        )

    # -- records -----------------------------------------------------------------------------

    def iter_pages(
        self,
        base_id: str,
        table_id: str,
        *,
        comment_counts: bool = False,
        page_size: int = PAGE_SIZE,
        **options,
    ) -> Iterator[list[dict]]:
        """Yield the pages of a full listing: ceil(N/100) requests, fields keyed by field id.

        Raises :class:`IteratorExpired` when the server dropped the iterator (restart the table)
        and other :class:`SourceError` subclasses once retries are exhausted.
        """
        table = self.api.table(base_id, table_id)
        opts = {"page_size": page_size, "use_field_ids": True, **options}
        if comment_counts:
            opts["count_comments"] = True
        pages = self.api.iterate_requests(
            "GET", table.urls.records, fallback=("POST", table.urls.records_post), options=opts
        )
        context = f"table {table_id} of base {base_id}"
        while True:
            try:
                page = next(pages)
            except StopIteration:
                return
            except SourceError:
                raise
            except Exception as exc:
                raise translate(exc, context, self.api_url) from None
            yield page.get("records") or []

    def get_record(self, base_id: str, table_id: str, record_id: str) -> dict:
        table = self.api.table(base_id, table_id)
        return self._call(
            f"record {record_id} of {base_id}/{table_id}",
            self.api.get,
            table.urls.record(record_id),
            params={"returnFieldsByFieldId": 1},
        )

    def comments(self, base_id: str, table_id: str, record_id: str) -> list[dict]:
        """Every comment on a record, raw, in the API's order (newest first)."""
        table = self.api.table(base_id, table_id)
        url = table.urls.record_comments(record_id)

        def run() -> list[dict]:
            out: list[dict] = []
            for page in self.api.iterate_requests("GET", url):
                out.extend(page.get("comments") or [])
            return out

        return self._call(f"comments of {record_id} in {base_id}/{table_id}", run)

    def first_record(self, base_id: str, table_id: str) -> list[dict]:
        """One page of at most one record: proves ``data.records:read`` on the table (for ``check``)."""
        table = self.api.table(base_id, table_id)
        return self._call(
            f"records of {base_id}/{table_id}",
            lambda: (
                self.api.get(table.urls.records, params={"pageSize": 1, "maxRecords": 1}).get("records") or []
            ),
        )

    # -- attachments -------------------------------------------------------------------------

    @contextlib.contextmanager
    def open_attachment(self, url: str, on_bytes: Callable[[int], None] | None = None) -> Iterator[BinaryIO]:
        """Stream an attachment from its signed URL, without the token.

        Raises :class:`AttachmentExpired` on 410/403 (re-read the record for a fresh URL),
        :class:`TransientError` after retries; a connection dropped mid-body raises
        :class:`TransientError` from ``read()``.
        """
        try:
            resp = self.downloads.get(url, stream=True, timeout=self.download_timeout)
        except SourceError:
            raise
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"attachment download failed: {type(exc).__name__}") from None
        except Exception as exc:
            raise translate(exc, "attachment download") from None
        try:
            if resp.status_code in (403, 410):
                raise AttachmentExpired(f"attachment URL expired ({resp.status_code})")
            if resp.status_code == 404:
                raise AttachmentExpired("attachment URL not found (404)")
            if resp.status_code >= 400:
                raise TransientError(f"attachment download failed with HTTP {resp.status_code}")
            reader = _CountingReader(resp, on_bytes)
            yield reader  # type: ignore[misc]
        finally:
            resp.close()


def _shared(folder: str | Path | None, api_url: str, log: Callable[[str], None]):
    """The machine-wide budget in ``folder``, or None (none asked, or the folder cannot be written:
    then this process throttles itself alone, as before, and says so)."""
    if folder is None:
        return None
    from snapstore.source.shared_budget import SharedBudget

    try:
        return SharedBudget(folder, api_url)
    except OSError as e:
        log(f"the rate budget shared with other snapstore processes is off ({folder}: {e.strerror or e})")
        return None


__all__ = ["AirtableSource", "DEFAULT_API_URL", "Unreachable"]
