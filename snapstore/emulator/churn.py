"""Churn: simulate a day of work on a workspace, deterministically from a seed.

Shares (``edit_share``, ``add_share``, ``delete_share``) apply to every table; counts
(``rename_fields``, ``rename_tables``, ``add_fields``, ``replace_attachments``, ``link_edits``,
``change_types``, ``delete_fields``, ``add_tables``, ``delete_tables``) are totals across the workspace.
The last three are changes only the UI can make (Airtable's Web API cannot delete a field or a table, nor
change a field's type). The report says exactly what changed, per table."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from . import ops, schema_ops
from .formula import format_datetime, parse_datetime
from .generate import WRITABLE_GENERATED, _Values, make_attachment
from .ids import random_id
from .state import Workspace

EDITABLE = WRITABLE_GENERATED - {"multipleAttachments"}
NEW_FIELD_TYPES = [("singleLineText", None), ("number", {"precision": 1}), ("checkbox", None),
                   ("date", {"dateFormat": {"name": "iso"}}),
                   ("singleSelect", {"choices": [{"name": "Low"}, {"name": "High"}]})]


def churn(ws: Workspace, seed: int = 1, edit_share: float = 0.01, add_share: float = 0.005,
          delete_share: float = 0.005, rename_fields: int = 0, rename_tables: int = 0, add_fields: int = 0,
          replace_attachments: int = 0, now: str | None = None, link_edits: int = 0, change_types: int = 0,
          delete_fields: int = 0, add_tables: int = 0, delete_tables: int = 0) -> dict:
    """Edit, add and delete records, edit links, rename fields/tables, add, retype and delete fields, add
    and delete tables, replace attachments.

    Returns ``{"seed", "now", "tables": {table_id: {"base", "name", "edited", "added", "deleted",
    "renamed_fields": [{"id","old","new"}], "added_fields": [{"id","name","type"}],
    "replaced_attachments": [{"record","field","old","new"}], "renamed": {"old","new"} | None,
    "linked": [{"record","field"}], "retyped_fields": [{"id","old","new"}], "deleted_fields": [id],
    "created": bool, "deleted_table": bool}}}``."""
    for name, share in (("edit_share", edit_share), ("add_share", add_share), ("delete_share", delete_share)):
        if not 0.0 <= float(share) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    rng = random.Random(f"snapstore-churn:{ws.seed}:{seed}:{ws.id_seq}")
    if now is None:
        now_dt = (parse_datetime(ws.now) or dt.datetime(2024, 6, 1, tzinfo=dt.UTC)) + dt.timedelta(days=1)
        now = format_datetime(now_dt)
    user = rng.choice(ws.users) if ws.users else ws.default_user
    vals = _Values(ws, rng, 1.0)
    report: dict[str, Any] = {"seed": seed, "now": now, "tables": {}}

    def entry(base, table) -> dict:
        return report["tables"].setdefault(table.id, {
            "base": base.id, "name": table.name, "edited": [], "added": [], "deleted": [], "renamed_fields": [],
            "added_fields": [], "replaced_attachments": [], "renamed": None, "linked": [], "retyped_fields": [],
            "deleted_fields": [], "created": False, "deleted_table": False})

    all_tables = [(b, t) for b in ws.bases for t in b.tables]
    for base, table in all_tables:
        e = entry(base, table)
        ids = list(table.records)
        n = len(ids)
        k_edit, k_del, k_add = round(n * edit_share), round(n * delete_share), round(n * add_share)
        chosen = rng.sample(ids, min(n, k_edit + k_del))
        to_edit, to_delete = sorted(chosen[:k_edit]), sorted(chosen[k_edit:])
        editable = [f for f in table.fields if f["type"] in EDITABLE and f["id"] != table.primary_field_id
                    or f["id"] == table.primary_field_id and f["type"] in EDITABLE]
        for rid in to_edit:
            rec = table.records[rid]
            new: dict[str, Any] = {}
            for f in rng.sample(editable, min(len(editable), rng.randint(1, 3))) if editable else []:
                new[f["id"]] = vals.value(f, rid, rng.randrange(1, 10**6), force=True)
            if new:
                ops.apply(ws, base, table, rec, new, user=user, now=now)
                e["edited"].append(rid)
        for rid in to_delete:
            ops.delete(ws, base, table, rid, user=user, now=now)
            e["deleted"].append(rid)
        for _ in range(k_add):
            cells: dict[str, Any] = {}
            rid = random_id("rec", rng)
            for f in table.fields:
                if f["type"] in WRITABLE_GENERATED:
                    v = vals.value(f, rid, len(table.records) + 1, force=f["id"] == table.primary_field_id)
                    if f["type"] == "multipleAttachments" and rng.random() > 0.3:
                        v = None
                    if v is not None:
                        cells[f["id"]] = v
            rec = ops.create(ws, base, table, cells, user=user, now=now, rec_id=rid)
            e["added"].append(rec.id)
    # renames and new fields: totals across the workspace
    field_pool = [(b, t, f) for b, t in all_tables for f in t.fields]
    for b, t, f in rng.sample(field_pool, min(len(field_pool), int(rename_fields))):
        old = f["name"]
        new_name = f"{old} (renamed {rng.randrange(1000)})"
        schema_ops.update_field(ws, t, f, {"name": new_name})
        entry(b, t)["renamed_fields"].append({"id": f["id"], "old": old, "new": new_name})
    for b, t in rng.sample(all_tables, min(len(all_tables), int(rename_tables))):
        old = t.name
        new_name = f"{old} {rng.choice(['Archive', 'v2', 'Main', 'Backlog'])}"
        schema_ops.update_table(b, t, {"name": new_name})
        e = entry(b, t)
        e["renamed"] = {"old": old, "new": new_name}
        e["name"] = new_name
    for _ in range(int(add_fields)):
        if not all_tables:
            break
        b, t = rng.choice(all_tables)
        type_, opts = rng.choice(NEW_FIELD_TYPES)
        names = {x["name"].lower() for x in t.fields}
        name = schema_ops._unique_name(names, f"Added {type_}")
        cfg: dict[str, Any] = {"name": name, "type": type_}
        if opts:
            cfg["options"] = opts
        f = schema_ops.create_field(ws, b, t, cfg)
        entry(b, t)["added_fields"].append({"id": f["id"], "name": f["name"], "type": f["type"]})
    _link_edits(ws, rng, all_tables, int(link_edits), user, now, entry)
    _schema_churn(ws, rng, int(change_types), int(delete_fields), int(add_tables), int(delete_tables), user, now,
                  entry)
    all_tables = [(b, t) for b in ws.bases for t in b.tables]
    # attachment replacements
    pool = [(b, t, r, f) for b, t in all_tables for f in t.fields if f["type"] == "multipleAttachments"
            for r in t.records.values() if r.cells.get(f["id"])]
    for b, t, r, f in rng.sample(pool, min(len(pool), int(replace_attachments))):
        cell = list(r.cells[f["id"]])
        i = rng.randrange(len(cell))
        old_id = cell[i]["id"]
        vals.n += 1
        cell[i] = make_attachment(ws, rng, random_id("att", rng), vals.n)
        ops.apply(ws, b, t, r, {f["id"]: cell}, user=user, now=now)
        entry(b, t)["replaced_attachments"].append({"record": r.id, "field": f["id"], "old": old_id,
                                                    "new": cell[i]["id"]})
    ws.touch(now)
    return report


def _link_edits(ws: Workspace, rng: random.Random, all_tables: list, n: int, user: dict, now: str, entry: Any) -> None:
    """``n`` link cells set to 0-3 random records of the linked table (either side of a link)."""
    pool = [(b, t, f) for b, t in all_tables if t.records for f in t.fields if f["type"] == "multipleRecordLinks"]
    for _ in range(n if pool else 0):
        b, t, f = rng.choice(pool)
        linked = b.table_by_id(f["options"]["linkedTableId"])
        if linked is None or not linked.records:
            continue
        rid = rng.choice(sorted(t.records))
        targets = rng.sample(sorted(linked.records), min(len(linked.records), rng.randint(0, 3)))
        if f["options"].get("prefersSingleRecordLink"):
            targets = targets[:1]
        ops.apply(ws, b, t, t.records[rid], {f["id"]: targets or None}, user=user, now=now)
        entry(b, t)["linked"].append({"record": rid, "field": f["id"]})


def _schema_churn(ws: Workspace, rng: random.Random, change_types: int, delete_fields: int, add_tables: int,
                  delete_tables: int, user: dict, now: str, entry: Any) -> None:
    for _ in range(change_types):
        pool = [(b, t, f) for b in ws.bases for t in b.tables for f in t.fields
                if f["type"] in schema_ops.CONVERTIBLE_TYPES and f["id"] != t.primary_field_id]
        if not pool:
            break
        b, t, f = rng.choice(pool)
        old = f["type"]
        type_, opts = rng.choice([x for x in NEW_FIELD_TYPES if x[0] != old])
        schema_ops.change_field_type(ws, b, t, f, type_, opts)
        entry(b, t)["retyped_fields"].append({"id": f["id"], "old": old, "new": type_})
    for _ in range(delete_fields):
        pool = [(b, t, f) for b in ws.bases for t in b.tables for f in t.fields if f["id"] != t.primary_field_id]
        if not pool:
            break
        b, t, f = rng.choice(pool)
        owners = {x.fields_by_id[g]["id"]: x for x in b.tables for g in x.fields_by_id}
        for fid in schema_ops.delete_field(ws, b, t, f):
            entry(b, owners.get(fid, t))["deleted_fields"].append(fid)
    for i in range(add_tables):
        if not ws.bases:
            break
        b = rng.choice(ws.bases)
        name = schema_ops._unique_name({t.name.lower() for t in b.tables}, f"Added table {i + 1}")
        t = schema_ops.create_table(ws, b, {"name": name, "fields": [
            {"name": "Name", "type": "singleLineText"}, {"name": "Amount", "type": "number",
                                                         "options": {"precision": 1}}]})
        fid_name, fid_amount = t.fields[0]["id"], t.fields[1]["id"]
        for k in range(rng.randint(0, 3)):
            ops.create(ws, b, t, {fid_name: f"{name} {k + 1}", fid_amount: rng.randrange(1000) / 10},
                       user=user, now=now)
        entry(b, t)["created"] = True
    for _ in range(delete_tables):
        pool = [(b, t) for b in ws.bases if len(b.tables) > 1 for t in b.tables]
        if not pool:
            break
        b, t = rng.choice(pool)
        e = entry(b, t)
        schema_ops.delete_table(ws, b, t)
        e["deleted_table"] = True

