"""The one record stream every writer is fed from, a chunk of records at a time.

For each selected table of a snapshot the store's record blobs are read once, a chunk (a few thousand
records) at a time, and each chunk is handed to every selected format's encoder as one :class:`Batch`.
A batch holds the canonical records (fields keyed by field id, in storage order) and, computed once and
shared by the encoders that want it, Airtable's record shape ``{"id", "createdTime", "fields": {name:
value}}`` with field names from *that snapshot's* schema, in schema order, and single columns by field.

Chunks are independent, so :mod:`snapstore_exporters.parallel` encodes them on all cores; the functions a worker
runs (:func:`scan_chunk`, :func:`encode_chunk`) touch only packs, never the catalog, and return plain
data. Attachment objects get a ``path`` beside their metadata: where the file was copied inside the
export folder (``attachments/<attId>_<filename>``), or ``null`` when the store does not hold it. Names are
given in the main process, in order of first appearance, so the output does not depend on how chunks
were spread over workers.
"""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from snapstore_exporters.naming import NameAllocator, inside, split_ext
from snapstore_exporters.values import column_kind, column_names, is_attachment

from snapstore.canonical import loads
from snapstore.selection import select, select_tables
from snapstore.store import BlobReader, LocatedChunk, SnapshotInfo, Store, StoreError, TableInfo

log = logging.getLogger("snapstore.export")

#: Folder names inside the export for the stream's own output.
ATTACHMENTS_DIR = "attachments"
#: A table's comments file is its records file stem + this (``Tasks.comments.json``).
COMMENTS_SUFFIX = ".comments"
#: Field types whose cells can hold attachment objects.
ATTACHMENT_TYPES = ("multipleAttachments", "multipleLookupValues")


@dataclass
class BaseMeta:
    base_id: str
    name: str
    stem: str  # unique safe folder/file name for this base within each format folder
    schema: dict  # the raw meta-API schema of the snapshot
    tables: list[TableMeta] = field(default_factory=list)  # the selected tables, schema order


@dataclass
class TableMeta:
    base: BaseMeta
    table_id: str
    name: str
    stem: str  # unique safe file stem within its base folder
    schema: dict
    fields: list[dict]
    columns: list[str]  # "_id", "_createdTime", then one per field (unique, case-insensitively)
    info: TableInfo | None
    comments_stem: str = ""  # the comments file's stem: "<stem>.comments", unless another table has it

    @property
    def field_columns(self) -> list[str]:
        return self.columns[2:]


@dataclass(frozen=True, eq=False)
class TableSpec:
    """What an encoder needs to know about a table: small and picklable (sent with every chunk)."""

    base_id: str
    base_name: str
    table_id: str
    name: str
    snapshot_id: str
    field_ids: tuple[str, ...]
    names: tuple[str, ...]  # field names, schema order
    types: tuple[str, ...]
    kinds: tuple[str, ...]  # snapstore_exporters.values column kinds
    columns: tuple[str, ...]  # output columns: record id, createdTime, then one per field
    attachment_fields: tuple[str, ...]  # ids of fields whose cells can hold attachments
    csv_guard: bool = True
    scratch: str | None = None  # a folder inside the export where workers may leave part files

    @classmethod
    def of(cls, table: TableMeta, snapshot_id: str, csv_guard: bool = True, scratch: str | None = None) -> TableSpec:
        f = table.fields
        return cls(
            base_id=table.base.base_id, base_name=table.base.name, table_id=table.table_id, name=table.name,
            snapshot_id=snapshot_id, field_ids=tuple(x["id"] for x in f),
            names=tuple(x.get("name") or x["id"] for x in f), types=tuple(str(x.get("type")) for x in f),
            kinds=tuple(column_kind(x) for x in f), columns=tuple(table.columns),
            attachment_fields=tuple(x["id"] for x in f if x.get("type") in ATTACHMENT_TYPES), csv_guard=csv_guard,
            scratch=scratch,
        )


def plan(store: Store, snap: SnapshotInfo, bases: list[str] | None = None,
         tables: list[str] | None = None) -> list[BaseMeta]:
    """The bases and tables to export (by id or name; all by default), with their safe names."""
    base_alloc = NameAllocator()
    out = []
    where = f"in snapshot {snap.id}"
    base_ok = select(bases, [(b.base_id, b.name) for b in snap.bases], "base", where)
    selected = [b for b in snap.bases if base_ok is None or b.base_id in base_ok]
    table_ok = select_tables(tables, [(b.base_id, b.name, t.table_id, t.name) for b in selected for t in b.tables],
                             where)
    schemas = store.schemas(snap, [b.base_id for b in selected])
    for b in selected:
        schema = schemas[b.base_id]
        bm = BaseMeta(b.base_id, b.name, base_alloc.take(b.name or b.base_id, fallback=b.base_id), schema)
        table_alloc = NameAllocator()
        stored = {t.table_id: t for t in b.tables}
        for ts in schema.get("tables", []):
            tid = ts.get("id")
            if tid not in stored:
                continue  # in the schema but not captured (missing tables are reported separately)
            if table_ok is not None and (b.base_id, tid) not in table_ok:
                continue
            fields = list(ts.get("fields") or [])
            stem = table_alloc.take(ts.get("name") or tid, fallback=tid)
            bm.tables.append(TableMeta(
                base=bm, table_id=tid, name=ts.get("name") or tid, stem=stem, schema=ts, fields=fields,
                columns=column_names(fields), info=stored[tid],
                # taken from the same allocator, so a table named "X.comments" cannot share X's file
                comments_stem=table_alloc.take(stem + COMMENTS_SUFFIX, sanitize=False),
            ))
        if table_ok is not None and not bm.tables:
            continue
        out.append(bm)
    return out


class AttachmentSink:
    """Copies each attachment the records reference into ``attachments/`` once, and says where.

    Runs in the main process only: names are handed out in the order references are reported, so the
    folder's content does not depend on the number of workers."""

    def __init__(self, store: Store, root: Path | None) -> None:
        self.store = store
        self.root = root  # None: attachments are not exported
        self._paths: dict[str, str | None] = {}
        self._names = NameAllocator()
        self.copied = 0
        self.bytes = 0
        self.missing: list[str] = []
        #: per table (its position in the export): files copied and attachments missing, counted
        #: where they first appear
        self.copied_in: dict[int, int] = {}
        self.missing_in: dict[int, int] = {}
        self.errors: list[str] = []
        self._index = None
        if root is not None:
            (root / ATTACHMENTS_DIR).mkdir(parents=True, exist_ok=True)
            # one catalog query for every attachment (a catalog connection costs tens of milliseconds,
            # so nothing here asks the catalog per file); memory grows with attachments, not records
            self._index = store.attachment_index()

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def paths(self, refs: list[tuple[str, str | None]], table: int = 0) -> dict[str, str | None]:
        """The export path (or None) of each attachment referenced by a chunk of table ``table``,
        copying the new ones."""
        copied, missing = self.copied, len(self.missing)
        out = {att_id: self.path_for(att_id, filename) for att_id, filename in refs}
        if self.copied > copied:
            self.copied_in[table] = self.copied_in.get(table, 0) + self.copied - copied
        if len(self.missing) > missing:
            self.missing_in[table] = self.missing_in.get(table, 0) + len(self.missing) - missing
        return out

    def path_for(self, att_id: str, filename: str | None) -> str | None:
        if att_id in self._paths:
            return self._paths[att_id]
        info = self._index.get(att_id)
        path = None
        if info is None:
            self.missing.append(att_id)
            log.warning("attachment %s (%r) is not in the store; exported without a file", att_id, filename)
        else:
            stem, ext = split_ext(f"{att_id}_{filename or info.get('filename') or ''}")
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
        if sha.hexdigest() != content_hash and not self._index.store.encrypted:  # encrypted: every byte was authenticated
            raise StoreError(f"content does not match its hash {content_hash[:12]} (damaged store object)")


class Batch:
    """One chunk of a table's records, as every encoder sees it. The record shape by name and the
    columns are built on first use and shared, so a multi-format export converts each record once."""

    def __init__(self, spec: TableSpec, records: list[dict], index: int = 0, raws: list[bytes] | None = None) -> None:
        self.spec = spec
        self.index = index  # the chunk's position in its table
        self.records = records  # canonical: {"id", "createdTime", "fields": {field id: value}}
        self.raws = raws  # the records' stored bytes (canonical JSON), when at hand: Arrow parses them
        self._shaped: list[dict] | None = None
        self._columns: dict[str, list] = {}
        self._cells: list[dict] | None = None
        self.warnings: list[tuple[str, str, str]] = []  # (format, column, message)

    def __len__(self) -> int:
        return len(self.records)

    @cached_property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]

    @cached_property
    def created(self) -> list[str | None]:
        return [r.get("createdTime") for r in self.records]

    def column(self, field_id: str) -> list:
        """One field's cells (None where empty), in record order."""
        col = self._columns.get(field_id)
        if col is None:
            if self._cells is None:
                self._cells = [r["fields"] for r in self.records]
            col = self._columns[field_id] = [c.get(field_id) for c in self._cells]
        return col

    def columns(self) -> list[list]:
        return [self.column(fid) for fid in self.spec.field_ids]

    def shaped(self) -> list[dict]:
        """Airtable's record shape: fields by name, schema order; cells of fields the schema does not
        list are kept under their field id."""
        if self._shaped is None:
            order = list(zip(self.spec.field_ids, self.spec.names, strict=True))
            n = len(order)
            known = frozenset(self.spec.field_ids)
            out = []
            for rec in self.records:
                cells = rec["fields"]
                fields = {name: cells[fid] for fid, name in order if fid in cells}
                if len(fields) < len(cells) or len(cells) > n:
                    fields.update((fid, v) for fid, v in cells.items() if fid not in known)
                out.append({"id": rec["id"], "createdTime": rec.get("createdTime"), "fields": fields})
            self._shaped = out
        return self._shaped

    def warn(self, fmt: str, column: str, message: str) -> None:
        self.warnings.append((fmt, column, message))


# ---- what a worker runs (also run in-process when there is one worker) --------------------------

#: Set in each worker (and in the main process for in-process runs): the store chunks are read from.
_STORE: Store | None = None
_READER: BlobReader | None = None
_WORKER = False
#: The last chunks read in this process, so the encode that follows a scan of the same chunk
#: (often in the same worker) does not read and check the packs again.
_RECENT: dict[tuple[str, int, bytes], list[bytes]] = {}
_RECENT_MAX = 6


def use_store(store: Store, worker: bool = False) -> None:
    """Point this process's chunk functions at ``store`` (a pool initializer, or in-process)."""
    global _STORE, _READER, _WORKER
    _STORE, _READER, _WORKER = store, BlobReader(store, threads=0 if worker else -1), worker
    _RECENT.clear()


def in_worker() -> bool:
    """Whether this process is a pool worker (encoders may then hand work to the main process
    differently, e.g. SQLite part files)."""
    return _WORKER


def _key(spec: TableSpec, chunk: LocatedChunk) -> tuple[str, int, bytes]:
    return spec.table_id, chunk.index, chunk.hashes[0] if chunk.hashes else b""


def _remember(spec: TableSpec, chunk: LocatedChunk, raws: list[bytes]) -> None:
    if len(_RECENT) >= _RECENT_MAX:
        _RECENT.pop(next(iter(_RECENT)))
    _RECENT[_key(spec, chunk)] = raws


def scan_chunk(spec: TableSpec, chunk: LocatedChunk) -> list[tuple[str, str | None]]:
    """The attachments a chunk's records reference, (id, filename) in order of first appearance.
    Only records whose bytes mention an attachment id are parsed."""
    seen: set[str] = set()
    refs = []
    raws = _READER.read_chunk(chunk)
    _remember(spec, chunk, raws)  # for the encode of this chunk, if it comes to this worker
    for raw in raws:
        if b'"att' not in raw:
            continue
        cells = loads(raw)["fields"]
        for fid in spec.attachment_fields:
            value = cells.get(fid)
            if type(value) is list:
                for v in value:
                    if is_attachment(v) and v["id"] not in seen:
                        seen.add(v["id"])
                        refs.append((v["id"], v.get("filename")))
    return refs


def encode_chunk(spec: TableSpec, chunk: LocatedChunk, paths: dict[str, str | None] | None,
                 encoders: tuple[Callable[[Batch], Any], ...]) -> tuple[int, list, list]:
    """Read, parse and encode one chunk for every format: (records, payload per encoder, warnings).
    ``paths`` (attachment id -> export path) is None when attachments are not exported."""
    raws = _RECENT.pop(_key(spec, chunk), None) or _READER.read_chunk(chunk)
    # A chunk makes ~20 containers per record and frees them all at the end: acyclic, so the cycle
    # collector has nothing to find, yet its passes over the young objects cost as much as the parsing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        records = [loads(r) for r in raws]
        if paths is not None and spec.attachment_fields:
            _annotate(records, spec.attachment_fields, paths)
        batch = Batch(spec, records, chunk.index, raws)
        return len(records), [enc(batch) for enc in encoders], batch.warnings
    finally:
        if enabled:
            gc.enable()


def _annotate(records: list[dict], att_fields: tuple[str, ...], paths: dict[str, str | None]) -> None:
    for rec in records:
        cells = rec["fields"]
        for fid in att_fields:
            value = cells.get(fid)
            if type(value) is list:
                cells[fid] = [dict(v, path=paths.get(v["id"])) if is_attachment(v) else v for v in value]
