"""Finding records without their ``rec…`` id (``snapstore find``), and printing one stored record
version (``snapstore cat``).

The search streams: a snapshot's records are read a chunk at a time through the store's chunked
readers (``Store.table_chunks``), so memory stays flat however large the store is. Across every
snapshot (``--all``) each record version is read once, at the first snapshot that holds it: the
whole table at the first snapshot that has it, then only the versions that begin after the
previous snapshot holding the table (the catalog keeps versions as validity intervals, so those
are exactly the changes). A version is reported with every snapshot it spans.

Field names come from the schema stored with the snapshot the version was found in, so a field
renamed since is shown under the name it had then.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from snapstore import isotime
from snapstore.canonical import loads
from snapstore.errors import StoreError, UsageError
from snapstore.selection import field_ids, resolve_snapshot, select, select_tables
from snapstore.store import SnapshotInfo, Store
from snapstore.store.catalog import find as catalog_find
from snapstore.store.catalog.snapshots import locate_blobs
from snapstore.store.reader import BlobReader, LocatedChunk

#: Blobs read per batch outside ``table_chunks`` (the changes of one snapshot).
CHUNK = 4096
#: Characters orjson escapes inside a string: a needle holding one cannot be prefiltered on raw JSON.
_ESCAPED = {'"', "\\"} | {chr(c) for c in range(0x20)}


def _iso(s: SnapshotInfo) -> str:
    return isotime.iso(s.time)


def snap_ref(s: SnapshotInfo) -> dict:
    """A snapshot in JSON output: full id, short id, ISO time."""
    return {"id": s.full_id, "short_id": s.id, "time": _iso(s)}


@dataclass
class Hit:
    """One record version whose field contains the text."""

    record_id: str
    base_id: str
    base: str
    table_id: str
    table: str
    primary: Any  # the primary field's value in this version (what people call the record)
    matched: dict[str, Any]  # field name -> value, the fields that contain the text
    hash: str
    snapshots: list[SnapshotInfo]  # every snapshot holding this version, oldest first
    current: bool  # the version is in the store's latest snapshot

    def to_dict(self) -> dict:
        return {
            "record_id": self.record_id, "base_id": self.base_id, "base": self.base,
            "table_id": self.table_id, "table": self.table, "primary": self.primary, "fields": self.matched,
            "hash": self.hash, "current": self.current,
            "first": snap_ref(self.snapshots[0]) if self.snapshots else None,
            "last": snap_ref(self.snapshots[-1]) if self.snapshots else None,
            "snapshots": [snap_ref(s) for s in self.snapshots],
        }


# ---- matching ---------------------------------------------------------------------------------


def _texts(v: Any) -> Iterator[str]:
    """The searchable text of a cell: strings and numbers at any depth (a collaborator's name and
    email, an attachment's filename, a lookup's values); not the keys."""
    if isinstance(v, str):
        yield v
    elif isinstance(v, bool) or v is None:
        return
    elif isinstance(v, int | float):
        yield str(v)
    elif isinstance(v, list):
        for x in v:
            yield from _texts(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _texts(x)


def contains(value: Any, needle: str) -> bool:
    """Whether a cell value contains ``needle`` (already case-folded), case-insensitively."""
    return any(needle in t.casefold() for t in _texts(value))


@dataclass
class _Table:
    """One table as searched: its names and which fields count."""

    base_id: str
    base: str
    table_id: str
    name: str
    fields: dict[str, str]  # field id -> name (in that snapshot's schema)
    primary_id: str | None
    only: set[str] | None  # with --field: the field ids searched


@dataclass
class _Search:
    store: Store
    needle: str
    field: str | None
    snaps: dict[int, SnapshotInfo]  # seq -> snapshot, every snapshot of the store
    latest: int
    reader: BlobReader
    schemas: dict[str, dict] = field(default_factory=dict)  # schema hash -> schema
    table_seqs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    #: orjson writes strings as UTF-8, escaping only quotes, backslashes and control characters,
    #: so a value holding the needle leaves it in the raw JSON: most records are skipped unparsed
    prefilter: bool = True
    pending: list = field(default_factory=list)  # (table, snapshot, hash, record, matched fields)

    def __post_init__(self) -> None:
        self.prefilter = not (_ESCAPED & set(self.needle))

    def schema_table(self, snap: SnapshotInfo, base_id: str, table_id: str) -> _Table:
        b = next(b for b in snap.bases if b.base_id == base_id)
        if b.schema_hash not in self.schemas:
            self.schemas[b.schema_hash] = self.store.schema(snap, base_id)
        t = next((t for t in self.schemas[b.schema_hash].get("tables", []) if t.get("id") == table_id), {})
        info = snap.table(base_id, table_id)
        fields = {f["id"]: f.get("name", f["id"]) for f in t.get("fields", []) if "id" in f}
        return _Table(base_id, b.name, table_id, info.name if info else table_id, fields,
                      t.get("primaryFieldId"), None)

    def with_field(self, tables: list[_Table]) -> list[_Table]:
        """``tables`` (one table as of several snapshots) narrowed to the ``--field`` asked for,
        resolved on any of them (a field renamed since answers to its old name too); [] when none
        has it."""
        if self.field is None:
            return tables
        only: set[str] = set()
        for tbl in tables:
            only |= field_ids(self.field, tbl.fields.items())
        if not only:
            return []
        for tbl in tables:
            tbl.only = only
        return tables

    def match(self, tbl: _Table, raw: bytes) -> tuple[dict, dict] | None:
        """(record, matched fields by name) when the record contains the text, else None."""
        if self.prefilter and self.needle not in raw.decode().casefold():
            return None
        rec = loads(raw)
        cells = rec.get("fields") or {}
        hits = {tbl.fields.get(fid, fid): v for fid, v in cells.items()
                if (tbl.only is None or fid in tbl.only) and contains(v, self.needle)}
        return (rec, hits) if hits else None

    def hits(self, tbl: _Table, found: SnapshotInfo, raws: Iterable[tuple[bytes, bytes]]) -> list[Hit]:
        """The hits among ``(hash, raw)`` blobs of ``tbl`` read at snapshot ``found``. They wait in a
        buffer (at most ``CHUNK``) until the table or the snapshot changes (:meth:`flush`): their spans
        come from one catalog query per buffer, which costs ~200 ms a table of 150,000 records, so a
        query per chunk read would triple the time of a search matching in every chunk."""
        out = []
        if self.pending and (self.pending[0][0] is not tbl or self.pending[0][1] is not found):
            out = self.flush()
        for h, raw in raws:
            m = self.match(tbl, raw)
            if m is not None:
                self.pending.append((tbl, found, h, *m))
        if len(self.pending) >= CHUNK:
            out += self.flush()
        return out

    def flush(self) -> list[Hit]:
        """The buffered matches as hits, with the snapshots each version spans."""
        if not self.pending:
            return []
        tbl, found = self.pending[0][:2]
        matched = [p[2:] for p in self.pending]
        self.pending = []
        spans = self.spans(tbl, found.seq, [rec["id"] for _h, rec, _m in matched])
        out = []
        for h, rec, m in matched:
            seqs = spans.get((rec["id"], h), [found.seq])
            out.append(Hit(rec["id"], tbl.base_id, tbl.base, tbl.table_id, tbl.name,
                           (rec.get("fields") or {}).get(tbl.primary_id) if tbl.primary_id else None, m,
                           h.hex(), [self.snaps[q] for q in seqs], seqs[-1] == self.latest))
        return out

    def spans(self, tbl: _Table, seq: int, record_ids: list[str]) -> dict[tuple[str, bytes], list[int]]:
        """(record id, hash) -> the seqs of the snapshots holding the version valid at ``seq``."""
        tseq = self.seqs_of(tbl.base_id, tbl.table_id)
        rows = catalog_find.version_intervals(self.store.catalog, tbl.base_id, tbl.table_id, seq, record_ids)
        return {(rid, h): [q for q in tseq if q >= begin and (end is None or q < end)]
                for rid, h, begin, end in rows}

    def seqs_of(self, base_id: str, table_id: str) -> list[int]:
        """The seqs of the snapshots holding the table, oldest first."""
        key = (base_id, table_id)
        if key not in self.table_seqs:
            self.table_seqs[key] = sorted(q for q, s in self.snaps.items() if s.table(base_id, table_id))
        return self.table_seqs[key]


def _scope(snaps: Sequence[SnapshotInfo], bases: Sequence[str] | None,
           tables: Sequence[str] | None) -> list[tuple[str, str]]:
    """The (base id, table id) pairs selected among the tables of ``snaps`` (names as of any of them)."""
    base_ok = select(bases, [(b.base_id, b.name) for s in snaps for b in s.bases], "base")
    pairs = [(b.base_id, b.name, t.table_id, t.name) for s in snaps for b in s.bases for t in b.tables
             if base_ok is None or b.base_id in base_ok]
    table_ok = select_tables(tables, pairs)
    seen: dict[tuple[str, str], None] = {}
    for b, _bn, t, _n in pairs:
        if table_ok is None or (b, t) in table_ok:
            seen.setdefault((b, t))
    return list(seen)


def find(store: Store, text: str, *, field: str | None = None, bases: Sequence[str] | None = None,
         tables: Sequence[str] | None = None, snapshot: str | SnapshotInfo = "latest",
         everywhere: bool = False) -> Iterator[Hit]:
    """Record versions with a field (``field``: one id or name; default any field) containing
    ``text``, case-insensitively: those of one snapshot (``snapshot``), or with ``everywhere``
    every version the store holds. Yields as it reads (table by table), each with its span."""
    needle = text.casefold()
    if not needle.strip():
        raise UsageError("find needs some text to look for")
    all_snaps = store.list_snapshots()
    if not all_snaps:
        raise StoreError("the store has no snapshots yet")
    snaps = {s.seq: s for s in all_snaps}
    search = _Search(store, needle, field, snaps, max(snaps), BlobReader(store))
    scope_snaps = all_snaps if everywhere else [resolve_snapshot(store, snapshot, bases)]
    scope = _scope(scope_snaps, bases, tables)
    searched = 0
    if not everywhere:
        snap = scope_snaps[0]
        tbls = [t for b, t in scope for t in search.with_field([search.schema_table(snap, b, t)])]
        searched = len(tbls)
        if field is not None and not searched:
            raise UsageError(f"no field {field!r} in the tables searched of snapshot {snap.id}")
        for k, chunk in store.table_chunks(snap, [(t.base_id, t.table_id) for t in tbls]):
            yield from search.hits(tbls[k], snap, zip(chunk.hashes, search.reader.read_chunk(chunk), strict=True))
        yield from search.flush()
        return
    for base_id, table_id in scope:
        tseq = search.seqs_of(base_id, table_id)
        tbls = search.with_field([search.schema_table(snaps[q], base_id, table_id) for q in tseq])
        searched += bool(tbls)
        for i, (q, tbl) in enumerate(zip(tseq, tbls, strict=False)):
            snap = snaps[q]
            if i == 0:
                for chunk in store.record_chunks(snap, base_id, table_id):
                    yield from search.hits(tbl, snap, zip(chunk.hashes, search.reader.read_chunk(chunk), strict=True))
            else:
                for raws in _new_versions(store, search.reader, base_id, table_id, tseq[i - 1], q):
                    yield from search.hits(tbl, snap, raws)
    yield from search.flush()
    if field is not None and not searched:
        raise UsageError(f"no field {field!r} in the tables searched")


def _new_versions(store: Store, reader: BlobReader, base_id: str, table_id: str, prev: int,
                  seq: int) -> Iterator[list[tuple[bytes, bytes]]]:
    """The (hash, raw) of the table's versions valid at ``seq`` that began after ``prev`` (the
    snapshot before it holding the table), a batch at a time: a snapshot's changes."""
    hashes = catalog_find.versions_begun(store.catalog, base_id, table_id, prev, seq)
    for i in range(0, len(hashes), CHUNK):
        with store.catalog.read() as con:
            rows = locate_blobs(con, hashes.slice(i, CHUNK))
        packed = [r for r in rows if not r[6]]
        out = []
        if packed:
            # (hash, pack, off, clen, rlen, dict_hash) and the place inside the frame (format 2)
            chunk = LocatedChunk(0, *map(list, zip(*[(*r[:6], r[7] or 0) for r in packed], strict=True)))
            out = list(zip(chunk.hashes, reader.read_chunk(chunk), strict=True))
        out += [(r[0], store.read_blob(r[0])) for r in rows if r[6]]
        yield out


# ---- one stored record version ------------------------------------------------------------------


@dataclass
class StoredRecord:
    """One record as a snapshot holds it, its fields under that snapshot's names."""

    snapshot: SnapshotInfo
    record_id: str
    base_id: str
    base: str
    table_id: str
    table: str
    created_time: str | None
    fields: dict[str, Any]  # field name -> value, in the schema's field order
    field_ids: dict[str, str]  # field name -> field id
    hash: str
    snapshots: list[SnapshotInfo]  # every snapshot holding this same version

    def to_dict(self) -> dict:
        return {
            "snapshot": snap_ref(self.snapshot), "record_id": self.record_id, "base_id": self.base_id,
            "base": self.base, "table_id": self.table_id, "table": self.table, "createdTime": self.created_time,
            "fields": self.fields, "field_ids": self.field_ids, "hash": self.hash,
            "snapshots": [snap_ref(s) for s in self.snapshots],
        }


def stored_record(store: Store, snapshot: str | SnapshotInfo, record_id: str) -> StoredRecord:
    """The version of ``record_id`` that ``snapshot`` holds. Raises StoreError when it holds none
    (naming the snapshots that do)."""
    snap = store.resolve(snapshot)
    record_id = record_id.strip()
    rows = catalog_find.record_placements(store.catalog, record_id)
    snaps = {s.seq: s for s in store.list_snapshots()}
    here = [r for r in rows if r[5] == snap.seq]
    if not here:
        held = [snaps[r[5]].id for r in rows if r[5] in snaps]
        hint = (f"; it is in snapshot(s) {', '.join(held[:6])}{' …' if len(held) > 6 else ''}" if held
                else "; no snapshot of this store holds it")
        raise StoreError(f"record {record_id} is not in snapshot {snap.id}{hint}")
    base_id, table_id, h, begin, end, _seq = here[0]
    span = [snaps[r[5]] for r in rows if r[:5] == (base_id, table_id, h, begin, end) and r[5] in snaps]
    rec = loads(store.read_blob(h))
    schema = store.schema(snap, base_id)
    t = next((t for t in schema.get("tables", []) if t.get("id") == table_id), {})
    cells = rec.get("fields") or {}
    names = {f["id"]: f.get("name", f["id"]) for f in t.get("fields", []) if "id" in f}
    order = [fid for fid in names if fid in cells] + [fid for fid in cells if fid not in names]
    info = snap.table(base_id, table_id)
    base = next(b.name for b in snap.bases if b.base_id == base_id)
    return StoredRecord(snap, record_id, base_id, base, table_id, info.name if info else table_id,
                        rec.get("createdTime"), {names.get(f, f): cells[f] for f in order},
                        {names.get(f, f): f for f in order}, h.hex(), span)


__all__ = ["Hit", "StoredRecord", "contains", "find", "snap_ref", "stored_record"]
