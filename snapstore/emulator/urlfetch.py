"""Attachments written as ``{"url": ...}``: Airtable "will download the file at the given url and keep
its own copy". Its rules (reference §4.2): http or https, at most 3 redirects, at most 1 GB, publicly
reachable; a failure is mostly silent (the attachment is dropped, the write itself succeeds).

The emulator runs where there is no network, so it fetches only what it can reach on loopback
(a test's or a demo's own file server), with a size limit and a timeout; anything else fails the way
Airtable fails: the attachment is dropped and the failure is counted."""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

MAX_REDIRECTS = 3  # Airtable's documented limit
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # Airtable takes 1 GB; an in-memory emulator keeps less
DEFAULT_TIMEOUT = 10.0


class FetchFailed(Exception):
    """The file could not be fetched (why, in one line)."""


@dataclass
class Fetched:
    data: bytes
    content_type: str | None
    filename: str


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201 - stdlib signature
        if not _loopback(newurl):
            raise FetchFailed(f"redirected off loopback to {urllib.parse.urlsplit(newurl).hostname}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = DEFAULT_TIMEOUT) -> Fetched:
    """The bytes at ``url``; raises FetchFailed (scheme, host off loopback, status, size, timeout)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchFailed(f"not an http(s) URL: {parts.scheme or 'no scheme'}")
    if not _loopback(url):
        raise FetchFailed(f"{parts.hostname} is not reachable from the emulator (it fetches loopback only)")
    opener = urllib.request.build_opener(_Redirects)
    try:
        with opener.open(urllib.request.Request(url, headers={"User-Agent": "AirtableEmulator/1.0"}),
                         timeout=timeout) as resp:
            size = resp.headers.get("Content-Length")
            if size is not None and size.isdigit() and int(size) > max_bytes:
                raise FetchFailed(f"{size} bytes, more than the limit of {max_bytes}")
            data = resp.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise FetchFailed(f"more than the limit of {max_bytes} bytes")
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip() or None
            final = resp.geturl()
    except FetchFailed:
        raise
    except urllib.error.HTTPError as e:
        raise FetchFailed(f"HTTP {e.code}") from None
    except (TimeoutError, urllib.error.URLError, OSError, ValueError) as e:
        raise FetchFailed(str(getattr(e, "reason", e))) from None
    name = urllib.parse.unquote(urllib.parse.urlsplit(final).path.rstrip("/").rsplit("/", 1)[-1]) or "file"
    return Fetched(data, ctype, name)
