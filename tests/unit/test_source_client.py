"""The source client and its adapter against a tiny scripted HTTP stub (no emulator needed)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from snapstore.source import (
    AirtableSource,
    AttachmentExpired,
    AuthError,
    IteratorExpired,
    RetryPolicy,
    TransientError,
    Unreachable,
    route_of,
)

TOKEN = "patSECRET0123456789.abcdef"
FAST = RetryPolicy(max_retries=3, max_429=3, backoff=0.01, backoff_max=0.05)


class Stub:
    """Scripted responses per path: a list of (status, body) or "drop", consumed in order; the last
    one repeats. Records each request's path and headers."""

    def __init__(self) -> None:
        self.script: dict[str, list] = {}
        self.seen: list[tuple[str, dict]] = []
        stub = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                stub.seen.append((self.path, dict(self.headers)))
                steps = stub.script.get(path) or [(404, {"error": "NOT_FOUND"})]
                step = steps.pop(0) if len(steps) > 1 else steps[0]
                if step == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                status, body = step
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def source(url: str, **kw) -> AirtableSource:
    kw.setdefault("policy", FAST)
    kw.setdefault("penalty", 0.05)
    kw.setdefault("timeout", (2, 5))
    kw.setdefault("rate_base", 500)  # the stub has no limits: a 10 ms window (and cold start)
    kw.setdefault("rate_token", 5000)
    return AirtableSource(TOKEN, url, **kw)


def test_route_classification():
    assert route_of("https://api.airtable.com/v0/meta/whoami") == ("whoami", None)
    assert route_of("https://x/v0/meta/bases?offset=1") == ("list_bases", None)
    assert route_of("https://x/prefix/v0/meta/bases/appA/tables?include=visibleFieldIds") == ("schema", "appA")
    assert route_of("https://x/v0/appA/tblB?pageSize=100") == ("list_records", "appA")
    assert route_of("https://x/v0/appA/My%20Table/listRecords") == ("list_records", "appA")
    assert route_of("https://x/v0/appA/tblB/recC") == ("get_record", "appA")
    assert route_of("https://x/v0/appA/tblB/recC/comments") == ("comments", "appA")
    assert route_of("https://x/__content/abc/file.png") == ("other", None)


def test_records_pages_with_field_ids_and_comment_counts(stub):
    stub.script["/v0/appA/tblT"] = [
        (200, {"records": [{"id": "rec1", "createdTime": "t", "fields": {}}], "offset": "itr1/rec1"}),
        (200, {"records": [{"id": "rec2", "createdTime": "t", "fields": {}}]}),
    ]
    with source(stub.url) as src:
        pages = list(src.iter_pages("appA", "tblT", comment_counts=True))
    assert [[r["id"] for r in p] for p in pages] == [["rec1"], ["rec2"]]
    first, second = stub.seen[0][0], stub.seen[1][0]
    assert "returnFieldsByFieldId=1" in first and "pageSize=100" in first
    assert "recordMetadata%5B%5D=commentCount" in first
    assert "offset=itr1%2Frec1" in second
    assert stub.seen[0][1]["Authorization"] == f"Bearer {TOKEN}"


def test_429_waits_the_penalty_then_succeeds(stub):
    stub.script["/v0/meta/bases/appA/tables"] = [
        (429, {"error": {"type": "RATE_LIMIT_REACHED"}}),
        (200, {"tables": []}),
    ]
    with source(stub.url) as src:
        assert src.schema("appA") == {"tables": []}
        assert src.stats.rate_limited == 1
        assert src.throttle.penalties == {"appA": 1}


def test_persistent_429_becomes_a_clear_transient_error(stub):
    stub.script["/v0/meta/bases/appA/tables"] = [(429, {"error": {"type": "RATE_LIMIT_REACHED"}})]
    with source(stub.url) as src, pytest.raises(TransientError, match="429"):
        src.schema("appA")


def test_5xx_and_dropped_connections_are_retried(stub):
    stub.script["/v0/appA/tblT"] = [
        (503, {"error": {"type": "RETRIABLE_ERROR"}}),
        "drop",
        (500, b"oops"),
        (200, {"records": []}),
    ]
    with source(stub.url) as src:
        assert list(src.iter_pages("appA", "tblT")) == [[]]
        s = src.stats.snapshot()
    assert s["retries"] == 3 and s["network_errors"] == 1
    assert s["requests_by_route"]["list_records"] == 4


def test_5xx_exhausted_gives_transient_error(stub):
    stub.script["/v0/appA/tblT"] = [(502, b"bad gateway")]
    with source(stub.url) as src, pytest.raises(TransientError, match="502"):
        list(src.iter_pages("appA", "tblT"))


def test_expired_iterator_is_surfaced(stub):
    stub.script["/v0/appA/tblT"] = [
        (200, {"records": [], "offset": "itr1/rec1"}),
        (422, {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}),
    ]
    with source(stub.url) as src, pytest.raises(IteratorExpired):
        list(src.iter_pages("appA", "tblT"))


def test_bad_token_gives_one_clear_message_without_the_token(stub):
    stub.script["/v0/meta/whoami"] = [(401, {"error": {"type": "AUTHENTICATION_REQUIRED"}})]
    with source(stub.url) as src, pytest.raises(AuthError) as ei:
        src.preflight()
    assert "the token was rejected (401)" in str(ei.value)
    assert TOKEN not in str(ei.value) and TOKEN not in repr(src)


def test_unreachable_api_fails_fast_in_preflight():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with source(f"http://127.0.0.1:{port}") as src, pytest.raises(Unreachable, match="cannot reach"):
        src.preflight()


def test_attachment_download_has_no_token_and_detects_expiry(stub):
    stub.script["/__content/ok/a.bin"] = [(200, b"x" * 1000)]
    stub.script["/__content/old/a.bin"] = [(410, b"This URL has expired")]
    with source(stub.url) as src:
        with src.open_attachment(stub.url + "/__content/ok/a.bin") as f:
            assert f.read() == b"x" * 1000
        with pytest.raises(AttachmentExpired), src.open_attachment(stub.url + "/__content/old/a.bin"):
            pass
    for path, headers in stub.seen:
        assert "Authorization" not in headers, path
    assert src.stats.total == 0  # downloads do not count against the API
