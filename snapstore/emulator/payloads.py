"""Webhook payloads from a journal's change set: filtered by one hook's specification, cells in the
webhook shapes, a large action split into pieces that share the transaction (reference §2-§3).

Cell shapes (reference §3.3, partly from memory of the docs): single select ``{id, name, color}``,
multiple selects a list of those, links ``[{id, name}]`` (name = the linked record's primary value),
attachments without signed URLs, every other type as list-records returns it. A cleared cell is
reported with ``null`` (whether Airtable sends null or leaves the key out is not confirmed)."""

from __future__ import annotations

from typing import Any

from . import formula as fm
from .journal import Journal
from .state import Base, Table, Workspace
from .values import formula_value


def _choice(field: dict, name: Any) -> Any:
    for c in (field.get("options") or {}).get("choices", []):
        if c["name"] == name:
            return {"id": c["id"], "name": c["name"], "color": c.get("color")}
    return {"name": name}


class _Cells:
    """Renders stored cells of one base in the webhook shapes (link names looked up once)."""

    def __init__(self, ws: Workspace, base: Base, journal: Journal) -> None:
        self.ws, self.base, self.journal = ws, base, journal
        self._names: dict[str, str] = {}

    def _name(self, linked: Table | None, rid: str) -> str:
        if rid not in self._names:
            cells = None
            if linked is not None:
                rec = linked.records.get(rid)
                cells = rec.cells if rec is not None else self.journal.prior_cells(self.base.id, rid)
            pf = linked.fields_by_id.get(linked.primary_field_id) if linked is not None else None
            v = formula_value(self.ws, self.base, linked, pf, cells.get(pf["id"])) if cells and pf else None
            self._names[rid] = fm.to_text(v) if v is not None else ""
        return self._names[rid]

    def render(self, table: Table, fid: str, value: Any) -> Any:
        field = table.fields_by_id.get(fid)
        if value is None or field is None:
            return value
        t = field["type"]
        if t == "singleSelect":
            return _choice(field, value)
        if t == "multipleSelects":
            return [_choice(field, v) for v in value]
        if t == "multipleRecordLinks":
            linked = self.base.table_by_id((field.get("options") or {}).get("linkedTableId", ""))
            return [{"id": rid, "name": self._name(linked, rid)} for rid in value]
        return value

    def all(self, table: Table, cells: dict) -> dict:
        return {fid: self.render(table, fid, v) for fid, v in cells.items() if fid in table.fields_by_id}


def _field_info(f: dict) -> dict:
    return {"name": f["name"], "type": f["type"]}


def build_payloads(ws: Workspace, base: Base, journal: Journal, changes: dict, hook: Any, meta: dict,
                   report_computed: bool, max_records: int) -> list[dict]:
    """The payloads ``hook`` gets for one action (``meta``: timestamp, baseTransactionNumber,
    payloadFormat, actionMetadata, shared by every piece). Empty when its filters leave nothing."""
    flt, inc = hook.filters, hook.includes
    types = set(flt.get("dataTypes") or ())
    kinds = set(flt.get("changeTypes") or ("add", "remove", "update"))
    sources = flt.get("fromSources")
    if sources and meta["actionMetadata"]["source"] not in sources:
        return []
    scope = flt.get("recordChangeScope")
    watch_data = set(flt.get("watchDataInFieldIds") or ()) or None
    watch_schema = set(flt.get("watchSchemasOfFieldIds") or ()) or None
    with_previous = bool(inc.get("includePreviousCellValues"))
    with_prev_fields = bool(inc.get("includePreviousFieldDefinitions"))
    unchanged_in = inc.get("includeCellValuesInFieldIds")
    cells = _Cells(ws, base, journal)

    def in_scope(tid: str) -> bool:
        return not scope or not str(scope).startswith("tbl") or scope == tid

    schema_part: dict[str, dict] = {}
    records: list[tuple[str, str, str, Any]] = []  # (table id, key, record id, body)
    for table in base.tables:
        e = changes["tables"].get(table.id)
        if e is None or not in_scope(table.id):
            continue
        part: dict[str, Any] = {}
        if "tableMetadata" in types and e["metadata"] and "update" in kinds:
            cur, prev = e["metadata"]
            part["changedMetadata"] = {"current": _meta(cur), "previous": _meta(prev)}
        if "tableFields" in types:
            if e["created_fields"] and "add" in kinds:
                part["createdFieldsById"] = {f["id"]: _field_info(f) for f in e["created_fields"]}
            changed = {fid: v for fid, v in e["changed_fields"].items() if watch_schema is None or fid in watch_schema}
            if changed and "update" in kinds:
                part["changedFieldsById"] = {
                    fid: ({"current": cur, "previous": prev} if with_prev_fields else {"current": cur})
                    for fid, (cur, prev) in changed.items()}
            if e["destroyed_fields"] and "remove" in kinds:
                part["destroyedFieldIds"] = list(e["destroyed_fields"])
        if part:
            schema_part[table.id] = part
        if "tableData" not in types:
            continue
        if "add" in kinds:
            for rid, (created, c) in e["created_records"].items():
                records.append((table.id, "createdRecordsById", rid,
                                {"createdTime": created, "cellValuesByFieldId": cells.all(table, c)}))
        if "update" in kinds:
            for rid, (fids, pre, cur, direct) in e["changed_records"].items():
                if not direct and not report_computed:
                    continue
                if watch_data is not None:
                    fids = [f for f in fids if f in watch_data]
                if not fids:
                    continue
                body: dict[str, Any] = {"current": {"cellValuesByFieldId": {
                    f: cells.render(table, f, cur.get(f)) for f in fids}}}
                if with_previous:
                    body["previous"] = {"cellValuesByFieldId": {f: cells.render(table, f, pre.get(f)) for f in fids}}
                if unchanged_in:
                    wanted = table.fields_by_id if unchanged_in == "all" else set(unchanged_in)
                    body["unchanged"] = {"cellValuesByFieldId": {
                        f: cells.render(table, f, v) for f, v in cur.items() if f in wanted and f not in fids}}
                records.append((table.id, "changedRecordsById", rid, body))
        if "remove" in kinds:
            for rid in e["destroyed_records"]:
                records.append((table.id, "destroyedRecordIds", rid, None))
    created_tables: dict[str, Any] = {}
    if "add" in kinds:
        for tid, ct in changes["created_tables"].items():
            if not in_scope(tid):
                continue
            table = base.table_by_id(tid)
            entry: dict[str, Any] = {}
            if "tableMetadata" in types or "tableFields" in types:
                entry["metadata"] = _meta(ct)
            if "tableFields" in types:
                entry["fieldsById"] = {f["id"]: _field_info(f) for f in ct["fields"]}
            if "tableData" in types and table is not None:
                entry["recordsById"] = {rid: {"createdTime": created, "cellValuesByFieldId": cells.all(table, c)}
                                        for rid, (created, c) in ct["records"].items()}
            created_tables[tid] = entry
    destroyed_tables = [t for t in changes["destroyed_tables"] if in_scope(t)] if "remove" in kinds else []
    if not (schema_part or records or created_tables or destroyed_tables):
        return []
    step = max(1, int(max_records))
    chunks = [records[i:i + step] for i in range(0, len(records), step)] or [[]]
    out = []
    for n, chunk in enumerate(chunks):
        p: dict[str, Any] = dict(meta)
        changed_tables: dict[str, dict] = {}
        if n == 0:
            for tid, part in schema_part.items():
                changed_tables[tid] = dict(part)
            if created_tables:
                p["createdTablesById"] = created_tables
            if destroyed_tables:
                p["destroyedTableIds"] = destroyed_tables
        for tid, key, rid, body in chunk:
            t = changed_tables.setdefault(tid, {})
            if key == "destroyedRecordIds":
                t.setdefault(key, []).append(rid)
            else:
                t.setdefault(key, {})[rid] = body
        if changed_tables:
            p["changedTablesById"] = changed_tables
        out.append(p)
    return out


def _meta(m: dict) -> dict:
    out = {"name": m["name"]}
    if m.get("description"):
        out["description"] = m["description"]
    return out
