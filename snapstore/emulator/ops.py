"""Record operations with Airtable's rules: field resolution, validation, two-sided link upkeep,
created/modified stamps and recomputation of derived cells. Shared by the server and by churn."""

from __future__ import annotations

from typing import Any

from .journal import note
from .state import Base, Record, Table, Workspace
from .values import READ_ONLY_TYPES, WriteError, coerce, refresh_computed


def resolve_field(table: Table, key: str) -> dict:
    f = table.field(key) if isinstance(key, str) else None
    if f is None:
        raise WriteError(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{key}"')
    return f


def prepare(ws: Workspace, base: Base, table: Table, fields_in: Any, typecast: bool,
            old: Record | None = None) -> dict[str, Any]:
    """Validate a write: field id -> new stored value (None clears). Raises WriteError."""
    if not isinstance(fields_in, dict):
        raise WriteError(422, "INVALID_RECORDS", "Each record must have a \"fields\" object")
    out: dict[str, Any] = {}
    for key, value in fields_in.items():
        f = resolve_field(table, key)
        out[f["id"]] = coerce(ws, base, table, f, value, typecast,
                              old.cells.get(f["id"]) if old is not None else None)
    return out


def _stamp(table: Table, rec: Record, user: dict, now: str) -> None:
    rec.modified = now
    for f in table.fields:
        if f["type"] == "lastModifiedBy":
            rec.cells[f["id"]] = user


def _link_targets(base: Base, table: Table, field: dict) -> tuple[Table | None, dict | None]:
    opts = field.get("options") or {}
    linked = base.table_by_id(opts.get("linkedTableId", ""))
    inv = linked.fields_by_id.get(opts.get("inverseLinkFieldId") or "") if linked else None
    return linked, inv


def apply(ws: Workspace, base: Base, table: Table, rec: Record, new_cells: dict[str, Any], *,
          user: dict, now: str, replace: bool = False, is_new: bool = False) -> set[str]:
    """Write validated cells into ``rec``; keeps inverse links, stamps and derived cells up to date.
    Returns the ids of other records that were touched (link inverses)."""
    note(ws, base, table, rec)
    if replace:
        for f in table.fields:
            if f["type"] not in READ_ONLY_TYPES and f["id"] not in new_cells:
                new_cells[f["id"]] = None
    changed = False
    touched: dict[str, tuple[Table, Record]] = {}
    for fid, value in new_cells.items():
        old = rec.cells.get(fid)
        if old == value:
            continue
        changed = True
        f = table.fields_by_id[fid]
        if f["type"] == "multipleRecordLinks":
            linked, inv = _link_targets(base, table, f)
            old_ids, new_ids = set(old or ()), set(value or ())
            if linked is not None and inv is not None:
                for rid in old_ids - new_ids:
                    r2 = linked.records.get(rid)
                    if r2 is not None:
                        note(ws, base, linked, r2)
                        lst = [x for x in r2.cells.get(inv["id"], []) if x != rec.id]
                        _put(r2.cells, inv["id"], lst)
                        touched[rid] = (linked, r2)
                for rid in value or ():
                    if rid in old_ids:
                        continue
                    r2 = linked.records.get(rid)
                    if r2 is not None:
                        note(ws, base, linked, r2)
                        lst = list(r2.cells.get(inv["id"], []))
                        if rec.id not in lst:
                            lst.append(rec.id)
                            if (inv.get("options") or {}).get("prefersSingleRecordLink") and len(lst) > 1:
                                lst = lst[-1:]
                        _put(r2.cells, inv["id"], lst)
                        touched[rid] = (linked, r2)
            elif linked is not None:
                for rid in old_ids | new_ids:
                    if rid in linked.records:
                        note(ws, base, linked, linked.records[rid], direct=False)
                        touched[rid] = (linked, linked.records[rid])
        _put(rec.cells, fid, value)
    if changed or is_new:
        if not is_new:
            _stamp(table, rec, user, now)
            _mark_ai_stale(table, rec, set(new_cells))
    refresh_computed(ws, base, table, rec)
    for rid, (t2, r2) in touched.items():
        if rid == rec.id:
            continue
        _stamp(t2, r2, user, now)
        refresh_computed(ws, base, t2, r2)
    propagate(ws, base, [(table, rec)] + list(touched.values()))
    ws.touch(now)
    return set(touched)


PROPAGATION_DEPTH = 4  # lookups of lookups: Airtable follows any depth; 4 hops covers every generated chain


def _computes_through(table: Table, link_field_id: str) -> bool:
    """Whether ``table`` has a lookup, rollup or count over the link field ``link_field_id``."""
    return any(f["type"] in ("multipleLookupValues", "rollup", "count")
               and (f.get("options") or {}).get("recordLinkFieldId") == link_field_id for f in table.fields)


def propagate(ws: Workspace, base: Base, start: list[tuple[Table, Record]]) -> None:
    """Recompute the lookups, rollups and counts (and the formulas over them) of the records linked
    to ``start`` whose table computes something through that link, hop by hop while values change.
    These records are noted as not written directly (see journal.py)."""
    seen: set[str] = set()  # records refreshed here; a start record may be reached back (A's lookup of B's rollup of A)
    frontier = start
    for _hop in range(PROPAGATION_DEPTH):
        nxt: list[tuple[Table, Record]] = []
        for t, r in frontier:
            for f in t.fields:
                if f["type"] != "multipleRecordLinks":
                    continue
                linked, inv = _link_targets(base, t, f)
                if linked is None or inv is None or not _computes_through(linked, inv["id"]):
                    continue
                for rid in r.cells.get(f["id"], ()):
                    r2 = linked.records.get(rid)
                    if r2 is None or rid in seen:
                        continue
                    seen.add(rid)
                    note(ws, base, linked, r2, direct=False)
                    before = dict(r2.cells)
                    refresh_computed(ws, base, linked, r2)
                    if r2.cells != before:
                        nxt.append((linked, r2))
        if not nxt:
            return
        frontier = nxt


def _mark_ai_stale(table: Table, rec: Record, changed: set[str]) -> None:
    for f in table.fields:
        if f["type"] == "aiText":
            refs = set((f.get("options") or {}).get("referencedFieldIds") or ())
            v = rec.cells.get(f["id"])
            if isinstance(v, dict) and refs & changed and v.get("state") == "generated":
                rec.cells[f["id"]] = dict(v, isStale=True)


def _put(cells: dict, fid: str, value: Any) -> None:
    if value is None or value == [] or value == "":
        cells.pop(fid, None)
    else:
        cells[fid] = value


def create(ws: Workspace, base: Base, table: Table, new_cells: dict[str, Any], *, user: dict, now: str,
           rec_id: str | None = None) -> Record:
    rec = Record(rec_id or ws.new_id("rec"), now)
    for f in table.fields:
        t = f["type"]
        if t == "autoNumber":
            rec.cells[f["id"]] = table.next_auto_number()
        elif t in ("createdBy", "lastModifiedBy"):
            rec.cells[f["id"]] = user
        elif t == "button":
            rec.cells[f["id"]] = {"label": f["name"], "url": f"https://example.com/records/{rec.id}"}
        elif t == "aiText":
            rec.cells[f["id"]] = {"state": "empty", "isStale": False, "value": None}
    note(ws, base, table, rec, new=True)
    table.records[rec.id] = rec
    apply(ws, base, table, rec, new_cells, user=user, now=now, is_new=True)
    return rec


def delete(ws: Workspace, base: Base, table: Table, rec_id: str, *, user: dict, now: str) -> None:
    note(ws, base, table, table.records[rec_id])
    rec = table.records.pop(rec_id)
    touched: list[tuple[Table, Record]] = []
    for f in table.fields:
        if f["type"] != "multipleRecordLinks":
            continue
        linked, inv = _link_targets(base, table, f)
        if linked is None:
            continue
        for rid in rec.cells.get(f["id"], ()):
            r2 = linked.records.get(rid)
            if r2 is None:
                continue
            note(ws, base, linked, r2, direct=inv is not None)
            if inv is not None:
                _put(r2.cells, inv["id"], [x for x in r2.cells.get(inv["id"], []) if x != rec_id])
                _stamp(linked, r2, user, now)
            refresh_computed(ws, base, linked, r2)
            touched.append((linked, r2))
    # self-links and one-sided links pointing at the deleted record
    for f in table.fields:
        if f["type"] == "multipleRecordLinks" and not (f.get("options") or {}).get("inverseLinkFieldId") \
                and (f.get("options") or {}).get("linkedTableId") == table.id:
            for r2 in table.records.values():
                lst = r2.cells.get(f["id"])
                if lst and rec_id in lst:
                    note(ws, base, table, r2)
                    _put(r2.cells, f["id"], [x for x in lst if x != rec_id])
                    refresh_computed(ws, base, table, r2)
                    touched.append((table, r2))
    propagate(ws, base, touched)
    ws.touch(now)
