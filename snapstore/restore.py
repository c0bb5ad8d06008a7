"""Getting the data back: restore a snapshot (or an exported folder) into Airtable, revert a table in
place, and import an exported folder into a store.

Restore into new tables (``restore``), in the order the API allows (reference §6.6):

1. tables with their writable, non-link fields (primary first, options carried over);
2. link fields, one side per pair (the inverse appears by itself and is renamed to its old name);
3. records in batches of 10 without link and attachment cells (``typecast`` so select options
   missing from the schema are created), old → new record ids journaled as each batch completes;
4. link cells PATCHed with the ids remapped;
5. attachments uploaded through ``uploadAttachment`` (≤ 5 MB each; larger ones are written to a
   folder and reported for a manual upload).

Computed fields (formula, rollup, lookup, count, autoNumber, created/modified time and by, button,
AI, sync source, manual sort) cannot be created through the API: they are reported with their
definitions, and with ``keep_computed_values`` their last values are kept in a text field.

Everything that was written is recorded in a journal (SQLite, ``restores/<id>.sqlite`` in the store,
or beside an exported folder) *before* moving on, with an intent row written before each create, so
a restore that stops anywhere continues without duplicates, and a finished one is not run again by
accident.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from snapstore.canonical import canonical_record
from snapstore.errors import SnapstoreError
from snapstore.fieldtypes import COMPUTED_TYPES, CREATABLE_TYPES
from snapstore.fieldtypes import CREATABLE_PRIMARY_TYPES as PRIMARY_TYPES
from snapstore.selection import pick, select_tables

#: Which option keys each type accepts when a field is created (the read format carries more).
WRITE_OPTIONS: dict[str, tuple[str, ...]] = {
    "number": ("precision",), "percent": ("precision",), "currency": ("precision", "symbol"),
    "duration": ("durationFormat",), "rating": ("icon", "color", "max"), "checkbox": ("icon", "color"),
    "singleSelect": ("choices",), "multipleSelects": ("choices",), "date": ("dateFormat",),
    "dateTime": ("dateFormat", "timeFormat", "timeZone"), "multipleRecordLinks": ("linkedTableId",),
}
WHY_COMPUTED = "computed field: the API can neither create this field type nor write its values"
UPLOAD_LIMIT = 5 * 1024 * 1024
BATCH = 10


class RestoreError(SnapstoreError):
    """A restore cannot go on; ``str(exc)`` is one line for the user."""


class TamperedExport(RestoreError):
    """An exported folder does not match its manifest."""


# ============================================================================================ sources


class SnapshotSource:
    """A snapshot in a store."""

    kind = "snapshot"

    def __init__(self, store, snap) -> None:
        self.store = store
        self.snap = store.resolve(snap)
        self.identity = f"snapshot:{self.snap.full_id}"
        self.label = f"snapshot {self.snap.id}"
        self.journal_root = Path(store.root) / "restores"

    def bases(self) -> list[tuple[str, str]]:
        return [(b.base_id, b.name) for b in self.snap.bases]

    def schema(self, base_id: str) -> dict:
        return self.store.schema(self.snap, base_id)

    def has_table(self, base_id: str, table_id: str) -> bool:
        return self.snap.table(base_id, table_id) is not None

    def records(self, base_id: str, table_id: str) -> Iterator[dict]:
        return self.store.records(self.snap, base_id, table_id)

    def _atts(self):
        # one catalog query for every attachment (a DuckDB connection per lookup costs ~20 ms)
        if getattr(self, "_att_index", None) is None:
            self._att_index = self.store.attachment_index()
        return self._att_index

    def att_info(self, att_id: str) -> dict | None:
        return self._atts().get(att_id)

    def open_att(self, att_id: str) -> BinaryIO:
        return self._atts().open(att_id)

    def att_path(self, att_id: str) -> str | None:
        return None


class FolderSource:
    """An exported folder (``airtable_backup_*``): ``metadata/`` (schema per base, manifest) and
    ``data/json/`` (records by field name), ``attachments/``. Verified against its manifest first."""

    kind = "folder"

    def __init__(self, folder: str | Path, *, verify: bool = True) -> None:
        self.root = Path(folder).resolve()
        if not self.root.is_dir():
            raise RestoreError(f"{folder}: no such folder")
        if verify:
            verify_folder(self.root)
        self.layout = _read_layout(self.root)
        digest = hashlib.sha256((self.root / "metadata" / "manifest.json").read_bytes()).hexdigest() \
            if (self.root / "metadata" / "manifest.json").exists() else hashlib.sha256(str(self.root).encode()).hexdigest()
        self.identity = f"folder:{digest}"
        self.label = f"folder {self.root.name}"
        self.journal_root = self.root.parent / f"{self.root.name}.restores"

    def bases(self) -> list[tuple[str, str]]:
        return [(b, self.layout.base_names.get(b, b)) for b in self.layout.schemas]

    def schema(self, base_id: str) -> dict:
        try:
            return self.layout.schemas[base_id]
        except KeyError:
            raise RestoreError(f"base {base_id} is not in {self.label}") from None

    def has_table(self, base_id: str, table_id: str) -> bool:
        return (base_id, table_id) in self.layout.data_files

    def records(self, base_id: str, table_id: str) -> Iterator[dict]:
        path = self.layout.data_files.get((base_id, table_id))
        if path is None:
            return iter(())
        cache = self.__dict__.setdefault("_cache", {})
        if (base_id, table_id) not in cache:  # parsed once per run (a folder is read whole anyway)
            schema = self.schema(base_id)
            table = next(t for t in schema["tables"] if t["id"] == table_id)
            cache.clear()
            cache[(base_id, table_id)] = [_record_from_export(r, table, self) for r in _load_json_records(path)]
        return iter(cache[(base_id, table_id)])

    def _note_att(self, att: dict, path: str | None) -> None:
        if path and att.get("id"):
            self.layout.att_files.setdefault(att["id"], path)

    def att_info(self, att_id: str) -> dict | None:
        p = self.layout.att_files.get(att_id)
        meta = self.layout.att_meta.get(att_id, {})
        if p is None or not (self.root / p).is_file():
            return None
        return {"att_id": att_id, "size": (self.root / p).stat().st_size, "mime": meta.get("type"),
                "filename": meta.get("filename") or Path(p).name}

    def open_att(self, att_id: str) -> BinaryIO:
        return open(self.root / self.layout.att_files[att_id], "rb")

    def att_path(self, att_id: str) -> str | None:
        p = self.layout.att_files.get(att_id)
        return str(self.root / p) if p else None


# ----------------------------------------------------------------------------------- exported folders


def _manifest_entries(doc: Any) -> dict[str, dict]:
    """path -> {sha256, size} from the manifest, whichever of the usual shapes it has."""
    files = doc
    if isinstance(doc, dict):
        files = next((doc[k] for k in ("entries", "files") if isinstance(doc.get(k), (list, dict))), doc)
    out: dict[str, dict] = {}
    if isinstance(files, dict):
        for path, e in files.items():
            if isinstance(e, dict):
                out[path] = e
            elif isinstance(e, str):
                out[path] = {"sha256": e}
    elif isinstance(files, list):
        for e in files:
            if isinstance(e, dict) and (e.get("path") or e.get("name")):
                out[e.get("path") or e.get("name")] = e
    return out


def verify_folder(root: Path) -> int:
    """Check every file of an exported folder against ``metadata/manifest.json`` (sha256 and size)
    and refuse files the manifest does not list under data/, attachments/ and metadata/.
    Raises :class:`TamperedExport`; returns the number of files checked."""
    mpath = root / "metadata" / "manifest.json"
    if not mpath.exists():
        raise TamperedExport(f"{root.name}: no metadata/manifest.json; cannot verify the folder "
                             "(use --no-verify to trust it as is)")
    try:
        entries = _manifest_entries(json.loads(mpath.read_text()))
    except ValueError as e:
        raise TamperedExport(f"{root.name}: metadata/manifest.json is not valid JSON ({e})") from e
    if not entries:
        raise TamperedExport(f"{root.name}: metadata/manifest.json lists no files")
    problems: list[str] = []
    for rel, e in sorted(entries.items()):
        p = (root / rel).resolve()
        if root not in p.parents:
            problems.append(f"{rel}: outside the folder")
            continue
        if not p.is_file():
            problems.append(f"{rel}: missing")
            continue
        size = e.get("size", e.get("bytes"))
        if size is not None and p.stat().st_size != int(size):
            problems.append(f"{rel}: size {p.stat().st_size}, manifest says {size}")
            continue
        want = e.get("sha256") or e.get("hash")
        if want:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            if h.hexdigest() != str(want).removeprefix("sha256:"):
                problems.append(f"{rel}: content changed (sha256 mismatch)")
    listed = {Path(r).as_posix() for r in entries}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in listed and rel != "metadata/manifest.json":
            problems.append(f"{rel}: not in the manifest")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise TamperedExport(f"{root.name} does not match its manifest, refusing to use it: "
                             + "; ".join(problems[:3]) + more)
    return len(entries)


@dataclass
class _Layout:
    schemas: dict[str, dict] = field(default_factory=dict)  # base id -> raw schema
    base_names: dict[str, str] = field(default_factory=dict)
    data_files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (base, table) -> json file
    att_files: dict[str, str] = field(default_factory=dict)  # att id -> path relative to the folder
    att_meta: dict[str, dict] = field(default_factory=dict)
    snapshot: dict = field(default_factory=dict)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)  # table id -> column -> field id


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except ValueError as e:
        raise RestoreError(f"{path}: not valid JSON ({e})") from e


def _load_json_records(path: Path) -> list[dict]:
    doc = _load_json(path)
    if isinstance(doc, dict):
        doc = doc.get("records", [])
    return [r for r in doc if isinstance(r, dict) and "id" in r]


def _schema_docs(meta: Path) -> Iterator[tuple[Path, dict]]:
    for p in sorted(meta.rglob("*.json")):
        if p.name == "manifest.json":
            continue
        try:
            doc = json.loads(p.read_bytes())
        except ValueError:
            continue
        if isinstance(doc, dict):
            yield p, doc


def _read_layout(root: Path) -> _Layout:
    snap_doc = root / "metadata" / "snapshot.json"
    if snap_doc.is_file():
        doc = _load_json(snap_doc)
        if isinstance(doc, dict) and isinstance(doc.get("bases"), list) and \
                all(isinstance(b, dict) and b.get("schema_file") for b in doc["bases"]):
            return _read_snapstore_layout(root, doc)
    return _read_generic_layout(root)


def _read_snapstore_layout(root: Path, doc: dict) -> _Layout:
    """Our exporter's folder: metadata/snapshot.json names each base's schema file and each table's
    file stem and column names (field id -> column)."""
    lay = _Layout(snapshot=doc)
    for b in doc["bases"]:
        bid = b["base_id"]
        lay.schemas[bid] = _load_json(_inside(root, b["schema_file"]))
        lay.base_names[bid] = b.get("name") or bid
        for t in b.get("tables", []):
            p = _inside(root, f"data/json/{b['folder']}/{t['file_stem']}.json")
            if p.is_file():
                lay.data_files[(bid, t["table_id"])] = p
                lay.columns[t["table_id"]] = {col: fid for fid, col in (t.get("columns") or {}).items()}
    return lay


def _inside(root: Path, rel: str) -> Path:
    p = (root / rel).resolve()
    if root != p and root not in p.parents:
        raise TamperedExport(f"{rel}: points outside the folder")
    return p


def _read_generic_layout(root: Path) -> _Layout:
    """Other tools' folders with data/json: schema JSON anywhere under metadata/, one JSON file of
    records per table named by table id or table name."""
    lay = _Layout()
    meta = root / "metadata"
    table_index: dict[str, str] = {}  # table id -> base id
    table_names: dict[tuple[str, str], str] = {}  # (base, table name) -> table id
    if meta.is_dir():
        for p, doc in _schema_docs(meta):
            # a raw meta-API schema: {"tables": [...]}, perhaps wrapped with the base id and name
            inner = doc.get("schema") if isinstance(doc.get("schema"), dict) else doc
            if isinstance(inner.get("tables"), list) and all(isinstance(t, dict) and "fields" in t
                                                            for t in inner["tables"]):
                base_id = doc.get("base_id") or doc.get("baseId") or doc.get("id") or _base_id_from_name(p)
                if not base_id:
                    continue
                lay.schemas[base_id] = {"tables": inner["tables"]}
                lay.base_names[base_id] = doc.get("base_name") or doc.get("name") or base_id
            elif isinstance(doc.get("bases"), list) and "id" in doc or "snapshot" in p.stem:
                lay.snapshot = doc
            for b in doc.get("bases", []) if isinstance(doc.get("bases"), list) else []:
                if isinstance(b, dict) and (b.get("base_id") or b.get("id")) and b.get("name"):
                    lay.base_names.setdefault(b.get("base_id") or b.get("id"), b["name"])
    for base_id, schema in lay.schemas.items():
        for t in schema["tables"]:
            table_index[t["id"]] = base_id
            table_names[(base_id, t["name"])] = t["id"]
    data = root / "data" / "json"
    if not data.is_dir():
        raise RestoreError(f"{root.name}: no data/json folder; not an exported backup")
    if not lay.schemas:
        raise RestoreError(f"{root.name}: no base schema under metadata/; cannot map field names to fields")
    for p in sorted(data.rglob("*.json")):
        doc = _load_json(p)
        tid = bid = None
        if isinstance(doc, dict):
            tid = doc.get("table_id") or doc.get("tableId")
            bid = doc.get("base_id") or doc.get("baseId")
        if tid is None:
            m = re.search(r"(tbl[A-Za-z0-9]{14})", p.name)
            tid = m.group(1) if m else None
        if tid is None:  # by table name: "<table name>.json", perhaps under a base folder
            for (b, name), t in table_names.items():
                if p.stem == name or p.stem == _safe(name):
                    bid, tid = b, t
                    break
        if tid is None or tid not in table_index:
            continue
        lay.data_files[(bid or table_index[tid], tid)] = p
    return lay


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip()


def _base_id_from_name(p: Path) -> str | None:
    for part in (p.stem, p.parent.name):
        m = re.search(r"(app[A-Za-z0-9]{14})", part)
        if m:
            return m.group(1)
    return None


#: Keys an exporter adds to attachment objects that the API does not return.
_EXPORT_ATT_KEYS = ("path", "local_path", "file", "localPath")


def _is_att(a: Any) -> bool:
    return isinstance(a, dict) and isinstance(a.get("id"), str) and a["id"].startswith("att")


def _record_from_export(rec: dict, table: dict, src: FolderSource) -> dict:
    """An exported record (fields by name) back in the store's canonical form (fields by id)."""
    by_name = {f["name"]: f for f in table["fields"]}
    by_id = {f["id"]: f for f in table["fields"]}
    cols = src.layout.columns.get(table["id"], {})
    fields: dict[str, Any] = {}
    for key, value in (rec.get("fields") or {}).items():
        fid = cols.get(key)
        if fid is None:
            f = by_name.get(key) or by_id.get(key)
            fid = f["id"] if f is not None else (key if re.fullmatch(r"fld[A-Za-z0-9]{14}", key) else None)
        if fid is None:
            continue
        if isinstance(value, list) and any(_is_att(a) for a in value):
            clean = []
            for a in value:
                if _is_att(a):
                    a = dict(a)
                    path = None
                    for k in _EXPORT_ATT_KEYS:
                        if k in a:
                            path = a.pop(k)
                    src._note_att(a, path if isinstance(path, str) else None)
                    src.layout.att_meta.setdefault(a["id"], a)
                clean.append(a)
            value = clean
        fields[fid] = value
    return canonical_record({"id": rec["id"], "createdTime": rec.get("createdTime"), "fields": fields})


# ============================================================================================ import


def import_folder(folder: str | Path, store, *, note: str | None = None, verify: bool = True, tags=()):
    """An exported folder becomes a snapshot in ``store`` (original record ids, schema, attachments).
    Returns the new :class:`SnapshotInfo`."""
    src = FolderSource(folder, verify=verify)
    if not src.layout.data_files:
        raise RestoreError(f"{src.label}: no table data found under data/json")
    snap = store.begin_snapshot(note=note or f"imported from {src.root.name}", tags=tags, command="import")
    try:
        seen_att: set[str] = set()
        for base_id, name in src.bases():
            schema = src.schema(base_id)
            snap.add_base(base_id, name, schema)
            for t in schema["tables"]:
                if not src.has_table(base_id, t["id"]):
                    snap.mark_missing(base_id, t["id"], "not in the exported folder")
                    continue
                tw = snap.table(base_id, t["id"])
                for r in src.records(base_id, t["id"]):
                    tw.add(r)
                tw.finish()
        for att_id in sorted(src.layout.att_files):
            if att_id in seen_att or snap.known_attachment(att_id):
                continue
            info = src.att_info(att_id)
            if info is None:
                continue
            seen_att.add(att_id)
            meta = src.layout.att_meta.get(att_id, {})
            with src.open_att(att_id) as f:
                snap.add_attachment(att_id, f, size=info["size"], filename=meta.get("filename") or info["filename"],
                                    mime=meta.get("type"))
        return snap.commit()
    except BaseException:
        snap.abandon()
        raise


# ============================================================================================ plan


@dataclass
class FieldPlan:
    src_id: str
    name: str
    type: str
    action: str  # primary | create | link | inverse | computed | keep_text | skip
    reason: str | None = None
    definition: dict | None = None
    options: dict | None = None
    description: str | None = None
    link_table: str | None = None  # source table id a link points at
    inverse_of: str | None = None  # for action "inverse": the source field id created on the other side

    def to_dict(self) -> dict:
        d = {"id": self.src_id, "name": self.name, "type": self.type, "action": self.action}
        if self.reason:
            d["reason"] = self.reason
        if self.definition is not None:
            d["definition"] = self.definition
        return d


@dataclass
class TablePlan:
    src_id: str
    name: str
    new_name: str
    primary: str
    fields: list[FieldPlan]
    records: int = 0

    def field(self, fid: str) -> FieldPlan | None:
        return next((f for f in self.fields if f.src_id == fid), None)


@dataclass
class Plan:
    source: str
    base_id: str
    target_base: str
    tables: list[TablePlan]
    keep_computed: bool

    def to_dict(self) -> dict:
        return {
            "source": self.source, "base_id": self.base_id, "target_base": self.target_base,
            "keep_computed_values": self.keep_computed,
            "tables": [{"id": t.src_id, "name": t.name, "new_name": t.new_name, "records": t.records,
                        "fields": [f.to_dict() for f in t.fields]} for t in self.tables],
        }

    @property
    def not_restorable(self) -> list[dict]:
        out = []
        for t in self.tables:
            for f in t.fields:
                if f.action in ("computed", "keep_text", "skip"):
                    d = {"table": t.name, "field": f.name, "id": f.src_id, "type": f.type,
                         "reason": f.reason, "definition": f.definition}
                    if f.action == "keep_text":
                        d["kept_as"] = "last values in a text field"
                    out.append(d)
        return out


def _write_options(f: dict) -> dict | None:
    keys = WRITE_OPTIONS.get(f["type"])
    opts = f.get("options") or {}
    if not keys:
        return None
    out = {k: opts[k] for k in keys if k in opts}
    if "choices" in out:
        out["choices"] = [{k: c[k] for k in ("name", "color") if k in c} for c in out["choices"]]
    return out or None


def _suffixed(name: str, taken: set[str]) -> str:
    low = {t.lower() for t in taken}
    if name.lower() not in low:
        return name
    cand = f"{name} (restored)"
    n = 2
    while cand.lower() in low:
        cand = f"{name} (restored {n})"
        n += 1
    return cand


def make_plan(source, base_id: str | None, target_base: str, *, tables: Iterable[str] = (),
              target_table_names: Iterable[str] = (), keep_computed: bool = False,
              count_records: bool = True) -> Plan:
    bases = source.bases()
    if base_id is None:
        if len(bases) != 1:
            raise RestoreError(f"{source.label} holds {len(bases)} bases "
                               f"({', '.join(b for b, _ in bases)}); choose one with --base")
        base_id = bases[0][0]
    else:
        base_id = pick(base_id, bases, "base", f"in {source.label}")
    schema = source.schema(base_id)
    held = [t for t in schema["tables"] if source.has_table(base_id, t["id"])]
    wanted = select_tables(list(tables), [(base_id, None, t["id"], t["name"]) for t in held],
                           f"in base {base_id} of {source.label}")
    chosen = [t for t in held if wanted is None or (base_id, t["id"]) in wanted]
    if not chosen:
        raise RestoreError(f"nothing to restore: no tables of base {base_id} in {source.label}")
    chosen_ids = {t["id"] for t in chosen}
    taken = set(target_table_names)
    plans: list[TablePlan] = []
    created_links: set[str] = set()
    fields_by_id = {f["id"]: (t["id"], f) for t in schema["tables"] for f in t["fields"]}
    for t in chosen:
        new_name = _suffixed(t["name"], taken)
        taken.add(new_name)
        fps = []
        for f in t["fields"]:
            typ = f["type"]
            fp = FieldPlan(f["id"], f["name"], typ, "create", description=f.get("description"))
            if f["id"] == t["primaryFieldId"]:
                if typ in PRIMARY_TYPES:
                    fp.action, fp.options = "primary", _write_options(f)
                else:
                    fp.action = "primary_text"
                    fp.reason = (f"{typ} cannot be a created primary field; recreated as a text field "
                                 "holding the last values")
                    fp.definition = {"type": typ, "options": f.get("options")}
            elif typ in COMPUTED_TYPES:
                fp.definition = {"type": typ, "options": f.get("options")}
                fp.reason = WHY_COMPUTED
                fp.action = "keep_text" if keep_computed else "computed"
            elif typ == "multipleRecordLinks":
                opts = f.get("options") or {}
                other = opts.get("linkedTableId")
                fp.link_table = other
                inv = opts.get("inverseLinkFieldId")
                if other not in chosen_ids:
                    fp.action, fp.reason = "skip", f"links to table {other}, which is not being restored"
                    fp.definition = {"type": typ, "options": opts}
                elif inv and inv in created_links:
                    fp.action, fp.inverse_of = "inverse", inv
                else:
                    fp.action = "link"
                    created_links.add(f["id"])
            elif typ in CREATABLE_TYPES:
                fp.options = _write_options(f)
            else:
                fp.action, fp.reason = "skip", f"field type {typ!r} is not known to be creatable through the API"
                fp.definition = {"type": typ, "options": f.get("options")}
            fps.append(fp)
        # the primary field first
        fps.sort(key=lambda x: 0 if x.action in ("primary", "primary_text") else 1)
        n = 0
        if count_records:
            info = getattr(source, "snap", None)
            ti = info.table(base_id, t["id"]) if info is not None else None
            n = ti.records if ti is not None else sum(1 for _ in source.records(base_id, t["id"]))
        plans.append(TablePlan(t["id"], t["name"], new_name, t["primaryFieldId"], fps, n))
    # a link whose inverse was planned first (self-links with an inverse in the same table, or the
    # inverse seen earlier) stays as planned; an "inverse" must point at a created link
    del fields_by_id
    return Plan(source.identity, base_id, target_base, plans, keep_computed)


# ============================================================================================ journal


class Journal:
    """SQLite journal of one restore: what exists in the target and which step each table reached."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);
    CREATE TABLE IF NOT EXISTS tmap(src_table TEXT PRIMARY KEY, new_table TEXT, new_name TEXT);
    CREATE TABLE IF NOT EXISTS fmap(src_table TEXT, src_field TEXT, new_field TEXT,
                                    PRIMARY KEY(src_table, src_field));
    CREATE TABLE IF NOT EXISTS rmap(src_table TEXT, old_id TEXT, new_id TEXT, PRIMARY KEY(src_table, old_id));
    CREATE TABLE IF NOT EXISTS pending(src_table TEXT, step TEXT, payload TEXT, PRIMARY KEY(src_table, step));
    CREATE TABLE IF NOT EXISTS done(src_table TEXT, step TEXT, key TEXT, PRIMARY KEY(src_table, step, key));
    CREATE TABLE IF NOT EXISTS atts(src_table TEXT, old_rec TEXT, field TEXT, idx INTEGER, old_att TEXT,
                                    new_att TEXT, PRIMARY KEY(src_table, old_rec, field, idx));
    CREATE TABLE IF NOT EXISTS notes(kind TEXT, src_table TEXT, payload TEXT);
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(str(path), isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")  # one fsync per commit (of the log), not three
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.executescript(self.SCHEMA)

    def close(self) -> None:
        self.con.close()

    @contextlib.contextmanager
    def tx(self):
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # meta
    def get(self, k: str, default: Any = None) -> Any:
        row = self.con.execute("SELECT v FROM meta WHERE k = ?", [k]).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, k: str, v: Any) -> None:
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [k, json.dumps(v)])

    # maps
    def table_map(self) -> dict[str, tuple[str, str]]:
        return {s: (n, nm) for s, n, nm in self.con.execute("SELECT src_table, new_table, new_name FROM tmap")}

    def field_map(self, src_table: str) -> dict[str, str]:
        return dict(self.con.execute("SELECT src_field, new_field FROM fmap WHERE src_table = ?", [src_table]))

    def record_map(self, src_table: str | None = None) -> dict[str, str]:
        if src_table is None:
            return dict(self.con.execute("SELECT old_id, new_id FROM rmap"))
        return dict(self.con.execute("SELECT old_id, new_id FROM rmap WHERE src_table = ?", [src_table]))

    def done_keys(self, src_table: str, step: str) -> set[str]:
        return {k for (k,) in self.con.execute("SELECT key FROM done WHERE src_table = ? AND step = ?",
                                                [src_table, step])}

    def pending(self, src_table: str, step: str) -> Any:
        row = self.con.execute("SELECT payload FROM pending WHERE src_table = ? AND step = ?",
                               [src_table, step]).fetchone()
        return json.loads(row[0]) if row else None

    def set_pending(self, src_table: str, step: str, payload: Any) -> None:
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?)", [src_table, step, json.dumps(payload)])

    def clear_pending(self, c, src_table: str, step: str) -> None:
        c.execute("DELETE FROM pending WHERE src_table = ? AND step = ?", [src_table, step])

    def note(self, kind: str, src_table: str, payload: dict) -> None:
        with self.tx() as c:
            c.execute("INSERT INTO notes VALUES (?, ?, ?)", [kind, src_table, json.dumps(payload)])

    def notes(self, kind: str) -> list[dict]:
        return [dict(json.loads(p), table=t) for t, p in
                self.con.execute("SELECT src_table, payload FROM notes WHERE kind = ?", [kind])]


def journal_id(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


# ============================================================================================ values


def _text_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        if "value" in value and "state" in value:  # aiText
            return value.get("value")
        if "label" in value:  # button
            return value.get("label")
        if "name" in value or "email" in value:
            return value.get("name") or value.get("email")
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, list):
        parts = [_text_of(v) for v in value]
        return ", ".join(p for p in parts if p)
    return str(value)


def _write_value(typ: str, value: Any) -> Any:
    """A stored cell in the form the write API accepts."""
    if typ == "singleCollaborator":
        return _collab(value)
    if typ == "multipleCollaborators":
        return [_collab(v) for v in value or []]
    if typ == "singleSelect" and isinstance(value, dict):
        return value.get("name")
    if typ == "barcode" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k in ("text", "type") and v is not None}
    return value


def _collab(v: Any) -> Any:
    if isinstance(v, dict):
        if v.get("id"):
            return {"id": v["id"]}
        if v.get("email"):
            return {"email": v["email"]}
    return v


def _norm(typ: str, value: Any, id_map: dict[str, str] | None = None) -> Any:
    """A cell reduced to what a restore can reproduce, for comparisons."""
    if value in (None, [], "", False):
        return None
    if typ == "multipleAttachments":
        return [(a.get("filename"), a.get("size"), a.get("type")) for a in value]
    if typ == "singleCollaborator":
        return value.get("id") or value.get("email")
    if typ == "multipleCollaborators":
        return [v.get("id") or v.get("email") for v in value]
    if typ == "multipleRecordLinks":
        return [id_map.get(v, v) if id_map else v for v in value]
    if typ == "barcode" and isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value


# ============================================================================================ report


@dataclass
class TableReport:
    name: str
    new_table: str | None = None
    new_name: str | None = None
    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    resumed: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Report:
    mode: str
    source: str
    target_base: str
    journal: str | None = None
    id_map_file: str | None = None
    dry_run: bool = False
    status: str = "planned"
    tables: dict[str, TableReport] = field(default_factory=dict)
    not_restorable: list[dict] = field(default_factory=list)
    attachments_uploaded: int = 0
    attachments_not_uploaded: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plan: dict | None = None
    requests: dict | None = None

    def to_dict(self) -> dict:
        return {
            "mode": self.mode, "status": self.status, "dry_run": self.dry_run, "source": self.source,
            "target_base": self.target_base, "journal": self.journal, "id_map_file": self.id_map_file,
            "tables": {k: v.to_dict() for k, v in self.tables.items()},
            "not_restorable": self.not_restorable,
            "attachments": {"uploaded": self.attachments_uploaded, "not_uploaded": self.attachments_not_uploaded},
            "warnings": self.warnings, "plan": self.plan, "requests": self.requests,
        }


class Interrupted(RestoreError):
    """Raised by the test hook ``fail_after`` to simulate a restore killed half-way."""


# ============================================================================================ target


class Target:
    """Thin raw-JSON writer on a pyairtable Api (normally ``AirtableSource.api``: throttled, retried)."""

    def __init__(self, api, base_id: str) -> None:
        self.api = api
        self.base_id = base_id
        self.writes = 0

    def _url(self, *parts: str):
        return self.api.build_url(*parts)

    def _call(self, what: str, fn: Callable, *a, **kw):
        from snapstore.source.errors import SourceError, translate

        try:
            return fn(*a, **kw)
        except SourceError as e:
            raise RestoreError(f"{what}: {e}") from None
        except Exception as e:  # noqa: BLE001 - pyairtable/requests errors
            detail = ""
            resp = getattr(e, "response", None)
            if resp is not None:
                with contextlib.suppress(Exception):
                    detail = " " + json.dumps(resp.json().get("error"))
            err = translate(e, what)
            status = getattr(err, "status", None)
            raise WriteFailed(f"{what}: {err}{detail}", status, detail) from None

    def schema(self) -> dict:
        return self._call(f"schema of base {self.base_id}", self.api.get,
                          self._url("meta/bases", self.base_id, "tables"))

    def create_table(self, name: str, fields: list[dict], description: str | None = None) -> dict:
        body: dict[str, Any] = {"name": name, "fields": fields}
        if description:
            body["description"] = description
        self.writes += 1
        return self._call(f"create table {name!r}", self.api.post,
                          self._url("meta/bases", self.base_id, "tables"), json=body)

    def create_field(self, table_id: str, fdef: dict) -> dict:
        self.writes += 1
        return self._call(f"create field {fdef['name']!r}", self.api.post,
                          self._url("meta/bases", self.base_id, "tables", table_id, "fields"), json=fdef)

    def rename_field(self, table_id: str, field_id: str, name: str) -> dict:
        self.writes += 1
        return self._call(f"rename field {field_id}", self.api.patch,
                          self._url("meta/bases", self.base_id, "tables", table_id, "fields", field_id),
                          json={"name": name})

    def list_ids(self, table_id: str, fields: list[str] | None = None) -> list[dict]:
        out: list[dict] = []
        params: dict[str, Any] = {"returnFieldsByFieldId": 1, "pageSize": 100}
        if fields is not None:
            params["fields[]"] = fields
        url = self._url(self.base_id, table_id)
        offset = None
        while True:
            if offset:
                params["offset"] = offset
            page = self._call(f"list {table_id}", self.api.get, url, params=params)
            out.extend(page.get("records") or [])
            offset = page.get("offset")
            if not offset:
                return out

    def get_record(self, table_id: str, rec_id: str) -> dict:
        return self._call(f"get {rec_id}", self.api.get, self._url(self.base_id, table_id, rec_id),
                          params={"returnFieldsByFieldId": 1})

    def create(self, table_id: str, rows: list[dict]) -> list[dict]:
        self.writes += 1
        resp = self._call(f"create records in {table_id}", self.api.post, self._url(self.base_id, table_id),
                          json={"records": [{"fields": r} for r in rows], "typecast": True,
                                "returnFieldsByFieldId": True})
        return resp["records"]

    def update(self, table_id: str, rows: list[dict]) -> list[dict]:
        self.writes += 1
        resp = self._call(f"update records in {table_id}", self.api.patch, self._url(self.base_id, table_id),
                          json={"records": rows, "typecast": True, "returnFieldsByFieldId": True})
        return resp["records"]

    def delete(self, table_id: str, ids: list[str]) -> None:
        self.writes += 1
        self._call(f"delete records in {table_id}", self.api.delete, self._url(self.base_id, table_id),
                   params={"records[]": ids})

    def upload(self, table_id: str, rec_id: str, field_id: str, filename: str, content: bytes,
               mime: str | None) -> dict:
        """``uploadAttachment`` (pyairtable's URL, on content.airtable.com); the raw JSON answer, not
        pyairtable's typed result (which insists every returned field is an attachment list)."""
        import base64

        self.writes += 1
        table = self.api.table(self.base_id, table_id)
        ctype = mime or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        body = {"contentType": ctype, "filename": os.path.basename(filename),
                "file": base64.encodebytes(content).decode("ascii")}
        url = table.urls.upload_attachment(rec_id, field_id)
        if "api.airtable.com" not in str(self.api.endpoint_url):
            # not Airtable (the emulator, a proxy): it serves uploads itself, not content.airtable.com
            url = self.api.build_url(self.base_id, rec_id, field_id, "uploadAttachment")
        return self._call(f"upload {filename!r} to {rec_id}", self.api.post, url, json=body)


class WriteFailed(RestoreError):
    def __init__(self, msg: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(msg)
        self.status = status
        self.detail = detail


_FIELD_IN_MSG = re.compile(r'[Ff]ield \\?"(.+?)\\?"')


# ============================================================================================ restore


class Restore:
    """One restore of a source base's tables into new tables of ``target_base``."""

    def __init__(self, source, target: Target | None, plan: Plan, journal: Journal, *,
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

    def _tick(self, step: str) -> None:
        n = self._batches[step] = self._batches.get(step, 0) + 1
        if self.fail_after and self.fail_after[0] in (step, "any") and n >= self.fail_after[1]:
            raise Interrupted(f"simulated interruption after {n} {step} batches")

    # ----------------------------------------------------------------------------------- schema

    def _field_def(self, fp: FieldPlan, as_text: bool = False) -> dict:
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
                defs = []
                for fp in tp.fields:
                    if fp.action in ("primary", "create"):
                        defs.append(self._field_def(fp))
                    elif fp.action in ("primary_text", "keep_text"):
                        defs.append(self._field_def(fp, as_text=True))
                self.j.set_pending(tp.src_id, "table", {"name": tp.new_name})
                made = self.t.create_table(tp.new_name, defs)
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
                    d = {"name": fp.name, "type": "multipleRecordLinks", "options": {"linkedTableId": other_new}}
                    if fp.description:
                        d["description"] = fp.description
                    self.j.set_pending(tp.src_id, "field:" + fp.src_id, {"name": fp.name})
                    made = self.t.create_field(new_tid, d)
                with self.j.tx() as c:
                    c.execute("INSERT OR REPLACE INTO fmap VALUES (?, ?, ?)", [tp.src_id, fp.src_id, made["id"]])
                    self.j.clear_pending(c, tp.src_id, "field:" + fp.src_id)
                self._map_inverse(tp, fp, made, other_new)

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
        with contextlib.suppress(RestoreError):
            live = self._live_fields(other_new)
            cur = next((n for n, f in live.items() if f["id"] == inv_new), None)
            if cur != inv_plan.name:
                self.t.rename_field(other_new, inv_new, inv_plan.name)
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
        links = [f for f in tp.fields if f.action in ("link", "inverse")]
        if not links:
            return
        tid = self.j.table_map()[tp.src_id][0]
        fmap = self.j.field_map(tp.src_id)
        links = [f for f in links if f.src_id in fmap]
        mapped = self.j.record_map(tp.src_id)
        maps = {f.src_id: self.j.record_map(f.link_table) for f in links}
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
                ids = [m[x] for x in v if x in m]
                dropped += len(v) - len(ids)
                if ids:
                    out[fmap[f.src_id]] = ids
            if out:
                batch.append((rec["id"], out))
                if len(batch) == BATCH:
                    flush()
        flush()
        if dropped:
            self.report.warnings.append(f"{tp.name}: {dropped} links pointed at records not in the source; dropped")

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
        self.report.status = "complete"
        self.finish()
        self.j.set("status", "complete")
        self.j.set("finished", datetime.now(UTC).isoformat(timespec="seconds"))
        return self.report

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


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


# ============================================================================================ entry points


def open_source(source: str | Path, store=None, *, verify: bool = True):
    """A snapshot name (needs ``store``) or an exported folder."""
    p = Path(str(source))
    if p.is_dir() and ((p / "data").is_dir() or (p / "metadata").is_dir()):
        return FolderSource(p, verify=verify)
    if store is None:
        raise RestoreError(f"{source}: not an exported folder, and no store given to find a snapshot in")
    return SnapshotSource(store, source)


def restore(source, *, to_base: str, client=None, base_id: str | None = None, tables: Iterable[str] = (),
            keep_computed: bool = False, dry_run: bool = False, new: bool = False,
            fail_after: tuple[str, int] | None = None, log: Callable[[str], None] | None = None) -> Report:
    """Restore ``source`` (a :class:`SnapshotSource`/:class:`FolderSource`) into new tables of base
    ``to_base`` through ``client`` (an :class:`~snapstore.source.AirtableSource`). Resumes an interrupted
    restore of the same source and tables; refuses to repeat a finished one unless ``new``."""
    tables = list(tables)
    base_for_id = base_id or "-"
    jid = journal_id(source.identity, base_for_id, to_base, ",".join(sorted(tables)), str(keep_computed))
    jroot = Path(source.journal_root)
    jpath = jroot / f"{jid}.sqlite"
    if new and jpath.exists():
        done_path = jroot / f"{jid}.sqlite"
        # archive the old journal under a unique name; the next run starts fresh
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        for suffix in (".sqlite", ".idmap.json", ".report.json"):
            old = done_path.with_suffix(suffix)
            if old.exists():
                old.rename(old.with_name(f"{jid}-{stamp}{suffix}"))
    target = Target(client.api, to_base) if client is not None else None
    if dry_run:
        names: list[str] = []
        if target is not None:
            names = [t["name"] for t in target.schema()["tables"]]
        plan = make_plan(source, base_id, to_base, tables=tables, target_table_names=names,
                         keep_computed=keep_computed)
        rep = Report("restore", source.label, to_base, dry_run=True)
        rep.plan = plan.to_dict()
        rep.not_restorable = plan.not_restorable
        for tp in plan.tables:
            rep.tables[tp.src_id] = TableReport(tp.name, new_name=tp.new_name, created=tp.records)
        if jpath.exists():
            j = Journal(jpath)
            rep.status = "would resume" if j.get("status") != "complete" else "already restored"
            rep.journal = str(jpath)
            j.close()
        rep.attachments_not_uploaded = _attachment_preview(source, plan)
        return rep
    if target is None:
        raise RestoreError("no Airtable client: give a token (AIRTABLE_TOKEN / --token)")
    if jpath.exists():
        j = Journal(jpath)
        if j.get("status") == "complete":
            j.close()
            raise RestoreError(f"this restore was already completed (journal {jpath}); "
                               "run with --new to restore again into new tables")
        plan = _plan_from_dict(j.get("plan"))
    else:
        names = [t["name"] for t in target.schema()["tables"]]
        plan = make_plan(source, base_id, to_base, tables=tables, target_table_names=names,
                         keep_computed=keep_computed)
        j = Journal(jpath)
        j.set("source", source.identity)
        j.set("target_base", to_base)
        j.set("created", datetime.now(UTC).isoformat(timespec="seconds"))
        j.set("plan", _plan_to_state(plan))
    try:
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


def _plan_to_state(plan: Plan) -> dict:
    return {"source": plan.source, "base_id": plan.base_id, "target_base": plan.target_base,
            "keep_computed": plan.keep_computed,
            "tables": [{"src_id": t.src_id, "name": t.name, "new_name": t.new_name, "primary": t.primary,
                        "records": t.records, "fields": [f.__dict__ for f in t.fields]} for t in plan.tables]}


def _plan_from_dict(d: dict) -> Plan:
    tables = [TablePlan(t["src_id"], t["name"], t["new_name"], t["primary"], [FieldPlan(**f) for f in t["fields"]],
                        t["records"]) for t in d["tables"]]
    return Plan(d["source"], d["base_id"], d["target_base"], tables, d["keep_computed"])


# ============================================================================================ verify


def compare_tables(src_schema_table: dict, src_records: Iterable[dict], dst_records: Iterable[dict],
                   field_map: dict[str, str], id_maps: dict[str, dict[str, str]]) -> list[str]:
    """Differences in writable fields between source records and restored ones (ids mapped).
    ``field_map``: source field id -> target field id; ``id_maps``: source table id -> {old: new}."""
    own = id_maps.get(src_schema_table["id"], {})
    dst = {r["id"]: r.get("fields") or {} for r in dst_records}
    diffs: list[str] = []
    seen = set()
    for rec in src_records:
        new = own.get(rec["id"])
        if new is None or new not in dst:
            diffs.append(f"{rec['id']}: not restored")
            continue
        seen.add(new)
        cells = rec.get("fields") or {}
        for f in src_schema_table["fields"]:
            if f["type"] in COMPUTED_TYPES or f["id"] not in field_map:
                continue
            link_map = id_maps.get((f.get("options") or {}).get("linkedTableId"), {}) \
                if f["type"] == "multipleRecordLinks" else None
            a = _norm(f["type"], cells.get(f["id"]), link_map)
            b = _norm(f["type"], dst[new].get(field_map[f["id"]]))
            if a != b:
                diffs.append(f"{rec['id']}.{f['name']}: {a!r} != {b!r}")
    extra = set(dst) - seen
    if extra:
        diffs.append(f"{len(extra)} records in the target that are not in the source")
    return diffs


# ============================================================================================ revert


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
    linkable: dict[str, set[str]] = field(default_factory=dict)  # table -> old ids that exist or will

    def counts(self) -> dict:
        return {"recreate": len(self.recreate), "update": len(self.update), "added_since": len(self.added),
                "unchanged": self.unchanged}


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
    live_schema = Target(client.api, base_id).schema()
    lt = next((t for t in live_schema["tables"] if t["id"] == st["id"]), None)
    if lt is None:
        raise RestoreError(f"table {st['name']} ({st['id']}) no longer exists in base {base_id}; "
                           f"restore it as a new table instead (snapstore restore ... --to-base {base_id})")
    live_fields = {f["id"]: f for f in lt["fields"]}
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
    linkable: dict[str, set[str]] = {}
    tgt = Target(client.api, base_id)
    for f in fields:
        lt = (f.get("options") or {}).get("linkedTableId") if f["type"] == "multipleRecordLinks" else None
        if lt and lt not in linkable:
            if lt == st["id"]:
                linkable[lt] = set(snap_recs) | set(live)
            else:
                linkable[lt] = {back.get(r["id"], r["id"]) for r in tgt.list_ids(lt, fields=[])}
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
                a = [x for x in a if x in ok] or None
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
                      linkable)
    return plan, {f["id"]: f for f in fields}, [snap_recs[r] for r in sorted(recreate)], live


def revert(source: SnapshotSource, *, client, base_id: str, table: str, records: Iterable[str] = (),
           delete_added: bool = False, dry_run: bool = False, confirm: Callable[[RevertPlan], bool] | None = None,
           fail_after: tuple[str, int] | None = None) -> Report:
    """Put a live table (or some of its records) back as it was in the snapshot."""
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
        j = Journal(p)
        alias.update(j.record_map())
        if j.get("status") != "complete" and j.get("table") == st["id"]:
            resume = p
        j.close()
    plan, fields, to_create, live = plan_revert(source, client, base_id, table, records, alias)
    rep = Report("revert", source.label, base_id, dry_run=dry_run)
    rep.plan = {"table": plan.table_name, "table_id": plan.table_id, **plan.counts(),
                "delete_added": delete_added, "fields_skipped": plan.fields_skipped}
    rep.not_restorable = plan.fields_skipped
    tr = rep.tables[plan.table_id] = TableReport(plan.table_name, new_table=plan.table_id)
    if dry_run or (confirm is not None and not confirm(plan)):
        rep.status = "planned" if dry_run else "cancelled"
        tr.created, tr.updated = len(plan.recreate), len(plan.update)
        tr.deleted = len(plan.added) if delete_added else 0
        tr.skipped = 0 if delete_added else len(plan.added)
        return rep
    jpath = resume or jroot / f"revert-{key}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}.sqlite"
    j = Journal(jpath)
    j.set("table", plan.table_id)
    rep.journal = str(jpath)
    t = Target(client.api, base_id)
    tid = plan.table_id
    batches = 0

    def tick() -> None:
        nonlocal batches
        batches += 1
        if fail_after and batches >= fail_after[1]:
            raise Interrupted(f"simulated interruption after {batches} batches")

    try:
        j.set("status", "running")
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
        # 3. files no longer in the table: upload from the store
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
        # 4. records added since
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
        return rep
    finally:
        j.close()


def _adopt_recreated(j: Journal, plan: RevertPlan, fields: dict, to_create: list[dict], live: dict,
                     pend: list[str], rep: Report) -> None:
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
