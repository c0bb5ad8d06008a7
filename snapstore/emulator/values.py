"""Cell values: validation and typecast of writes, computed fields (formula, lookup, rollup, count,
created/modified time) and rendering cells the way the list API returns them."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Callable
from typing import Any

from snapstore.fieldtypes import COMPUTED_TYPES as READ_ONLY_TYPES  # noqa: F401 (re-exported)
from snapstore.fieldtypes import CREATABLE_TYPES, PRIMARY_TYPES  # noqa: F401 (re-exported)

from . import formula as fm
from .content import resolve_content_url
from .state import Base, Record, Table, Workspace

NUMERIC_TYPES = frozenset({"number", "percent", "currency", "duration", "rating", "autoNumber", "count"})
TEXT_TYPES = frozenset({"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber"})
COLORS = [f"{c}{s}" for s in ("Light2", "Light1", "Bright", "Dark1")
          for c in ("blue", "cyan", "teal", "green", "yellow", "orange", "red", "pink", "purple", "gray")]


class WriteError(Exception):
    """A request error with an Airtable error envelope."""

    def __init__(self, status: int, type_: str, message: str | None = None) -> None:
        super().__init__(message or type_)
        self.status = status
        self.type = type_
        self.message = message

    def body(self) -> dict:
        err: dict[str, Any] = {"type": self.type}
        if self.message is not None:
            err["message"] = self.message
        return {"error": err}


def invalid_value(field: dict, detail: str = "") -> WriteError:
    msg = f'Field "{field["name"]}" cannot accept the provided value'
    return WriteError(422, "INVALID_VALUE_FOR_COLUMN", msg + (f": {detail}" if detail else ""))


def norm_number(v: float | int) -> float | int:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


# ---------------------------------------------------------------------------------------- writes


def _parse_dt_for_field(field: dict, value: str) -> dt.datetime | None:
    s = value.strip()
    opts = field.get("options") or {}
    tzname = opts.get("timeZone", "utc")
    try:
        if len(s) == 10:
            d = dt.date.fromisoformat(s)
            naive = dt.datetime(d.year, d.month, d.day)
        else:
            d2 = dt.datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith("Z") else s)
            if d2.tzinfo:
                return d2.astimezone(dt.UTC)
            naive = d2
    except ValueError:
        return None
    if tzname in ("utc", "client"):
        return naive.replace(tzinfo=dt.UTC)
    try:
        return naive.replace(tzinfo=zoneinfo.ZoneInfo(tzname)).astimezone(dt.UTC)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return naive.replace(tzinfo=dt.UTC)


def coerce(ws: Workspace, base: Base, table: Table, field: dict, value: Any, typecast: bool,
           old: Any = None) -> Any:
    """The stored value for a write of ``value`` to ``field`` (None = empty). Raises WriteError."""
    t = field["type"]
    if t in READ_ONLY_TYPES:
        raise WriteError(422, "INVALID_VALUE_FOR_COLUMN",
                         f'Field "{field["name"]}" cannot accept a value because the field is computed')
    if value is None:
        return None
    opts = field.get("options") or {}
    if t in TEXT_TYPES:
        if not isinstance(value, str):
            if not typecast:
                raise invalid_value(field)
            value = fm.to_text(value)
        return value or None
    if t in ("number", "percent", "currency", "duration", "rating"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if typecast and isinstance(value, (str, bool)):
                n = fm.to_number(value)
                if isinstance(n, float) and math.isnan(n):
                    return None
                value = n
            else:
                raise invalid_value(field)
        if isinstance(value, float) and not math.isfinite(value):
            raise invalid_value(field)
        if t == "rating":
            value = int(value)
            if value <= 0:
                return None
            if value > opts.get("max", 5):
                raise invalid_value(field, f"rating must be at most {opts.get('max', 5)}")
        return norm_number(value)
    if t == "checkbox":
        if not isinstance(value, bool):
            if not typecast:
                raise invalid_value(field)
            value = fm.truthy(value) and str(value).strip().lower() not in ("false", "no", "0", "unchecked")
        return True if value else None
    if t in ("date", "dateTime"):
        if not isinstance(value, str):
            raise invalid_value(field)
        if not value:
            return None
        d = _parse_dt_for_field(field, value)
        if d is None:
            raise invalid_value(field, f"cannot parse date {value!r}")
        if t == "date":
            return value[:10] if len(value.strip()) >= 10 and value[4:5] == "-" else d.strftime("%Y-%m-%d")
        return fm.format_datetime(d)
    if t == "singleSelect":
        if isinstance(value, dict):
            value = value.get("name") or _choice_name_by_id(field, value.get("id"))
        if not isinstance(value, str):
            raise invalid_value(field)
        return _select_choice(ws, field, value, typecast) if value else None
    if t == "multipleSelects":
        if isinstance(value, str) and typecast:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise invalid_value(field)
        out: list[str] = []
        for v in value:
            if isinstance(v, dict):
                v = v.get("name") or _choice_name_by_id(field, v.get("id"))
            if not isinstance(v, str):
                raise invalid_value(field)
            name = _select_choice(ws, field, v, typecast)
            if name not in out:
                out.append(name)
        return out or None
    if t == "singleCollaborator":
        return _collaborator(ws, field, value, typecast)
    if t == "multipleCollaborators":
        if not isinstance(value, list):
            if typecast:
                value = [value]
            else:
                raise invalid_value(field)
        out_c: list[dict] = []
        for v in value:
            c = _collaborator(ws, field, v, typecast)
            if c and all(x["id"] != c["id"] for x in out_c):
                out_c.append(c)
        return out_c or None
    if t == "multipleRecordLinks":
        return _links(ws, base, table, field, value, typecast)
    if t == "multipleAttachments":
        return _attachments(ws, field, value, old)
    if t == "barcode":
        if isinstance(value, str) and typecast:
            value = {"text": value}
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            raise invalid_value(field)
        out_b = {"text": value["text"]}
        if value.get("type"):
            out_b["type"] = value["type"]
        return out_b if value["text"] else None
    # unknown/other types: store as given
    return value


def _choice_name_by_id(field: dict, choice_id: Any) -> str | None:
    for c in (field.get("options") or {}).get("choices", []):
        if c["id"] == choice_id:
            return c["name"]
    return None


def _select_choice(ws: Workspace, field: dict, name: str, typecast: bool) -> str:
    opts = field.setdefault("options", {})
    choices = opts.setdefault("choices", [])
    for c in choices:
        if c["name"] == name:
            return name
    if not typecast:
        raise WriteError(422, "INVALID_MULTIPLE_CHOICE_OPTIONS",
                         f'Insufficient permissions to create new select option ""{name}""')
    choices.append({"id": ws.new_id("sel"), "name": name, "color": COLORS[len(choices) % len(COLORS)]})
    return name


def _collaborator(ws: Workspace, field: dict, value: Any, typecast: bool) -> dict | None:
    user = None
    if isinstance(value, dict):
        if value.get("id"):
            user = ws.users_by_id.get(value["id"])
        elif value.get("email"):
            user = ws.users_by_email.get(str(value["email"]).lower())
    elif isinstance(value, str) and typecast:
        user = ws.users_by_id.get(value) or ws.users_by_email.get(value.lower())
        if user is None:
            user = next((u for u in ws.users if u.get("name") == value), None)
    if user is None:
        raise invalid_value(field, "unknown collaborator")
    return user  # the workspace's user object, shared by every cell (cells are never mutated in place)


def _links(ws: Workspace, base: Base, table: Table, field: dict, value: Any, typecast: bool) -> list | None:
    linked = base.table_by_id((field.get("options") or {}).get("linkedTableId", ""))
    if linked is None:
        raise invalid_value(field, "linked table is missing")
    if isinstance(value, str) and typecast:
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise invalid_value(field)
    out: list[str] = []
    for v in value:
        if isinstance(v, dict):
            v = v.get("id")
        if not isinstance(v, str):
            raise invalid_value(field)
        if v not in linked.records:
            if typecast:
                pf = linked.primary_field_id
                match = next((r.id for r in linked.records.values() if r.cells.get(pf) == v), None)
                if match is None:
                    raise invalid_value(field, f"no record named {v!r} in {linked.name}")
                v = match
            else:
                raise WriteError(422, "ROW_DOES_NOT_EXIST",
                                 f"Record ID {v} does not exist in table {linked.name}")
        if v not in out:
            out.append(v)
    # prefersSingleRecordLink binds the UI only: a write through the API may link several records
    return out or None


def _attachments(ws: Workspace, field: dict, value: Any, old: Any) -> list | None:
    if not isinstance(value, list):
        raise invalid_value(field)
    out: list[dict] = []
    for v in value:
        if not isinstance(v, dict):
            raise invalid_value(field)
        if v.get("id"):
            info = ws.attachments.get(v["id"])
            if info is None:
                raise invalid_value(field, f"unknown attachment {v['id']}")
            from .state import attachment_cell

            cell = attachment_cell(v["id"], info)
            if v.get("filename") and v["filename"] != info["filename"]:
                cell["filename"] = v["filename"]
            out.append(cell)
        elif isinstance(v.get("url"), str):
            url = v["url"]
            found = resolve_content_url(url)
            if found is not None and found[0] is ws and found[1] in ws.attachments:
                src = ws.attachments[found[1]]
                data = ws.blobs[src["sha256"]]
                out.append(ws.add_attachment(data, v.get("filename") or src["filename"], src["type"]))
            else:
                cell = _download(ws, url, v.get("filename"))
                if cell is not None:  # Airtable drops a file it cannot fetch; the write still succeeds
                    out.append(cell)
        else:
            raise invalid_value(field)
    return out or None


def _download(ws: Workspace, url: str, filename: Any) -> dict | None:
    """Airtable downloads a ``{"url"}`` attachment and keeps its own copy (see urlfetch.py); a
    failure drops the file and is recorded in ``ws.url_failures`` (url and why)."""
    from .urlfetch import FetchFailed, fetch

    if not ws.fetch_urls:
        ws.url_failures.append({"url": url, "error": "URL downloads are off"})
        return None
    try:
        got = fetch(url, max_bytes=ws.url_max_bytes, timeout=ws.url_timeout)
    except FetchFailed as e:
        ws.url_failures.append({"url": url, "error": str(e)})
        return None
    name = filename if isinstance(filename, str) and filename else got.filename
    return ws.add_attachment(got.data, name, got.content_type)


# ---------------------------------------------------------------------------------------- computed

_AST_CACHE: dict[str, tuple | None] = {}


def _compiled(text: str) -> tuple | None:
    if text not in _AST_CACHE:
        try:
            _AST_CACHE[text] = fm.parse(text)
        except fm.FormulaSyntaxError:
            _AST_CACHE[text] = None
    return _AST_CACHE[text]


def formula_value(ws: Workspace, base: Base, table: Table, field: dict, cell: Any) -> Any:
    """A stored cell as a formula sees it."""
    if cell is None:
        return None
    t = field["type"]
    if isinstance(cell, dict):
        if set(cell) == {"error"}:
            return fm.ERROR
        if set(cell) == {"specialValue"}:
            return math.nan
        if t in ("singleCollaborator", "createdBy", "lastModifiedBy"):
            return cell.get("name") or cell.get("email")
        if t == "barcode":
            return cell.get("text")
        if t == "button":
            return cell.get("label")
        if t == "aiText":
            return cell.get("value")
        return fm.to_text(cell)
    if isinstance(cell, list):
        if t == "multipleRecordLinks":
            linked = base.table_by_id(field["options"]["linkedTableId"])
            if linked is not None:
                pf = linked.primary_field_id
                return [fm.to_text(linked.records[r].cells.get(pf)) for r in cell if r in linked.records]
        if t == "multipleAttachments":
            return [a.get("filename") for a in cell]
        if t == "multipleCollaborators":
            return [c.get("name") or c.get("email") for c in cell]
        return [fm.ERROR if isinstance(x, dict) and set(x) == {"error"} else
                (x.get("name") if isinstance(x, dict) and "name" in x else x) for x in cell]
    return cell


def make_context(ws: Workspace, base: Base, table: Table, rec: Record, now: float | None = None) -> fm.Context:
    def get(ref: str) -> Any:
        f = table.field(ref)
        if f is None:
            raise fm.UnknownField(ref)
        return formula_value(ws, base, table, f, rec.cells.get(f["id"]))

    return fm.Context(get, rec.id, rec.created, rec.modified, now)


def result_to_cell(value: Any, result: dict | None) -> Any:
    """Convert a formula result into the list-API cell value (None = empty)."""
    if value is fm.ERROR:
        return {"error": "#ERROR!"}
    rtype = (result or {}).get("type")
    if isinstance(value, float) and math.isnan(value):
        return {"specialValue": "NaN"}
    if isinstance(value, float) and math.isinf(value):
        return {"specialValue": "Infinity" if value > 0 else "-Infinity"}
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if rtype == "date":
            return value.strftime("%Y-%m-%d")
        return fm.format_datetime(value)
    if rtype in NUMERIC_TYPES:
        if isinstance(value, bool):
            return int(value)
        n = fm.to_number(value)
        if n is fm.ERROR:
            return {"error": "#ERROR!"}
        if isinstance(n, float) and math.isnan(n):
            return {"specialValue": "NaN"}
        return norm_number(n)
    if rtype == "checkbox":
        return True if fm.truthy(value) else None
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, list):
        return value or None
    if isinstance(value, (int, float)) and rtype is None:
        return norm_number(value)
    s = fm.to_text(value)
    return s or None


def refresh_computed(ws: Workspace, base: Base, table: Table, rec: Record, *, kinds: tuple = ("links", "formula"),
                     now: float | None = None) -> None:
    """Recompute the derived cells of one record: created/modified time always, then lookups, rollups
    and counts ("links"), then formulas ("formula"), in schema order."""
    cells = rec.cells
    for f in table.fields:
        t = f["type"]
        fid = f["id"]
        opts = f.get("options") or {}
        if t == "createdTime":
            v = rec.created if (opts.get("result") or {}).get("type") != "date" else rec.created[:10]
            cells[fid] = v
        elif t == "lastModifiedTime":
            v = rec.modified if (opts.get("result") or {}).get("type") != "date" else rec.modified[:10]
            cells[fid] = v
        elif t in ("count", "multipleLookupValues", "rollup") and "links" in kinds:
            link_field = table.fields_by_id.get(opts.get("recordLinkFieldId") or "")
            links = cells.get(opts.get("recordLinkFieldId") or "") or []
            if t == "count":
                if link_field:
                    cells[fid] = len(links)
                else:
                    cells.pop(fid, None)
                continue
            linked = base.table_by_id(((link_field or {}).get("options") or {}).get("linkedTableId", ""))
            target = opts.get("fieldIdInLinkedTable")
            if linked is None or not target:
                continue
            vals: list = []
            for rid in links:
                r2 = linked.records.get(rid)
                if r2 is None:
                    continue
                v = r2.cells.get(target)
                if v is None:
                    continue
                if isinstance(v, list):
                    vals.extend(v)
                else:
                    vals.append(v)
            if t == "multipleLookupValues":
                _set(cells, fid, vals or None)
            else:
                if any(isinstance(v, dict) and ("error" in v or "specialValue" in v) for v in vals):
                    _set(cells, fid, {"error": "#ERROR!"})
                else:
                    rtype = (opts.get("result") or {}).get("type")
                    if rtype in NUMERIC_TYPES or rtype is None:
                        nums = [fm.to_number(v) for v in vals]
                        _set(cells, fid, norm_number(sum(n for n in nums if isinstance(n, (int, float)))))
                    else:
                        _set(cells, fid, ", ".join(fm.to_text(v) for v in vals) or None)
    if "formula" in kinds:
        ctx = None
        for f in table.fields:
            if f["type"] != "formula":
                continue
            opts = f.get("options") or {}
            ast = _compiled(opts.get("formula", ""))
            if ast is None:
                continue  # a formula this evaluator cannot read keeps its stored value
            if ctx is None:
                ctx = make_context(ws, base, table, rec, now)
            try:
                v = fm.evaluate(ast, ctx)
            except (fm.UnknownField, fm.FormulaSyntaxError, TypeError, ValueError, OverflowError):
                v = fm.ERROR
            _set(cells, f["id"], result_to_cell(v, opts.get("result")))


def _set(cells: dict, fid: str, value: Any) -> None:
    if value is None or value == "" or value == []:
        cells.pop(fid, None)
    else:
        cells[fid] = value


# ---------------------------------------------------------------------------------------- rendering

Signer = Callable[[str, dict], dict]


def render_cell(field: dict, value: Any, sign: Signer | None) -> Any:
    if field["type"] == "multipleAttachments" and sign is not None:
        return [sign(a["id"], a) for a in value]
    if field["type"] == "multipleLookupValues" and sign is not None and value and isinstance(value[0], dict) \
            and "filename" in value[0] and "id" in value[0]:
        return [sign(a["id"], a) for a in value]
    return value


def render_record(table: Table, rec: Record, *, by_id: bool, only: set[str] | None, sign: Signer | None,
                  comment_count: bool = False, cell_format: str = "json", base: Base | None = None) -> dict:
    out_fields: dict[str, Any] = {}
    fbid = table.fields_by_id
    for fid, v in rec.cells.items():
        if only is not None and fid not in only:
            continue
        f = fbid.get(fid)
        if f is None:
            continue
        if cell_format == "string":
            v = string_cell(table, f, v, base, sign)
            if v == "":
                continue
        else:
            v = render_cell(f, v, sign)
        out_fields[fid if by_id else f["name"]] = v
    out: dict[str, Any] = {"id": rec.id, "createdTime": rec.created, "fields": out_fields}
    if comment_count:
        out["commentCount"] = rec.comment_count
    return out


def string_cell(table: Table, field: dict, v: Any, base: Base | None, sign: Signer | None) -> str:
    t = field["type"]
    if v is None:
        return ""
    if t == "checkbox":
        return "checked" if v else ""
    if t == "multipleAttachments":
        items = [sign(a["id"], a) if sign else a for a in v]
        return ",".join(f"{a['filename']} ({a.get('url', '')})" for a in items)
    if t == "multipleRecordLinks" and base is not None:
        linked = base.table_by_id(field["options"]["linkedTableId"])
        if linked is not None:
            pf = linked.primary_field_id
            return ", ".join(fm.to_text(linked.records[r].cells.get(pf)) for r in v if r in linked.records)
    if t in ("number", "currency", "percent") and isinstance(v, (int, float)):
        p = (field.get("options") or {}).get("precision", 0)
        if t == "percent":
            return f"{v * 100:.{max(p - 2, 0)}f}%"
        s = f"{v:,.{p}f}"
        return (field["options"].get("symbol", "") + s) if t == "currency" else s
    if isinstance(v, dict):
        if "error" in v:
            return "#ERROR!"
        if "specialValue" in v:
            return str(v["specialValue"])
        return fm.to_text(v)
    if isinstance(v, list):
        return ", ".join(fm.to_text(x) if not isinstance(x, dict) else (x.get("name") or x.get("filename")
                                                                        or x.get("error") or "") for x in v)
    return fm.to_text(v)
