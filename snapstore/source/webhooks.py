"""Airtable's webhooks API, polled as a change feed: create, list, read payloads, refresh, delete.

Every call goes through the source's pyairtable session, so the shared per-base/per-token throttle
and the retrying adapter apply to webhook routes exactly as to record listings (reads are retried on
5xx; create/refresh/delete are not retried once sent, since they are not idempotent). pyairtable's
own ``Base.add_webhook`` insists on a notification URL, which a polling hook does not have, so the
routes are called directly (reference airtable-webhooks.md §1.2).

Errors are the source's (:mod:`snapstore.source.errors`): 403 → :class:`AccessDenied` (scope
``webhook:manage`` or the creator role missing), 404 → :class:`NotFound` (the hook is gone), and
:class:`HookLimit` when the base already has its 10 hooks.
"""

from __future__ import annotations

from collections.abc import Iterator

import requests

from snapstore.source.errors import SourceError, error_type, translate

#: What snapstore subscribes to: every record, field and table change of the whole base, no
#: field filters (a watched field's deletion can invalidate a hook, reference §4.6).
SPECIFICATION = {"options": {"filters": {"dataTypes": ["tableData", "tableFields", "tableMetadata"]}}}
#: Airtable returns at most 50 payloads a request (reference §1.4).
PAYLOADS_PER_REQUEST = 50
MAX_HOOKS_PER_BASE = 10


class HookLimit(SourceError):
    """The base already holds the 10 webhooks Airtable allows."""


def _url(source, base_id: str, *parts: str) -> str:
    return source.api.build_url("bases", base_id, "webhooks", *parts)


def _request(source, method: str, url: str, context: str, **kw):
    try:
        return source.api.request(method, url, **kw)
    except SourceError:
        raise
    except requests.HTTPError as exc:
        kind = error_type(exc.response) or ""
        status = exc.response.status_code if exc.response is not None else None
        if "TOO_MANY_WEBHOOKS" in kind or (status == 422 and "LIMIT" in kind.upper()):
            raise HookLimit(f"base already has {MAX_HOOKS_PER_BASE} webhooks, Airtable's limit ({kind}); "
                            "delete one it does not need") from None
        raise translate(exc, context, source.api_url) from None
    except Exception as exc:
        raise translate(exc, context, source.api_url) from None


def create_hook(source, base_id: str) -> dict:
    """A polling hook (no notification URL) over the whole base: ``{id, macSecretBase64, expirationTime}``."""
    return _request(source, "POST", _url(source, base_id), f"creating a webhook on base {base_id}",
                    json={"specification": SPECIFICATION})


def list_hooks(source, base_id: str) -> list[dict]:
    """Every hook of the base the token may see (``GET …/webhooks``)."""
    doc = _request(source, "GET", _url(source, base_id), f"webhooks of base {base_id}")
    return list((doc or {}).get("webhooks") or [])


def payload_page(source, base_id: str, hook_id: str, cursor: int, limit: int = PAYLOADS_PER_REQUEST) -> dict:
    """One request: ``{payloads, cursor, mightHaveMore}`` from ``cursor`` on."""
    return _request(source, "GET", _url(source, base_id, hook_id, "payloads"),
                    f"payloads of webhook {hook_id} on base {base_id}",
                    params={"cursor": int(cursor), "limit": int(limit)})


def iter_payload_pages(source, base_id: str, hook_id: str, cursor: int) -> Iterator[dict]:
    """Pages from ``cursor`` until ``mightHaveMore`` is false (or a page is empty, as pyairtable does)."""
    while True:
        page = payload_page(source, base_id, hook_id, cursor)
        yield page
        nxt = int(page.get("cursor") or cursor)
        if not page.get("mightHaveMore") or not page.get("payloads") or nxt <= cursor:
            return
        cursor = nxt


def refresh_hook(source, base_id: str, hook_id: str) -> dict:
    """Extend an active hook's life by 7 days: ``{expirationTime}``."""
    return _request(source, "POST", _url(source, base_id, hook_id, "refresh"),
                    f"refreshing webhook {hook_id} on base {base_id}")


def delete_hook(source, base_id: str, hook_id: str) -> None:
    _request(source, "DELETE", _url(source, base_id, hook_id), f"deleting webhook {hook_id} on base {base_id}")


__all__ = ["HookLimit", "MAX_HOOKS_PER_BASE", "PAYLOADS_PER_REQUEST", "SPECIFICATION", "create_hook",
           "delete_hook", "iter_payload_pages", "list_hooks", "payload_page", "refresh_hook"]
