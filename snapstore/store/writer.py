"""Writing one snapshot: records in, blobs packed, manifests and the commit object out last.

Write order is the crash-safety argument: packs and standalone objects first, then per-table
manifests, then the commit object (the only thing that makes a snapshot exist), then the catalog.
A crash before the commit object leaves unreferenced packs that the next run adopts; a crash
after it leaves a commit the catalog has not seen, which the next writer replays.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, BinaryIO

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from snapstore import __version__
from snapstore.canonical import CANON_VERSION, dumps, loads, record_bytes, strip_volatile
from snapstore.errors import StoreError
from snapstore.store import columns, objects
from snapstore.store.catalog import IngestBatch, TableChange, TableState
from snapstore.store.packs import (
    KIND_ATTACHMENT,
    KIND_COMMENTS,
    KIND_RECORD,
    KIND_SCHEMA,
    PackWriter,
    build_frames,
)

if TYPE_CHECKING:
    from snapstore.store.info import SnapshotInfo
    from snapstore.store.write_context import WriteContext

log = logging.getLogger("snapstore.store")

#: Records sampled to train a table's dictionary on its first snapshot.
DICT_SAMPLES = 1000
#: Below this many records a table is compressed without a dictionary.
DICT_MIN_SAMPLES = 100
DICT_SIZE = 64 * 1024
#: Attachments up to this size go into attachment packs; larger ones are objects of their own.
SMALL_ATTACHMENT = 512 * 1024
#: A table's manifest chain is checkpointed (a full manifest) after this many deltas...
MAX_CHAIN_DEPTH = 64
#: ...or once its deltas' entries would exceed the table's records, or this floor for a small table
#: (docs/FORMAT.md, "table manifest"): a 50-record table is rebased after 64 deltas or 1,000 entries.
CHAIN_ENTRIES_FLOOR = 1000
ZSTD_LEVEL = 3
#: Record ids and hashes move from Python lists to Arrow every this many records.
SPILL = 8192
#: Listed records are checked against the known hashes this many at a time...
COMPRESS_BATCH = 2048
#: ...and the new ones among them compressed once this many raw bytes are waiting (or the table
#: ends), so that a day's few changed records, spread over a long listing, fill whole frames
#: instead of one small frame per check: measured on 1% daily churn of 100k records, 20 records
#: a frame compress to 75 B each, full 128 KiB frames to 68 B.
COMPRESS_BYTES = 1 << 20
_MULTI = hasattr(zstandard.ZstdCompressor, "multi_compress_to_buffer")


@dataclass(frozen=True)
class TableCounts:
    records: int
    new: int
    changed: int
    deleted: int
    unchanged: int
    bytes_added: int


def compress_many(cctx: zstandard.ZstdCompressor, raws: list[bytes], parallel_from: int) -> list[bytes]:
    """zstd frames of ``raws``, on all cores where zstandard can and the batch is worth it."""
    if _MULTI and len(raws) >= parallel_from:
        return [bytes(f) for f in cctx.multi_compress_to_buffer(raws, threads=-1)]
    return [cctx.compress(d) for d in raws]


#: A full listing against the table's open versions: what it changed or added, and every open
#: record it did not list (ended).
_LISTED_DELTA = """SELECT record_id, r.hash AS new_hash, o.hash AS old_hash
                   FROM r FULL OUTER JOIN o USING (record_id)
                   WHERE r.hash IS DISTINCT FROM o.hash ORDER BY record_id"""
#: Re-read records against the open versions: what they changed or added, and the destroyed
#: records (``d``) ended; every other open record carries over.
_CHANGES_DELTA = """SELECT record_id, r.hash AS new_hash, o.hash AS old_hash
                    FROM r LEFT JOIN o USING (record_id) WHERE r.hash IS DISTINCT FROM o.hash
                    UNION ALL
                    SELECT o.record_id, NULL::BLOB AS new_hash, o.hash AS old_hash
                    FROM o JOIN d USING (record_id) ANTI JOIN r USING (record_id)
                    ORDER BY record_id"""


def record_delta(run: pa.Table, old: pa.Table, table_id: str, *, gone: pa.Array | None = None) -> pa.Table:
    """(record_id, new_hash, old_hash) of every record whose hash differs, sorted by id, on Arrow
    tables in memory (not the catalog): ``run``'s (record_id, hash) against ``old``, the table's
    open versions. A full listing (``gone`` None) ends each open record it did not list; a change
    feed's re-read ends only the ids in ``gone``. A record listed twice is an error."""
    con = duckdb.connect()
    try:
        con.register("r", run)
        con.register("o", old)
        if gone is not None:
            con.register("d", pa.table({"record_id": gone}))
        dup = con.execute("SELECT record_id FROM r GROUP BY record_id HAVING count(*) > 1 LIMIT 1").fetchone()
        if dup:
            how = "listed" if gone is None else "re-read"
            raise StoreError(f"record {dup[0]} was {how} twice in table {table_id}")
        return con.execute(_LISTED_DELTA if gone is None else _CHANGES_DELTA).to_arrow_table()
    finally:
        con.close()


class TableWriter:
    """Receives one table's records in listing order; thread-confined (one per table)."""

    def __init__(self, snap: SnapshotWriter, base_id: str, table_id: str, name: str, state: TableState) -> None:
        self.snap = snap
        self.base_id = base_id
        self.table_id = table_id
        self.name = name
        self.state = state
        self._known = state.known_hashes
        # (record id, hash) in listing order: a short Python list, moved to Arrow chunks every
        # SPILL records so that millions of records hold no Python object each (fragmentation)
        self._ids: list[str] = []
        self._hashes: list[bytes] = []
        self._id_chunks: list[pa.Array] = []
        self._hash_chunks: list[pa.Array] = []
        self._dict_hash = state.dict_hash
        self._compressor: zstandard.ZstdCompressor | None = None
        self._sampling: list[tuple[bytes, bytes]] | None = None
        self._pending: list[tuple[bytes, bytes]] = []
        self._ready: list[tuple[bytes, bytes]] = []  # new blobs waiting for compression
        self._ready_bytes = 0
        self._new = bytearray()  # hashes this writer packed, 32 bytes each (known to it after a restart)
        self._futures: list = []
        self._frame_bytes = 0
        #: format 3: (frame id, hashes of its records) of every frame this writer packed
        self._frames_written: list[tuple[bytes, list[bytes]]] = []
        self._blob_id = snap.ctx.blob_id
        self._level = snap.ctx.record_level
        #: a table's last few new records (a day's changes, typically) at a higher level: they are
        #: what a store grows by every day, and cost little time (docs/FORMAT.md: zstd_level_small)
        self._small_level = snap.ctx.record_level_small
        self._small_cctx: zstandard.ZstdCompressor | None = None
        self.bytes_added = 0
        self.finished: TableCounts | None = None
        if self._dict_hash is not None:
            d = zstandard.ZstdCompressionDict(snap.ctx.dict_bytes(self._dict_hash))
            self._compressor = zstandard.ZstdCompressor(level=self._level, dict_data=d)
        elif not snap.ctx.record_columns:
            self._sampling = []
        # format 4: a table's dictionary is trained on its first large batch of new records
        # (_flush); small batches are column frames, which use none, so a table that never has a
        # large one (a small table, or one whose first snapshot was under 1 MiB) stores none

    def add(self, record: dict) -> None:
        data = record_bytes(record)
        h = self._blob_id(data)
        self._ids.append(record["id"])
        self._hashes.append(h)
        if len(self._ids) >= SPILL:
            self._spill()
        if self._sampling is not None:
            self._sampling.append((h, data))
            if len(self._sampling) >= DICT_SAMPLES:
                self._end_sampling()
            return
        self._put(h, data)

    def add_many(self, records: Iterable[dict]) -> None:
        for r in records:
            self.add(r)

    def reset(self) -> None:
        """The listing restarted: drop the ids seen so far; blobs already packed stay (and dedup)."""
        if self._sampling is not None:
            self._end_sampling()
        self._flush(force=True)
        self._known = self._known.union_buffer(bytes(self._new))
        self._new = bytearray()
        self._ids, self._hashes, self._id_chunks, self._hash_chunks = [], [], [], []

    def _spill(self) -> None:
        if self._ids:
            self._id_chunks.append(pa.array(self._ids, pa.string()))
            self._hash_chunks.append(pa.array(self._hashes, pa.binary()))
            self._ids, self._hashes = [], []

    def _end_sampling(self) -> None:
        samples = self._sampling or []
        self._sampling = None
        self._train(samples)
        for h, data in samples:
            self._put(h, data)

    def _train(self, samples: list[tuple[bytes, bytes]]) -> None:
        """The table's dictionary from its first records (the first DICT_SAMPLES of them), and
        the compressor of its frames."""
        samples = samples[:DICT_SAMPLES]
        dict_data = None
        if len(samples) >= DICT_MIN_SAMPLES:
            try:
                # trained for level 3 whatever the frames' level: as good for level 9 frames
                # (measured: 1,627,489 vs 1,628,291 bytes for 30k records) in half the time
                dict_data = zstandard.train_dictionary(DICT_SIZE, [d for _, d in samples], level=ZSTD_LEVEL)
            except zstandard.ZstdError:
                dict_data = None
        if dict_data is not None:
            raw = dict_data.as_bytes()
            self._dict_hash = self.snap._put_dict(raw)
            self._compressor = zstandard.ZstdCompressor(level=self._level, dict_data=dict_data)
        else:
            self._compressor = zstandard.ZstdCompressor(level=self._level)

    def _small_compressor(self) -> zstandard.ZstdCompressor:
        if self._small_cctx is None:
            d = zstandard.ZstdCompressionDict(self.snap.ctx.dict_bytes(self._dict_hash)) if self._dict_hash else None
            self._small_cctx = zstandard.ZstdCompressor(level=self._small_level, dict_data=d)
        return self._small_cctx

    def _put(self, h: bytes, data: bytes) -> None:
        self._pending.append((h, data))
        if len(self._pending) >= COMPRESS_BATCH:
            self._flush()

    def _flush(self, force: bool = False) -> None:
        """Keep the new blobs of the listed batch; once ``COMPRESS_BYTES`` of them wait (or
        ``force``: the table ends), hand them to the snapshot's compression thread, which
        compresses them (on all cores where zstandard can) and packs them while this thread
        canonicalizes more."""
        batch, self._pending = self._pending, []
        if batch:
            # blobs the store (or this run, before a restart) already holds are not packed again
            known = self._known.contains_many([h for h, _d in batch])
            if known.any():
                batch = [b for b, k in zip(batch, known.tolist(), strict=True) if not k]
            self._new += b"".join([h for h, _d in batch])
            self._ready += batch
            self._ready_bytes += sum(map(len, map(itemgetter(1), batch)))
        if not self._ready or (self._ready_bytes < COMPRESS_BYTES and not force):
            return
        if self._compressor is None and self._ready_bytes >= COMPRESS_BYTES:
            self._train(self._ready)  # format 4: the first large batch (see __init__)
        batch, self._ready, self._ready_bytes = self._ready, [], 0
        self._futures.append(self.snap._compress_pool.submit(self._compress_and_pack, batch))
        if len(self._futures) > 4:  # bound the memory held by batches waiting for compression
            self._futures.pop(0).result()

    def _compress_and_pack(self, batch: list[tuple[bytes, bytes]]) -> None:
        if self.snap.framed:  # format 2: many records to a frame
            cctx = self._compressor
            dict_hash = self._dict_hash
            small = sum(map(len, map(itemgetter(1), batch))) < COMPRESS_BYTES
            if small and self.snap.ctx.record_columns:  # format 4: one column frame (store/columns.py)
                dict_hash = None
                frames = columns.frames(batch, self._small_level, self.snap.ctx.record_end)
            else:
                if small and self._small_level != self._level:
                    cctx = self._small_compressor()
                frames = build_frames(batch, lambda raws: compress_many(cctx, raws, 2), end=self.snap.ctx.record_end)
            self._frame_bytes += sum(len(f) for f, _b in frames)
            fids = self.snap._add_frames(frames, KIND_RECORD, dict_hash)
            self._frames_written.extend((fid, [h for h, _i, _r in blobs])
                                        for fid, (_f, blobs) in zip(fids, frames, strict=True) if fid is not None)
            return
        frames = compress_many(self._compressor, [d for _h, d in batch], 64)
        self._frame_bytes += sum(map(len, frames))
        self.snap._add_blobs([(h, f, len(d)) for (h, d), f in zip(batch, frames, strict=True)], KIND_RECORD,
                             self._dict_hash)

    def _drain(self) -> None:
        self._flush(force=True)
        futures, self._futures = self._futures, []
        for f in futures:
            f.result()
        self.bytes_added += self._frame_bytes
        self._frame_bytes = 0

    def finish(self) -> TableCounts:
        if self.finished is not None:
            return self.finished
        run = self._collected()
        self._n_records = run.num_rows
        old = self.state.open_versions
        if old.num_rows == 0:  # a table's first snapshot: every record is new (no join needed)
            return self._finish_counts(run.sort_by("record_id"))
        return self._finish_counts(record_delta(run, old, self.table_id))

    def _finish_counts(self, delta: pa.Table) -> TableCounts:
        """``delta``: (record_id, new_hash[, old_hash]) sorted by id; no old_hash = all new.
        Kept as Arrow columns until the catalog ingests them (compact for millions of records)."""
        ids = delta.column("record_id")
        n_records = self._n_records
        self._new = bytearray()
        if "old_hash" in delta.column_names:
            new_h = delta.column("new_hash")
            n_new = int(delta.column("old_hash").null_count)
            n_deleted = int(new_h.null_count)
        else:
            if pc.count_distinct(ids).as_py() != len(ids):
                dup = pc.value_counts(ids).filter(pc.greater(pc.struct_field(pc.value_counts(ids), "counts"), 1))[0]
                raise StoreError(f"record {dup['values']} was listed twice in table {self.table_id}")
            new_h = delta.column("hash")
            n_new, n_deleted = len(ids), 0
        n_changed = len(ids) - n_new - n_deleted
        manifest, depth, chain, extra = self._write_manifest(ids, new_h, n_records, all_new="old_hash" not in delta.column_names)
        self.bytes_added += extra
        change = TableChange(
            base_id=self.base_id, table_id=self.table_id, name=self.name, manifest=manifest, full=False,
            ids=ids, hashes=new_h, n_records=n_records, n_new=n_new, n_changed=n_changed, n_deleted=n_deleted,
            dict_hash=self._dict_hash, depth=depth, chain_entries=chain,
        )
        self.snap._table_done(self, change)
        self.finished = TableCounts(n_records, n_new, n_changed, n_deleted, n_records - n_new - n_changed, self.bytes_added)
        return self.finished

    # -- carry-over with changes (the change feed) -----------------------------------------------

    def apply_changes(self, records: Iterable[dict], deleted: Iterable[str] = ()) -> TableCounts:
        """The parent's records carried over, with ``records`` (re-read) in place of theirs and
        ``deleted`` ended: a delta manifest naming only what differs, no work per unchanged record.

        Only for a table whose records the parent holds (``state.manifest``); ``add`` and ``finish``
        stay the path of a full listing."""
        if self.finished is not None:
            return self.finished
        if self.state.manifest is None:
            raise StoreError(f"table {self.table_id} has no parent snapshot to carry records over from")
        self.add_many(records)
        run = self._collected()
        gone = pa.array(sorted(set(deleted)), pa.string())
        delta = record_delta(run, self.state.open_versions, self.table_id, gone=gone)
        added = int(delta.column("old_hash").null_count)
        ended = int(delta.column("new_hash").null_count)
        self._n_records = self.state.open_versions.num_rows + added - ended
        return self._finish_counts(delta)

    def _collected(self) -> pa.Table:
        """Every blob handed over and packed; the (record_id, hash) pairs added, as one table."""
        if self._sampling is not None:
            self._end_sampling()
        self._drain()
        self._spill()
        run = pa.table({"record_id": pa.chunked_array(self._id_chunks, pa.string()),
                        "hash": pa.chunked_array(self._hash_chunks, pa.binary())})
        self._id_chunks, self._hash_chunks = [], []
        return run

    def delta_ids(self) -> set[str]:
        """Ids of the records this table's snapshot added, changed or ended (after finish)."""
        change = self.snap._tables.get((self.base_id, self.table_id))
        if change is None:
            return set()
        ids = change.ids
        return set(ids.to_pylist() if hasattr(ids, "to_pylist") else ids)

    def _by_frames(self, ids, hashes, older: Iterable[tuple[bytes, list[bytes]]] = ()
                   ) -> tuple[list[bytes], pa.ChunkedArray, pa.ChunkedArray]:
        """Split a manifest's entries into the frames this writer packed (and ``older`` ones: a
        full manifest's) whose every record is among them (named by frame id) and the entries left
        (dedup hits, deletions, and records of a frame that holds one the table no longer has,
        e.g. after a listing restart)."""
        candidates = list(older) + self._frames_written
        if not candidates:
            return [], ids, hashes
        want = set(pc.drop_null(hashes).to_pylist())
        fids: list[bytes] = []
        covered: list[bytes] = []
        for fid, hs in candidates:
            if all(h in want for h in hs):
                fids.append(fid)
                covered.extend(hs)
        if len(covered) == len(want):  # every record in a named frame (a first snapshot): deletions left
            keep = pc.is_null(hashes)
            ids, hashes = pc.filter(ids, keep), pc.filter(hashes, keep)
        elif covered:
            inside = pc.fill_null(pc.is_in(hashes, value_set=pa.array(covered, pa.binary())), False)
            keep = pc.invert(inside)
            ids, hashes = pc.filter(ids, keep), pc.filter(hashes, keep)
        return fids, ids, hashes

    def _write_manifest(self, ids: pa.ChunkedArray, hashes: pa.ChunkedArray, n_records: int, *,
                        all_new: bool) -> tuple[str, int, int, int]:
        parent = self.state.manifest
        if parent is not None and len(ids) == 0:
            return parent, self.state.depth, self.state.chain_entries, 0
        full = (
            parent is None
            or self.state.depth + 1 >= MAX_CHAIN_DEPTH
            or self.state.chain_entries + len(ids) > max(n_records, CHAIN_ENTRIES_FLOOR)
        )
        if full and not all_new:
            # the table's whole state: its open versions with this delta applied
            old = self.state.open_versions
            keep = old.filter(pc.invert(pc.is_in(old.column("record_id"), value_set=ids.combine_chunks())))
            upd = pa.table({"record_id": ids, "hash": hashes}).filter(pc.is_valid(hashes))
            state = pa.concat_tables([keep.select(["record_id", "hash"]), upd]).sort_by("record_id")
            ids, hashes = state.column("record_id"), state.column("hash")
        depth, chain = (0, 0) if full else (self.state.depth + 1, self.state.chain_entries + len(ids))
        doc = {"type": objects.MANIFEST, "v": 2, "base_id": self.base_id, "table_id": self.table_id,
               "full": full, "parent": None if full else parent}
        if self.snap.ctx.format_version >= 3:
            # the records this snapshot packed are named by their frames; only the rest one by one
            # a full manifest also names the frames of earlier snapshots whose records all still are
            older = self.snap.ctx.catalog.whole_frames(hashes) if full and not all_new else []
            fids, ids, hashes = self._by_frames(ids, hashes, older)
            doc.update(v=3, frames=fids)
        doc["arrow"] = objects.arrow_bytes(pa.table({"record_id": ids, "hash": hashes}))
        name, data = objects.encode(doc, self.snap.ctx.box)
        del doc
        self.snap.ctx.backend.put(objects.object_key(name), data)
        with self.snap._mutex:
            self.snap._objects_written.append(name)
            self.snap._extra_bytes += len(data)
        return name, depth, chain, len(data)


class SnapshotWriter:
    """One snapshot being written. Holds the store's writer lock from begin to commit/abandon."""

    def __init__(self, ctx: WriteContext, lock, *, note: str | None, tags: Iterable[str], command: str) -> None:
        #: all the writer knows of its store (Store.begin_snapshot builds it)
        self.ctx = ctx
        self._lock = lock
        self.note = note
        self.tags = list(tags)
        self.command = command
        self.started = datetime.now(UTC)
        #: the commit's time: None is now; a back-filled snapshot keeps its own (import: the ISO text
        #: of the export; migrate: the source snapshot's datetime)
        self.time: datetime | str | None = None
        self.parent: str | None = None  # and its parent ("": none), else the store's latest
        self._t0 = time.monotonic()
        self._mutex = threading.Lock()
        #: format 2: a table's new records are packed many to a zstd frame
        self.framed = ctx.framed
        self._packs = PackWriter(ctx.backend.put, ctx.pack_size, columnar=True, version=ctx.pack_version,
                                 box=ctx.box)
        self._compress_pool = ThreadPoolExecutor(1, thread_name_prefix="compress")
        self._att_packs = PackWriter(ctx.backend.put, ctx.pack_size, columnar=True, version=ctx.pack_version,
                                     box=ctx.box)
        self._bases: dict[str, dict] = {}
        self._tables: dict[tuple[str, str], TableChange] = {}
        self._writers: dict[tuple[str, str], TableWriter] = {}
        self._missing: list[dict] = []
        ctx.catalog.pin()  # many small lookups follow (tables, blobs, attachments); released at the end
        self._known_atts = ctx.catalog.known_attachments()
        self._new_atts: list[tuple[str, bytes, int, str | None, str | None]] = []
        self._standalone: list[tuple[bytes, int]] = []
        self._objects_written: list[str] = []
        self._dicts_written: list[str] = []
        self._extra_bytes = 0
        self._run_blobs: set[bytes] = set()
        self._adopted = ctx.orphan_packs()
        for _name, _size, entries in self._adopted:
            self._run_blobs.update(e.hash for e in entries)
        self.stats: dict = {}
        self.feed: dict = {}  # per base: the change feed's state after this snapshot (snapstore.feed.state)
        self.closed = False
        self.info: SnapshotInfo | None = None

    # -- context manager: abandon on error, never commit implicitly
    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.closed:
            self.abandon()

    # -- schema and tables
    def add_base(self, base_id: str, base_name: str, schema_json: dict, permission_level: str | None = None) -> None:
        data = dumps(schema_json)
        h = self.ctx.blob_id(data)
        self._add_small_blob(h, data, KIND_SCHEMA)
        self._bases[base_id] = {"base_id": base_id, "name": base_name, "permission_level": permission_level,
                                "schema": h.hex(), "_schema": schema_json}

    def table(self, base_id: str, table_id: str) -> TableWriter:
        base = self._bases.get(base_id)
        if base is None:
            raise StoreError(f"add_base({base_id!r}) must come before its tables")
        tables = {t["id"]: t for t in base["_schema"].get("tables", [])}
        if table_id not in tables:
            raise StoreError(f"table {table_id} is not in the schema of base {base_id}")
        state = self.ctx.catalog.table_state(base_id, table_id)
        tw = TableWriter(self, base_id, table_id, tables[table_id]["name"], state)
        with self._mutex:
            if (base_id, table_id) in self._writers:
                raise StoreError(f"table {table_id} was already added to this snapshot")
            self._writers[(base_id, table_id)] = tw
        if self._run_blobs:  # adopted leftover packs (and this run's small blobs)
            tw._known = tw._known.union(list(self._run_blobs))
        return tw

    def _table_done(self, tw: TableWriter, change: TableChange) -> None:
        with self._mutex:
            self._tables[(tw.base_id, tw.table_id)] = change

    def mark_missing(self, base_id: str, table_id: str | None, reason: str, *, drop_table: bool = True) -> None:
        """Something could not be read; the snapshot commits as partial. ``drop_table=False``: the
        table's records are complete and kept (an attachment or its comments failed)."""
        with self._mutex:
            entry = {"base_id": base_id, "table_id": table_id, "reason": reason}
            if not drop_table:
                entry["records_kept"] = True
            self._missing.append(entry)
            if table_id is not None and drop_table:
                self._writers.pop((base_id, table_id), None)
                self._tables.pop((base_id, table_id), None)

    # -- comments
    def previous_comment_counts(self, base_id: str, table_id: str) -> dict[str, int]:
        prev = self.previous_comments(base_id, table_id)
        return {rid: len(cs) for rid, cs in prev.items()}

    def previous_comments(self, base_id: str, table_id: str) -> dict[str, list]:
        state = self.ctx.catalog.table_state(base_id, table_id)
        if state.comments_hash is None:
            return {}
        return loads(self.ctx.read_blob(state.comments_hash))

    def add_comments(self, base_id: str, table_id: str, comments: dict[str, list[dict]]) -> None:
        with self._mutex:
            change = self._tables.get((base_id, table_id))
        if change is None:
            raise StoreError(f"finish table {table_id} before adding its comments")
        data = dumps(strip_volatile({rid: cs for rid, cs in comments.items() if cs}))
        h = self.ctx.blob_id(data)
        self._add_small_blob(h, data, KIND_COMMENTS)
        change.comments_hash = h

    # -- attachments
    def known_attachment(self, att_id: str) -> bool:
        with self._mutex:
            return att_id in self._known_atts

    def add_attachment(self, att_id: str, fileobj: BinaryIO, *, size: int | None = None,
                       filename: str | None = None, mime: str | None = None) -> str:
        """Stream a file into the store; returns its content hash (hex)."""
        tmpdir = self.ctx.tmp_dir
        tmpdir.mkdir(exist_ok=True)
        n = 0
        head = bytearray()
        tmp_path = None
        f = None
        cw = None  # a large file goes to a temp file as stored (sealed in chunks if encrypted)
        try:
            while chunk := fileobj.read(1 << 20):
                n += len(chunk)
                if f is None and len(head) + len(chunk) <= SMALL_ATTACHMENT:
                    head += chunk
                    continue
                if f is None:
                    tmp_path = tmpdir / f"att-{os.getpid()}-{secrets.token_hex(6)}"
                    f = open(tmp_path, "wb")
                    cw = self.ctx.box.chunk_writer(f)
                    cw.write(bytes(head))
                    head = bytearray()
                cw.write(chunk)
            if f is not None:
                h = cw.close()[0]  # the object's name: SHA-256 of its stored bytes
                f.flush()
                os.fsync(f.fileno())
                f.close()
                f = None
            if size is not None and n != size:
                raise StoreError(f"attachment {att_id}: received {n} bytes, expected {size}")
            if tmp_path is None:
                h = self.ctx.blob_id(bytes(head))
                self._add_small_blob(h, bytes(head), KIND_ATTACHMENT)
            else:
                if not self.ctx.has_blob(h):
                    self.ctx.backend.put_file(objects.object_key(h.hex()), tmp_path)
                    with self._mutex:
                        self._standalone.append((h, n))
                        self._extra_bytes += n
            with self._mutex:
                if att_id not in self._known_atts:
                    self._known_atts.add(att_id)
                    self._new_atts.append((att_id, h, n, mime, filename))
            return h.hex()
        finally:
            if f is not None:
                f.close()
            if tmp_path is not None:
                tmp_path.unlink(missing_ok=True)

    # -- blobs
    def _add_blob(self, h: bytes, frame: bytes, rlen: int, kind: str, dict_hash: bytes | None) -> None:
        with self._mutex:
            self._run_blobs.add(h)
            (self._att_packs if kind == KIND_ATTACHMENT else self._packs).add(h, frame, rlen, kind, dict_hash)

    def _add_blobs(self, blobs: list[tuple[bytes, bytes, int]], kind: str, dict_hash: bytes | None) -> None:
        with self._mutex:
            if kind != KIND_RECORD:  # a record's bytes hold its id: no other table can share them
                self._run_blobs.update(h for h, _f, _r in blobs)
            (self._att_packs if kind == KIND_ATTACHMENT else self._packs).add_many(blobs, kind, dict_hash)

    def _add_frames(self, frames: list[tuple[bytes, list[tuple[bytes, int, int]]]], kind: str,
                    dict_hash: bytes | None) -> list[bytes | None]:
        with self._mutex:
            return self._packs.add_frames(frames, kind, dict_hash)

    def _add_small_blob(self, h: bytes, data: bytes, kind: str) -> None:
        with self._mutex:
            if h in self._run_blobs:
                return
        if self.ctx.has_blob(h):
            with self._mutex:
                self._run_blobs.add(h)
            return
        frame = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
        self._add_blob(h, frame, len(data), kind, None)

    def _put_dict(self, raw: bytes) -> bytes:
        raw = self.ctx.box.seal(raw)  # named by its stored bytes, like every object
        h = hashlib.sha256(raw).digest()
        self.ctx.backend.put(objects.object_key(h.hex()), raw)
        with self._mutex:
            self._dicts_written.append(h.hex())
            self._extra_bytes += len(raw)
        return h

    # -- the end
    def abandon(self) -> None:
        """Nothing becomes visible. Packs already written stay as orphans the next run adopts."""
        if self.closed:
            return
        self.closed = True
        self._compress_pool.shutdown(wait=True, cancel_futures=True)
        self.ctx.catalog.unpin()
        self._lock.release()

    def commit(self) -> SnapshotInfo:
        if self.closed:
            raise StoreError("this snapshot was already committed or abandoned")
        try:
            with self._mutex:
                unfinished = [k for k, w in self._writers.items() if w.finished is None]
            for k in unfinished:
                self._writers[k].finish()
            self._compress_pool.shutdown(wait=True)  # every batch handed over is packed before sealing
            with self._mutex:
                self._packs.seal()
                self._att_packs.seal()
            sealed = self._packs.sealed + self._att_packs.sealed + self._adopted
            extra = 0
            att_index = None
            if self._new_atts:
                att_index, data = objects.encode({
                    "type": objects.ATTACHMENT_INDEX, "v": 1,
                    "attachments": [[a, h, n, m, fn] for a, h, n, m, fn in self._new_atts],
                }, self.ctx.box)
                self.ctx.backend.put(objects.object_key(att_index), data)
                extra += len(data)
            bytes_added = sum(size for _n, size, _e in self._packs.sealed + self._att_packs.sealed)
            bytes_added += self._extra_bytes + extra
            doc = self._commit_doc(sealed, att_index, bytes_added)
            commit_id, data = objects.encode_commit(doc, self.ctx.box)
            self.ctx.backend.put(objects.snapshot_key(commit_id), data)
            batch = IngestBatch(
                commit_id=commit_id, doc=doc, packs=sealed, standalone=list(self._standalone),
                attachments=list(self._new_atts), tables=[self._tables[k] for k in sorted(self._tables)],
            )
            for base in self._bases.values():
                for t in batch.tables:
                    if t.base_id == base["base_id"]:
                        t.schema_hash = bytes.fromhex(base["schema"])
            self.ctx.catalog.ingest(batch)
            self.info = self.ctx.resolve(commit_id)
            return self.info
        finally:
            self.closed = True
            self._compress_pool.shutdown(wait=True, cancel_futures=True)
            self.ctx.catalog.unpin()
            self._lock.release()

    def _commit_doc(self, sealed: list, att_index: str | None, bytes_added: int) -> dict:
        bases = []
        for base_id, base in self._bases.items():
            tables = []
            for (b, t), ch in sorted(self._tables.items()):
                if b != base_id:
                    continue
                tables.append({
                    "table_id": t, "name": ch.name, "manifest": ch.manifest,
                    "manifest_depth": ch.depth, "chain_entries": ch.chain_entries,
                    "dict": ch.dict_hash.hex() if ch.dict_hash else None,
                    "comments": ch.comments_hash.hex() if ch.comments_hash else None,
                    "records": ch.n_records, "new": ch.n_new, "changed": ch.n_changed, "deleted": ch.n_deleted,
                })
            bases.append({"base_id": base_id, "name": base["name"], "permission_level": base["permission_level"],
                          "schema": base["schema"], "tables": tables})
        missing = list(self._missing)
        parent = (self.parent or None) if self.parent is not None else self.ctx.latest_id()
        return {
            "type": "snapshot", "v": 1, "store_id": self.ctx.store_id,
            "time": self.time if isinstance(self.time, str) else
            (self.time or datetime.now(UTC)).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "started": self.started.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "parent": parent, "status": "partial" if missing else "complete",
            "note": self.note, "tags": self.tags, "command": self.command,
            "tool_version": __version__, "canon": CANON_VERSION,
            "bases": bases, "missing": missing,
            "packs": [n for n, _s, _e in sealed],
            "standalone": [[h.hex(), n] for h, n in self._standalone],
            "dicts": list(self._dicts_written),
            "attachment_index": att_index,
            "bytes_added": bytes_added,
            "stats": {**self.stats, "local_seconds": round(time.monotonic() - self._t0, 3)},
            **({"feed": self.feed} if self.feed else {}),
        }
