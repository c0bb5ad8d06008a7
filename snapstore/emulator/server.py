"""The emulator's HTTP server: a threaded stdlib server on 127.0.0.1 speaking the Airtable Web API
(routes of reference/airtable-api.md §12) and its webhooks (webhooks.py), plus signed attachment URLs under
``/__content/`` (content.py) and admin endpoints under ``/__admin/``. Each write route runs as one
``Emulator.action``, so what it changes becomes webhook payloads."""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import json
import math
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from . import formula as fm
from . import ops, schema_ops
from .clock import SystemClock
from .content import ContentSigner, resolve_content_url
from .counters import Counters
from .faults import Faults
from .ratelimit import RateLimiter, latency_sampler
from .state import Base, Record, Table, Workspace, iso_from_epoch
from .values import READ_ONLY_TYPES, WriteError, formula_value, make_context, render_record
from .webhooks import DATA_SCOPES, Webhooks

MAX_URL_LENGTH = 16000
MAX_RECORDS_PER_REQUEST = 10
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_BODY_BYTES = 12 * 1024 * 1024
PAGE_SIZE_MAX = 100
BASES_PAGE = 1000
SCOPES = ["data.records:read", "data.records:write", "data.recordComments:read", "data.recordComments:write",
          "schema.bases:read", "schema.bases:write", "webhook:manage"]
UPSERT_TYPES = frozenset({"number", "singleLineText", "multilineText", "richText", "email", "url", "phoneNumber",
                          "singleSelect", "multipleSelects", "date", "dateTime", "percent", "currency"})

ERR_401 = {"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}}
ERR_403 = {"error": {"type": "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                     "message": "Invalid permissions, or the requested model was not found. Check that both your "
                                "user and your token have the required permissions, and that the model names "
                                "and/or ids are correct."}}
ERR_404 = {"error": "NOT_FOUND"}
ERR_429 = {"error": {"type": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}}
ERR_500 = {"error": {"type": "SERVER_ERROR", "message": "Server error"}}
ERR_502 = {"error": {"type": "BAD_GATEWAY", "message": "Servers are restarting or an unexpected outage is in "
                                                       "progress. The request is safe to retry."}}
ERR_503 = {"error": {"type": "RETRIABLE_ERROR", "message": "Server encountered an error while processing your "
                                                          "request, and it is safe to retry the request"}}
ERR_INVALID = {"error": {"type": "INVALID_REQUEST_UNKNOWN",
                         "message": "Invalid request: parameter validation failed. Check your request data."}}
# routes that can change a base: each is one action, journaled for the webhooks when the base has any
WRITE_ROUTES = frozenset({"create_records", "update_records", "update_record", "delete_records", "delete_record",
                          "upload_attachment", "create_table", "update_table", "create_field", "update_field",
                          "create_comment", "update_comment", "delete_comment"})
#: What the create-field route does with link options other than linkedTableId/viewIdForRecordSelection.
LINK_OPTION_MODES = ("refuse", "accept")
LINK_WRITE_OPTIONS = frozenset({"linkedTableId", "viewIdForRecordSelection"})
FAULT_BODIES = {"500": (500, ERR_500), "502": (502, ERR_502), "503": (503, ERR_503), "429": (429, ERR_429)}

_OFFSET_RE = re.compile(r"^(itr[0-9A-Za-z]{14})/(rec[0-9A-Za-z]{14})$")


class HTTPFail(Exception):
    def __init__(self, status: int, body: Any, headers: dict | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _invalid(message: str | None = None) -> HTTPFail:
    if message is None:
        return HTTPFail(422, ERR_INVALID)
    return HTTPFail(422, {"error": {"type": "INVALID_REQUEST_UNKNOWN", "message": message}})


class _Iterator:
    __slots__ = ("id", "table_id", "ids", "cursor", "last")

    def __init__(self, itr_id: str, table_id: str, ids: list[str], now: float) -> None:
        self.id, self.table_id, self.ids, self.cursor, self.last = itr_id, table_id, ids, 0, now


class Emulator:
    """The Airtable Web API emulator. Use as a context manager, or ``start()``/``stop()``.

    ``token`` is the default token (sees every base); ``tokens`` maps more tokens to the base ids they may
    see (None = all). ``clock`` drives rate limits, penalties, iterator TTL, attachment URL expiry and
    ``latency`` (seconds per request, or a distribution: ratelimit.latency_sampler). Where Airtable is
    silent, switches: ``rate_model`` ("window" or "bucket", with ``burst``), ``link_options``
    ("refuse" or "accept" link options outside the write format), ``modified_by_inverse`` (a link
    change from the other side stamps the record), ``webhook_computed_changes``; ``fetch_urls``:
    download ``{"url"}`` attachments (loopback only, urlfetch.py)."""

    def __init__(self, workspace: Workspace | None = None, token: str | None = None,
                 tokens: dict[str, list[str] | None] | None = None, rate_limit_base: int = 5,
                 rate_limit_token: int = 50, penalty: float = 30.0, clock: Any = None, iterator_ttl: float = 300.0,
                 attachment_ttl: float = 7200.0, rate_limits: bool = True, host: str = "127.0.0.1",
                 port: int = 0, max_iterators: int = 10000, scopes: list[str] | None = None,
                 webhook_computed_changes: bool = False, link_options: str = "refuse",
                 latency: Any = None, rate_model: str = "window", burst: int | None = None,
                 fetch_urls: bool = True, modified_by_inverse: bool = True) -> None:
        if workspace is None:
            from .generate import generate_workspace

            workspace = generate_workspace(seed=0, bases=1, tables_per_base=2, records_per_table=50)
        self.workspace = workspace
        self.token = token or "pat" + secrets.token_hex(7) + "." + secrets.token_hex(32)
        self.grants: dict[str, set[str] | None] = {self.token: None}
        self.scopes: dict[str, set[str]] = {} if scopes is None else {self.token: set(scopes)}  # absent: all
        for tok, bases in (tokens or {}).items():
            self.grants[tok] = None if bases is None else set(bases)
        self.clock = clock or SystemClock()
        self.iterator_ttl = float(iterator_ttl)
        self.attachment_ttl = float(attachment_ttl)
        if link_options not in LINK_OPTION_MODES:
            raise ValueError(f"link_options must be one of {', '.join(LINK_OPTION_MODES)}")
        #: "refuse" (Airtable's documented create route takes only linkedTableId and
        #: viewIdForRecordSelection: anything else is a 422) or "accept" (keep prefersSingleRecordLink)
        self.link_options = link_options
        self.limiter = RateLimiter(self.clock, rate_limit_base, rate_limit_token, penalty, rate_limits,
                                   model=rate_model, burst=burst)
        self.latency = latency_sampler(latency)
        self.latency_total = 0.0  # clock seconds of latency added so far (bench figures)
        self.workspace.fetch_urls = bool(fetch_urls)
        self.workspace.modified_by_inverse = bool(modified_by_inverse)
        self.counters = Counters()
        self.faults = Faults()
        self.lock = threading.RLock()
        self.host, self._port = host, port
        self.max_iterators = max_iterators
        self._iterators: dict[str, _Iterator] = {}
        self._itr_seq = itertools.count(1)
        self.webhooks = Webhooks(self.clock, lambda prefix: self.workspace.new_id(prefix),
                                 report_computed=webhook_computed_changes)
        self.content = ContentSigner(lambda: self.url, self.clock, attachment_ttl, lambda: self.workspace, self.lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        if self._server is not None:
            return self
        handler = type("Handler", (_Handler,), {"emu": self})
        self._server = _Server((self.host, self._port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="airtable-emulator",
                                        daemon=True)
        self._thread.start()
        self.content.register()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.close_all()
        self._server = None
        self.content.unregister()

    def serve_forever(self) -> None:
        """Block until interrupted (the CLI)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ controls
    def expire_iterators(self) -> int:
        """Every open offset iterator now answers 422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE."""
        with self.lock:
            n = len(self._iterators)
            self._iterators.clear()
            return n

    def churn(self, **kwargs: Any) -> dict:
        """Simulated work in the UI (see churn.py); every change it makes is in the webhook payloads."""
        from .churn import churn

        with self.lock, self.action([b.id for b in self.workspace.bases], source="client"):
            return churn(self.workspace, **kwargs)

    def add_token(self, token: str, bases: list[str] | None = None, scopes: list[str] | None = None) -> None:
        """A token that sees ``bases`` (None = all) with ``scopes`` (None = all of SCOPES); a token without
        "webhook:manage" gets 403 on every webhook route."""
        self.grants[token] = None if bases is None else set(bases)
        if scopes is None:
            self.scopes.pop(token, None)
        else:
            self.scopes[token] = set(scopes)

    def token_scopes(self, token: str) -> list[str]:
        granted = self.scopes.get(token)
        return list(SCOPES) if granted is None else [s for s in SCOPES if s in granted]

    @contextlib.contextmanager
    def action(self, base_ids: list[str], source: str = "publicApi", user: dict | None = None) -> Iterator[None]:
        """One user action on ``base_ids``: whatever it writes becomes one webhook transaction per base
        (several payloads when large). Nests: an inner action joins the outer one."""
        ws = self.workspace
        if ws.journal is not None:
            yield
            return
        journal = self.webhooks.begin(ws, base_ids)
        ws.journal = journal
        try:
            yield
        finally:
            ws.journal = None
            if journal is not None:
                self.webhooks.record(ws, journal, source, user or ws.default_user)

    def _schema_target(self, base_id: str, table_id: str, field_id: str | None = None) -> tuple[Base, Table, Any]:
        base = self.workspace.base(base_id)
        table = base.table(table_id) if base is not None else None
        if table is None:
            raise KeyError(f"no table {table_id} in base {base_id}")
        field = None
        if field_id is not None:
            field = table.field(field_id)
            if field is None:
                raise KeyError(f"no field {field_id} in table {table.id}")
        return base, table, field

    def delete_field(self, base_id: str, table_id: str, field_id: str) -> list[str]:
        """Delete a field as the UI does (Airtable's Web API cannot); returns the deleted field ids."""
        with self.lock, self.action([base_id], source="client"):
            base, table, field = self._schema_target(base_id, table_id, field_id)
            return schema_ops.delete_field(self.workspace, base, table, field)

    def delete_table(self, base_id: str, table_id: str) -> None:
        """Delete a table as the UI does (Airtable's Web API cannot)."""
        with self.lock, self.action([base_id], source="client"):
            base, table, _f = self._schema_target(base_id, table_id)
            schema_ops.delete_table(self.workspace, base, table)

    def change_field_type(self, base_id: str, table_id: str, field_id: str, type: str,  # noqa: A002
                          options: dict | None = None) -> dict:
        """Change a field's type as the UI does (the Web API cannot); cells are converted."""
        with self.lock, self.action([base_id], source="client"):
            base, table, field = self._schema_target(base_id, table_id, field_id)
            return schema_ops.change_field_type(self.workspace, base, table, field, type, options)

    # ------------------------------------------------------------------ attachments (content.py)
    def content_url(self, att_id: str, variant: str, filename: str) -> str:
        return self.content.content_url(att_id, variant, filename)

    def sign_attachment(self, att_id: str, cell: dict) -> dict:
        """The attachment object as the API returns it: fresh signed url (and thumbnails)."""
        return self.content.sign_attachment(att_id, cell)

    # ------------------------------------------------------------------ helpers
    def wait(self, seconds: float) -> None:
        """``seconds`` of the emulator's clock pass (a manual clock moves; a real one is slept)."""
        self.latency_total += seconds
        sleep = getattr(self.clock, "sleep", None)
        (sleep or time.sleep)(seconds)

    def now_iso(self) -> str:
        return iso_from_epoch(math.floor(self.clock.now()))

    def visible_bases(self, token: str) -> list[Base]:
        grant = self.grants.get(token)
        return [b for b in self.workspace.bases if grant is None or b.id in grant]

    def base_for(self, token: str, base_id: str) -> Base:
        grant = self.grants.get(token)
        base = self.workspace.base(base_id)
        if base is None or (grant is not None and base_id not in grant):
            raise HTTPFail(403, ERR_403)
        return base

    @staticmethod
    def table_for(base: Base, id_or_name: str) -> Table:
        t = base.table(id_or_name)
        if t is None:
            raise HTTPFail(403, ERR_403)
        return t

    @staticmethod
    def record_for(table: Table, rec_id: str) -> Record:
        r = table.records.get(rec_id)
        if r is None:
            raise HTTPFail(404, {"error": {"type": "MODEL_ID_NOT_FOUND", "message": "Record not found"}})
        return r

    # ------------------------------------------------------------------ list records
    def list_records(self, base: Base, table: Table, o: dict) -> dict:
        page_size = o["pageSize"]
        if page_size is None:
            page_size = PAGE_SIZE_MAX
        if not isinstance(page_size, int) or not 1 <= page_size <= PAGE_SIZE_MAX:
            raise _invalid()
        only = self._fields_param(table, o["fields"])
        by_id = o["returnFieldsByFieldId"]
        cell_format = o["cellFormat"] or "json"
        if cell_format not in ("json", "string"):
            raise _invalid()
        if cell_format == "string" and not (o["timeZone"] and o["userLocale"]):
            raise _invalid("The cellFormat string requires timeZone and userLocale")
        now = self.clock.now()
        offset = o["offset"]
        if offset:
            m = _OFFSET_RE.match(offset) if isinstance(offset, str) else None
            if m is None:
                raise HTTPFail(422, {"error": {"type": "INVALID_OFFSET_VALUE",
                                               "message": f"The value of offset {offset} is invalid"}})
            it = self._iterators.get(m.group(1))
            if it is None or it.table_id != table.id or now - it.last > self.iterator_ttl:
                self._iterators.pop(m.group(1), None)
                raise HTTPFail(422, {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}})
            ids, start = it.ids, it.cursor
            if start >= len(ids) or ids[start] != m.group(2):
                try:
                    start = ids.index(m.group(2))
                except ValueError:
                    raise HTTPFail(422, {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}) from None
            it.last = now
        else:
            it = None
            ids, start = self._ordered_ids(base, table, o), 0
        recs = table.records
        page: list[dict] = []
        i = start
        sign = self.sign_attachment
        count = o["commentCount"]
        while i < len(ids) and len(page) < page_size:
            r = recs.get(ids[i])
            i += 1
            if r is not None:
                page.append(render_record(table, r, by_id=by_id, only=only, sign=sign, comment_count=count,
                                          cell_format=cell_format, base=base))
        while i < len(ids) and ids[i] not in recs:
            i += 1
        out: dict[str, Any] = {"records": page}
        if i < len(ids):
            if it is None:
                it = _Iterator(self._new_itr_id(), table.id, ids, now)
                self._iterators[it.id] = it
                while len(self._iterators) > self.max_iterators:
                    self._iterators.pop(next(iter(self._iterators)))
            it.cursor = i
            out["offset"] = f"{it.id}/{ids[i]}"
        elif it is not None:
            it.cursor = i
        return out

    def _new_itr_id(self) -> str:
        from .ids import derived_id

        return derived_id("itr", id(self), next(self._itr_seq), time.time())

    @staticmethod
    def _fields_param(table: Table, names: list | None) -> set[str] | None:
        if names is None:
            return None
        only = set()
        for n in names:
            f = table.field(n) if isinstance(n, str) else None
            if f is None:
                raise HTTPFail(422, {"error": {"type": "UNKNOWN_FIELD_NAME", "message": f'Unknown field name: "{n}"'}})
            only.add(f["id"])
        return only

    def _ordered_ids(self, base: Base, table: Table, o: dict) -> list[str]:
        ws = self.workspace
        if o["view"]:
            if table.view(o["view"]) is None:
                raise HTTPFail(422, {"error": {"type": "VIEW_NAME_NOT_FOUND",
                                               "message": f'Could not find view "{o["view"]}" in table'}})
        recs = list(table.records.values())
        formula = o["filterByFormula"]
        ids = _record_id_set(formula) if formula else None
        if ids is not None:  # OR(RECORD_ID()='rec…', …): what the change feed's re-reads send; a set lookup
            recs, formula = [r for r in recs if r.id in ids], None  # instead of 100 comparisons per record
        if formula:
            try:
                ast = fm.parse(formula)
            except fm.FormulaSyntaxError as e:
                raise HTTPFail(422, {"error": {"type": "INVALID_FILTER_BY_FORMULA",
                                               "message": f"The formula for filtering records is invalid: {e}"}}) \
                    from None
            unknown = [r for r in fm.field_refs(ast) if table.field(r) is None]
            if unknown:
                raise HTTPFail(422, {"error": {"type": "INVALID_FILTER_BY_FORMULA",
                                               "message": "The formula for filtering records is invalid: Unknown "
                                                          f"field names: {', '.join(unknown)}"}})
            now = self.clock.now()
            kept = []
            for r in recs:
                try:
                    v = fm.evaluate(ast, make_context(ws, base, table, r, now))
                except (TypeError, ValueError, OverflowError, KeyError):
                    v = fm.ERROR
                if fm.truthy(v):
                    kept.append(r)
            recs = kept
        sort = o["sort"]
        if sort:
            for spec in reversed(sort):
                f = table.field(spec["field"]) if isinstance(spec.get("field"), str) else None
                if f is None:
                    raise HTTPFail(422, {"error": {"type": "UNKNOWN_FIELD_NAME",
                                                   "message": f'Unknown field name: "{spec.get("field")}"'}})
                direction = spec.get("direction") or "asc"
                if direction not in ("asc", "desc"):
                    raise _invalid()
                recs.sort(key=lambda r, f=f: _sort_key(ws, base, table, f, r.cells.get(f["id"])),
                          reverse=direction == "desc")
        ids = [r.id for r in recs]
        mr = o["maxRecords"]
        if mr is not None:
            if not isinstance(mr, int) or mr < 0:
                raise _invalid()
            ids = ids[:mr]
        return ids

    # ------------------------------------------------------------------ writes
    def write_response(self, table: Table, rec: Record, by_id: bool) -> dict:
        return render_record(table, rec, by_id=by_id, only=None, sign=self.sign_attachment)


def _sort_key(ws: Workspace, base: Base, table: Table, field: dict, cell: Any) -> tuple:
    v = formula_value(ws, base, table, field, cell)
    if isinstance(v, list):
        v = ", ".join(fm.to_text(x) for x in v if x is not fm.ERROR)
    if v is None or v == "" or v is fm.ERROR:
        return (0, 0, "")
    if isinstance(v, bool):
        return (1, 0, int(v))
    if isinstance(v, (int, float)):
        return (1, 0, -math.inf if isinstance(v, float) and math.isnan(v) else v)
    return (1, 1, fm.to_text(v).casefold())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *a: Any, **kw: Any) -> None:
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        super().__init__(*a, **kw)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (killed, timed out) is routine for a server, as it is
        for Airtable's: one quiet line at most, never socketserver's traceback per connection."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | BrokenPipeError):
            return
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ====================================================================== request handling


def _qbool(values: list[str] | None, default: bool = False) -> bool:
    if not values:
        return default
    v = values[-1].strip().lower()
    if v in ("1", "true"):
        return True
    if v in ("0", "false", ""):
        return False
    raise _invalid()


def _qint(values: list[str] | None) -> int | None:
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError:
        raise _invalid() from None


def _list_options_from_query(q: dict[str, list[str]]) -> dict:
    sort: dict[int, dict] = {}
    for k, vals in q.items():
        m = re.fullmatch(r"sort\[(\d+)\]\[(field|direction)\]", k)
        if m:
            sort.setdefault(int(m.group(1)), {})[m.group(2)] = vals[-1]
    fields = q.get("fields[]") or q.get("fields")
    meta = q.get("recordMetadata[]") or q.get("recordMetadata") or []
    return {
        "pageSize": _qint(q.get("pageSize")), "maxRecords": _qint(q.get("maxRecords")),
        "offset": (q.get("offset") or [None])[-1], "view": (q.get("view") or [None])[-1],
        "sort": [sort[i] for i in sorted(sort)], "filterByFormula": (q.get("filterByFormula") or [None])[-1],
        "fields": fields, "returnFieldsByFieldId": _qbool(q.get("returnFieldsByFieldId")),
        "commentCount": "commentCount" in meta, "cellFormat": (q.get("cellFormat") or [None])[-1],
        "timeZone": (q.get("timeZone") or [None])[-1], "userLocale": (q.get("userLocale") or [None])[-1],
    }


def _list_options_from_body(body: Any, q: dict[str, list[str]]) -> dict:
    if not isinstance(body, dict):
        raise _invalid()
    known = {"pageSize", "maxRecords", "offset", "view", "sort", "filterByFormula", "fields", "returnFieldsByFieldId",
             "recordMetadata", "cellFormat", "timeZone", "userLocale", "includeDateDependencyMetadata"}
    if set(body) - known:
        raise _invalid()
    sort = body.get("sort") or []
    fields = body.get("fields")
    if not isinstance(sort, list) or (fields is not None and not isinstance(fields, list)):
        raise _invalid()
    rfbi = body.get("returnFieldsByFieldId", False)
    return {
        "pageSize": body.get("pageSize"), "maxRecords": body.get("maxRecords"), "offset": body.get("offset"),
        "view": body.get("view"), "sort": sort, "filterByFormula": body.get("filterByFormula"), "fields": fields,
        "returnFieldsByFieldId": rfbi in (True, 1, "1", "true"),
        "commentCount": "commentCount" in (body.get("recordMetadata") or []),
        "cellFormat": body.get("cellFormat"),
        "timeZone": (q.get("timeZone") or [body.get("timeZone")])[-1],
        "userLocale": (q.get("userLocale") or [body.get("userLocale")])[-1],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AirtableEmulator/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall
    emu: Emulator

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing
    def _send(self, status: int, body: bytes, content_type: str = "application/json; charset=utf-8",
              headers: dict | None = None, count: tuple | None = None) -> int:
        if count is not None:  # count before the client can see the response (tests read counters right after)
            self.emu.counters.record(count[0], count[1], status, len(body))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        return len(body)

    def _send_json(self, status: int, obj: Any, headers: dict | None = None, count: tuple | None = None) -> int:
        return self._send(status, orjson.dumps(obj), headers=headers, count=count)

    def _handle(self, method: str) -> None:
        emu = self.emu
        raw = self.path
        path, _, query = raw.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(413, {"error": {"type": "REQUEST_TOO_LARGE",
                                            "message": "Request exceeded the maximum allowed payload size"}})
            return
        body_bytes = self.rfile.read(length) if length else b""
        segs = [urllib.parse.unquote(s) for s in path.split("/")[1:]]
        if segs and segs[-1] == "":
            segs.pop()
        if segs and segs[0] == "__content":
            status, data, ctype = emu.content.serve(segs[1] if len(segs) > 1 else "")
            self._send(status, data, ctype, count=("content", None))
            return
        if segs and segs[0] == "__admin":
            self._admin(method, segs[1:], query, body_bytes)
            return
        if "v0" in segs and segs[0] != "v0":
            segs = segs[segs.index("v0"):]
        route, base_id, handler = _route(method, segs)
        counted = (route, base_id)
        try:
            host = self.headers.get("Host") or f"{emu.host}:{emu.port}"
            if len(f"http://{host}{raw}") >= MAX_URL_LENGTH:
                raise HTTPFail(414, {"error": {"type": "URI_TOO_LONG",
                                               "message": "The request URL is too long (16,000 characters max)"}})
            fault = emu.faults.pick(route, base_id) if route != "not_found" else None
            if fault is not None:
                if fault.kind == "drop":
                    emu.counters.record(route, base_id, None, 0)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if fault.kind == "slow":
                    time.sleep(fault.delay)
                else:
                    st, b = FAULT_BODIES[fault.kind]
                    raise HTTPFail(st, b)
            if handler is None:
                raise HTTPFail(404, ERR_404)
            if emu.latency is not None:  # the service's round trip, on the emulator's clock
                emu.wait(emu.latency())
            auth = self.headers.get("Authorization") or ""
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            if token is None or token not in emu.grants:
                raise HTTPFail(401, ERR_401)
            hit = emu.limiter.check(token, base_id)
            if hit is not None:
                raise HTTPFail(429, ERR_429)
            q = urllib.parse.parse_qs(query, keep_blank_values=True)
            body: Any = None
            if body_bytes.strip():
                try:
                    body = json.loads(body_bytes)
                except ValueError:
                    raise HTTPFail(400, {"error": {"type": "INVALID_REQUEST_BODY",
                                                   "message": "Could not parse the request body as JSON"}}) from None
            req = _Req(method, segs, q, body, token, base_id)
            with emu.lock:
                if method != "GET" and base_id and route in WRITE_ROUTES:
                    with emu.action([base_id], user=req.user(emu)):
                        status, obj = handler(emu, req)
                else:
                    status, obj = handler(emu, req)
            self._send_json(status, obj, count=counted)
        except HTTPFail as e:
            self._send_json(e.status, e.body, e.headers, count=counted)
        except WriteError as e:
            self._send_json(e.status, e.body(), count=counted)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - the server must answer
            traceback.print_exc(file=sys.stderr)
            self._send_json(500, ERR_500, count=counted)

    def _admin(self, method: str, segs: list[str], query: str, body_bytes: bytes) -> None:
        emu = self.emu
        if self.client_address[0] not in ("127.0.0.1", "::1", "localhost"):
            self._send_json(403, {"error": "admin endpoints are loopback-only"})
            return
        try:
            body = json.loads(body_bytes) if body_bytes.strip() else {}
            name = "/".join(segs)
            if name == "counters" and method == "GET":
                out: Any = emu.counters.snapshot()
            elif name in ("counters/reset",) and method == "POST" or name == "counters" and method == "DELETE":
                emu.counters.reset()
                out = {"reset": True}
            elif name == "churn" and method == "POST":
                out = emu.churn(**body)
            elif name == "faults" and method == "GET":
                out = {"faults": emu.faults.snapshot()}
            elif name == "faults" and method == "POST":
                out = emu.faults.add(**body).to_dict()
            elif name == "faults" and method == "DELETE":
                emu.faults.clear()
                out = {"cleared": True}
            elif name == "expire-iterators" and method == "POST":
                out = {"expired": emu.expire_iterators()}
            elif name == "clock/advance" and method == "POST":
                if not hasattr(emu.clock, "advance"):
                    raise ValueError("this clock cannot be advanced")
                emu.clock.advance(float(body.get("seconds", 0)))
                out = {"now": emu.clock.now()}
            elif name == "save" and method == "POST":
                with emu.lock:
                    out = {"path": emu.workspace.save(body["path"])}
            elif name == "workspace" and method == "GET":
                with emu.lock:
                    out = {"seed": emu.workspace.seed, "bases": [
                        {"id": b.id, "name": b.name,
                         "tables": [{"id": t.id, "name": t.name, "records": len(t.records)} for t in b.tables]}
                        for b in emu.workspace.bases]}
            elif segs and segs[0] in ("webhooks", "schema"):
                out = _admin_feed(emu, method, segs, body)
                if out is None:
                    self._send_json(404, ERR_404)
                    return
            else:
                self._send_json(404, ERR_404)
                return
            self._send_json(200, out)
        except WriteError as e:
            self._send_json(e.status, e.body())
        except (TypeError, ValueError, KeyError) as e:
            self._send_json(400, {"error": {"type": "INVALID_ADMIN_REQUEST", "message": str(e)}})


_RECORD_ID_OR = re.compile(r"OR\((RECORD_ID\(\)='rec[A-Za-z0-9]{14}'(,RECORD_ID\(\)='rec[A-Za-z0-9]{14}')*)\)")


def _record_id_set(formula: str) -> set[str] | None:
    """The ids of a formula that is exactly ``OR(RECORD_ID()='rec…',…)``, else None (evaluate it)."""
    m = _RECORD_ID_OR.fullmatch(formula)
    return None if m is None else set(re.findall(r"rec[A-Za-z0-9]{14}", m.group(1)))


def _admin_feed(emu: Emulator, method: str, segs: list[str], body: dict) -> Any:
    """Admin endpoints of the change feed (None: no such endpoint):

    GET/POST ``webhooks/report-computed`` ({"value": bool}); GET ``webhooks/{base}``;
    POST ``webhooks/{base}/{hook}/inject-error`` ({"code", "disable"}), ``.../disable``, ``.../expire``;
    DELETE ``webhooks/{base}/{hook}``; POST ``schema/delete-field`` ({"base","table","field"}),
    ``schema/delete-table`` ({"base","table"}), ``schema/change-field-type`` ({"base","table","field","type",
    "options"}): the schema changes Airtable's Web API does not offer."""
    hooks, n = emu.webhooks, len(segs)
    if segs[0] == "schema" and n == 2 and method == "POST":
        if segs[1] == "delete-field":
            return {"deleted": emu.delete_field(body["base"], body["table"], body["field"])}
        if segs[1] == "delete-table":
            emu.delete_table(body["base"], body["table"])
            return {"deleted": body["table"]}
        if segs[1] == "change-field-type":
            return emu.change_field_type(body["base"], body["table"], body["field"], body["type"],
                                         body.get("options"))
        return None
    if segs[0] != "webhooks" or n < 2:
        return None
    with emu.lock:
        if n == 2 and segs[1] == "report-computed":
            if method == "POST":
                hooks.report_computed = bool(body["value"])
            return {"value": hooks.report_computed}
        if n == 2 and method == "GET":
            return {"webhooks": hooks.hooks(segs[1])}
        if n == 3 and method == "DELETE":
            return hooks.delete(segs[1], segs[2])
        if n == 4 and method == "POST":
            if segs[3] == "inject-error":
                return hooks.inject_error(segs[1], segs[2], body.get("code", "INTERNAL_ERROR"),
                                          bool(body.get("disable", False)))
            if segs[3] == "disable":
                hooks.disable(segs[1], segs[2])
                return {"disabled": segs[2]}
            if segs[3] == "expire":
                hooks.expire(segs[1], segs[2])
                return {"expired": segs[2]}
    return None


class _Req:
    __slots__ = ("method", "segs", "q", "body", "token", "base_id")

    def __init__(self, method: str, segs: list[str], q: dict, body: Any, token: str, base_id: str | None) -> None:
        self.method, self.segs, self.q, self.body, self.token, self.base_id = method, segs, q, body, token, base_id

    def user(self, emu: Emulator) -> dict:
        return emu.workspace.default_user

    def flag(self, key: str) -> bool:
        v = (self.body or {}).get(key, False) if isinstance(self.body, dict) else False
        return v in (True, 1, "1", "true")


# ====================================================================== routes


def _route(method: str, s: list[str]) -> tuple[str, str | None, Any]:
    n = len(s)
    if n < 2 or s[0] != "v0":
        return "not_found", None, None
    if s[1] == "meta":
        if n == 3 and s[2] == "whoami":
            return "whoami", None, _whoami if method == "GET" else None
        if n >= 3 and s[2] == "bases":
            if n == 3:
                return {"GET": ("list_bases", None, _list_bases),
                        "POST": ("create_base", None, _create_base)}.get(method, ("not_found", None, None))
            b = s[3]
            if n == 4:
                return "base_collaborators", b, _base_collaborators if method == "GET" else None
            if n == 5 and s[4] == "tables":
                return {"GET": ("get_schema", b, _get_schema),
                        "POST": ("create_table", b, _create_table)}.get(method, ("not_found", b, None))
            if n == 6 and s[4] == "tables":
                return "update_table", b, _update_table if method == "PATCH" else None
            if n == 7 and s[4] == "tables" and s[6] == "fields":
                return "create_field", b, _create_field if method == "POST" else None
            if n == 8 and s[4] == "tables" and s[6] == "fields":
                return "update_field", b, _update_field if method == "PATCH" else None
        return "not_found", None, None
    if s[1] == "bases" and n >= 4 and s[3] == "webhooks":
        return _webhook_route(method, s)
    b = s[1]
    if n == 3:
        m = {"GET": ("list_records", _list_records_get), "POST": ("create_records", _create_records),
             "PATCH": ("update_records", _update_records), "PUT": ("update_records", _update_records),
             "DELETE": ("delete_records", _delete_records)}.get(method)
        return (m[0], b, m[1]) if m else ("not_found", b, None)
    if n == 4 and s[3] == "listRecords" and method == "POST":
        return "list_records", b, _list_records_post
    if n == 4:
        m = {"GET": ("get_record", _get_record), "PATCH": ("update_record", _update_record),
             "PUT": ("update_record", _update_record), "DELETE": ("delete_record", _delete_record)}.get(method)
        return (m[0], b, m[1]) if m else ("not_found", b, None)
    if n == 5 and s[4] == "uploadAttachment":
        return "upload_attachment", b, _upload_attachment if method == "POST" else None
    if n == 5 and s[4] == "comments":
        m = {"GET": ("list_comments", _list_comments), "POST": ("create_comment", _create_comment)}.get(method)
        return (m[0], b, m[1]) if m else ("not_found", b, None)
    if n == 6 and s[4] == "comments":
        m = {"PATCH": ("update_comment", _update_comment), "DELETE": ("delete_comment", _delete_comment)}.get(method)
        return (m[0], b, m[1]) if m else ("not_found", b, None)
    return "not_found", None, None


def _whoami(emu: Emulator, req: _Req) -> tuple[int, Any]:
    return 200, {"id": req.user(emu)["id"], "scopes": emu.token_scopes(req.token)}


def _list_bases(emu: Emulator, req: _Req) -> tuple[int, Any]:
    bases = emu.visible_bases(req.token)
    start = 0
    off = (req.q.get("offset") or [None])[-1]
    if off:
        m = re.fullmatch(r"itr[0-9A-Za-z]{14}/(app[0-9A-Za-z]{14})", off)
        ids = [b.id for b in bases]
        if m is None or m.group(1) not in ids:
            raise HTTPFail(422, {"error": {"type": "INVALID_OFFSET_VALUE", "message": f"The value of offset {off} is invalid"}})
        start = ids.index(m.group(1))
    page = bases[start:start + BASES_PAGE]
    out: dict[str, Any] = {"bases": [{"id": b.id, "name": b.name, "permissionLevel": b.permission_level}
                                     for b in page]}
    if start + BASES_PAGE < len(bases):
        from .ids import derived_id

        out["offset"] = f"{derived_id('itr', 'bases', req.token)}/{bases[start + BASES_PAGE].id}"
    return 200, out


def _create_base(emu: Emulator, req: _Req) -> tuple[int, Any]:
    body = req.body
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
        raise _invalid("A base needs a name")
    if not isinstance(body.get("workspaceId"), str) or not body["workspaceId"].startswith("wsp"):
        raise _invalid("A base needs a workspaceId")
    if body["workspaceId"] != emu.workspace.workspace_id:  # another workspace: not visible to this token
        raise HTTPFail(403, ERR_403)
    tables = body.get("tables")
    if not isinstance(tables, list) or not tables:
        raise _invalid("A base needs at least one table")
    for t in tables:
        _check_link_options(emu, t.get("fields") if isinstance(t, dict) else None)
    ws = emu.workspace
    base = Base(ws.new_id("app"), body["name"], "create", emu.now_iso())
    for t in tables:  # validate on a detached base, then attach
        schema_ops.create_table(ws, base, t)
    ws.bases.append(base)
    grant = emu.grants.get(req.token)
    if grant is not None:
        grant.add(base.id)
    return 200, {"id": base.id, "tables": [schema_ops.table_response(t) for t in base.tables]}


def _base_collaborators(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    ws = emu.workspace
    owner = ws.default_user
    return 200, {
        "id": base.id, "name": base.name, "createdTime": base.created_time, "permissionLevel": base.permission_level,
        "workspaceId": ws.workspace_id, "interfaces": {},
        "groupCollaborators": {"baseCollaborators": [], "workspaceCollaborators": []},
        "individualCollaborators": {
            "baseCollaborators": [],
            "workspaceCollaborators": [{"createdTime": base.created_time, "grantedByUserId": owner["id"],
                                        "userId": u["id"], "email": u["email"],
                                        "permissionLevel": "owner" if u is owner else "create"} for u in ws.users]},
        "inviteLinks": {"baseInviteLinks": [], "workspaceInviteLinks": []},
    }


def _get_schema(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    inc = (req.q.get("include") or []) + (req.q.get("include[]") or [])
    return 200, base.schema_json(include_visible_field_ids="visibleFieldIds" in inc)


def _check_link_options(emu: Emulator, fields: Any) -> None:
    """In "refuse" mode, a link field created with an option the write format does not list
    (reference: "write accepts only linkedTableId, viewIdForRecordSelection") is a 422 naming it."""
    if emu.link_options != "refuse" or not isinstance(fields, list):
        return
    for f in fields:
        if not isinstance(f, dict) or f.get("type") != "multipleRecordLinks" or not isinstance(f.get("options"), dict):
            continue
        extra = sorted(set(f["options"]) - LINK_WRITE_OPTIONS)
        if extra:
            raise HTTPFail(422, {"error": {"type": "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE",
                                           "message": f'Field "{f.get("name")}": the options {", ".join(extra)} '
                                                      "cannot be set when a link field is created"}})


def _create_table(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    _check_link_options(emu, req.body.get("fields") if isinstance(req.body, dict) else None)
    table = schema_ops.create_table(emu.workspace, base, req.body)
    return 200, schema_ops.table_response(table)


def _update_table(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[5])
    schema_ops.update_table(base, table, req.body)
    return 200, schema_ops.table_response(table)


def _create_field(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    _check_link_options(emu, [req.body])
    table = emu.table_for(base, req.segs[5])
    return 200, schema_ops.create_field(emu.workspace, base, table, req.body)


def _update_field(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[5])
    field = table.fields_by_id.get(req.segs[7])
    if field is None:
        raise HTTPFail(404, {"error": {"type": "NOT_FOUND", "message": "Field not found"}})
    return 200, schema_ops.update_field(emu.workspace, table, field, req.body)


def _webhook_route(method: str, s: list[str]) -> tuple[str, str | None, Any]:
    n, b = len(s), s[2]
    if n == 4:
        return {"GET": ("webhook_list", b, _webhook_list),
                "POST": ("webhook_create", b, _webhook_create)}.get(method, ("not_found", b, None))
    if n == 5:
        return "webhook_delete", b, _webhook_delete if method == "DELETE" else None
    if n == 6:
        m = {("GET", "payloads"): ("webhook_payloads", _webhook_payloads),
             ("POST", "refresh"): ("webhook_refresh", _webhook_refresh),
             ("POST", "enableNotifications"): ("webhook_notifications", _webhook_notifications)}.get((method, s[5]))
        return (m[0], b, m[1]) if m else ("not_found", b, None)
    return "not_found", b, None


def _webhook_base(emu: Emulator, req: _Req, data_types: Any = (), creator: bool = False) -> Base:
    """The base of a webhook route, after the checks of reference §1.1: scope webhook:manage (and the
    read scopes the data types need), the creator role for create and refresh."""
    base = emu.base_for(req.token, req.base_id)
    granted = emu.token_scopes(req.token)
    need = {"webhook:manage"} | {DATA_SCOPES[t] for t in data_types if t in DATA_SCOPES}
    if not need <= set(granted) or (creator and base.permission_level != "create"):
        raise HTTPFail(403, ERR_403)
    return base


def _hook_types(emu: Emulator, req: _Req) -> list[str]:
    for h in emu.webhooks.hooks(req.base_id):
        if h["id"] == req.segs[4]:
            return h["specification"]["options"]["filters"]["dataTypes"]
    return []


def _webhook_list(emu: Emulator, req: _Req) -> tuple[int, Any]:
    _webhook_base(emu, req)
    return 200, {"webhooks": emu.webhooks.hooks(req.base_id)}


def _webhook_create(emu: Emulator, req: _Req) -> tuple[int, Any]:
    spec = req.body.get("specification") if isinstance(req.body, dict) else None
    types = (((spec or {}).get("options") or {}).get("filters") or {}).get("dataTypes") if isinstance(spec, dict) \
        else None
    _webhook_base(emu, req, types if isinstance(types, list) else (), creator=True)
    return 200, emu.webhooks.create(req.base_id, req.body)


def _webhook_payloads(emu: Emulator, req: _Req) -> tuple[int, Any]:
    _webhook_base(emu, req, _hook_types(emu, req))
    cursor = _qint(req.q.get("cursor"))
    return 200, emu.webhooks.payloads(req.base_id, req.segs[4], 1 if cursor is None else cursor,
                                      _qint(req.q.get("limit")))


def _webhook_refresh(emu: Emulator, req: _Req) -> tuple[int, Any]:
    _webhook_base(emu, req, creator=True)
    return 200, emu.webhooks.refresh(req.base_id, req.segs[4])


def _webhook_delete(emu: Emulator, req: _Req) -> tuple[int, Any]:
    _webhook_base(emu, req)
    return 200, emu.webhooks.delete(req.base_id, req.segs[4])


def _webhook_notifications(emu: Emulator, req: _Req) -> tuple[int, Any]:
    _webhook_base(emu, req)
    return 200, emu.webhooks.enable_notifications(req.base_id, req.segs[4], req.body)


def _list_records_get(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[2])
    return 200, emu.list_records(base, table, _list_options_from_query(req.q))


def _list_records_post(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[2])
    return 200, emu.list_records(base, table, _list_options_from_body(req.body or {}, req.q))


def _get_record(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[2])
    rec = emu.record_for(table, req.segs[3])
    cell_format = (req.q.get("cellFormat") or ["json"])[-1]
    return 200, render_record(table, rec, by_id=_qbool(req.q.get("returnFieldsByFieldId")), only=None,
                              sign=emu.sign_attachment, cell_format=cell_format, base=base)


def _records_body(req: _Req, *, with_id: bool) -> list:
    body = req.body
    recs = body.get("records") if isinstance(body, dict) else None
    if not isinstance(recs, list) or not recs or len(recs) > MAX_RECORDS_PER_REQUEST:
        if with_id:
            msg = ("You must provide an array of up to 10 record objects, each with an \"id\" ID field and a "
                   "\"fields\" object for cell values.")
        elif isinstance(recs, list) and len(recs) > MAX_RECORDS_PER_REQUEST:
            msg = (f"A maximum of {MAX_RECORDS_PER_REQUEST} records can be created per request but you have "
                   f"provided {len(recs)}.")
        else:
            msg = "You must provide an array of up to 10 record objects, each with a \"fields\" object."
        raise HTTPFail(422, {"error": {"type": "INVALID_RECORDS", "message": msg}})
    for r in recs:
        if not isinstance(r, dict) or not isinstance(r.get("fields", {}), dict):
            raise HTTPFail(422, {"error": {"type": "INVALID_RECORDS", "message": "Each record needs a fields object"}})
    return recs


def _create_records(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[2])
    ws, user, now = emu.workspace, req.user(emu), emu.now_iso()
    typecast, by_id = req.flag("typecast"), req.flag("returnFieldsByFieldId")
    if isinstance(req.body, dict) and "fields" in req.body and "records" not in req.body:
        cells = ops.prepare(ws, base, table, req.body["fields"], typecast)
        rec = ops.create(ws, base, table, cells, user=user, now=now)
        return 200, emu.write_response(table, rec, by_id)
    recs = _records_body(req, with_id=False)
    prepared = [ops.prepare(ws, base, table, r.get("fields") or {}, typecast) for r in recs]
    created = [ops.create(ws, base, table, c, user=user, now=now) for c in prepared]
    return 200, {"records": [emu.write_response(table, r, by_id) for r in created]}


def _merge_key(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


def _update_records(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[2])
    ws, user, now = emu.workspace, req.user(emu), emu.now_iso()
    typecast, by_id, replace = req.flag("typecast"), req.flag("returnFieldsByFieldId"), req.method == "PUT"
    upsert = req.body.get("performUpsert") if isinstance(req.body, dict) else None
    recs = _records_body(req, with_id=upsert is None)
    plan: list[tuple[Record | None, dict]] = []
    created_ids: list[str] = []
    updated_ids: list[str] = []
    if upsert is not None:
        merge = upsert.get("fieldsToMergeOn") if isinstance(upsert, dict) else None
        if not isinstance(merge, list) or not 1 <= len(merge) <= 3:
            raise _invalid("performUpsert.fieldsToMergeOn must list 1 to 3 fields")
        mfields = [ops.resolve_field(table, m) for m in merge]
        for f in mfields:
            if f["type"] not in UPSERT_TYPES:
                raise _invalid(f'Field "{f["name"]}" cannot be used to merge on')
        mids = [f["id"] for f in mfields]
        index: dict[tuple, list[str]] = {}
        for r in table.records.values():
            index.setdefault(tuple(_merge_key(r.cells.get(i)) for i in mids), []).append(r.id)
        for r in recs:
            if r.get("id"):
                rec = table.records.get(r["id"])
                if rec is None:
                    raise HTTPFail(422, {"error": {"type": "ROW_DOES_NOT_EXIST",
                                                   "message": f"Record ID {r['id']} does not exist in this table"}})
                plan.append((rec, ops.prepare(ws, base, table, r.get("fields") or {}, typecast, rec)))
                continue
            cells = ops.prepare(ws, base, table, r.get("fields") or {}, typecast)
            if any(i not in {ops.resolve_field(table, k)["id"] for k in (r.get("fields") or {})} for i in mids):
                raise _invalid("Each record to upsert must include every field to merge on")
            matches = index.get(tuple(_merge_key(cells.get(i)) for i in mids), [])
            if len(matches) > 1:
                raise HTTPFail(422, {"error": {"type": "INVALID_RECORDS", "message":
                                               "More than one record matches the fields to merge on"}})
            plan.append((table.records[matches[0]] if matches else None, cells))
    else:
        for r in recs:
            rid = r.get("id")
            rec = table.records.get(rid) if isinstance(rid, str) else None
            if rec is None:
                raise HTTPFail(422, {"error": {"type": "ROW_DOES_NOT_EXIST",
                                               "message": f"Record ID {rid} does not exist in this table"}})
            plan.append((rec, ops.prepare(ws, base, table, r.get("fields") or {}, typecast, rec)))
    out = []
    for rec, cells in plan:
        if rec is None:
            rec = ops.create(ws, base, table, cells, user=user, now=now)
            created_ids.append(rec.id)
        else:
            ops.apply(ws, base, table, rec, cells, user=user, now=now, replace=replace)
            updated_ids.append(rec.id)
        out.append(rec)
    resp: dict[str, Any] = {"records": [emu.write_response(table, r, by_id) for r in out]}
    if upsert is not None:
        resp["createdRecords"] = created_ids
        resp["updatedRecords"] = updated_ids
    return 200, resp


def _update_record(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[2])
    rec = emu.record_for(table, req.segs[3])
    body = req.body if isinstance(req.body, dict) else {}
    cells = ops.prepare(emu.workspace, base, table, body.get("fields") or {}, req.flag("typecast"), rec)
    ops.apply(emu.workspace, base, table, rec, cells, user=req.user(emu), now=emu.now_iso(),
              replace=req.method == "PUT")
    return 200, emu.write_response(table, rec, req.flag("returnFieldsByFieldId"))


def _delete_records(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[2])
    ids = req.q.get("records[]") or req.q.get("records") or []
    if not ids or len(ids) > MAX_RECORDS_PER_REQUEST:
        raise HTTPFail(422, {"error": {"type": "INVALID_RECORDS",
                                       "message": "You must provide an array of up to 10 record ids to delete."}})
    for rid in ids:
        emu.record_for(table, rid)
    for rid in ids:
        if rid in table.records:
            ops.delete(emu.workspace, base, table, rid, user=req.user(emu), now=emu.now_iso())
    return 200, {"records": [{"id": rid, "deleted": True} for rid in ids]}


def _delete_record(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[2])
    emu.record_for(table, req.segs[3])
    ops.delete(emu.workspace, base, table, req.segs[3], user=req.user(emu), now=emu.now_iso())
    return 200, {"id": req.segs[3], "deleted": True}


def _upload_attachment(emu: Emulator, req: _Req) -> tuple[int, Any]:
    base = emu.base_for(req.token, req.base_id)
    found = base.find_record(req.segs[2])
    if found is None:
        raise HTTPFail(404, {"error": {"type": "MODEL_ID_NOT_FOUND", "message": "Record not found"}})
    table, rec = found
    field = table.field(req.segs[3])
    if field is None:
        raise HTTPFail(422, {"error": {"type": "UNKNOWN_FIELD_NAME", "message": f'Unknown field name: "{req.segs[3]}"'}})
    if field["type"] != "multipleAttachments":
        raise HTTPFail(422, {"error": {"type": "INVALID_ATTACHMENT_FIELD",
                                       "message": f'Field "{field["name"]}" is not an attachment field'}})
    body = req.body
    if not isinstance(body, dict) or not isinstance(body.get("file"), str) or not body.get("filename"):
        raise _invalid("uploadAttachment needs contentType, file (base64) and filename")
    try:
        data = base64.b64decode(body["file"])
    except (binascii.Error, ValueError):
        raise _invalid("file is not valid base64") from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPFail(413, {"error": {"type": "ATTACHMENT_TOO_LARGE",
                                       "message": "The attachment exceeds the maximum upload size of 5 MB"}})
    ws = emu.workspace
    cell = ws.add_attachment(data, str(body["filename"]), body.get("contentType") or None)
    new = list(rec.cells.get(field["id"], [])) + [cell]
    ops.apply(ws, base, table, rec, {field["id"]: new}, user=req.user(emu), now=emu.now_iso())
    return 200, render_record(table, rec, by_id=True, only={field["id"]}, sign=emu.sign_attachment)


def _comment_target(emu: Emulator, req: _Req) -> tuple[Table, Record]:
    base = emu.base_for(req.token, req.base_id)
    table = emu.table_for(base, req.segs[2])
    return table, emu.record_for(table, req.segs[3])


def _list_comments(emu: Emulator, req: _Req) -> tuple[int, Any]:
    _table, rec = _comment_target(emu, req)
    newest_first = list(reversed(rec.comments or []))
    size = _qint(req.q.get("pageSize")) or 100
    if not 1 <= size <= 100:
        raise _invalid()
    off = (req.q.get("offset") or [None])[-1]
    start = 0
    if off:
        ids = [c["id"] for c in newest_first]
        if off not in ids:
            raise HTTPFail(422, {"error": {"type": "INVALID_OFFSET_VALUE", "message": f"The value of offset {off} is invalid"}})
        start = ids.index(off)
    page = newest_first[start:start + size]
    nxt = newest_first[start + size]["id"] if start + size < len(newest_first) else None
    return 200, {"comments": page, "offset": nxt}


def _mentions(emu: Emulator, text: str) -> dict:
    out = {}
    for uid in re.findall(r"@\[(usr[0-9A-Za-z]{14})\]", text):
        u = emu.workspace.users_by_id.get(uid)
        if u is not None:
            out[uid] = {"id": uid, "type": "user", "displayName": u["name"], "email": u["email"]}
    return out


def _create_comment(emu: Emulator, req: _Req) -> tuple[int, Any]:
    _table, rec = _comment_target(emu, req)
    body = req.body if isinstance(req.body, dict) else {}
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _invalid("A comment needs text")
    parent = body.get("parentCommentId")
    if parent is not None and parent not in {c["id"] for c in rec.comments or []}:
        raise _invalid(f"Comment {parent} does not exist on this record")
    user = req.user(emu)
    c: dict[str, Any] = {"id": emu.workspace.new_id("com"), "author": dict(user), "text": text,
                         "createdTime": emu.now_iso(), "lastUpdatedTime": None}
    if parent:
        c["parentCommentId"] = parent
    mentioned = _mentions(emu, text)
    if mentioned:
        c["mentioned"] = mentioned
    if rec.comments is None:
        rec.comments = []
    rec.comments.append(c)
    return 200, c


def _find_comment(emu: Emulator, req: _Req) -> tuple[Record, dict]:
    _table, rec = _comment_target(emu, req)
    for c in rec.comments or []:
        if c["id"] == req.segs[5]:
            if c["author"]["id"] != req.user(emu)["id"]:
                raise HTTPFail(403, {"error": {"type": "INVALID_PERMISSIONS",
                                               "message": "You are not permitted to perform this operation"}})
            return rec, c
    raise HTTPFail(404, {"error": {"type": "MODEL_ID_NOT_FOUND", "message": "Comment not found"}})


def _update_comment(emu: Emulator, req: _Req) -> tuple[int, Any]:
    _rec, c = _find_comment(emu, req)
    text = (req.body or {}).get("text") if isinstance(req.body, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise _invalid("A comment needs text")
    c["text"] = text
    c["lastUpdatedTime"] = emu.now_iso()
    mentioned = _mentions(emu, text)
    if mentioned:
        c["mentioned"] = mentioned
    else:
        c.pop("mentioned", None)
    return 200, c


def _delete_comment(emu: Emulator, req: _Req) -> tuple[int, Any]:
    rec, c = _find_comment(emu, req)
    rec.comments.remove(c)
    return 200, {"id": c["id"], "deleted": True}


__all__ = ["Emulator", "resolve_content_url", "READ_ONLY_TYPES"]
