"""Errors raised while reading Airtable, each with one clear, user-facing message.

Everything the source raises derives from :class:`SourceError`; callers (the snapshot orchestration,
the CLI) decide whether an error is fatal for the run (:class:`AuthError`, :class:`Unreachable`),
for one base or table (:class:`AccessDenied`, :class:`TransientError`), or a signal to restart
(:class:`IteratorExpired`, :class:`AttachmentExpired`). Messages never contain the token.
"""

from __future__ import annotations

import requests

from snapstore.errors import SnapstoreError


class SourceError(SnapstoreError):
    """Reading from Airtable failed. ``str(exc)`` is one line meant for the user."""

    #: HTTP status when the error came from a response.
    status: int | None = None


class AuthError(SourceError):
    """The token was rejected (401)."""

    status = 401


class AccessDenied(SourceError):
    """403: the base/table is not granted to the token, does not exist, or a scope is missing."""

    status = 403


class NotFound(SourceError):
    """404: e.g. a record deleted since it was listed."""

    status = 404


class Unreachable(SourceError):
    """The API could not be reached at all (DNS, refused connection, TLS, timeouts) after retries."""


class TransientError(SourceError):
    """A retriable failure (429/5xx/dropped connection) that persisted after every retry."""


class IteratorExpired(SourceError):
    """422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE: the listing must restart from the first page."""

    status = 422


class AttachmentExpired(SourceError):
    """The signed attachment URL expired (410/403): re-read the record for a fresh URL."""


class Cancelled(SourceError):
    """The run was interrupted (Ctrl-C, SIGTERM); raised in worker threads to unwind them."""


def error_type(response: requests.Response | None) -> str | None:
    """The Airtable error ``type`` of a response body (``{"error": {"type": …}}`` or ``{"error": "…"}``)."""
    if response is None:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict):
        return err.get("type")
    if isinstance(err, str):
        return err
    return None


def _what(context: str | None) -> str:
    return f" ({context})" if context else ""


def translate(exc: BaseException, context: str | None = None, api_url: str | None = None) -> SourceError:
    """Map a ``requests``/pyairtable exception to a :class:`SourceError` with a clear message.

    ``context`` says what was being read ("base appX schema", "table tblY of appX"), ``api_url``
    which endpoint, for the "unreachable" message.
    """
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, requests.HTTPError):
        resp = exc.response
        status = resp.status_code if resp is not None else None
        kind = error_type(resp)
        if status == 401:
            return AuthError(
                "the token was rejected (401): check AIRTABLE_TOKEN / --token / --token-file "
                "(a personal access token starting with 'pat…', not revoked)"
            )
        if status == 403:
            return AccessDenied(
                f"access denied (403 {kind or 'INVALID_PERMISSIONS'}){_what(context)}: the token is not "
                "granted this base, the base or table does not exist, or a scope is missing "
                "(schema.bases:read, data.records:read, data.recordComments:read)"
            )
        if status == 404:
            return NotFound(f"not found (404 {kind or 'NOT_FOUND'}){_what(context)}")
        if status == 422 and kind == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE":
            return IteratorExpired(f"the list iterator expired{_what(context)}")
        if status == 429:
            err = TransientError(f"still rate limited (429) after every retry{_what(context)}")
        elif status is not None and status >= 500:
            err = TransientError(f"server error {status} after every retry{_what(context)}")
        else:
            err = SourceError(f"HTTP {status} {kind or ''}".rstrip() + _what(context))
        err.status = status
        return err
    if isinstance(exc, requests.exceptions.RetryError):
        return TransientError(f"gave up after repeated retriable responses{_what(context)}")
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        where = api_url or "the Airtable API"
        return Unreachable(
            f"cannot reach {where}{_what(context)}: {type(exc).__name__} after retries "
            "(check the network, --api-url / AIRTABLE_API_URL, proxies)"
        )
    if isinstance(exc, requests.RequestException):
        return TransientError(f"{type(exc).__name__}{_what(context)}: {exc}")
    return SourceError(f"{type(exc).__name__}{_what(context)}: {exc}")
