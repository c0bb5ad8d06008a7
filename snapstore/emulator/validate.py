"""What a loaded workspace must not hold because Airtable would refuse it (its create and update routes,
reference §6.5 and ``schema_ops``): a workspace the emulator serves should be one Airtable could have.

Checked per base: table names unique ignoring case; per table: a primary field that exists, field
names non-empty and unique ignoring case; links to a table of the base, and an inverse that exists
there; lookups, rollups and counts through a link field of their own table, over a field that exists
in the linked table; formula references to fields of the table. ``check_workspace`` raises
:class:`WorkspaceRefused` naming the first few problems."""

from __future__ import annotations

from snapstore.emulator.state import Base, Workspace


class WorkspaceRefused(ValueError):
    """A workspace holds what Airtable refuses; the message names each problem."""


def _table_problems(base: Base, t: dict) -> list[str]:
    where = f"{base.id}/{t.get('name')!r}"
    out: list[str] = []
    fields = t.get("fields") or []
    by_id = {f["id"]: f for f in fields}
    if t.get("primaryFieldId") not in by_id:
        out.append(f"{where}: primary field {t.get('primaryFieldId')} is not a field of the table")
    seen: dict[str, str] = {}
    tables = {x.id: x for x in base.tables}
    for f in fields:
        name = f.get("name")
        if not isinstance(name, str) or not name.strip():
            out.append(f"{where}: field {f['id']} has an empty name")
            continue
        if name.lower() in seen:
            out.append(f"{where}: field names {seen[name.lower()]!r} and {name!r} are the same ignoring case")
        seen.setdefault(name.lower(), name)
        o = f.get("options") or {}
        typ = f.get("type")
        if typ == "multipleRecordLinks":
            other = tables.get(o.get("linkedTableId"))
            if other is None:
                out.append(f"{where}.{name}: links to table {o.get('linkedTableId')}, which does not exist")
            elif o.get("inverseLinkFieldId") and other.fields_by_id.get(o["inverseLinkFieldId"]) is None:
                out.append(f"{where}.{name}: its inverse field {o['inverseLinkFieldId']} is not in {other.name!r}")
        elif typ in ("multipleLookupValues", "rollup", "count") and o.get("isValid", True):
            link = by_id.get(o.get("recordLinkFieldId")) if o.get("recordLinkFieldId") else None
            if o.get("recordLinkFieldId") and (link is None or link.get("type") != "multipleRecordLinks"):
                out.append(f"{where}.{name}: goes through {o.get('recordLinkFieldId')}, not a link field of the table")
            elif link is not None and typ != "count" and o.get("fieldIdInLinkedTable"):
                other = tables.get((link.get("options") or {}).get("linkedTableId"))
                if other is not None and other.fields_by_id.get(o["fieldIdInLinkedTable"]) is None:
                    out.append(f"{where}.{name}: {typ} over field {o['fieldIdInLinkedTable']}, which does not "
                               f"exist in {other.name!r}")
        elif typ == "formula" and o.get("isValid", True):
            gone = [r for r in o.get("referencedFieldIds") or [] if r not in by_id]
            if gone:
                out.append(f"{where}.{name}: the formula refers to {', '.join(gone)}, not fields of the table")
    return out


def workspace_problems(ws: Workspace) -> list[str]:
    out: list[str] = []
    for base in ws.bases:
        names: dict[str, str] = {}
        for table in base.tables:
            low = table.name.lower()
            if low in names:
                out.append(f"{base.id}: table names {names[low]!r} and {table.name!r} are the same ignoring case")
            names.setdefault(low, table.name)
            out += _table_problems(base, table.schema)
    return out


def check_workspace(ws: Workspace) -> Workspace:
    """``ws`` if Airtable could hold it; else :class:`WorkspaceRefused` naming the problems."""
    problems = workspace_problems(ws)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise WorkspaceRefused("the workspace holds what Airtable refuses: " + "; ".join(problems[:5]) + more)
    return ws
