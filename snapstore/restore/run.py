"""A restore into new tables: schema, records, links, attachments, each step journaled."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapstore.restore.comments import restore_comments
from snapstore.restore.errors import Interrupted, RestoreError
from snapstore.restore.journal import Journal, _atomic_write, journal_id
from snapstore.restore.links import one_side_per_pair
from snapstore.restore.plan import (
    BATCH,
    LOST_OPTIONS,
    UPLOAD_LIMIT,
    FieldPlan,
    Plan,
    TablePlan,
    _plan_from_dict,
    _plan_to_state,
    make_plan,
)
from snapstore.restore.report import Report, TableReport
from snapstore.restore.values import _text_of, _write_value
from snapstore.source.errors import SourceError
from snapstore.source.writer_client import AirtableWriter, WriteFailed

_FIELD_IN_MSG = re.compile(r'[Ff]ield \\?"(.+?)\\?"')





def field_def(fp: FieldPlan, as_text: bool = False) -> dict:
    """The create-field config of one planned field (``as_text``: a text field for last values)."""
    if as_text:
        d = {"name": fp.name, "type": "multilineText"}
        defn = json.dumps(fp.definition, sort_keys=True)[:15000] if fp.definition else ""
        d["description"] = (f"snapstore restore: last values of a {fp.type} field; definition: {defn}")[:20000]
        return d
    d: dict[str, Any] = {"name": fp.name, "type": fp.type}
    if fp.options:
        d["options"] = fp.options
    if fp.description:
        d["description"] = fp.description
    return d


def table_field_defs(tp: TablePlan) -> list[dict]:
    """The fields a table is created with (primary first; links come later, once every table exists)."""
    return [field_def(fp, as_text=fp.action in ("primary_text", "keep_text")) for fp in tp.fields
            if fp.action in ("primary", "create", "primary_text", "keep_text")]


def create_base(client, j: Journal, plan: Plan, workspace: str, name: str) -> str:
    """``--to-workspace``: a new base holding every planned table (create-base route, reference §6.5);
    the tables are journaled as pending so the schema step adopts them. Returns the new base id."""
    for tp in plan.tables:
        j.set_pending(tp.src_id, "table", {"name": tp.new_name})
    tables = [{"name": tp.new_name, "fields": table_field_defs(tp),
               **({"description": tp.description} if tp.description else {})} for tp in plan.tables]
    made = AirtableWriter(client.api, None).create_base(name, workspace, tables)
    plan.target_base = made["id"]
    j.set("target_base", made["id"])
    j.set("plan", _plan_to_state(plan))
    return made["id"]


class Restore:
    """One restore of a source base's tables into new tables of ``target_base``."""

    def __init__(self, source, target: AirtableWriter | None, plan: Plan, journal: Journal, *,
                 fail_after: tuple[str, int] | None = None, log: Callable[[str], None] | None = None) -> None:
        self.source = source
        self.t = target
        self.plan = plan
        self.j = journal
        self.fail_after = fail_after
        self._batches: dict[str, int] = {}
        self.log = log or (lambda m: None)
        self.report = Report("restore", source.label, plan.target_base, journal=str(journal.path))
        self.report.plan = plan.to_dict()
        self.report.not_restorable = plan.not_restorable
        for tp in plan.tables:
            self.report.tables[tp.src_id] = TableReport(tp.name, new_name=tp.new_name)
        self.manual_dir = journal.path.with_suffix(".manual")
        self._implied: dict[str, dict[str, list[str]]] | None = None
        self.link_floor = 0

    def _tick(self, step: str) -> None:
        n = self._batches[step] = self._batches.get(step, 0) + 1
        if self.fail_after and self.fail_after[0] in (step, "any") and n >= self.fail_after[1]:
            raise Interrupted(f"simulated interruption after {n} {step} batches")

    # ----------------------------------------------------------------------------------- schema

    def create_schema(self) -> None:
        tmap = self.j.table_map()
        live = None
        for tp in self.plan.tables:
            if tp.src_id in tmap:
                continue
            if live is None:
                live = {t["name"]: t for t in self.t.schema()["tables"]}
            pend = self.j.pending(tp.src_id, "table")
            if pend is not None and tp.new_name in live:
                made = live[tp.new_name]  # created before the interruption: adopt it
            else:
                if tp.new_name in live:
                    raise RestoreError(f"a table named {tp.new_name!r} appeared in base {self.plan.target_base} "
                                       "since this restore was planned; start again with --new")
                defs = table_field_defs(tp)
                self.j.set_pending(tp.src_id, "table", {"name": tp.new_name})
                made = self.t.create_table(tp.new_name, defs, tp.description)
            by_name = {f["name"]: f["id"] for f in made["fields"]}
            with self.j.tx() as c:
                c.execute("INSERT INTO tmap VALUES (?, ?, ?)", [tp.src_id, made["id"], tp.new_name])
                for fp in tp.fields:
                    if fp.name in by_name and fp.action in ("primary", "create", "primary_text", "keep_text"):
                        c.execute("INSERT OR REPLACE INTO fmap VALUES (?, ?, ?)", [tp.src_id, fp.src_id, by_name[fp.name]])
                self.j.clear_pending(c, tp.src_id, "table")
            self.log(f"created table {tp.new_name!r} ({made['id']})")
        tmap = self.j.table_map()
        for tp in self.plan.tables:
            self.report.tables[tp.src_id].new_table = tmap[tp.src_id][0]
        # link fields, one side per pair
        for tp in self.plan.tables:
            fmap = self.j.field_map(tp.src_id)
            for fp in tp.fields:
                if fp.action != "link" or fp.src_id in fmap:
                    continue
                new_tid = tmap[tp.src_id][0]
                other_new = tmap[fp.link_table][0]
                live_fields = self._live_fields(new_tid)
                if fp.name in live_fields and self.j.pending(tp.src_id, "field:" + fp.src_id) is not None:
                    made = live_fields[fp.name]
                else:
                    self.j.set_pending(tp.src_id, "field:" + fp.src_id, {"name": fp.name})
                    made = self._create_link(tp, fp, new_tid, other_new)
                with self.j.tx() as c:
                    c.execute("INSERT OR REPLACE INTO fmap VALUES (?, ?, ?)", [tp.src_id, fp.src_id, made["id"]])
                    self.j.clear_pending(c, tp.src_id, "field:" + fp.src_id)
                self._map_inverse(tp, fp, made, other_new)

    def _create_link(self, tp: TablePlan, fp: FieldPlan, new_tid: str, other_new: str) -> dict:
        """The link field, with its options the create route takes; an option it refuses (422) or
        drops is reported by name and the field created without it."""
        d: dict[str, Any] = {"name": fp.name, "type": "multipleRecordLinks",
                             "options": {"linkedTableId": other_new, **(fp.link_options or {})}}
        if fp.description:
            d["description"] = fp.description
        try:
            made = self.t.create_field(new_tid, d)
        except WriteFailed as e:
            if e.status != 422 or not fp.link_options:
                raise
            d["options"] = {"linkedTableId": other_new}
            made = self.t.create_field(new_tid, d)
        got = made.get("options") or {}
        for opt, want in (fp.link_options or {}).items():
            if got.get(opt) != want:
                self.report.not_restorable.append(
                    {"table": tp.name, "field": fp.name, "id": fp.src_id, "type": fp.type, "option": opt,
                     "reason": LOST_OPTIONS.get(opt, "the create route does not accept this option")})
        return made

    def _live_fields(self, table_id: str) -> dict[str, dict]:
        for t in self.t.schema()["tables"]:
            if t["id"] == table_id:
                return {f["name"]: f for f in t["fields"]}
        raise RestoreError(f"table {table_id} disappeared from base {self.plan.target_base}")

    def _map_inverse(self, tp: TablePlan, fp: FieldPlan, made: dict, other_new: str) -> None:
        inv_new = (made.get("options") or {}).get("inverseLinkFieldId")
        if not inv_new:
            for t in self.t.schema()["tables"]:
                for f in t["fields"]:
                    if f["id"] == made["id"]:
                        inv_new = (f.get("options") or {}).get("inverseLinkFieldId")
        # the source's inverse of this link
        inv_plan = None
        inv_tp = None
        for other in self.plan.tables:
            for g in other.fields:
                if g.action == "inverse" and g.inverse_of == fp.src_id:
                    inv_plan, inv_tp = g, other
        if inv_plan is None:
            if inv_new:
                self.report.warnings.append(
                    f"linking {tp.name}.{fp.name} created an inverse field {inv_new} that the source did not have")
            return
        if not inv_new:
            self.report.warnings.append(f"{inv_tp.name}.{inv_plan.name}: the target created no inverse field")
            return
        with contextlib.suppress(RestoreError, SourceError):
            live = self._live_fields(other_new)
            cur = next((f for f in live.values() if f["id"] == inv_new), {})
            if cur.get("name") != inv_plan.name or (inv_plan.description or None) != cur.get("description"):
                self.t.rename_field(other_new, inv_new, inv_plan.name, inv_plan.description)
        with self.j.tx() as c:
            c.execute("INSERT OR REPLACE INTO fmap VALUES (?, ?, ?)", [inv_tp.src_id, inv_plan.src_id, inv_new])

    # ----------------------------------------------------------------------------------- records

    def _record_fields(self, tp: TablePlan, fmap: dict[str, str], rec: dict) -> dict:
        out: dict[str, Any] = {}
        cells = rec.get("fields") or {}
        for fp in tp.fields:
            new = fmap.get(fp.src_id)
            if new is None or fp.src_id not in cells:
                continue
            v = cells[fp.src_id]
            if fp.action in ("primary_text", "keep_text"):
                txt = _text_of(v)
                if txt:
                    out[new] = txt
            elif fp.action in ("primary", "create") and fp.type != "multipleAttachments":
                out[new] = _write_value(fp.type, v)
        return out

    def create_records(self, tp: TablePlan) -> None:
        tid = self.j.table_map()[tp.src_id][0]
        fmap = self.j.field_map(tp.src_id)
        mapped = self.j.record_map(tp.src_id)
        rep = self.report.tables[tp.src_id]
        rep.resumed += len(mapped)
        pend = self.j.pending(tp.src_id, "records")
        if pend is not None:
            self._recover_batch(tp, tid, mapped, pend)
            mapped = self.j.record_map(tp.src_id)
        batch: list[dict] = []
        for rec in self.source.records(self.plan.base_id, tp.src_id):
            if rec["id"] in mapped:
                continue
            batch.append(rec)
            if len(batch) == BATCH:
                self._create_batch(tp, tid, fmap, batch)
                batch = []
        if batch:
            self._create_batch(tp, tid, fmap, batch)
        self.log(f"{tp.name}: {rep.created} records created" + (f" ({rep.resumed} before)" if rep.resumed else ""))

    def _recover_batch(self, tp: TablePlan, tid: str, mapped: dict[str, str], pend: list[str]) -> None:
        """A create batch was sent but not journaled: delete whatever of it reached the table."""
        known = set(mapped.values())
        orphans = [r["id"] for r in self.t.list_ids(tid, fields=[]) if r["id"] not in known]
        if len(orphans) > len(pend):
            raise RestoreError(f"table {tp.new_name} holds {len(orphans)} records this restore did not journal "
                               f"(at most {len(pend)} expected); refusing to guess — start again with --new")
        for i in range(0, len(orphans), BATCH):
            self.t.delete(tid, orphans[i : i + BATCH])
        with self.j.tx() as c:
            self.j.clear_pending(c, tp.src_id, "records")
        if orphans:
            self.report.warnings.append(f"{tp.name}: removed {len(orphans)} records of an interrupted batch "
                                        "before sending it again")

    def _create_batch(self, tp: TablePlan, tid: str, fmap: dict[str, str], batch: list[dict]) -> None:
        rows = [self._record_fields(tp, fmap, r) for r in batch]
        self.j.set_pending(tp.src_id, "records", [r["id"] for r in batch])
        try:
            made = self.t.create(tid, rows)
        except WriteFailed as e:
            if e.status != 422:
                raise
            made = [self._create_one(tp, tid, fmap, r, row) for r, row in zip(batch, rows, strict=True)]
        if self.fail_after and self.fail_after[0] == "records-unjournaled" and \
                self._batches.get("records", 0) + 1 >= self.fail_after[1]:
            raise Interrupted("simulated interruption between a create and its journal entry")
        with self.j.tx() as c:
            c.executemany("INSERT INTO rmap VALUES (?, ?, ?)",
                          [(tp.src_id, r["id"], m["id"]) for r, m in zip(batch, made, strict=True)])
            self.j.clear_pending(c, tp.src_id, "records")
        self.report.tables[tp.src_id].created += len(made)
        self._tick("records")

    def _create_one(self, tp: TablePlan, tid: str, fmap: dict[str, str], rec: dict, row: dict) -> dict:
        """A batch was refused (422): send its records one by one, dropping the cells refused."""
        row = dict(row)
        names = {fmap[f.src_id]: f.name for f in tp.fields if f.src_id in fmap}
        for _ in range(len(row) + 1):
            try:
                return self.t.create(tid, [row])[0]
            except WriteFailed as e:
                if e.status != 422:
                    raise
                m = _FIELD_IN_MSG.search(str(e))
                bad = next((fid for fid, n in names.items() if m and n == m.group(1) and fid in row), None)
                if bad is None:
                    raise
                self.report.warnings.append(f"{tp.name} record {rec['id']}: field {names[bad]!r} not written ({e.detail.strip() or e})")
                self.j.note("cell_dropped", tp.src_id, {"record": rec["id"], "field": names[bad]})
                del row[bad]
        raise RestoreError(f"{tp.name} record {rec['id']}: could not be created")

    # ----------------------------------------------------------------------------------- links

    def write_links(self, tp: TablePlan) -> None:
        """Every link of ``tp``'s records, writing one side of each two-sided pair.

        Airtable fills in the inverse side of a link itself, appending the linking record to the
        linked record's list in the order the links are written. So of each pair one side is written
        whole, and the other only for the records whose list those writes would leave in another
        order than the snapshot's (measured on 3,000 records with 7 link fields: 245 link updates
        writing both sides, 156 writing the side the plan created, 131 choosing per pair the side
        that leaves the fewest lists to put in order)."""
        links = [f for f in tp.fields if f.action in ("link", "inverse")]
        if not links:
            return
        tid = self.j.table_map()[tp.src_id][0]
        fmap = self.j.field_map(tp.src_id)
        links = [f for f in links if f.src_id in fmap]
        mapped = self.j.record_map(tp.src_id)
        maps = {f.src_id: self.j.record_map(f.link_table) for f in links}
        implied = self._link_sides()
        done = self.j.done_keys(tp.src_id, "links")
        rep = self.report.tables[tp.src_id]
        dropped = 0
        batch: list[tuple[str, dict]] = []

        def flush() -> None:
            if not batch:
                return
            self.t.update(tid, [{"id": mapped[o], "fields": f} for o, f in batch])
            with self.j.tx() as c:
                c.executemany("INSERT OR IGNORE INTO done VALUES (?, 'links', ?)", [(tp.src_id, o) for o, _ in batch])
            rep.updated += len(batch)
            batch.clear()
            self._tick("links")

        for rec in self.source.records(self.plan.base_id, tp.src_id):
            if rec["id"] in done or rec["id"] not in mapped:
                continue
            cells = rec.get("fields") or {}
            out = {}
            for f in links:
                v = cells.get(f.src_id)
                if not v:
                    continue
                m = maps[f.src_id]
                kept = [x for x in v if x in m]
                built = implied.get(f.src_id)
                if built is None:
                    dropped += len(v) - len(kept)
                elif kept == built.get(rec["id"], []):
                    continue  # the other side's writes leave exactly this list
                if kept:
                    out[fmap[f.src_id]] = [m[x] for x in kept]
            if out:
                batch.append((rec["id"], out))
                if len(batch) == BATCH:
                    flush()
        flush()
        if dropped:
            self.report.warnings.append(f"{tp.name}: {dropped} links pointed at records not in the source; dropped")

    def _link_sides(self) -> dict[str, dict[str, list[str]]]:
        if self._implied is None:
            self._implied, self.link_floor = one_side_per_pair(self.plan, self.source, self.j.record_map)
        return self._implied

    # ----------------------------------------------------------------------------------- attachments

    def upload_attachments(self, tp: TablePlan) -> None:
        atts = [f for f in tp.fields if f.type == "multipleAttachments" and f.action == "create"]
        if not atts:
            return
        tid = self.j.table_map()[tp.src_id][0]
        fmap = self.j.field_map(tp.src_id)
        mapped = self.j.record_map(tp.src_id)
        done = {(r, f, i) for r, f, i in self.j.con.execute(
            "SELECT old_rec, field, idx FROM atts WHERE src_table = ?", [tp.src_id])}
        pend = self.j.pending(tp.src_id, "upload")
        for rec in self.source.records(self.plan.base_id, tp.src_id):
            new_rec = mapped.get(rec["id"])
            if new_rec is None:
                continue
            for f in atts:
                for i, a in enumerate((rec.get("fields") or {}).get(f.src_id) or []):
                    if (rec["id"], f.src_id, i) in done:
                        continue
                    key = [rec["id"], f.src_id, i]
                    if pend == key:
                        pend = None
                        if self._adopt_upload(tp, tid, fmap[f.src_id], new_rec, key, a):
                            continue
                    self._upload_one(tp, tid, fmap[f.src_id], rec["id"], new_rec, f, i, a)

    def _adopt_upload(self, tp, tid, new_field, new_rec, key, a) -> bool:
        """An upload was sent but not journaled: if the cell has one more file than journaled, keep it."""
        have = self.j.con.execute("SELECT count(*) FROM atts WHERE src_table=? AND old_rec=? AND field=?",
                                  [tp.src_id, key[0], key[1]]).fetchone()[0]
        cell = (self.t.get_record(tid, new_rec).get("fields") or {}).get(new_field) or []
        known = {r for (r,) in self.j.con.execute(
            "SELECT new_att FROM atts WHERE src_table=? AND old_rec=? AND field=?", [tp.src_id, key[0], key[1]])}
        extra = [x["id"] for x in cell if x.get("id") not in known]
        with self.j.tx() as c:
            self.j.clear_pending(c, tp.src_id, "upload")
            if len(cell) == have + 1 and len(extra) == 1:
                c.execute("INSERT INTO atts VALUES (?, ?, ?, ?, ?, ?)",
                          [tp.src_id, key[0], key[1], key[2], a.get("id"), extra[0]])
                self.report.attachments_uploaded += 1
                return True
        return False

    def _upload_one(self, tp, tid, new_field, old_rec, new_rec, f: FieldPlan, i: int, a: dict) -> None:
        att_id = a.get("id")
        info = self.source.att_info(att_id) if att_id else None
        size = (info or {}).get("size") or a.get("size") or 0
        filename = a.get("filename") or (info or {}).get("filename") or "file"
        miss = {"table": tp.name, "record": old_rec, "new_record": new_rec, "field": f.name,
                "attachment": att_id, "filename": filename, "size": size}
        if info is None:
            miss["reason"] = "the file is not in the backup"
            self.report.attachments_not_uploaded.append(miss)
            return
        if size > UPLOAD_LIMIT:
            miss["reason"] = f"larger than the {UPLOAD_LIMIT // (1024 * 1024)} MB uploadAttachment limit; upload it by hand"
            miss["path"] = self.source.att_path(att_id) or self._extract(att_id, filename)
            self.report.attachments_not_uploaded.append(miss)
            return
        with self.source.open_att(att_id) as fh:
            data = fh.read()
        self.j.set_pending(tp.src_id, "upload", [old_rec, f.src_id, i])
        resp = self.t.upload(tid, new_rec, new_field, filename, data, a.get("type") or info.get("mime"))
        known = {r for (r,) in self.j.con.execute(
            "SELECT new_att FROM atts WHERE src_table=? AND old_rec=? AND field=?", [tp.src_id, old_rec, f.src_id])}
        cell = (resp.get("fields") or {}).get(new_field) or []
        new_ids = [x.get("id") for x in cell if x.get("id") not in known]
        with self.j.tx() as c:
            c.execute("INSERT INTO atts VALUES (?, ?, ?, ?, ?, ?)",
                      [tp.src_id, old_rec, f.src_id, i, att_id, new_ids[-1] if new_ids else None])
            self.j.clear_pending(c, tp.src_id, "upload")
        self.report.attachments_uploaded += 1
        self._tick("uploads")

    def _extract(self, att_id: str, filename: str) -> str:
        self.manual_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename)[:120] or "file"
        p = self.manual_dir / f"{att_id}_{safe}"
        if not p.exists():
            tmp = p.with_name(p.name + ".tmp")
            with self.source.open_att(att_id) as src, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            tmp.replace(p)
        return str(p)

    # ----------------------------------------------------------------------------------- run

    def run(self) -> Report:
        self.j.set("status", "running")
        self.create_schema()
        for tp in self.plan.tables:
            self.create_records(tp)
        for tp in self.plan.tables:
            self.write_links(tp)
        for tp in self.plan.tables:
            self.upload_attachments(tp)
        if self.plan.comments:
            for tp in self.plan.tables:
                self.post_comments(tp)
        self.report.status = "complete"
        self.report.floor = {"creates": sum(-(-t.created // BATCH) for t in self.report.tables.values()),
                             "link_updates": self.link_floor, "writes": self.t.writes}
        self.finish()
        self.j.set("status", "complete")
        self.j.set("finished", datetime.now(UTC).isoformat(timespec="seconds"))
        return self.report

    def post_comments(self, tp: TablePlan) -> None:
        comments = self.source.comments(self.plan.base_id, tp.src_id)
        if not comments:
            return
        n = restore_comments(journal=self.j, writer=self.t, comments=comments, src_table=tp.src_id,
                             new_table=self.j.table_map()[tp.src_id][0], record_map=self.j.record_map(tp.src_id),
                             tick=lambda: self._tick("comments"))
        self.report.tables[tp.src_id].comments += n
        self.report.comments_restored += n
        self.log(f"{tp.name}: {n} comments")

    def finish(self) -> None:
        tmap = self.j.table_map()
        id_map = {}
        for tp in self.plan.tables:
            if tp.src_id not in tmap:
                continue
            id_map[tp.src_id] = {"name": tp.name, "new_table": tmap[tp.src_id][0], "new_name": tmap[tp.src_id][1],
                                 "fields": self.j.field_map(tp.src_id), "records": self.j.record_map(tp.src_id)}
        path = self.j.path.with_suffix(".idmap.json")
        _atomic_write(path, json.dumps(id_map, indent=1, sort_keys=True).encode())
        self.report.id_map_file = str(path)
        _atomic_write(self.j.path.with_suffix(".report.json"),
                      json.dumps(self.report.to_dict(), indent=1, default=str).encode())



def restore(source, *, to_base: str | None = None, client=None, base_id: str | None = None,
            tables: Iterable[str] = (), keep_computed: bool = False, dry_run: bool = False, new: bool = False,
            comments: bool = True, to_workspace: str | None = None, base_name: str | None = None,
            fail_after: tuple[str, int] | None = None, log: Callable[[str], None] | None = None) -> Report:
    """Restore ``source`` (a :class:`SnapshotSource`/:class:`FolderSource`) into new tables of base
    ``to_base``, or into a new base of workspace ``to_workspace`` (named ``base_name``, else as the
    source base), through ``client`` (an :class:`~snapstore.source.AirtableSource`). Resumes an
    interrupted restore of the same source and tables; refuses to repeat a finished one unless ``new``."""
    if bool(to_base) == bool(to_workspace):
        raise RestoreError("give one of to_base (an existing base) or to_workspace (a new base)")
    tables = list(tables)
    base_for_id = base_id or "-"
    key = to_base or f"new base in {to_workspace}"
    jid = journal_id(source.identity, base_for_id, key, ",".join(sorted(tables)), str(keep_computed))
    jroot = Path(source.journal_root)
    jpath = jroot / f"{jid}.sqlite"
    if new and jpath.exists():
        # archive the old journal under a unique name; the next run starts fresh
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        for suffix in (".sqlite", ".idmap.json", ".report.json"):
            old = jpath.with_suffix(suffix)
            if old.exists():
                old.rename(old.with_name(f"{jid}-{stamp}{suffix}"))
    target = AirtableWriter(client.api, to_base) if client is not None and to_base else None
    if dry_run:
        names = [t["name"] for t in target.schema()["tables"]] if target is not None else []
        plan = make_plan(source, base_id, key, tables=tables, target_table_names=names,
                         keep_computed=keep_computed, comments=comments)
        rep = Report("restore", source.label, key, dry_run=True)
        rep.plan = plan.to_dict()
        rep.not_restorable = plan.not_restorable
        for tp in plan.tables:
            rep.tables[tp.src_id] = TableReport(tp.name, new_name=tp.new_name, created=tp.records)
            if comments:
                n = sum(len(v) for v in source.comments(plan.base_id, tp.src_id).values())
                rep.tables[tp.src_id].comments = n
                rep.comments_restored += n
        if jpath.exists():
            j = Journal(jpath)
            rep.status = "would resume" if j.get("status") != "complete" else "already restored"
            rep.journal = str(jpath)
            j.close()
        rep.attachments_not_uploaded = _attachment_preview(source, plan)
        return rep
    if client is None:
        raise RestoreError("no Airtable client: give a token (AIRTABLE_TOKEN / --token)")
    if jpath.exists():
        j = Journal(jpath)
        if j.get("status") == "complete":
            j.close()
            raise RestoreError(f"this restore was already completed (journal {jpath}); "
                               "run with --new to restore again into new tables")
        plan = _plan_from_dict(j.get("plan"))
    else:
        names = [t["name"] for t in target.schema()["tables"]] if target is not None else []
        plan = make_plan(source, base_id, key, tables=tables, target_table_names=names,
                         keep_computed=keep_computed, comments=comments)
        j = Journal(jpath)
        j.set("source", source.identity)
        j.set("target_base", to_base)
        j.set("created", datetime.now(UTC).isoformat(timespec="seconds"))
        j.set("plan", _plan_to_state(plan))
    try:
        if to_workspace:
            made = j.get("target_base") or create_base(
                client, j, plan, to_workspace, base_name or dict(source.bases()).get(plan.base_id) or plan.base_id)
            target = AirtableWriter(client.api, made)
        r = Restore(source, target, plan, j, fail_after=fail_after, log=log)
        return r.run()
    finally:
        j.close()


def _attachment_preview(source, plan: Plan) -> list[dict]:
    out = []
    for tp in plan.tables:
        atts = [f for f in tp.fields if f.type == "multipleAttachments" and f.action == "create"]
        if not atts:
            continue
        for rec in source.records(plan.base_id, tp.src_id):
            for f in atts:
                for a in (rec.get("fields") or {}).get(f.src_id) or []:
                    info = source.att_info(a.get("id")) if a.get("id") else None
                    if info is None or (info.get("size") or 0) > UPLOAD_LIMIT:
                        out.append({"table": tp.name, "record": rec["id"], "field": f.name, "attachment": a.get("id"),
                                    "filename": a.get("filename"), "size": (info or a).get("size"),
                                    "reason": "not in the backup" if info is None else "larger than 5 MB",
                                    "path": source.att_path(a.get("id"))})
    return out
