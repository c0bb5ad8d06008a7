"""Metadata writes: create base / table / field, update table / field, with Airtable's validation
and option defaults (options are returned in the same shape the meta API uses)."""

from __future__ import annotations

from typing import Any

from . import formula as fm
from . import journal
from .state import Base, Table, Workspace
from .values import (
    COLORS,
    CREATABLE_TYPES,
    PRIMARY_TYPES,
    WriteError,
    coerce,
    formula_value,
    refresh_computed,
)

KNOWN_TYPES = frozenset({
    "aiText", "autoNumber", "barcode", "button", "checkbox", "count", "createdBy", "createdTime", "currency", "date",
    "dateTime", "duration", "email", "externalSyncSource", "formula", "lastModifiedBy", "lastModifiedTime",
    "manualSort", "multilineText", "multipleAttachments", "multipleCollaborators", "multipleLookupValues",
    "multipleRecordLinks", "multipleSelects", "number", "percent", "phoneNumber", "rating", "richText", "rollup",
    "singleCollaborator", "singleLineText", "singleSelect", "url",
})
DATE_FORMATS = {"local": "l", "friendly": "LL", "us": "M/D/YYYY", "european": "D/M/YYYY", "iso": "YYYY-MM-DD"}
TIME_FORMATS = {"12hour": "h:mma", "24hour": "HH:mm"}


def _bad(message: str, type_: str = "INVALID_REQUEST_UNKNOWN") -> WriteError:
    return WriteError(422, type_, message)


def _named_format(o: Any, formats: dict[str, str], default: str, what: str) -> dict:
    """A date or time format option: ``{"name"}`` with ``format`` filled in from the name."""
    o = o if isinstance(o, dict) else {}
    name = o.get("name", default)
    if name not in formats:
        raise _bad(f"Invalid {what} format name {name!r}", "INVALID_FIELD_OPTIONS")
    return {"format": o.get("format", formats[name]), "name": name}


def _date_format(o: Any) -> dict:
    return _named_format(o, DATE_FORMATS, "local", "date")


def _time_format(o: Any) -> dict:
    return _named_format(o, TIME_FORMATS, "12hour", "time")


def _options(ws: Workspace, type_: str, opts: Any) -> dict | None:
    o = opts if isinstance(opts, dict) else {}
    if type_ in ("number", "percent"):
        return {"precision": int(o.get("precision", 0))}
    if type_ == "currency":
        return {"precision": int(o.get("precision", 2)), "symbol": str(o.get("symbol", "$"))}
    if type_ == "duration":
        return {"durationFormat": o.get("durationFormat", "h:mm")}
    if type_ == "rating":
        return {"color": o.get("color", "yellowBright"), "icon": o.get("icon", "star"), "max": int(o.get("max", 5))}
    if type_ == "checkbox":
        return {"color": o.get("color", "greenBright"), "icon": o.get("icon", "check")}
    if type_ in ("singleSelect", "multipleSelects"):
        choices = []
        for i, c in enumerate(o.get("choices") or []):
            if not isinstance(c, dict) or not c.get("name"):
                raise _bad("Each choice needs a name", "INVALID_FIELD_OPTIONS")
            choices.append({"id": ws.new_id("sel"), "name": c["name"], "color": c.get("color", COLORS[i % len(COLORS)])})
        return {"choices": choices}
    if type_ == "date":
        return {"dateFormat": _date_format(o.get("dateFormat"))}
    if type_ == "dateTime":
        return {"dateFormat": _date_format(o.get("dateFormat")), "timeFormat": _time_format(o.get("timeFormat")),
                "timeZone": o.get("timeZone", "utc")}
    if type_ == "multipleAttachments":
        return {"isReversed": bool(o.get("isReversed", False))}
    return None


def _unique_name(existing: set[str], name: str) -> str:
    if name.lower() not in existing:
        return name
    n = 2
    while f"{name} {n}".lower() in existing:
        n += 1
    return f"{name} {n}"


def build_field(ws: Workspace, base: Base, table: Table | None, cfg: Any, existing: set[str],
                pending_links: list) -> dict:
    """A new field from a field config; link fields are queued in ``pending_links`` for their inverse."""
    if not isinstance(cfg, dict):
        raise _bad("Invalid field config")
    name, type_ = cfg.get("name"), cfg.get("type")
    if not isinstance(name, str) or not name.strip():
        raise _bad("Field name is empty", "DUPLICATE_OR_EMPTY_FIELD_NAME")
    if name.lower() in existing:
        raise _bad(f'Field name "{name}" already exists', "DUPLICATE_OR_EMPTY_FIELD_NAME")
    if type_ not in KNOWN_TYPES:
        raise _bad(f"Unknown field type {type_!r}", "INVALID_FIELD_TYPE")
    if type_ not in CREATABLE_TYPES:
        raise _bad(f'Field type "{type_}" is not supported for creation', "UNSUPPORTED_FIELD_TYPE_FOR_CREATE")
    f: dict[str, Any] = {"id": ws.new_id("fld"), "name": name, "type": type_}
    if cfg.get("description"):
        f["description"] = str(cfg["description"])
    if type_ == "multipleRecordLinks":
        o = cfg.get("options") if isinstance(cfg.get("options"), dict) else {}
        linked_id = o.get("linkedTableId")
        if not isinstance(linked_id, str) or (base.table_by_id(linked_id) is None
                                              and (table is None or linked_id != table.id)):
            raise _bad("Invalid linkedTableId for a multipleRecordLinks field", "INVALID_FIELD_OPTIONS")
        opts: dict[str, Any] = {"isReversed": False, "linkedTableId": linked_id,
                                "prefersSingleRecordLink": bool(o.get("prefersSingleRecordLink", False))}
        if o.get("viewIdForRecordSelection"):
            opts["viewIdForRecordSelection"] = o["viewIdForRecordSelection"]
        f["options"] = opts
        pending_links.append(f)
    else:
        opts2 = _options(ws, type_, cfg.get("options"))
        if opts2 is not None:
            f["options"] = opts2
    existing.add(name.lower())
    return f


def _add_to_grid_views(table: Table, field_id: str) -> None:
    for v in table.schema["views"]:
        if v["type"] == "grid" and "visibleFieldIds" in v:
            v["visibleFieldIds"].append(field_id)


def _make_inverses(ws: Workspace, base: Base, table: Table, pending: list) -> None:
    for f in pending:
        linked = base.table_by_id(f["options"]["linkedTableId"])
        if linked is None or linked is table and linked.id == table.id:
            continue  # self-link: one field, no inverse
        names = {x["name"].lower() for x in linked.fields}
        inv = {"id": ws.new_id("fld"), "name": _unique_name(names, table.name), "type": "multipleRecordLinks",
               "options": {"inverseLinkFieldId": f["id"], "isReversed": False, "linkedTableId": table.id,
                           "prefersSingleRecordLink": False}}
        f["options"] = {"inverseLinkFieldId": inv["id"], **f["options"]}
        linked.fields.append(inv)
        linked.reindex()
        _add_to_grid_views(linked, inv["id"])


def table_response(table: Table) -> dict:
    s = dict(table.schema)
    s["views"] = [{k: v for k, v in view.items() if k != "visibleFieldIds"} for view in s["views"]]
    return s


def create_table(ws: Workspace, base: Base, body: Any) -> Table:
    if not isinstance(body, dict):
        raise _bad("Invalid request body")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _bad("Table name is empty", "INVALID_TABLE_NAME")
    if any(t.name.lower() == name.lower() for t in base.tables):
        raise _bad(f'Table name "{name}" already exists', "DUPLICATE_TABLE_NAME")
    desc = body.get("description")
    if desc is not None and (not isinstance(desc, str) or len(desc) > 20000):
        raise _bad("Invalid table description")
    cfgs = body.get("fields")
    if not isinstance(cfgs, list) or not cfgs:
        raise _bad("A table needs at least one field", "INVALID_REQUEST_MISSING_FIELDS")
    first_type = cfgs[0].get("type") if isinstance(cfgs[0], dict) else None
    if first_type not in PRIMARY_TYPES:
        raise _bad(f'Field type "{first_type}" cannot be the primary field', "INVALID_FIELD_TYPE_FOR_PRIMARY_FIELD")
    table_id = ws.new_id("tbl")
    existing: set[str] = set()
    pending: list = []
    stub = Table({"id": table_id, "name": name, "primaryFieldId": "", "fields": [], "views": []})
    fields = [build_field(ws, base, stub, c, existing, pending) for c in cfgs]
    schema: dict[str, Any] = {"id": table_id, "name": name}
    if desc:
        schema["description"] = desc
    schema["primaryFieldId"] = fields[0]["id"]
    schema["fields"] = fields
    schema["views"] = [{"id": ws.new_id("viw"), "name": "Grid view", "type": "grid",
                        "visibleFieldIds": [f["id"] for f in fields]}]
    table = Table(schema)
    base.tables.append(table)
    _make_inverses(ws, base, table, pending)
    table.reindex()
    return table


def create_field(ws: Workspace, base: Base, table: Table, body: Any) -> dict:
    pending: list = []
    f = build_field(ws, base, table, body, {x["name"].lower() for x in table.fields}, pending)
    table.fields.append(f)
    table.reindex()
    _add_to_grid_views(table, f["id"])
    _make_inverses(ws, base, table, pending)
    table.reindex()
    return f


def update_field(ws: Workspace, table: Table, field: dict, body: Any) -> dict:
    if not isinstance(body, dict) or not set(body) <= {"name", "description", "options"}:
        raise _bad("Only name, description and options can be updated")
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not name.strip():
            raise _bad("Field name is empty", "DUPLICATE_OR_EMPTY_FIELD_NAME")
        if any(x is not field and x["name"].lower() == name.lower() for x in table.fields):
            raise _bad(f'Field name "{name}" already exists', "DUPLICATE_OR_EMPTY_FIELD_NAME")
        field["name"] = name
    if "description" in body:
        if body["description"]:
            field["description"] = str(body["description"])
        else:
            field.pop("description", None)
    if isinstance(body.get("options"), dict) and field["type"] in ("singleSelect", "multipleSelects"):
        old = {c["id"]: c for c in (field.get("options") or {}).get("choices", [])}
        choices = []
        for i, c in enumerate(body["options"].get("choices") or []):
            if c.get("id") in old:
                choices.append({**old[c["id"]], **{k: v for k, v in c.items() if k in ("name", "color")}})
            else:
                choices.append({"id": ws.new_id("sel"), "name": c.get("name"),
                                "color": c.get("color", COLORS[i % len(COLORS)])})
        field["options"] = {"choices": choices}
    table.reindex()
    return field


def update_table(base: Base, table: Table, body: Any) -> Table:
    if not isinstance(body, dict):
        raise _bad("Invalid request body")
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not name.strip():
            raise _bad("Table name is empty", "INVALID_TABLE_NAME")
        if any(t is not table and t.name.lower() == name.lower() for t in base.tables):
            raise _bad(f'Table name "{name}" already exists', "DUPLICATE_TABLE_NAME")
        table.schema["name"] = name
    if "description" in body:
        if body["description"]:
            table.schema["description"] = str(body["description"])
        else:
            table.schema.pop("description", None)
    return table


# ---------------------------------------------------------------------------------------------------------
# Schema changes Airtable's Web API does not offer (delete a field or a table, change a field's type): the
# UI does them. The emulator offers them to churn, the admin endpoints and Python callers, so a change feed
# can be tested against them; their records and computed cells follow as in the UI.

CONVERTIBLE_TYPES = frozenset({"singleLineText", "multilineText", "email", "url", "phoneNumber", "number",
                               "percent", "currency", "rating", "duration", "checkbox", "singleSelect",
                               "multipleSelects", "date"})


def _refresh_dependents(ws: Workspace, base: Base, table: Table) -> None:
    """Recompute the computed cells of ``table`` and of every table linked to it (after a schema change
    that can change them); those records are noted as not written directly."""
    tables = [table] + [base.table_by_id((f.get("options") or {}).get("linkedTableId", "")) for f in table.fields
                        if f["type"] == "multipleRecordLinks"]
    done: set[str] = set()
    for t in tables:
        if t is None or t.id in done or base.table_by_id(t.id) is None:
            continue
        done.add(t.id)
        for rec in t.records.values():
            journal.note(ws, base, t, rec, direct=False)
            refresh_computed(ws, base, t, rec)


def _drop_field(table: Table, field_id: str) -> None:
    """Remove a field from the schema, its views and every record."""
    table.schema["fields"] = [x for x in table.fields if x["id"] != field_id]
    for v in table.schema["views"]:
        if "visibleFieldIds" in v:
            v["visibleFieldIds"] = [x for x in v["visibleFieldIds"] if x != field_id]
    for rec in table.records.values():
        rec.cells.pop(field_id, None)
    table.reindex()


def delete_field(ws: Workspace, base: Base, table: Table, field: dict) -> list[str]:
    """Delete a field (and, for a link, its inverse in the linked table); returns the deleted field ids.
    The primary field cannot be deleted, as in Airtable."""
    if field["id"] == table.primary_field_id:
        raise _bad("The primary field cannot be deleted", "CANNOT_DELETE_PRIMARY_FIELD")
    gone = [(table, field)]
    opts = field.get("options") or {}
    if field["type"] == "multipleRecordLinks" and opts.get("inverseLinkFieldId"):
        linked = base.table_by_id(opts.get("linkedTableId", ""))
        inv = linked.fields_by_id.get(opts["inverseLinkFieldId"]) if linked else None
        if inv is not None and inv is not field:
            gone.append((linked, inv))
    for t, f in gone:
        _drop_field(t, f["id"])
    for t, _f in gone:
        _refresh_dependents(ws, base, t)
    return [f["id"] for _t, f in gone]


def delete_table(ws: Workspace, base: Base, table: Table) -> None:
    """Delete a table with its records; link fields pointing at it from other tables go too (Airtable
    turns them into text fields; the emulator removes them, which a feed reports the same way: a field
    changed or gone in the other table)."""
    if len(base.tables) < 2:
        raise _bad("The last table of a base cannot be deleted", "CANNOT_DELETE_LAST_TABLE")
    base.tables = [t for t in base.tables if t.id != table.id]
    for t in base.tables:
        links = [f for f in t.fields if f["type"] == "multipleRecordLinks"
                 and (f.get("options") or {}).get("linkedTableId") == table.id]
        for f in links:
            for rec in t.records.values():
                if f["id"] in rec.cells:
                    journal.note(ws, base, t, rec)
            _drop_field(t, f["id"])
        if links:
            _refresh_dependents(ws, base, t)


def change_field_type(ws: Workspace, base: Base, table: Table, field: dict, type_: str,
                      options: Any = None) -> dict:
    """Change a field's type as the UI does: every cell is converted through its text (values that do
    not convert become empty; select options are created as needed). Link, attachment, collaborator and
    computed fields cannot be converted here."""
    if field["type"] not in CONVERTIBLE_TYPES or type_ not in CONVERTIBLE_TYPES:
        raise _bad(f'The emulator cannot convert "{field["type"]}" to "{type_}"', "UNSUPPORTED_FIELD_TYPE_CHANGE")
    if field["id"] == table.primary_field_id and type_ not in PRIMARY_TYPES:
        raise _bad(f'Field type "{type_}" cannot be the primary field', "INVALID_FIELD_TYPE_FOR_PRIMARY_FIELD")
    texts = {}
    for rec in table.records.values():
        v = rec.cells.get(field["id"])
        if v is not None:
            t = formula_value(ws, base, table, field, v)
            texts[rec.id] = ", ".join(fm.to_text(x) for x in t) if isinstance(t, list) else fm.to_text(t)
    field["type"] = type_
    field.pop("options", None)
    new_opts = _options(ws, type_, options)
    if new_opts is not None:
        field["options"] = new_opts
    table.reindex()
    for rec in table.records.values():
        if rec.id not in texts:
            continue
        journal.note(ws, base, table, rec)
        try:
            value = coerce(ws, base, table, field, texts[rec.id], True)
        except WriteError:
            value = None
        if type_ == "date" and value is not None and not (isinstance(value, str) and len(value) == 10):
            value = None
        if value is None:
            rec.cells.pop(field["id"], None)
        else:
            rec.cells[field["id"]] = value
    _refresh_dependents(ws, base, table)
    return field
