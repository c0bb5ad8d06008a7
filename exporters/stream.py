"""The one record stream every writer is fed from.

For each selected table of a snapshot it reads the records from the store once and turns them into
Airtable's record shape, ``{"id", "createdTime", "fields": {name: value}}``, with field names from *that
snapshot's* schema (in schema order). Attachment objects get a ``path`` beside their metadata: where the
file was copied inside the export folder (``attachments/<attId>_<filename>``), or ``null`` when the
store does not hold the file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from exporters.naming import NameAllocator, inside, split_ext
from exporters.values import column_names, is_attachment
from snapstore.store import SnapshotInfo, Store, StoreError, TableInfo

log = logging.getLogger("snapstore.export")

#: Folder names inside the export for the stream's own output.
ATTACHMENTS_DIR = "attachments"


@dataclass
class BaseMeta:
    base_id: str
    name: str
    stem: str  # unique safe folder/file name for this base within each format folder
    schema: dict  # the raw meta-API schema of the snapshot
    tables: list[TableMeta] = field(default_factory=list)  # the selected tables, schema order

    def table_schema(self, table_id: str) -> dict | None:
        for t in self.schema.get("tables", []):
            if t.get("id") == table_id:
                return t
        return None


@dataclass
class TableMeta:
    base: BaseMeta
    table_id: str
    name: str
    stem: str  # unique safe file stem within its base folder
    schema: dict
    fields: list[dict]
    columns: list[str]  # "id", "createdTime", then one per field (unique, case-insensitively)
    info: TableInfo | None

    @property
    def field_columns(self) -> list[str]:
        return self.columns[2:]


def plan(store: Store, snap: SnapshotInfo, bases: list[str] | None = None,
         tables: list[str] | None = None) -> list[BaseMeta]:
    """The bases and tables to export (by id or name; all by default), with their safe names."""
    base_alloc = NameAllocator()
    out = []
    wanted_bases = set(bases or [])
    wanted_tables = set(tables or [])
    seen_b: set[str] = set()
    seen_t: set[str] = set()
    for b in snap.bases:
        if wanted_bases and not ({b.base_id, b.name} & wanted_bases):
            continue
        seen_b |= {b.base_id, b.name} & wanted_bases
        schema = store.schema(snap, b.base_id)
        bm = BaseMeta(b.base_id, b.name, base_alloc.take(b.name or b.base_id, fallback=b.base_id), schema)
        table_alloc = NameAllocator()
        stored = {t.table_id: t for t in b.tables}
        for ts in schema.get("tables", []):
            tid = ts.get("id")
            if tid not in stored:
                continue  # in the schema but not captured (missing tables are reported separately)
            if wanted_tables and not ({tid, ts.get("name")} & wanted_tables):
                continue
            seen_t |= {tid, ts.get("name")} & wanted_tables
            fields = list(ts.get("fields") or [])
            bm.tables.append(TableMeta(
                base=bm, table_id=tid, name=ts.get("name") or tid,
                stem=table_alloc.take(ts.get("name") or tid, fallback=tid), schema=ts, fields=fields,
                columns=column_names(fields), info=stored[tid],
            ))
        if wanted_tables and not bm.tables:
            continue
        out.append(bm)
    unknown = (wanted_bases - seen_b) | (wanted_tables - seen_t)
    if unknown:
        raise StoreError(f"not in snapshot {snap.id}: {', '.join(sorted(unknown))} "
                         f"(bases: {', '.join(b.name for b in snap.bases) or 'none'})")
    return out


class AttachmentSink:
    """Copies each attachment a record references into ``attachments/`` once, and says where."""

    def __init__(self, store: Store, root: Path | None) -> None:
        self.store = store
        self.root = root  # None: attachments are not exported
        self._paths: dict[str, str | None] = {}
        self._names = NameAllocator()
        self.copied = 0
        self.bytes = 0
        self.missing: list[str] = []
        self.errors: list[str] = []
        self._index = None
        if root is not None:
            (root / ATTACHMENTS_DIR).mkdir(parents=True, exist_ok=True)
            # one catalog query for every attachment (a catalog connection costs tens of milliseconds,
            # so nothing here asks the catalog per file); memory grows with attachments, not records
            self._index = store.attachment_index()

    def annotate(self, value):
        """A cell with ``path`` added to every attachment object in it."""
        if self.root is None or type(value) is not list:
            return value
        return [dict(v, path=self.path_for(v)) if is_attachment(v) else v for v in value]

    def path_for(self, att: dict) -> str | None:
        att_id = att["id"]
        if att_id in self._paths:
            return self._paths[att_id]
        info = self._index.get(att_id)
        path = None
        if info is None:
            self.missing.append(att_id)
            log.warning("attachment %s (%r) is not in the store; exported without a file", att_id, att.get("filename"))
        else:
            stem, ext = split_ext(f"{att_id}_{att.get('filename') or info.get('filename') or ''}")
            name = self._names.take(stem, ext, fallback=att_id)
            dest = inside(self.root / ATTACHMENTS_DIR, name)
            try:
                self._copy(att_id, dest, info["content_hash"])
                path = f"{ATTACHMENTS_DIR}/{name}"
                self.copied += 1
            except (StoreError, OSError) as e:
                dest.unlink(missing_ok=True)
                self.errors.append(f"attachment {att_id}: {e}")
                log.error("attachment %s could not be exported: %s", att_id, e)
        self._paths[att_id] = path
        return path

    def _copy(self, att_id: str, dest: Path, content_hash: str) -> None:
        sha = hashlib.sha256()
        with self._index.open(att_id) as src, open(dest, "xb") as out:
            while chunk := src.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
                self.bytes += len(chunk)
        if sha.hexdigest() != content_hash:
            raise StoreError(f"content does not match its hash {content_hash[:12]} (damaged store object)")


def records(store: Store, snap: SnapshotInfo, table: TableMeta, sink: AttachmentSink | None) -> Iterator[dict]:
    """The table's records in Airtable's shape (fields by name, schema order); memory flat."""
    order = [(f["id"], f.get("name") or f["id"]) for f in table.fields]
    known = {fid for fid, _ in order}
    att_order = [(f["id"], f.get("name") or f["id"]) for f in table.fields
                 if f.get("type") in ("multipleAttachments", "multipleLookupValues")]
    annotate = sink.annotate if sink is not None and sink.root is not None else None
    for rec in store.records(snap, table.base.base_id, table.table_id):
        cells = rec.get("fields") or {}
        out = {name: cells[fid] for fid, name in order if fid in cells}
        if annotate is not None:
            for _fid, name in att_order:
                if name in out:
                    out[name] = annotate(out[name])
        if len(out) < len(cells):  # cells of fields the schema does not list: kept under their field id
            for fid, v in cells.items():
                if fid not in known:
                    out[fid] = v
        yield {"id": rec["id"], "createdTime": rec.get("createdTime"), "fields": out}
