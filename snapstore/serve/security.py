"""serve's gate: it shows customer data and can write to Airtable, so every request must prove it
comes from the person who started it.

- The access token (random, printed at start, as Jupyter does) opens a session: ``/?token=T`` sets
  a cookie (HttpOnly, SameSite=Strict) holding an HMAC of the token, never the token, and
  redirects to the same page without it (so it leaves the address bar and the history).
- Every other request needs that cookie: 401 without it.
- Host headers other than the listening address are refused (403): a DNS-rebinding page cannot
  reach it through a name of its own.
- Every POST needs the session's CSRF token in its form (403 without), and a foreign Origin is
  refused.
- Headers: a CSP without inline scripts or styles, X-Frame-Options DENY, nosniff, no referrer,
  and ``Cache-Control: no-store`` on everything but the static files.
- The access log is ours: method, path without its query, status. Never a query (the token), a
  cookie or a form.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

access_log = logging.getLogger("snapstore.serve.access")

COOKIE = "snapstore_session"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cross-Origin-Opener-Policy": "same-origin"}


class Gate:
    """The secrets of one serve process: the access token and what is derived from it."""

    def __init__(self, hosts: set[str], token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self._key = secrets.token_bytes(32)
        self.hosts = {h.lower() for h in hosts}

    def _mac(self, what: str) -> str:
        return hmac.new(self._key, f"{what}:{self.token}".encode(), hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        return self._mac("session")

    @property
    def csrf(self) -> str:
        return self._mac("csrf")

    def host_ok(self, host: str | None) -> bool:
        return bool(host) and host.lower() in self.hosts

    def authenticated(self, request: Request) -> bool:
        return hmac.compare_digest(request.cookies.get(COOKIE, ""), self.session)

    def csrf_ok(self, form_value: str | None) -> bool:
        return bool(form_value) and hmac.compare_digest(str(form_value), self.csrf)


def allowed_hosts(host: str, port: int) -> set[str]:
    names = {host, "localhost", "127.0.0.1", "[::1]"} if host in ("127.0.0.1", "localhost", "::1") else {host}
    return {f"{n}:{port}" for n in names} | ({n for n in names} if port == 80 else set())


class GateMiddleware:
    """Pure ASGI middleware (no buffering of streamed downloads)."""

    def __init__(self, app, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        status_box = {"status": 0}
        static = scope["path"].startswith("/static/")

        async def send_headers(message):
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _v in headers}
                for k, v in HEADERS.items():
                    if k.lower().encode() not in have:
                        headers.append((k.lower().encode(), v.encode()))
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        response = self._refuse(request)
        try:
            if response is not None:
                await response(scope, receive, send_headers)
            else:
                await self.app(scope, receive, send_headers)
        finally:
            access_log.info("%s %s %s", scope["method"], scope["path"], status_box["status"])

    def _refuse(self, request: Request) -> Response | None:
        g = self.gate
        if not g.host_ok(request.headers.get("host")):
            return PlainTextResponse("403: this server answers only to its own address (Host header refused)\n",
                                     status_code=403)
        token = request.query_params.get("token")
        if token is not None:
            if not hmac.compare_digest(token, g.token):
                return PlainTextResponse("401: wrong access token\n", status_code=401)
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = URL(path=request.url.path, query=urlencode(rest))
            resp = RedirectResponse(str(target), status_code=303)
            resp.set_cookie(COOKIE, g.session, httponly=True, samesite="strict", path="/")
            return resp
        if not g.authenticated(request):
            return PlainTextResponse("401: open the address `snapstore serve` printed when it started "
                                     "(it carries the access token)\n", status_code=401)
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc.lower() not in g.hosts:
                return PlainTextResponse("403: cross-origin request refused\n", status_code=403)
        return None
