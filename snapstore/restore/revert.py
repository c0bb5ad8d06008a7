"""Revert: put a live table (or some of its records) back as it was in a snapshot, in place."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapstore.fieldtypes import COMPUTED_TYPES
from snapstore.restore.comments import restore_comments
from snapstore.restore.errors import RestoreError, SimulatedCrash
from snapstore.restore.journal import RestoreJournal, _atomic_write, journal_id
from snapstore.restore.plan import BATCH, UPLOAD_LIMIT
from snapstore.restore.report import RestoreReport, TableReport
from snapstore.restore.sources import SnapshotSource
from snapstore.restore.values import _norm, _write_value
from snapstore.source.writer_client import AirtableWriter, WriteFailed


@dataclass
class RevertPlan:
    base_id: str
    table_id: str
    table_name: str
    recreate: list[str]
    update: dict[str, dict]  # record id -> {field id: snapshot value}
    added: list[str]
    unchanged: int
    fields_skipped: list[dict]
    linkable: dict[str, set[str] | None] = field(default_factory=dict)  # table -> old ids that exist or
    # will; None: the table cannot be read (403), its links are written as the snapshot has them
    schema_changes: dict = field(default_factory=dict)  # renamed / added / removed fields since the snapshot
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        return {"recreate": len(self.recreate), "update": len(self.update), "added_since": len(self.added),
                "unchanged": self.unchanged}


def schema_changes(snap_table: dict, live_table: dict) -> dict:
    """Fields renamed, added and removed since the snapshot (matched by field id)."""
    snap = {f["id"]: f for f in snap_table["fields"]}
    live = {f["id"]: f for f in live_table["fields"]}
    return {
        "renamed": [{"id": i, "from": snap[i]["name"], "to": live[i]["name"]} for i in snap
                    if i in live and live[i]["name"] != snap[i]["name"]],
        "added": [{"id": i, "name": live[i]["name"], "type": live[i]["type"]} for i in live if i not in snap],
        "removed": [{"id": i, "name": snap[i]["name"], "type": snap[i]["type"]} for i in snap if i not in live],
    }


def _rename_back(writer: AirtableWriter, plan: RevertPlan, rep: RestoreReport) -> None:
    """``--schema``: renamed fields get their snapshot names back (the update route can rename; it
    cannot bring back a removed field's id, nor change a type)."""
    renamed = plan.schema_changes.get("renamed") or []
    taken = {r["to"].lower() for r in renamed}
    # names swapped between fields: a temporary name first for those whose old name another holds
    for r in renamed:
        if r["from"].lower() in taken - {r["to"].lower()}:
            writer.rename_field(plan.table_id, r["id"], f"{r['from']} (reverting {r['id']})")
    for r in renamed:
        try:
            writer.rename_field(plan.table_id, r["id"], r["from"])
            r["reverted"] = True
        except WriteFailed as e:
            if e.status != 422:
                raise
            rep.warnings.append(f"field {r['to']!r} not renamed back to {r['from']!r}: {e}")
    if plan.schema_changes.get("removed"):
        rep.warnings.append("fields removed since the snapshot cannot be brought back in place (a new field "
                            "gets a new id): " + ", ".join(r["name"] for r in plan.schema_changes["removed"]))


def _live_records(client, base_id: str, table_id: str) -> list[dict]:
    out = []
    for page in client.iter_pages(base_id, table_id):
        out.extend(page)
    return out


def plan_revert(source: SnapshotSource, client, base_id: str, table: str, records: Iterable[str] = (),
                alias: dict[str, str] | None = None) -> tuple[RevertPlan, dict, list[dict], dict]:
    snap_schema = source.schema(base_id)
    st = next((t for t in snap_schema["tables"] if table in (t["id"], t["name"])), None)
    if st is None or not source.has_table(base_id, st["id"]):
        raise RestoreError(f"no table {table!r} in base {base_id} of {source.label}")
    live_schema = AirtableWriter(client.api, base_id).schema()
    lt = next((t for t in live_schema["tables"] if t["id"] == st["id"]), None)
    if lt is None:
        raise RestoreError(f"table {st['name']} ({st['id']}) no longer exists in base {base_id}; "
                           f"restore it as a new table instead (snapstore restore ... --to-base {base_id})")
    live_fields = {f["id"]: f for f in lt["fields"]}
    changes = schema_changes(st, lt)
    skipped = []
    fields = []
    for f in st["fields"]:
        if f["type"] in COMPUTED_TYPES:
            continue
        lf = live_fields.get(f["id"])
        if lf is None:
            skipped.append({"field": f["name"], "id": f["id"], "reason": "deleted from the table since the snapshot"})
        elif lf["type"] != f["type"]:
            skipped.append({"field": f["name"], "id": f["id"],
                            "reason": f"type changed since the snapshot ({f['type']} → {lf['type']})"})
        elif lf["type"] in COMPUTED_TYPES:
            continue
        else:
            fields.append(f)
    alias = alias or {}
    back = {new: old for old, new in alias.items()}
    live = {back.get(r["id"], r["id"]): r for r in _live_records(client, base_id, st["id"])}
    snap_recs = {r["id"]: r for r in source.records(base_id, st["id"])}
    only = set(records)
    if only:
        unknown = only - set(snap_recs) - set(live)
        if unknown:
            raise RestoreError(f"record(s) {', '.join(sorted(unknown))} neither in the snapshot nor in the table")
    linkable: dict[str, set[str] | None] = {}
    warnings: list[str] = []
    tgt = AirtableWriter(client.api, base_id)
    for f in fields:
        lt = (f.get("options") or {}).get("linkedTableId") if f["type"] == "multipleRecordLinks" else None
        if lt and lt not in linkable:
            if lt == st["id"]:
                linkable[lt] = set(snap_recs) | set(live)
                continue
            try:
                linkable[lt] = {back.get(r["id"], r["id"]) for r in tgt.list_ids(lt, fields=[])}
            except WriteFailed as e:
                if e.status not in (403, 404):
                    raise
                linkable[lt] = None
                warnings.append(f"{st['name']}.{f['name']}: linked table {lt} cannot be read ({e.status}); its "
                                "links are written as the snapshot has them, unchecked")
    recreate, update, added = [], {}, []
    unchanged = 0
    for rid, rec in snap_recs.items():
        if only and rid not in only:
            continue
        if rid not in live:
            recreate.append(rid)
            continue
        cur = live[rid].get("fields") or {}
        want = rec.get("fields") or {}
        diff = {}
        for f in fields:
            a = _norm(f["type"], want.get(f["id"]))
            b = _norm(f["type"], cur.get(f["id"]), back if f["type"] == "multipleRecordLinks" else None)
            if f["type"] == "multipleRecordLinks" and a:
                ok = linkable.get(f["options"]["linkedTableId"], set())
                a = a if ok is None else [x for x in a if x in ok] or None
            if a != b:
                diff[f["id"]] = want.get(f["id"])
        if diff:
            update[rid] = diff
        else:
            unchanged += 1
    for rid in live:
        if rid not in snap_recs and (not only or rid in only):
            added.append(rid)
    plan = RevertPlan(base_id, st["id"], st["name"], sorted(recreate), update, sorted(added), unchanged, skipped,
                      linkable, changes, warnings)
    return plan, {f["id"]: f for f in fields}, [snap_recs[r] for r in sorted(recreate)], live


def revert(source: SnapshotSource, *, client, base_id: str, table: str, records: Iterable[str] = (),
           delete_added: bool = False, dry_run: bool = False, confirm: Callable[[RevertPlan], bool] | None = None,
           fail_after: tuple[str, int] | None = None, schema: bool = False, comments: bool = True) -> RestoreReport:
    """Put a live table (or some of its records) back as it was in the snapshot; with ``schema``,
    fields renamed since get their old names back. The report lists the schema changes either way.
    A re-created record gets its comments back (``comments``), as a restore into a new table does
    (snapstore.restore.comments: oldest first, replies under their parent, journaled)."""
    records = list(records)
    jroot = Path(source.journal_root)
    key = journal_id("revert", source.identity, base_id)
    st = next((t for t in source.schema(base_id)["tables"] if table in (t["id"], t["name"])), None)
    if st is None:
        raise RestoreError(f"no table {table!r} in base {base_id} of {source.label}")
    # records re-created by earlier reverts from this snapshot (any table: links point across tables)
    alias: dict[str, str] = {}
    resume = None
    for p in sorted(jroot.glob(f"revert-{key}-*.sqlite")):
        j = RestoreJournal(p)
        alias.update(j.record_map())
        if j.get("status") != "complete" and j.get("table") == st["id"]:
            resume = p
        j.close()
    plan, fields, to_create, live = plan_revert(source, client, base_id, table, records, alias)
    rep = RestoreReport("revert", source.label, base_id, dry_run=dry_run)
    rep.plan = {"table": plan.table_name, "table_id": plan.table_id, **plan.counts(),
                "delete_added": delete_added, "fields_skipped": plan.fields_skipped,
                "schema_changes": plan.schema_changes, "schema": schema}
    rep.not_restorable = plan.fields_skipped
    rep.warnings.extend(plan.warnings)
    tr = rep.tables[plan.table_id] = TableReport(plan.table_name, new_table=plan.table_id)
    src_comments = _stored_comments(source, base_id, plan.table_id, plan.recreate, rep) if comments else {}
    rep.plan["comments"] = sum(len(src_comments.get(r) or []) for r in plan.recreate)
    if dry_run or (confirm is not None and not confirm(plan)):
        tr.comments = rep.comments_restored = rep.plan["comments"]
        rep.status = "planned" if dry_run else "cancelled"
        tr.created, tr.updated = len(plan.recreate), len(plan.update)
        tr.deleted = len(plan.added) if delete_added else 0
        tr.skipped = 0 if delete_added else len(plan.added)
        return rep
    jpath = resume or jroot / f"revert-{key}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}.sqlite"
    j = RestoreJournal(jpath)
    j.set("table", plan.table_id)
    rep.journal = str(jpath)
    t = AirtableWriter(client.api, base_id)
    tid = plan.table_id
    batches = 0

    def tick(step: str = "records") -> None:
        nonlocal batches
        if fail_after and fail_after[0] == "comments" and step != "comments":
            return
        batches += 1
        if fail_after and batches >= fail_after[1]:
            raise SimulatedCrash(f"simulated interruption after {batches} {step} batches")

    try:
        j.set("status", "running")
        if schema:
            _rename_back(t, plan, rep)
        linkable = plan.linkable
        pend = j.pending(tid, "records")
        if pend:
            _adopt_recreated(j, plan, fields, to_create, live, pend, rep)
            alias.update(j.record_map())
            to_create = [r for r in to_create if r["id"] in set(plan.recreate)]
        live_atts: set[str] = set()
        for r in live.values():
            for f in fields.values():
                if f["type"] == "multipleAttachments":
                    live_atts.update(a.get("id") for a in (r.get("fields") or {}).get(f["id"]) or [])

        def row_for(cells: dict, with_links: bool, amap: dict[str, str]) -> tuple[dict, list]:
            out: dict[str, Any] = {}
            uploads = []
            for fid, f in fields.items():
                if fid not in cells and not with_links:
                    continue
                v = cells.get(fid)
                if f["type"] == "multipleRecordLinks":
                    if not with_links:
                        continue
                    ok = linkable.get(f["options"]["linkedTableId"], set())
                    if ok is None:  # unreadable table: as in the snapshot
                        out[fid] = [amap.get(x, x) for x in v or []] or None
                        continue
                    gone = [x for x in v or [] if x not in ok]
                    if gone:
                        rep.warnings.append(f"{fields[fid]['name']}: {len(gone)} linked records no longer "
                                            "exist (revert their table too)")
                    out[fid] = [amap.get(x, x) for x in v or [] if x in ok] or None
                elif f["type"] == "multipleAttachments":
                    keep = [{"id": a["id"]} for a in v or [] if a.get("id") in live_atts]
                    uploads += [(fid, a) for a in v or [] if a.get("id") not in live_atts]
                    out[fid] = keep or None
                else:
                    out[fid] = _write_value(f["type"], v)
            return out, uploads

        # 1. re-create deleted records (no links yet)
        pending_uploads: list[tuple[str, str, dict]] = []
        done_map = j.record_map()
        todo = [r for r in to_create if r["id"] not in done_map]
        for i in range(0, len(todo), BATCH):
            chunk = todo[i : i + BATCH]
            rows = []
            for r in chunk:
                row, ups = row_for({k: v for k, v in (r.get("fields") or {}).items() if k in fields}, False, {})
                rows.append({k: v for k, v in row.items() if v is not None})
            j.set_pending(tid, "records", [r["id"] for r in chunk])
            made = t.create(tid, rows)
            with j.tx() as c:
                c.executemany("INSERT INTO rmap VALUES (?, ?, ?)",
                              [(tid, r["id"], m["id"]) for r, m in zip(chunk, made, strict=True)])
                j.clear_pending(c, tid, "records")
            tr.created += len(made)
            tick()
        amap = {**alias, **j.record_map()}
        # 2. rewrite changed fields (+ links of re-created records)
        updates: list[dict] = []
        for rid, diff in plan.update.items():
            row, ups = row_for(diff, True, amap)
            row = {k: v for k, v in row.items() if k in diff}
            updates.append({"id": alias.get(rid, rid), "fields": row})
            pending_uploads += [(alias.get(rid, rid), fid, a) for fid, a in ups]
        for r in to_create:
            cells = {k: v for k, v in (r.get("fields") or {}).items() if k in fields}
            row, ups = row_for(cells, True, amap)
            row = {k: v for k, v in row.items()
                   if fields[k]["type"] in ("multipleRecordLinks", "multipleAttachments") and v}
            if row:
                updates.append({"id": amap[r["id"]], "fields": row})
            pending_uploads += [(amap[r["id"]], fid, a) for fid, a in ups]
        for i in range(0, len(updates), BATCH):
            t.update(tid, updates[i : i + BATCH])
            tick()
        tr.updated = len(plan.update)
        # 3. the comments of the re-created records (also those an interrupted run re-created)
        if src_comments:
            made = j.record_map(tid)
            n = restore_comments(journal=j, writer=t, comments={r: src_comments[r] for r in made if r in src_comments},
                                 src_table=tid, new_table=tid, record_map=made, tick=lambda: tick("comments"))
            tr.comments += n
            rep.comments_restored += n
        # 4. files no longer in the table: upload from the store
        for rec_id, fid, a in pending_uploads:
            info = source.att_info(a.get("id")) if a.get("id") else None
            if info is None or (info.get("size") or 0) > UPLOAD_LIMIT:
                rep.attachments_not_uploaded.append({"record": rec_id, "field": fields[fid]["name"],
                                                     "attachment": a.get("id"), "filename": a.get("filename"),
                                                     "reason": "not in the backup" if info is None else "larger than 5 MB"})
                continue
            with source.open_att(a["id"]) as fh:
                t.upload(tid, rec_id, fid, a.get("filename") or "file", fh.read(), a.get("type") or info.get("mime"))
            rep.attachments_uploaded += 1
        # 5. records added since
        if delete_added:
            ids = [alias.get(r, r) for r in plan.added]
            for i in range(0, len(ids), BATCH):
                t.delete(tid, ids[i : i + BATCH])
                tick()
            tr.deleted = len(ids)
        else:
            tr.skipped = len(plan.added)
        j.set("status", "complete")
        idmap = j.path.with_suffix(".idmap.json")
        _atomic_write(idmap, json.dumps({tid: j.record_map()}, indent=1, sort_keys=True).encode())
        rep.id_map_file = str(idmap)
        rep.status = "complete"
        _atomic_write(j.path.with_suffix(".report.json"), json.dumps(rep.to_dict(), indent=1, default=str).encode())
        return rep
    finally:
        j.close()


def _stored_comments(source: SnapshotSource, base_id: str, table_id: str, recreate: list[str],
                     rep: RestoreReport) -> dict[str, list[dict]]:
    """The snapshot's comments of the table; a warning when records come back without any because the
    snapshot was taken without ``--comments`` (it cannot tell whether they had some)."""
    stored = next(source.store.table_comments(source.snap, [(base_id, table_id)]))
    if stored is None and recreate:
        rep.warnings.append(f"the snapshot holds no comments of this table (taken without --comments): the "
                            f"{len(recreate)} re-created record(s) come back without theirs")
    return stored or {}


def _adopt_recreated(j: RestoreJournal, plan: RevertPlan, fields: dict, to_create: list[dict], live: dict,
                     pend: list[str], rep: RestoreReport) -> None:
    """A re-create batch was sent but not journaled: the records it made show up as "added since".
    Adopt each one whose plain cells equal a pending snapshot record's, instead of creating it again."""
    plain = {fid: f for fid, f in fields.items() if f["type"] not in ("multipleRecordLinks", "multipleAttachments")}

    def key(cells: dict) -> str:
        return json.dumps({fid: _norm(f["type"], cells.get(fid)) for fid, f in plain.items()}, sort_keys=True,
                          default=str)

    free: dict[str, list[str]] = {}
    for rid in plan.added:
        free.setdefault(key(live[rid].get("fields") or {}), []).append(rid)
    adopted = []
    for r in to_create:
        if r["id"] not in pend:
            continue
        hits = free.get(key(r.get("fields") or {}))
        if hits:
            adopted.append((r["id"], hits.pop(0)))
    with j.tx() as c:
        c.executemany("INSERT OR REPLACE INTO rmap VALUES (?, ?, ?)", [(plan.table_id, o, n) for o, n in adopted])
        j.clear_pending(c, plan.table_id, "records")
    gone = {n for _, n in adopted}
    done = {o for o, _ in adopted}
    plan.added = [r for r in plan.added if r not in gone]
    plan.recreate = [r for r in plan.recreate if r not in done]
    if adopted:
        rep.warnings.append(f"adopted {len(adopted)} records re-created by the interrupted run")
