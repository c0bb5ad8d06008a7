"""What changed between two snapshots, and every version of one record.

The record-level diff is a set difference on the catalog's validity intervals: only the versions
that begin or end between the two snapshots are looked at, so its cost is
proportional to the change, not to the size of the tables. Record blobs are read only for the
field-level diff (``fields=True``), and then only those of the records that changed.

Field names come from each snapshot's own schema; records are keyed by field id, so a renamed field
is a schema change and not a change to every record.
"""

from __future__ import annotations

import difflib
import gc
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from snapstore import isotime
from snapstore.canonical import loads
from snapstore.fieldtypes import is_attachment
from snapstore.ops.diff_comments import add_comment_changes, comment_counts
from snapstore.selection import field_ids, select, select_tables
from snapstore.store import SnapshotInfo, Store, StoreError
from snapstore.store.catalog import diff as catalog_diff
from snapstore.store.catalog.snapshots import locate_blobs

#: Strings longer than this (or with a newline) are shown as a compact diff instead of old -> new.
LONG_TEXT = 120
TEXT_TYPES = {"multilineText", "richText"}
ATTACHMENT_TYPES = {"multipleAttachments"}


# ---- results -------------------------------------------------------------------------------


def _snap_ref(s: SnapshotInfo | None) -> dict | None:
    if s is None:
        return None
    return {"id": s.full_id, "short_id": s.id, "seq": s.seq, "time": isotime.iso(s.time)}


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


@dataclass
class FieldChange:
    """One field of one record that differs between two versions. ``old``/``new`` are None when
    the field is empty (Airtable omits empty values)."""

    field_id: str
    name: str  # as of the newer version's schema (the older one's if the field was removed)
    old_name: str | None  # as of the older version's schema, when it differs from ``name``
    type: str | None
    old: Any = None
    new: Any = None
    #: long text: a compact unified diff (lines), or a word diff for long single-line text
    text_diff: list[str] | None = None
    #: attachments compared by content: {"removed": [...], "added": [...], "reordered": bool}
    attachments: dict | None = None
    #: lists of scalars / linked records / collaborators: {"removed": [...], "added": [...]}
    items: dict | None = None

    @property
    def label(self) -> str:
        if self.old_name and self.old_name != self.name:
            return f"{self.old_name} → {self.name}"
        return self.name

    def to_dict(self) -> dict:
        return _drop_none({
            "field_id": self.field_id, "name": self.name, "old_name": self.old_name, "type": self.type,
            "old": self.old, "new": self.new, "text_diff": self.text_diff, "attachments": self.attachments,
            "items": self.items,
        }) | {"old": self.old, "new": self.new}


@dataclass
class RecordChange:
    record_id: str
    kind: str  # "added" | "removed" | "changed"
    old_hash: str | None
    new_hash: str | None
    label: str | None = None  # the primary field's value (with fields=True)
    fields: list[FieldChange] | None = None  # with fields=True, for changed records

    def to_dict(self) -> dict:
        d = {"record_id": self.record_id, "kind": self.kind, "old_hash": self.old_hash, "new_hash": self.new_hash}
        if self.label is not None:
            d["label"] = self.label
        if self.fields is not None:
            d["fields"] = [f.to_dict() for f in self.fields]
        return d


@dataclass
class TableDiff:
    base_id: str
    base_name: str
    table_id: str
    name_a: str | None
    name_b: str | None
    #: "changed" (in both), "added" / "removed" (in one snapshot only: all its records count),
    #: "not captured" (the table was skipped by a partial snapshot: nothing can be said)
    status: str
    records_a: int | None
    records_b: int | None
    added: list[RecordChange] = field(default_factory=list)
    removed: list[RecordChange] = field(default_factory=list)
    changed: list[RecordChange] = field(default_factory=list)
    note: str | None = None
    #: record id -> comments added / edited / deleted (diff_comments)
    comments: dict[str, dict] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.name_b or self.name_a or self.table_id

    @property
    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed)}

    @property
    def empty(self) -> bool:
        return self.status == "changed" and not (self.added or self.removed or self.changed or self.comments)

    def to_dict(self) -> dict:
        return {
            "base_id": self.base_id, "base_name": self.base_name, "table_id": self.table_id,
            "name": self.name, "name_a": self.name_a, "name_b": self.name_b, "status": self.status,
            "records_a": self.records_a, "records_b": self.records_b, "counts": self.counts,
            **({"note": self.note} if self.note else {}),
            "added": [r.to_dict() for r in self.added],
            "removed": [r.to_dict() for r in self.removed],
            "changed": [r.to_dict() for r in self.changed],
            "comments": self.comments,
            "comment_counts": comment_counts(self.comments),
        }


@dataclass
class SchemaChange:
    #: base_added, base_removed, table_added, table_removed, table_renamed, field_added, field_removed,
    #: field_renamed, field_type_changed, field_options_changed, field_description_changed,
    #: primary_field_changed
    kind: str
    base_id: str
    base_name: str
    table_id: str | None = None
    table: str | None = None  # table name (as of B, or A when it is gone from B)
    field_id: str | None = None
    field: str | None = None  # field name (as of B, or A when it is gone from B)
    old: Any = None
    new: Any = None

    def to_dict(self) -> dict:
        return _drop_none(self.__dict__.copy())


@dataclass
class Diff:
    a: SnapshotInfo
    b: SnapshotInfo
    tables: list[TableDiff]  # tables with at least one difference (or not comparable)
    schema: list[SchemaChange]
    fields: bool
    tables_compared: int

    @property
    def totals(self) -> dict[str, int]:
        t = {"added": 0, "removed": 0, "changed": 0}
        for td in self.tables:
            for k, v in td.counts.items():
                t[k] += v
        t["tables"] = sum(1 for td in self.tables if not td.empty)
        t["comments"] = sum(sum(comment_counts(td.comments).values()) for td in self.tables)
        t["schema_changes"] = len(self.schema)
        return t

    @property
    def empty(self) -> bool:
        return not self.schema and all(td.empty for td in self.tables)

    def to_dict(self) -> dict:
        return {
            "a": _snap_ref(self.a), "b": _snap_ref(self.b), "fields": self.fields,
            "tables_compared": self.tables_compared, "totals": self.totals,
            "schema": [c.to_dict() for c in self.schema],
            "tables": [t.to_dict() for t in self.tables],
        }


@dataclass
class Version:
    """One version of a record: the same content over a run of snapshots."""

    n: int  # 1-based
    record_id: str
    base_id: str
    table_id: str
    table: str  # table name as of the version's last snapshot
    hash: str
    first: SnapshotInfo
    last: SnapshotInfo
    snapshots: list[str]  # short ids of every snapshot holding this version, oldest first
    began: str  # "created" | "changed" | "re-created" (after a deletion)
    ended: str | None  # "changed" | "deleted" | "table absent" | None (still current)
    ended_in: SnapshotInfo | None  # the first snapshot without this version
    changes: list[FieldChange]  # against the previous version (empty for the first)
    values: dict | None = None  # with a field filter: {field name: value in this version}

    def to_dict(self) -> dict:
        return _drop_none({
            "n": self.n, "record_id": self.record_id, "base_id": self.base_id, "table_id": self.table_id,
            "table": self.table, "hash": self.hash, "first": _snap_ref(self.first), "last": _snap_ref(self.last),
            "snapshots": self.snapshots, "began": self.began, "ended": self.ended,
            "ended_in": _snap_ref(self.ended_in), "changes": [c.to_dict() for c in self.changes],
            "values": self.values,
        }) | {"ended": self.ended}


# ---- blobs in bulk ---------------------------------------------------------------------------


def read_blobs(store: Store, hashes: Iterable[bytes]) -> dict[bytes, bytes]:
    return store.read_blobs(hashes)


def _attachment_infos(store: Store, att_ids: Iterable[str]) -> dict[str, dict]:
    ids = list(set(att_ids))
    if not ids:
        return {}
    index = store.attachment_index(ids)
    return {a: index.get(a) for a in ids if a in index}


# ---- schemas ---------------------------------------------------------------------------------


class _Schemas:
    """Raw schemas per (snapshot, base), read once each (by schema hash)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_hash: dict[str, dict] = {}

    @staticmethod
    def hashes(snaps: Iterable[SnapshotInfo], base_ids: set[str] | None = None) -> list[bytes]:
        return [bytes.fromhex(b.schema_hash) for s in snaps for b in s.bases
                if b.schema_hash and (base_ids is None or b.base_id in base_ids)]

    def load(self, blobs: dict[bytes, bytes]) -> None:
        for h, data in blobs.items():
            self._by_hash.setdefault(h.hex(), loads(data))

    def get(self, snap: SnapshotInfo, base_id: str) -> dict | None:
        for b in snap.bases:
            if b.base_id == base_id:
                if b.schema_hash not in self._by_hash:
                    self._by_hash[b.schema_hash] = self.store.schema(snap, base_id)
                return self._by_hash[b.schema_hash]
        return None

    def table(self, snap: SnapshotInfo, base_id: str, table_id: str) -> dict | None:
        s = self.get(snap, base_id)
        for t in (s or {}).get("tables", []):
            if t.get("id") == table_id:
                return t
        return None


def _fields_of(table: dict | None) -> dict[str, dict]:
    """Field id -> field (with its position in the schema as ``_pos``)."""
    return {f["id"]: {**f, "_pos": i} for i, f in enumerate((table or {}).get("fields", [])) if "id" in f}


# ---- field-level comparison ----------------------------------------------------------------


def _is_att_list(v: Any) -> bool:
    return (
        isinstance(v, list) and bool(v)
        and all(is_attachment(x) for x in v)
    )


def attachment_ids(fields: dict) -> list[str]:
    return [a["id"] for v in fields.values() if _is_att_list(v) for a in v]


def _att_entry(a: dict, infos: dict[str, dict]) -> dict:
    info = infos.get(a["id"])
    return _drop_none({
        "id": a["id"], "filename": a.get("filename") or (info or {}).get("filename"),
        "size": a.get("size") if a.get("size") is not None else (info or {}).get("size"),
        "content_hash": info["content_hash"] if info else None,
    })


def _compare_attachments(ov: Any, nv: Any, infos: dict[str, dict]) -> dict | None:
    """By content (the stored file's hash; the attachment id when the file is not in the store).
    None when both hold the same files in the same order (metadata such as thumbnails may differ)."""
    old = [_att_entry(a, infos) for a in (ov or [])]
    new = [_att_entry(a, infos) for a in (nv or [])]

    def key(e: dict) -> str:
        return e.get("content_hash") or e["id"]

    ok, nk = [key(e) for e in old], [key(e) for e in new]
    if ok == nk:
        return None
    left_new = Counter(nk)
    removed = []
    for e, k in zip(old, ok, strict=True):
        if left_new[k]:
            left_new[k] -= 1
        else:
            removed.append(e)
    left_old = Counter(ok)
    added = []
    for e, k in zip(new, nk, strict=True):
        if left_old[k]:
            left_old[k] -= 1
        else:
            added.append(e)
    return {"removed": removed, "added": added, "reordered": not removed and not added}


def _item_key(x: Any) -> Any:
    if isinstance(x, dict):
        return x.get("id") or x.get("email") or repr(sorted(x.items(), key=lambda kv: kv[0]))
    return x


def _compare_items(ov: Any, nv: Any) -> dict | None:
    if not all(isinstance(v, list | type(None)) for v in (ov, nv)):
        return None
    old, new = ov or [], nv or []
    if any(isinstance(x, list) for x in old + new):
        return None
    ok = {_item_key(x) for x in old}
    nk = {_item_key(x) for x in new}
    return {
        "removed": [x for x in old if _item_key(x) not in nk],
        "added": [x for x in new if _item_key(x) not in ok],
    }


def _word_diff(old: str, new: str, context: int = 6) -> str:
    a, b = re.split(r"(\s+)", old), re.split(r"(\s+)", new)
    out: list[str] = []
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    for i, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            seg = a[i1:i2]
            if i > 0 and i < len(ops) - 1 and len(seg) > 2 * context:
                out.append("".join(seg[:context]) + " … " + "".join(seg[-context:]))
            elif i == 0 and len(seg) > context:
                out.append("… " + "".join(seg[-context:]))
            elif i == len(ops) - 1 and len(seg) > context:
                out.append("".join(seg[:context]) + " …")
            else:
                out.append("".join(seg))
            continue
        if i1 < i2:
            out.append("[-" + "".join(a[i1:i2]) + "-]")
        if j1 < j2:
            out.append("{+" + "".join(b[j1:j2]) + "+}")
    return "".join(out)


def text_diff(old: str | None, new: str | None) -> list[str]:
    """A compact diff of two texts: unified (one line of context) for multi-line text, a word diff
    (``[-removed-]{+added+}``) for a long single line."""
    old, new = old or "", new or ""
    if "\n" in old or "\n" in new:
        lines = difflib.unified_diff(old.splitlines(), new.splitlines(), n=1, lineterm="")
        return [ln for ln in lines if not ln.startswith(("---", "+++"))]
    return [_word_diff(old, new)]


def compare_fields(
    old: dict, new: dict, old_fields: dict[str, dict], new_fields: dict[str, dict],
    att_infos: dict[str, dict], only: set[str] | None = None,
) -> list[FieldChange]:
    """The fields (by id) whose values differ between two canonical records' ``fields``."""
    out = []
    for fid in sorted(changed_field_ids(old, new, only), key=lambda f: _field_order(f, new_fields, old_fields)):
        ov, nv = old.get(fid), new.get(fid)
        fo, fn = old_fields.get(fid), new_fields.get(fid)
        name = (fn or fo or {}).get("name") or fid
        old_name = (fo or {}).get("name")
        ftype = (fn or fo or {}).get("type")
        fc = FieldChange(fid, name, old_name if old_name != name else None, ftype, ov, nv)
        if ftype in ATTACHMENT_TYPES or _is_att_list(ov) or _is_att_list(nv):
            atts = _compare_attachments(ov, nv, att_infos)
            if atts is None:
                continue  # same files: only volatile metadata (thumbnails, dimensions) moved
            fc.attachments = atts
        elif (isinstance(ov, str) or isinstance(nv, str)) and all(isinstance(v, str | type(None)) for v in (ov, nv)):
            if any(isinstance(v, str) and (len(v) > LONG_TEXT or "\n" in v) for v in (ov, nv)):
                fc.text_diff = text_diff(ov, nv)
        elif isinstance(ov, list) or isinstance(nv, list):
            fc.items = _compare_items(ov, nv)
        out.append(fc)
    return out


def changed_field_ids(old: dict, new: dict, only: set[str] | None = None) -> list[str]:
    ids = [f for f, v in old.items() if new.get(f) != v] + [f for f in new if f not in old]
    return ids if only is None else [f for f in ids if f in only]


def _field_order(fid: str, *schemas: dict[str, dict]) -> tuple:
    for s in schemas:
        if fid in s:
            return (0, s[fid].get("_pos", 0), fid)
    return (1, 0, fid)


def short_value(v: Any, width: int = 80) -> str:
    """A one-line rendering of a cell value for humans."""
    if v is None:
        return "(empty)"
    if isinstance(v, str):
        s = v.replace("\n", "⏎")
        s = s if len(s) <= width else s[: width - 1] + "…"
        return f'"{s}"'
    if isinstance(v, dict):
        v = v.get("name") or v.get("email") or v.get("filename") or v.get("id") or v
        if isinstance(v, str):
            return short_value(v, width)
    if isinstance(v, list):
        parts = [short_value(x, width) if not isinstance(x, str) else x for x in v]
        s = "[" + ", ".join(parts) + "]"
    else:
        s = str(v) if not isinstance(v, bool) else ("true" if v else "false")
    return s if len(s) <= width else s[: width - 1] + "…"


# ---- the diff --------------------------------------------------------------------------------


def _schema_hash(snap: SnapshotInfo, base_id: str) -> str | None:
    return next((b.schema_hash for b in snap.bases if b.base_id == base_id), None)


def _missing(snap: SnapshotInfo, base_id: str, table_id: str) -> str | None:
    for m in snap.missing:
        if m.get("records_kept"):  # an attachment or comments failed; the records are all there
            continue
        if m.get("base_id") == base_id and m.get("table_id") in (None, table_id):
            return m.get("reason") or "not captured"
    return None


def diff_snapshots(
    store: Store, a: str | SnapshotInfo, b: str | SnapshotInfo, *,
    bases: Sequence[str] | None = None, tables: Sequence[str] | None = None, fields: bool = False,
) -> Diff:
    """What changed from snapshot ``a`` to snapshot ``b`` (either may be the older one).

    ``bases`` / ``tables`` restrict the diff (ids or names, names as of either snapshot).
    ``fields=True`` also reads the blobs of the records that differ and reports, per changed
    record, the fields that changed (and the primary field's value of every listed record).
    """
    sa, sb = store.resolve(a), store.resolve(b)
    schemas = _Schemas(store)
    base_names = {bi.base_id: bi.name for s in (sa, sb) for bi in s.bases}
    where = f"in snapshots {sa.id} or {sb.id}"
    base_ok = select(bases, [(bi.base_id, bi.name) for s in (sa, sb) for bi in s.bases], "base", where)
    base_ok = set(base_names) if base_ok is None else base_ok

    # -- which tables, and where each one is
    in_a = {(bi.base_id, t.table_id): t for bi in sa.bases for t in bi.tables}
    in_b = {(bi.base_id, t.table_id): t for bi in sb.bases for t in bi.tables}
    table_ok = select_tables(tables, [(k[0], base_names[k[0]], k[1], t.name) for side in (in_a, in_b)
                                      for k, t in side.items() if k[0] in base_ok]
                             + [(m["base_id"], None, m["table_id"], None) for s in (sa, sb) for m in s.missing
                                if m.get("table_id") and m.get("base_id") in base_ok], where)
    keys = []
    for key in sorted(set(in_a) | set(in_b)):
        bid, tid = key
        if bid not in base_ok or (table_ok is not None and key not in table_ok):
            continue
        keys.append(key)
    if tables and not keys:
        raise StoreError(f"no table matching {', '.join(tables)} in snapshots {sa.id} or {sb.id}")

    # one short catalog read: schemas, the interval diff, and (for fields) where the blobs are
    with store.catalog.read() as con:
        # schemas are read only where they can matter: fields mode, a base whose schema changed,
        # or a table on one side only (was it dropped, or skipped by a partial snapshot?)
        one_sided = {k[0] for k in keys if (k in in_a) != (k in in_b)}
        need = {bid for bid in base_ok if fields or bid in one_sided
                or _schema_hash(sa, bid) != _schema_hash(sb, bid)}
        if need:
            schemas.load(store.read_located(locate_blobs(con, _Schemas.hashes((sa, sb), need))))
        status: dict[tuple[str, str], tuple[str, str | None]] = {}
        for key in keys:
            bid, tid = key
            if key in in_a and key in in_b:
                status[key] = ("changed", None)
                continue
            other, kind = (sa, "added") if key in in_b else (sb, "removed")
            why = _missing(other, bid, tid) or (
                "not captured" if schemas.table(other, bid, tid) is not None else None) or (
                "the base is not in that snapshot" if bid not in {x.base_id for x in other.bases} else None)
            status[key] = ("not captured", f"not captured in {other.id}: {why}") if why else (kind, None)
        pks = catalog_diff.table_keys(con)
        both = [pks[k] for k in keys if status[k][0] == "changed"]
        one_a = [pks[k] for k in keys if status[k][0] == "removed"]
        one_b = [pks[k] for k in keys if status[k][0] == "added"]
        results = []
        if both:
            results.append(("diff", catalog_diff.changed_versions(con, both, sa.seq, sb.seq)))
        if one_a:
            results.append(("removed", catalog_diff.versions_at(con, one_a, sa.seq)))
        if one_b:
            results.append(("added", catalog_diff.versions_at(con, one_b, sb.seq)))
        blob_rows: list[tuple] = []
        if fields:
            cols = [t.column(c) for kind, t in results for c in (("old_hash", "new_hash") if kind == "diff" else ("hash",))]
            if cols:
                blob_rows = locate_blobs(con, pa.chunked_array(cols, pa.binary()))

    per_pk: dict[int, list[RecordChange]] = defaultdict(list)
    for kind, tbl in results:
        if kind == "diff":
            cols = tbl.to_pydict()
            for pk, rid, oh, nh in zip(cols["table_pk"], cols["record_id"], cols["old_hash"], cols["new_hash"],
                                       strict=True):
                k = "added" if oh is None else "removed" if nh is None else "changed"
                per_pk[pk].append(RecordChange(rid, k, oh.hex() if oh else None, nh.hex() if nh else None))
        else:
            cols = tbl.to_pydict()
            for pk, rid, h in zip(cols["table_pk"], cols["record_id"], cols["hash"], strict=True):
                per_pk[pk].append(RecordChange(rid, kind, h.hex() if kind == "removed" else None,
                                               h.hex() if kind == "added" else None))

    out: list[TableDiff] = []
    for key in keys:
        bid, tid = key
        ta, tb = in_a.get(key), in_b.get(key)
        st, note = status[key]
        td = TableDiff(bid, base_names.get(bid, bid), tid, ta.name if ta else None, tb.name if tb else None,
                       st, ta.records if ta else None, tb.records if tb else None, note=note)
        for rc in per_pk.get(pks[key], []):
            getattr(td, rc.kind).append(rc)
        out.append(td)
    add_comment_changes(store, sa, sb, out)
    out = [td for td in out if not td.empty]
    # tables a partial snapshot skipped, on either side, that the other side has no row for either
    seen = set(keys)
    for s in (sa, sb):
        for m in s.missing:
            key = (m.get("base_id"), m.get("table_id"))
            if key[1] and key not in seen and key[0] in base_ok and (table_ok is None or key in table_ok):
                seen.add(key)
                out.append(TableDiff(m["base_id"], base_names.get(m["base_id"], m["base_id"]), m["table_id"],
                                     None, None, "not captured", None, None,
                                     note=f"not captured in {s.id}: {m.get('reason') or 'skipped'}"))

    schema_changes: list[SchemaChange] = []
    for bid in sorted(b for b in base_ok if _schema_hash(sa, b) != _schema_hash(sb, b)):
        schema_changes += _schema_diff(sa, sb, bid, base_names[bid], schemas, table_ok)
    if fields:
        _add_field_changes(store, sa, sb, out, schemas, store.read_located(blob_rows))
    return Diff(sa, sb, out, schema_changes, fields, len(keys))


def _add_field_changes(store: Store, sa: SnapshotInfo, sb: SnapshotInfo, tables: list[TableDiff],
                       schemas: _Schemas, blobs: dict[bytes, bytes]) -> None:
    gc_was = gc.isenabled()
    gc.disable()  # bulk decode of many small dicts: the cyclic GC triples its cost
    try:
        recs = {h.hex(): loads(data) for h, data in blobs.items()}
    finally:
        if gc_was:
            gc.enable()
    att_ids: list[str] = []
    for td in tables:
        for rc in td.changed:
            old, new = recs[rc.old_hash].get("fields") or {}, recs[rc.new_hash].get("fields") or {}
            for fid in changed_field_ids(old, new):
                att_ids += attachment_ids({0: old.get(fid), 1: new.get(fid)})
    infos = _attachment_infos(store, att_ids)
    for td in tables:
        ta = schemas.table(sa, td.base_id, td.table_id)
        tb = schemas.table(sb, td.base_id, td.table_id)
        fa, fb = _fields_of(ta), _fields_of(tb)
        for rc in td.added + td.removed + td.changed:
            rec = recs[rc.new_hash or rc.old_hash]
            prim = ((tb if rc.new_hash else ta) or {}).get("primaryFieldId")
            if prim and prim in (rec.get("fields") or {}):
                rc.label = label_of(rec["fields"][prim])
        for rc in td.changed:
            rc.fields = compare_fields(recs[rc.old_hash].get("fields") or {}, recs[rc.new_hash].get("fields") or {},
                                       fa, fb, infos)


def add_field_changes(store: Store, d: Diff, tables: list[TableDiff]) -> None:
    """Labels and changed cells for the records of ``tables`` only (a page of a ``fields=False``
    diff, as ``snapstore serve`` shows it): one read of just those blobs, so a page of a diff of
    100,000 changes costs what a page of a diff of 10 does."""
    hashes = {bytes.fromhex(h) for td in tables for rc in td.added + td.removed + td.changed
              for h in (rc.old_hash, rc.new_hash) if h}
    _add_field_changes(store, d.a, d.b, tables, _Schemas(store), store.read_blobs(hashes))


def label_of(value: Any, width: int = 60) -> str:
    """What people call a record: its primary field's value as a plain string (not quoted or
    JSON-encoded: JSON output carries it as a string as it is)."""
    text = value if isinstance(value, str) else short_value(value, width)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def add_labels(store: Store, d: Diff, limit: int | None = None) -> None:
    """Give the records a diff lists (the first ``limit`` of each table and kind; all for None)
    their primary field's value, so a listing names them: one read of just those blobs, never the
    whole table. ``fields=True`` diffs have them already."""
    want: list[tuple[TableDiff, RecordChange]] = []
    for td in d.tables:
        for kind in ("added", "removed", "changed"):
            recs = getattr(td, kind)
            want += [(td, rc) for rc in (recs if not limit or limit <= 0 else recs[:limit]) if rc.label is None]
    if not want:
        return
    blobs = store.read_blobs({bytes.fromhex(rc.new_hash or rc.old_hash) for _td, rc in want})
    schemas = _Schemas(store)
    for td, rc in want:
        snap = d.b if rc.new_hash else d.a
        prim = (schemas.table(snap, td.base_id, td.table_id) or {}).get("primaryFieldId")
        cells = loads(blobs[bytes.fromhex(rc.new_hash or rc.old_hash)]).get("fields") or {}
        if prim and prim in cells:
            rc.label = label_of(cells[prim])


def _schema_diff(sa: SnapshotInfo, sb: SnapshotInfo, bid: str, base_name: str, schemas: _Schemas,
                 tables: set[tuple[str, str]] | None) -> list[SchemaChange]:
    out: list[SchemaChange] = []
    xa, xb = schemas.get(sa, bid), schemas.get(sb, bid)
    if xa is None and xb is None:
        return out
    if (xa is None and _missing(sa, bid, "")) or (xb is None and _missing(sb, bid, "")):
        return out  # a partial snapshot skipped the whole base: its tables are reported "not captured"
    if xa is None or xb is None:
        return out  # a snapshot that does not hold the base did not capture it: "not captured", not removed
    ta = {t["id"]: t for t in xa.get("tables", [])}
    tb = {t["id"]: t for t in xb.get("tables", [])}
    for tid in list(ta) + [t for t in tb if t not in ta]:
        a, b = ta.get(tid), tb.get(tid)
        tname = (b or a)["name"]
        if tables is not None and (bid, tid) not in tables:
            continue
        if a is None:
            out.append(SchemaChange("table_added", bid, base_name, tid, tname))
            continue
        if b is None:
            out.append(SchemaChange("table_removed", bid, base_name, tid, tname))
            continue
        if a.get("name") != b.get("name"):
            out.append(SchemaChange("table_renamed", bid, base_name, tid, tname, old=a.get("name"), new=b.get("name")))
        fa, fb = _fields_of(a), _fields_of(b)
        if a.get("primaryFieldId") != b.get("primaryFieldId"):
            out.append(SchemaChange(
                "primary_field_changed", bid, base_name, tid, tname,
                old=fa.get(a.get("primaryFieldId"), {}).get("name", a.get("primaryFieldId")),
                new=fb.get(b.get("primaryFieldId"), {}).get("name", b.get("primaryFieldId"))))
        for fid in list(fa) + [f for f in fb if f not in fa]:
            f1, f2 = fa.get(fid), fb.get(fid)
            fname = (f2 or f1).get("name")
            if f1 is None:
                out.append(SchemaChange("field_added", bid, base_name, tid, tname, fid, fname, new=f2.get("type")))
                continue
            if f2 is None:
                out.append(SchemaChange("field_removed", bid, base_name, tid, tname, fid, fname, old=f1.get("type")))
                continue
            if f1.get("name") != f2.get("name"):
                out.append(SchemaChange("field_renamed", bid, base_name, tid, tname, fid, fname,
                                        old=f1.get("name"), new=f2.get("name")))
            if f1.get("type") != f2.get("type"):
                out.append(SchemaChange("field_type_changed", bid, base_name, tid, tname, fid, fname,
                                        old=f1.get("type"), new=f2.get("type")))
            if (f1.get("options") or {}) != (f2.get("options") or {}):
                out.append(SchemaChange("field_options_changed", bid, base_name, tid, tname, fid, fname,
                                        old=f1.get("options"), new=f2.get("options")))
            if (f1.get("description") or None) != (f2.get("description") or None):
                out.append(SchemaChange("field_description_changed", bid, base_name, tid, tname, fid, fname,
                                        old=f1.get("description"), new=f2.get("description")))
    return out


def options_summary(old: dict | None, new: dict | None) -> list[str]:
    """What changed in a field's options, in words (select choices by id, other keys old -> new)."""
    old, new = old or {}, new or {}
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) == new.get(k):
            continue
        if k == "choices" and all(isinstance(v, list | type(None)) for v in (old.get(k), new.get(k))):
            ca = {c.get("id") or c.get("name"): c for c in old.get(k) or []}
            cb = {c.get("id") or c.get("name"): c for c in new.get(k) or []}
            for cid in ca.keys() - cb.keys():
                out.append(f"choice removed: {ca[cid].get('name')}")
            for cid in cb.keys() - ca.keys():
                out.append(f"choice added: {cb[cid].get('name')}")
            for cid in ca.keys() & cb.keys():
                if ca[cid].get("name") != cb[cid].get("name"):
                    out.append(f"choice renamed: {ca[cid].get('name')} → {cb[cid].get('name')}")
                elif ca[cid] != cb[cid]:
                    out.append(f"choice changed: {cb[cid].get('name')}")
            if not out and list(ca) != list(cb):
                out.append("choices reordered")
        else:
            out.append(f"{k}: {short_value(old.get(k), 40)} → {short_value(new.get(k), 40)}")
    return out


# ---- history ---------------------------------------------------------------------------------

def history(store: Store, record_id: str, *, field: str | None = None) -> list[Version]:
    """Every version of one record across the store's snapshots, oldest first, each with what
    changed against the one before. With ``field`` (id or name, as of any snapshot), only the
    versions where that field changed are kept (consecutive versions with the same value merge)."""
    record_id = record_id.strip()
    with store.catalog.read() as con:
        rows = catalog_diff.record_versions(con, record_id)
        table_seqs = {pk: catalog_diff.table_seqs(con, pk) for pk in {r[0] for r in rows}}
    # versions whose every snapshot was forgotten leave no trace
    rows = [r for r in rows if r[6]]
    if not rows:
        raise StoreError(f"record {record_id} is in no snapshot of this store")
    snaps = {s.seq: s for s in store.list_snapshots()}
    latest = max(snaps)
    schemas = _Schemas(store)
    used = [snaps[q] for r in rows for q in (r[6][0], r[6][-1])]
    schema_hashes = set(_Schemas.hashes(used, {r[1] for r in rows}))
    blobs = read_blobs(store, [r[3] for r in rows] + list(schema_hashes))
    schemas.load({h: d for h, d in blobs.items() if h in schema_hashes})

    def fields_at(seq: int, base_id: str, table_id: str) -> dict[str, dict]:
        return _fields_of(schemas.table(snaps[seq], base_id, table_id))

    only: set[str] | None = None
    if field is not None:
        only = _resolve_field(field, [(snaps[s], r[1], r[2]) for r in rows for s in (r[6][0], r[6][-1])], schemas)

    recs = [loads(blobs[r[3]]).get("fields") or {} for r in rows]
    att_ids = [a for rec in recs for a in attachment_ids(rec)]
    infos = _attachment_infos(store, att_ids)

    versions: list[Version] = []
    for i, (pk, bid, tid, h, _begin, _end, seqs) in enumerate(rows):
        # judged on the snapshots that hold the table, so forgotten snapshots leave no false gaps
        prev = rows[i - 1] if i else None
        tseq = table_seqs[pk]
        if prev is None:
            began = "created"
        elif prev[0] == pk and not any(prev[6][-1] < q < seqs[0] for q in tseq):
            began = "changed"
        else:
            began = "re-created"
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        after = next((q for q in tseq if q > seqs[-1]), None)
        if after is None:
            # current, unless the table is absent from the later snapshots
            ended, ended_in = (None, None) if seqs[-1] == latest else ("table absent", _first_after(snaps, seqs[-1]))
        elif nxt is not None and nxt[0] == pk and nxt[6][0] == after:
            ended, ended_in = "changed", snaps[after]
        else:
            ended, ended_in = "deleted", snaps[after]
        new_f = fields_at(seqs[0], bid, tid)
        if prev is None:
            changes = []
        else:
            old_f = fields_at(prev[6][-1], prev[1], prev[2])
            changes = compare_fields(recs[i - 1], recs[i], old_f, new_f, infos, only)
        values = None
        if only is not None:
            values = {(new_f.get(f) or {}).get("name", f): recs[i].get(f) for f in sorted(only)}
        tinfo = snaps[seqs[-1]].table(bid, tid)
        versions.append(Version(
            n=len(versions) + 1, record_id=record_id, base_id=bid, table_id=tid,
            table=tinfo.name if tinfo else tid, hash=h.hex(), first=snaps[seqs[0]], last=snaps[seqs[-1]],
            snapshots=[snaps[s].id for s in seqs], began=began, ended=ended, ended_in=ended_in,
            changes=changes, values=values,
        ))
    if only is not None:
        versions = _merge_same_value(versions)
    return versions


def _first_after(snaps: dict[int, SnapshotInfo], seq: int) -> SnapshotInfo | None:
    later = [s for s in snaps if s > seq]
    return snaps[min(later)] if later else None


def _merge_same_value(versions: list[Version]) -> list[Version]:
    out: list[Version] = []
    for v in versions:
        if out and v.began == "changed" and not v.changes:
            p = out[-1]
            p.last, p.snapshots, p.ended, p.ended_in = v.last, p.snapshots + v.snapshots, v.ended, v.ended_in
            continue
        out.append(v)
    for i, v in enumerate(out):
        v.n = i + 1
    return out


def _resolve_field(name: str, where: list[tuple[SnapshotInfo, str, str]], schemas: _Schemas) -> set[str]:
    """The fields ``name`` names in the record's table, as of any of its snapshots (snapstore.selection's rule)."""
    known = [(fid, f.get("name")) for snap, bid, tid in where
             for fid, f in _fields_of(schemas.table(snap, bid, tid)).items()]
    found = field_ids(name, known)
    if not found:
        shown = ", ".join(sorted({n or fid for fid, n in known})[:20])
        raise StoreError(f"no field {name!r} in this record's table (fields: {shown})")
    return found


__all__ = [
    "Diff", "FieldChange", "RecordChange", "SchemaChange", "TableDiff", "Version", "compare_fields",
    "add_labels", "diff_snapshots", "history", "label_of", "options_summary", "read_blobs", "short_value", "text_diff",
]
