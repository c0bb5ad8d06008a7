"""A local webhook receiver: what apprise's ``json://127.0.0.1:PORT/path`` and a Healthchecks-style
ping deliver, kept for the tests to read."""

from __future__ import annotations

import http.server
import json
import threading
from contextlib import contextmanager


class Receiver:
    def __init__(self, server: http.server.ThreadingHTTPServer) -> None:
        self.server = server
        self.got: list[tuple[str, bytes]] = []
        self.status = 200

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def notifications(self) -> list[dict]:
        return [json.loads(b) for p, b in self.got if p.startswith("/hook")]

    def pings(self) -> list[str]:
        return [p for p, _b in self.got if p.startswith("/ping")]


@contextmanager
def receiver():
    holder: dict = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            n = int(self.headers.get("Content-Length") or 0)
            rec = holder["r"]
            rec.got.append((self.path, self.rfile.read(n)))
            self.send_response(rec.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST  # noqa: N815

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(srv)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield holder["r"]
    finally:
        srv.shutdown()
        srv.server_close()
