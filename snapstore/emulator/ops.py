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
    touched: dict[str, tuple[Table, Record]] = {}  # the other side of a two-sided link: its cell changed
    for fid, value in new_cells.items():
        old = rec.cells.get(fid)
        if old == value:
            continue
        changed = True
        f = table.fields_by_id[fid]
        if f["type"] == "multipleRecordLinks":
            linked, inv = _link_targets(base, table, f)
            old_ids, new_ids = set(old or ()), set(value or ())
            # Airtable keeps both sides of a link in step. prefersSingleRecordLink binds only the cell
            # editor of that field: linking from the other side gives the single-link side a second
            # link (users report exactly that, community.airtable.com/t/1773), and the API writes what
            # it is sent. So nothing is dropped here, and the two sides cannot disagree.
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
                    if r2 is not None and rec.id not in r2.cells.get(inv["id"], []):
                        note(ws, base, linked, r2)
                        _put(r2.cells, inv["id"], [*r2.cells.get(inv["id"], []), rec.id])
                        touched[rid] = (linked, r2)
            # a one-sided link (a self-link) has no cell on the other side: its targets do not change
        _put(rec.cells, fid, value)
    if changed or is_new:
        if not is_new:
            _stamp(table, rec, user, now)
            _mark_ai_stale(table, rec, set(new_cells))
    refresh_computed(ws, base, table, rec)
    for rid, (t2, r2) in touched.items():
        if rid == rec.id:
            continue
        if ws.modified_by_inverse:
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


def _one_sided_into(base: Base) -> dict[str, list[tuple[Table, dict]]]:
    """target table id -> the one-sided link fields (self-links among them) pointing at it from a
    table that computes something through them."""
    out: dict[str, list[tuple[Table, dict]]] = {}
    for t in base.tables:
        for f in t.fields:
            o = f.get("options") or {}
            if f["type"] == "multipleRecordLinks" and not o.get("inverseLinkFieldId") and o.get("linkedTableId") \
                    and _computes_through(t, f["id"]):
                out.setdefault(o["linkedTableId"], []).append((t, f))
    return out


def propagate(ws: Workspace, base: Base, start: list[tuple[Table, Record]]) -> None:
    """Recompute the lookups, rollups and counts (and the formulas over them) of the records linked
    to ``start`` whose table computes something through that link, hop by hop while values change.
    Two-sided links name those records in the inverse cell; a one-sided link (a self-link) does not,
    so the records holding it are found by a scan of their table, indexed once per call.
    These records are noted as not written directly (see journal.py)."""
    seen: set[str] = set()  # records refreshed here; a start record may be reached back (A's lookup of B's rollup of A)
    into = _one_sided_into(base)
    sources: dict[tuple[str, str], dict[str, list[Record]]] = {}

    def holders(t2: Table, f2: dict, rid: str) -> list[Record]:
        key = (t2.id, f2["id"])
        if key not in sources:
            idx: dict[str, list[Record]] = {}
            for r in t2.records.values():
                for x in r.cells.get(f2["id"], ()):
                    idx.setdefault(x, []).append(r)
            sources[key] = idx
        return sources[key].get(rid, [])

    def refresh(t2: Table, r2: Record, nxt: list[tuple[Table, Record]]) -> None:
        if r2.id in seen:
            return
        seen.add(r2.id)
        note(ws, base, t2, r2, direct=False)
        before = dict(r2.cells)
        refresh_computed(ws, base, t2, r2)
        if r2.cells != before:
            nxt.append((t2, r2))

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
                    if r2 is not None:
                        refresh(linked, r2, nxt)
            for t2, f2 in into.get(t.id, ()):
                for r2 in holders(t2, f2, r.id):
                    if r2.id in t2.records:
                        refresh(t2, r2, nxt)
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
            if r2 is None or inv is None:  # a one-sided link's targets hold nothing of this record
                continue
            note(ws, base, linked, r2)
            _put(r2.cells, inv["id"], [x for x in r2.cells.get(inv["id"], []) if x != rec_id])
            if ws.modified_by_inverse:
                _stamp(linked, r2, user, now)
            refresh_computed(ws, base, linked, r2)
            touched.append((linked, r2))
    # one-sided links (self-links among them) pointing at the deleted record lose it
    for t2 in base.tables:
        for f in t2.fields:
            o = f.get("options") or {}
            if f["type"] != "multipleRecordLinks" or o.get("inverseLinkFieldId") or o.get("linkedTableId") != table.id:
                continue
            for r2 in t2.records.values():
                lst = r2.cells.get(f["id"])
                if lst and rec_id in lst:
                    note(ws, base, t2, r2)
                    _put(r2.cells, f["id"], [x for x in lst if x != rec_id])
                    if ws.modified_by_inverse:
                        _stamp(t2, r2, user, now)
                    refresh_computed(ws, base, t2, r2)
                    touched.append((t2, r2))
    propagate(ws, base, touched)
    ws.touch(now)
