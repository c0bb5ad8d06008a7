"""Signed, expiring attachment URLs (``/__content/{token}/{filename}``): signing, checking and serving.

Kept apart from the HTTP server so that cell validation (``values.py``, which must recognise the
emulator's own URLs when a client writes them back) does not import the server."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import threading
import urllib.parse
import weakref
from collections.abc import Callable
from typing import Any

from . import files

_SIGNERS: weakref.WeakSet = weakref.WeakSet()
_SIGNERS_LOCK = threading.Lock()


class ContentSigner:
    """Signs attachment URLs for one emulator (a random secret per instance) and serves their bytes.

    ``base_url`` is called at signing time (the port is known only once the server listens);
    ``clock`` and ``ttl`` give the URLs' expiry; ``workspace`` returns the workspace to serve from."""

    def __init__(self, base_url: Callable[[], str], clock: Any, ttl: float, workspace: Callable[[], Any],
                 lock: Any) -> None:
        self._base_url, self.clock, self.ttl, self._workspace, self._lock = base_url, clock, float(ttl), workspace, lock
        self._secret = os.urandom(16)
        self._nonce = itertools.count(1)
        self._thumb_cache: dict[tuple[str, str], bytes] = {}

    # -- registry: which running emulators' URLs resolve
    def register(self) -> None:
        with _SIGNERS_LOCK:
            _SIGNERS.add(self)

    def unregister(self) -> None:
        with _SIGNERS_LOCK:
            _SIGNERS.discard(self)

    @property
    def workspace(self) -> Any:
        return self._workspace()

    # -- signing
    def _sig(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:20]

    def content_url(self, att_id: str, variant: str, filename: str) -> str:
        exp = int((self.clock.now() + self.ttl) * 1000)
        payload = f"{att_id}.{variant}.{exp}.{next(self._nonce)}"
        return f"{self._base_url()}/__content/{payload}.{self._sig(payload)}/{urllib.parse.quote(filename, safe='')}"

    def parse_token(self, token: str) -> tuple[str, str, int] | None:
        """(att id, variant, expiry ms) of a token this signer made, else None."""
        parts = token.split(".")
        if len(parts) != 5:
            return None
        payload, sig = ".".join(parts[:4]), parts[4]
        if not hmac.compare_digest(self._sig(payload), sig):
            return None
        try:
            return parts[0], parts[1], int(parts[2])
        except ValueError:
            return None

    def sign_attachment(self, att_id: str, cell: dict) -> dict:
        """The attachment object as the API returns it: fresh signed url (and thumbnails)."""
        fname = cell.get("filename", "file")
        out: dict[str, Any] = {"id": att_id, "width": cell.get("width"), "height": cell.get("height"),
                               "url": self.content_url(att_id, "o", fname), "filename": fname,
                               "size": cell.get("size"), "type": cell.get("type")}
        if out["width"] is None:
            del out["width"], out["height"]
        thumbs = thumb_dims(cell)
        if thumbs:
            out["thumbnails"] = {k: {"url": self.content_url(att_id, k[0], fname), "width": w, "height": h}
                                 for k, (w, h) in thumbs.items()}
        return out

    # -- serving
    def serve(self, token: str) -> tuple[int, bytes, str]:
        """(status, body, content type) for ``GET /__content/{token}/...``."""
        parsed = self.parse_token(token)
        if parsed is None:
            return 404, b"Not Found", "text/plain"
        att_id, variant, exp = parsed
        if self.clock.now() * 1000 >= exp:
            return 410, b"This URL has expired", "text/plain"
        with self._lock:
            ws = self.workspace
            info = ws.attachments.get(att_id)
            data = ws.attachment_bytes(att_id)
        if info is None or data is None:
            return 404, b"Not Found", "text/plain"
        if variant == "o" or (variant == "f" and info["type"].startswith("image/")):
            return 200, data, info["type"]
        dims = thumb_dims(info)
        key = {"s": "small", "l": "large", "f": "full"}.get(variant)
        if not dims or key is None:
            return 404, b"Not Found", "text/plain"
        if (att_id, variant) not in self._thumb_cache:
            w, h = dims[key]
            seed = hashlib.sha256(att_id.encode()).digest()
            self._thumb_cache[(att_id, variant)] = files.make_png(w, h, (seed[0], seed[1], seed[2]))
        return 200, self._thumb_cache[(att_id, variant)], "image/png"


def thumb_dims(cell: dict) -> dict[str, tuple[int, int]] | None:
    t = cell.get("type") or ""
    if t.startswith("image/") and cell.get("width") and cell.get("height"):
        return files.thumbnail_sizes(cell["width"], cell["height"])
    if t == "application/pdf":
        return files.thumbnail_sizes(612, 792)
    return None


def resolve_content_url(url: str) -> tuple[Any, str, str] | None:
    """(workspace, att id, variant) for a valid (signature-checked, expiry ignored) content URL of any
    running emulator, else None."""
    parts = urllib.parse.urlsplit(url).path.split("/")
    if len(parts) < 3 or parts[1] != "__content":
        return None
    with _SIGNERS_LOCK:
        signers = list(_SIGNERS)
    for signer in signers:
        parsed = signer.parse_token(parts[2])
        if parsed is not None:
            return signer.workspace, parsed[0], parsed[1]
    return None
