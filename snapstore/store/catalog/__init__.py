"""The DuckDB catalog: a rebuildable index of what the object store holds.

Everything here can be recomputed from the objects (``rebuild``), so a lost or corrupt catalog
loses nothing. DuckDB lets one process write and blocks other processes' readers meanwhile, so
connections are short: readers retry on the lock, writers hold it for one transaction.
Record versions are validity intervals ``[begin_seq, end_seq)``: an unchanged snapshot adds a
row per table (``snapshot_table``), not per record.

This package is the only code that knows the catalog's tables and columns: the verbs call named
functions of its submodules (one per verb family: ``catalog.prune``, ``catalog.verify``, ...),
never SQL of their own, so a column can change in one place (issue 17).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)

from snapstore.errors import EXIT_INCOMPLETE, StoreError
from snapstore.store.hashset import HashSet
from snapstore.store.packs import entries_table

CATALOG_VERSION = "3"  # 2: blob.ioff (format 2 frames of many records); 3: the frame table (format 3)
#: DuckDB's own memory (buffer cache and query state) per connection; larger work spills to disk.
#: Without a limit it caches up to 80% of RAM, which is most of a snapshot's peak memory.
MEMORY_LIMIT = "384MB"
#: For the queries that locate a table's records, a pack range at a time (export, restore, verify).
LOCATE_MEMORY_LIMIT = "96MB"
#: Tables up to this many records are located with others in one query; a larger one a range of packs
#: at a time, its first range small, so a reader starts on its first records within milliseconds.
SMALL_TABLE = 32_768

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS snapshot (
    seq INTEGER, id VARCHAR, time TIMESTAMPTZ, parent VARCHAR, status VARCHAR,
    n_records BIGINT, n_new BIGINT, n_changed BIGINT, n_deleted BIGINT, bytes_added BIGINT,
    tags VARCHAR[], doc VARCHAR);
CREATE TABLE IF NOT EXISTS at_table (table_pk INTEGER, base_id VARCHAR, table_id VARCHAR);
CREATE TABLE IF NOT EXISTS snapshot_table (
    seq INTEGER, table_pk INTEGER, base_id VARCHAR, table_id VARCHAR, name VARCHAR,
    manifest VARCHAR, dict_hash BLOB, comments_hash BLOB, schema_hash BLOB,
    n_records BIGINT, n_new BIGINT, n_changed BIGINT, n_deleted BIGINT,
    manifest_depth INTEGER, chain_entries BIGINT);
CREATE TABLE IF NOT EXISTS pack (pack_seq INTEGER, name VARCHAR, size BIGINT, n_blobs INTEGER, first_seq INTEGER);
CREATE TABLE IF NOT EXISTS blob (hash BLOB, pack_seq INTEGER, off BIGINT, clen BIGINT, rlen BIGINT,
    kind VARCHAR, dict_hash BLOB, ioff BIGINT);
CREATE TABLE IF NOT EXISTS record_version (table_pk INTEGER, record_id VARCHAR, hash BLOB,
    begin_seq INTEGER, end_seq INTEGER);
CREATE TABLE IF NOT EXISTS attachment (att_id VARCHAR, content_hash BLOB, size BIGINT, mime VARCHAR,
    filename VARCHAR, first_seq INTEGER);
CREATE TABLE IF NOT EXISTS frame (fid BLOB, pack_seq INTEGER, off BIGINT, clen BIGINT, dict_hash BLOB,
    n_items INTEGER);
"""

#: Each blob's share of the stored bytes: its frame's compressed length prorated by raw length
#: (a format 2 frame holds many records; a standalone object or a format 1 frame is one blob).
BLOB_SHARE = """(SELECT hash, pack_seq, kind, rlen,
    clen * rlen / greatest(sum(rlen) OVER (PARTITION BY pack_seq, off, CASE WHEN pack_seq IS NULL THEN hash END), 1)
    AS share FROM blob)"""

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def is_lock_conflict(e: BaseException) -> bool:
    """DuckDB's "Could not set lock on file ... Conflicting lock is held": another process has the
    catalog. Not any message with "lock" in it: a checksum error names the damaged "block"."""
    text = str(e).lower()
    return "could not set lock" in text or "conflicting lock" in text


def is_corruption(e: BaseException) -> bool:
    """DuckDB found the catalog file damaged (a block's checksum, a truncated or foreign file)."""
    text = str(e).lower()
    return any(k in text for k in ("corrupt", "checksum", "not a valid duckdb", "invalid database",
                                   "failed to read database header", "the file is not a valid"))


class CatalogCorrupt(StoreError):
    """The catalog file is damaged; it is an index, rebuilt from the store's objects."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class CatalogBusy(StoreError):
    pass


class CatalogNotUpdated(StoreError):
    """A snapshot is committed to the store (its commit object is written) but the catalog could
    not record it (a full disk, a failed write): nothing is lost, since the next command adds the
    commit from the store (``Store.sync``). Exit 3: something was written, not everything."""

    exit_code = EXIT_INCOMPLETE

    def __init__(self, commit_id: str, cause: BaseException) -> None:
        text = str(cause)
        reason = "no space left on device" if "no space left" in text.lower() else text.splitlines()[0] if text \
            else type(cause).__name__
        self.reason = reason
        super().__init__(f"snapshot {commit_id[:8]} is committed to the store, but the catalog could not record "
                         f"it ({reason}); the next command adds it from the store")


def insert_frames(con: duckdb.DuckDBPyConnection, view: str) -> None:
    """Add the frames (format 3: blob rows with a frame id) of a registered Arrow view of blob rows
    to the frame table, one row per frame id (its first copy), with the number of records in it."""
    con.execute(f"""INSERT INTO frame
        SELECT fid, pack_seq, off, clen, dict_hash, n_items FROM (
            SELECT fid, pack_seq, off, any_value(clen) AS clen, any_value(dict_hash) AS dict_hash,
                   count(*) AS n_items
            FROM {view} WHERE fid IS NOT NULL GROUP BY fid, pack_seq, off
            QUALIFY row_number() OVER (PARTITION BY fid ORDER BY pack_seq, off) = 1) n
        WHERE NOT EXISTS (SELECT 1 FROM frame f WHERE f.fid = n.fid)""")


def _process_lock(path: Path) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path.resolve()), threading.RLock())


@dataclass
class TableChange:
    """What one snapshot did to one table: either a delta (record id -> new hash, None = deleted)
    against the table's open versions, or the full set of the table's (record id, hash)."""

    base_id: str
    table_id: str
    name: str
    manifest: str
    full: bool
    ids: list[str]
    hashes: list[bytes | None]
    n_records: int
    n_new: int
    n_changed: int
    n_deleted: int
    dict_hash: bytes | None = None
    comments_hash: bytes | None = None
    schema_hash: bytes | None = None
    depth: int = 0  # manifest chain length back to a full checkpoint
    chain_entries: int = 0  # delta entries in that chain


@dataclass
class TableState:
    open_versions: pa.Table
    known_hashes: HashSet
    dict_hash: bytes | None
    manifest: str | None
    depth: int
    chain_entries: int
    comments_hash: bytes | None


@dataclass
class IngestBatch:
    commit_id: str
    doc: dict
    packs: list[tuple[str, int, list]] = field(default_factory=list)  # (name, size, [BlobEntry])
    standalone: list[tuple[bytes, int]] = field(default_factory=list)  # large attachments: (hash, size)
    attachments: list[tuple[str, bytes, int, str | None, str | None]] = field(default_factory=list)
    tables: list[TableChange] = field(default_factory=list)


#: The block size of a new catalog file (DuckDB's default is 256 KiB). Every table and every column
#: segment takes whole blocks, so with 256 KiB blocks the catalog's nine tables cost 2.2 MiB before
#: the first row, and a catalog of 5,000 records was 2.8 MiB of a 3.1 MiB store. 16 KiB is DuckDB's
#: smallest; measured on the store bench (bench/bench_vs_restic.py): see the commit that set it.
BLOCK_SIZE = 16384

#: The share of free blocks past which :meth:`Catalog.compact` rewrites the file.
COMPACT_FREE_SHARE = 0.25


class Catalog:
    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._lock = _process_lock(self.path)
        self._pinned: duckdb.DuckDBPyConnection | None = None

    def pin(self) -> None:
        """Keep one read-only connection open for the reads that follow (a connection costs
        ~20 ms). Only a writer holding the store lock pins: an open read-only connection blocks
        other processes' writers, never their readers. ``write`` unpins."""
        with self._lock:
            if self._pinned is None and self.exists():
                self._pinned = self._open(read_only=True)

    def unpin(self) -> None:
        with self._lock:
            if self._pinned is not None:
                self._pinned.close()
                self._pinned = None

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while True:
            try:
                return duckdb.connect(
                    str(self.path),
                    read_only=read_only,
                    config={"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                            "memory_limit": MEMORY_LIMIT, "default_block_size": str(BLOCK_SIZE)},
                )
            except duckdb.IOException as e:
                if not is_lock_conflict(e):
                    raise
                if time.monotonic() > deadline:
                    raise CatalogBusy(f"the catalog {self.path} is held by another process: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    @contextlib.contextmanager
    def _connect(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection; a damaged file (a checksum DuckDB finds only when it reads the block, which
        may be long after the open) becomes :class:`CatalogCorrupt`, which the CLI repairs."""
        try:
            with self._connect_raw(read_only) as con:
                yield con
        except duckdb.Error as e:
            if is_corruption(e):
                raise CatalogCorrupt(f"the catalog {self.path} is damaged: {str(e).splitlines()[0]}",
                                     path=self.path) from e
            raise

    def quarantine(self) -> Path:
        """Move a damaged catalog file (and its WAL) aside, so the next open rebuilds it from the
        objects; the damaged copy is kept for a post-mortem, never read again."""
        self.unpin()
        bad = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d%H%M%S')}")
        self.path.rename(bad)
        wal = self.path.with_name(self.path.name + ".wal")
        if wal.exists():
            wal.rename(bad.with_name(bad.name + ".wal"))
        return bad

    @contextlib.contextmanager
    def _connect_raw(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            if read_only and self._pinned is not None:
                cur = self._pinned.cursor()
                try:
                    yield cur
                finally:
                    cur.close()
                return
            if not read_only:
                self.unpin()
            con = self._open(read_only)
            try:
                yield con
            finally:
                con.close()

    def read(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self._connect(read_only=True)

    def write(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self._connect(read_only=False)

    def exists(self) -> bool:
        return self.path.exists()

    def compact(self, *, min_free: float = COMPACT_FREE_SHARE) -> bool:
        """Copy the catalog into a fresh file when at least ``min_free`` of its blocks are free.

        DuckDB reuses a file's free blocks but never gives them back, so after a prune drops many
        rows the file keeps its size (measured: 49 of 109 blocks free after 30 days, the file twice
        what the same rows take in a fresh one). The caller holds the store's exclusive lock; a
        crash leaves the old file (the new one is renamed over it only once it is whole), and the
        catalog is rebuildable anyway. Returns whether it compacted. An old catalog of 256 KiB
        blocks comes out with :data:`BLOCK_SIZE` blocks."""
        if not self.exists():
            return False
        with self._lock:
            self.unpin()
            con = self._open(read_only=False)
            try:
                con.execute("CHECKPOINT")
                _name, _size, block, total, used, free, *_ = con.execute("PRAGMA database_size").fetchone()
                if total == 0 or (free / total < min_free and block == BLOCK_SIZE):
                    return False
                tmp = self.path.with_name(self.path.name + ".compact")
                for p in (tmp, tmp.with_name(tmp.name + ".wal")):
                    p.unlink(missing_ok=True)
                db = con.execute("SELECT current_database()").fetchone()[0]
                target = str(tmp).replace("'", "''")
                con.execute(f"ATTACH '{target}' AS compact_target (BLOCK_SIZE {BLOCK_SIZE})")
                con.execute(f'COPY FROM DATABASE "{db}" TO compact_target')
                con.execute("DETACH compact_target")
            finally:
                con.close()
            if self.path.with_name(self.path.name + ".wal").exists():  # not checkpointed: keep the old file
                tmp.unlink(missing_ok=True)
                return False
            os.chmod(tmp, 0o600)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            return True

    def create(self, meta: dict[str, str]) -> None:
        """A new catalog file, readable by its owner only: it indexes the store's record hashes,
        table and base ids and names, attachment names and every commit object's text."""
        with self.write() as con:
            con.execute(SCHEMA)
            con.execute("DELETE FROM meta")
            rows = {"catalog_version": CATALOG_VERSION, "duckdb_version": duckdb.__version__, **meta}
            con.executemany("INSERT INTO meta VALUES (?, ?)", list(rows.items()))
        self.path.chmod(0o600)

    def check(self) -> None:
        """Raise if the catalog file cannot be read as ours (corrupt, foreign, other version)."""
        with self.read() as con:
            rows = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if rows.get("catalog_version") != CATALOG_VERSION:
            raise duckdb.Error(f"catalog version {rows.get('catalog_version')!r} is not {CATALOG_VERSION}")

    # ---- ingest --------------------------------------------------------------------------

    def ingest(self, batch: IngestBatch) -> int:
        """Add one committed snapshot in one transaction; returns its seq."""
        doc = batch.doc
        try:
            with self.write() as con:
                con.execute("BEGIN TRANSACTION")
                try:
                    seq = self._ingest(con, batch, doc)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except (duckdb.Error, OSError) as e:
            if is_lock_conflict(e):
                raise
            raise CatalogNotUpdated(batch.commit_id, e) from e
        return seq

    def _ingest(self, con: duckdb.DuckDBPyConnection, batch: IngestBatch, doc: dict) -> int:
        if con.execute("SELECT 1 FROM snapshot WHERE id = ?", [batch.commit_id]).fetchone():
            return con.execute("SELECT seq FROM snapshot WHERE id = ?", [batch.commit_id]).fetchone()[0]
        seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM snapshot").fetchone()[0]
        pack_seq = con.execute("SELECT coalesce(max(pack_seq), 0) FROM pack").fetchone()[0]
        known_packs = {r[0] for r in con.execute("SELECT name FROM pack").fetchall()}
        parts: list[pa.Table] = []
        for name, size, entries in batch.packs:
            if name in known_packs:
                continue
            known_packs.add(name)
            pack_seq += 1
            con.execute("INSERT INTO pack VALUES (?, ?, ?, ?, ?)", [pack_seq, name, size, len(entries), seq])
            tbl = entries if isinstance(entries, pa.Table) else entries_table(entries)
            if "fid" not in tbl.column_names:
                tbl = tbl.append_column("fid", pa.array([None] * tbl.num_rows, pa.binary()))
            parts.append(tbl.append_column("pack_seq", pa.array([pack_seq] * tbl.num_rows, pa.int32())))
        if batch.standalone:
            n = len(batch.standalone)
            sizes = pa.array([size for _h, size in batch.standalone], pa.int64())
            parts.append(pa.table({
                "hash": pa.array([h for h, _s in batch.standalone], pa.binary()),
                "off": pa.array([0] * n, pa.int64()), "clen": sizes, "rlen": sizes,
                "kind": pa.array(["A"] * n, pa.string()), "dict_hash": pa.array([None] * n, pa.binary()),
                "ioff": pa.array([0] * n, pa.int64()), "fid": pa.array([None] * n, pa.binary()),
                "pack_seq": pa.array([None] * n, pa.int32()),
            }))
        if parts:
            new_blobs = pa.concat_tables(parts)
            con.register("new_blobs", new_blobs)
            # one row per hash: the first location wins (a blob stored twice wastes bytes, never breaks reads)
            unique = pa.compute.count_distinct(new_blobs.column("hash")).as_py() == new_blobs.num_rows
            source = "new_blobs" if unique else (
                "(SELECT * FROM new_blobs QUALIFY row_number() OVER (PARTITION BY hash ORDER BY pack_seq NULLS LAST, off, ioff) = 1)"
            )
            con.execute(
                f"""INSERT INTO blob SELECT n.hash, n.pack_seq, n.off, n.clen, n.rlen, n.kind, n.dict_hash, n.ioff
                    FROM {source} n ANTI JOIN blob b ON b.hash = n.hash"""
            )
            insert_frames(con, "new_blobs")
            con.unregister("new_blobs")
            del new_blobs, parts
        if batch.attachments:
            atts = pa.table(
                {
                    "att_id": pa.array([a[0] for a in batch.attachments], pa.string()),
                    "content_hash": pa.array([a[1] for a in batch.attachments], pa.binary()),
                    "size": pa.array([a[2] for a in batch.attachments], pa.int64()),
                    "mime": pa.array([a[3] for a in batch.attachments], pa.string()),
                    "filename": pa.array([a[4] for a in batch.attachments], pa.string()),
                }
            )
            con.register("new_atts", atts)
            con.execute(
                """INSERT INTO attachment SELECT DISTINCT ON (att_id) att_id, content_hash, size, mime, filename, ?
                   FROM new_atts n WHERE NOT EXISTS (SELECT 1 FROM attachment a WHERE a.att_id = n.att_id)""",
                [seq],
            )
            con.unregister("new_atts")
        totals = {"n_records": 0, "n_new": 0, "n_changed": 0, "n_deleted": 0}
        for t in batch.tables:
            pk = self._table_pk(con, t.base_id, t.table_id)
            self._apply_change(con, pk, seq, t)
            con.execute(
                "INSERT INTO snapshot_table VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [seq, pk, t.base_id, t.table_id, t.name, t.manifest, t.dict_hash, t.comments_hash,
                 t.schema_hash, t.n_records, t.n_new, t.n_changed, t.n_deleted, t.depth, t.chain_entries],
            )
            for k in totals:
                totals[k] += getattr(t, k)
        con.execute(
            "INSERT INTO snapshot VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [seq, batch.commit_id, doc["time"], doc.get("parent"), doc["status"], totals["n_records"],
             totals["n_new"], totals["n_changed"], totals["n_deleted"], doc.get("bytes_added", 0),
             list(doc.get("tags") or []), json.dumps(doc)],
        )
        return seq

    def frame_locations(self, fids: list[bytes]) -> dict[bytes, tuple[str, int, int, bytes | None, int]]:
        """Format 3: frame id -> (pack name, offset, compressed length, dictionary, records in it)."""
        if not fids:
            return {}
        with self.read() as con:
            con.register("want_frames", pa.table({"fid": pa.array(list(set(fids)), pa.binary())}))
            try:
                rows = con.execute("""SELECT f.fid, p.name, f.off, f.clen, f.dict_hash, f.n_items FROM frame f
                                      JOIN want_frames w ON w.fid = f.fid JOIN pack p ON p.pack_seq = f.pack_seq""").fetchall()
            finally:
                con.unregister("want_frames")
        return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def whole_frames(self, hashes) -> list[tuple[bytes, list[bytes]]]:
        """Format 3: the frames every record of which is among ``hashes`` (a table's state, for a
        full manifest), each with its records' hashes in frame order."""
        if not self.exists() or len(hashes) == 0:
            return []
        with self.read() as con:
            con.register("state_h", pa.table({"hash": hashes}))
            try:
                rows = con.execute("""SELECT f.fid, list(b.hash ORDER BY b.ioff) FROM frame f
                                      JOIN blob b ON b.pack_seq = f.pack_seq AND b.off = f.off
                                      JOIN state_h s ON s.hash = b.hash
                                      GROUP BY f.fid, f.n_items HAVING count(*) = f.n_items""").fetchall()
            finally:
                con.unregister("state_h")
        return [(r[0], list(r[1])) for r in rows]

    @staticmethod
    def _table_pk(con: duckdb.DuckDBPyConnection, base_id: str, table_id: str) -> int:
        row = con.execute(
            "SELECT table_pk FROM at_table WHERE base_id = ? AND table_id = ?", [base_id, table_id]
        ).fetchone()
        if row:
            return row[0]
        pk = con.execute("SELECT coalesce(max(table_pk), 0) + 1 FROM at_table").fetchone()[0]
        con.execute("INSERT INTO at_table VALUES (?, ?, ?)", [pk, base_id, table_id])
        return pk

    @staticmethod
    def _apply_change(con: duckdb.DuckDBPyConnection, pk: int, seq: int, t: TableChange) -> None:
        if len(t.ids) == 0 and not t.full:
            return
        ids = t.ids if isinstance(t.ids, pa.Array | pa.ChunkedArray) else pa.array(t.ids, pa.string())
        hashes = t.hashes if isinstance(t.hashes, pa.Array | pa.ChunkedArray) else pa.array(t.hashes, pa.binary())
        rows = pa.table({"record_id": ids, "hash": hashes})
        con.register("chg", rows)
        try:
            if t.full:
                con.execute(
                    """UPDATE record_version SET end_seq = ? WHERE table_pk = ? AND end_seq IS NULL
                       AND NOT EXISTS (SELECT 1 FROM chg WHERE chg.record_id = record_version.record_id
                                       AND chg.hash = record_version.hash)""",
                    [seq, pk],
                )
                con.execute(
                    """INSERT INTO record_version SELECT ?, record_id, hash, ?, NULL FROM chg
                       WHERE NOT EXISTS (SELECT 1 FROM record_version v WHERE v.table_pk = ? AND v.end_seq IS NULL
                                         AND v.record_id = chg.record_id AND v.hash = chg.hash)""",
                    [pk, seq, pk],
                )
            else:
                con.execute(
                    """UPDATE record_version SET end_seq = ? WHERE table_pk = ? AND end_seq IS NULL
                       AND record_id IN (SELECT record_id FROM chg)""",
                    [seq, pk],
                )
                con.execute(
                    "INSERT INTO record_version SELECT ?, record_id, hash, ?, NULL FROM chg WHERE hash IS NOT NULL",
                    [pk, seq],
                )
        finally:
            con.unregister("chg")

    # ---- queries --------------------------------------------------------------------------

    def snapshot_docs(self) -> list[tuple[int, str, str]]:
        """(seq, id, doc json) oldest first."""
        if not self.exists():
            return []
        with self.read() as con:
            return con.execute("SELECT seq, id, doc FROM snapshot ORDER BY seq").fetchall()

    def snapshot_ids(self) -> set[str]:
        if not self.exists():
            return set()
        with self.read() as con:
            return {r[0] for r in con.execute("SELECT id FROM snapshot").fetchall()}

    def table_state(self, base_id: str, table_id: str) -> TableState:
        """For a writer: the table's open versions (record_id, hash), every hash it ever had,
        its current dictionary, and its latest manifest name and chain depth."""
        with self.read() as con:
            row = con.execute(
                "SELECT table_pk FROM at_table WHERE base_id = ? AND table_id = ?", [base_id, table_id]
            ).fetchone()
            if not row:
                empty = pa.table({"record_id": pa.array([], pa.string()), "hash": pa.array([], pa.binary())})
                return TableState(empty, HashSet(), None, None, 0, 0, None)
            pk = row[0]
            open_v = con.execute(
                "SELECT record_id, hash FROM record_version WHERE table_pk = ? AND end_seq IS NULL", [pk]
            ).to_arrow_table()
            known = HashSet.from_arrow(con.execute(
                "SELECT DISTINCT hash FROM record_version WHERE table_pk = ?", [pk]).to_arrow_table().column(0))
            last = con.execute(
                """SELECT dict_hash, manifest, manifest_depth, chain_entries, comments_hash FROM snapshot_table
                   WHERE table_pk = ? ORDER BY seq DESC LIMIT 1""",
                [pk],
            ).fetchone()
        if not last:
            return TableState(open_v, known, None, None, 0, 0, None)
        return TableState(open_v, known, last[0], last[1], last[2], last[3], last[4])

    def known_attachments(self) -> set[str]:
        if not self.exists():
            return set()
        with self.read() as con:
            return {r[0] for r in con.execute("SELECT att_id FROM attachment").fetchall()}

    def pack_names(self) -> set[str]:
        if not self.exists():
            return set()
        with self.read() as con:
            return {r[0] for r in con.execute("SELECT name FROM pack").fetchall()}

    _MEMBERS = """FROM snapshot_table st
                  JOIN record_version rv ON rv.table_pk = st.table_pk
                  WHERE st.seq = $seq AND st.base_id = $base AND st.table_id = $table
                    AND rv.begin_seq <= $seq AND (rv.end_seq IS NULL OR rv.end_seq > $seq)"""

    def table_locations(self, seq: int, tables: list[tuple[str, str, int]],
                        chunk: int = 100_000) -> Iterator[tuple[int, pa.Table, dict]]:
        """Where the snapshot's record blobs are, for each ``(base_id, table_id, records)`` of
        ``tables`` in that order: ``(position in tables, Arrow table (hash, pack_seq, off, clen, rlen,
        dict_hash) in pack order, map pack_seq -> pack name)``, one or more pieces per table and none
        for an empty one. Records whose blob is in no pack are not yielded (``missing_locations``
        names them).

        Small tables (up to ``SMALL_TABLE`` records) are located together, about ``chunk`` records per
        query: a connection costs ~20 ms and each query scans the blob table, so a workspace of many
        small tables would otherwise spend more time locating than exporting (measured: 125 ms per
        table, 6x slower than one table of the same size). A larger table is located a range of
        packs at a time, so memory stays flat however large it is.
        Never holds a connection across a yield: the caller may use the catalog between pieces."""
        if not tables:
            return
        with self.read() as con:
            pks = {(b, t): pk for b, t, pk in con.execute(
                "SELECT base_id, table_id, table_pk FROM snapshot_table WHERE seq = ?", [seq]).fetchall()}
            pack_rows = con.execute("SELECT pack_seq, name, n_blobs, size FROM pack ORDER BY pack_seq").fetchall()
        packs = {p: name for p, name, _n, _size in pack_rows}
        groups: list[list[tuple[int, int]] | tuple[int, int]] = []  # small tables together, or (position, pk)
        small: list[tuple[int, int]] = []
        n = 0
        for k, (base_id, table_id, records) in enumerate(tables):
            pk = pks.get((base_id, table_id))
            if pk is None:
                continue
            if records > min(chunk, SMALL_TABLE):
                if small:
                    groups.append(small)
                    small, n = [], 0
                groups.append((k, pk))
                continue
            small.append((k, pk))
            n += records
            if n >= chunk:
                groups.append(small)
                small, n = [], 0
        if small:
            groups.append(small)
        for g in groups:
            if isinstance(g, tuple):
                for locs in self._large_locations(seq, g[1], pack_rows, chunk):
                    yield g[0], locs, packs
                continue
            with self.read() as con:
                found = self._locate_small(con, seq, [pk for _k, pk in g])
            col = found.column(0).to_pylist()  # sorted by table_pk
            for k, pk in g:
                lo, hi = bisect.bisect_left(col, pk), bisect.bisect_right(col, pk)
                if hi > lo:
                    yield k, found.slice(lo, hi - lo).drop_columns(["table_pk"]), packs

    def _locate_small(self, con, seq: int, table_pks: list[int]) -> pa.Table:
        """The located blobs of a few small tables in one query, sorted by table then pack order.
        The join is built on their record versions (DuckDB's own choice: the smaller side)."""
        with self._locate_memory(con):
            return con.execute(
                f"""SELECT rv.table_pk, rv.hash, b.pack_seq, b.off, b.clen, b.rlen, b.dict_hash, b.ioff
                    FROM record_version rv JOIN blob b ON b.hash = rv.hash
                    WHERE rv.table_pk IN ({", ".join(str(int(pk)) for pk in table_pks)})
                      AND rv.begin_seq <= $seq AND (rv.end_seq IS NULL OR rv.end_seq > $seq)
                      AND b.pack_seq IS NOT NULL
                    ORDER BY rv.table_pk, b.pack_seq, b.off, b.ioff""", {"seq": seq}).to_arrow_table()

    @contextlib.contextmanager
    def _locate_memory(self, con) -> Iterator[None]:
        """Locating queries run under a small memory limit, unless the catalog is pinned (a
        writer's connection): they need little, and DuckDB would otherwise keep the record versions
        it scanned cached up to the catalog's limit, so a reader's memory would grow with the table."""
        small = self._pinned is None
        if small:
            con.execute(f"SET memory_limit = '{LOCATE_MEMORY_LIMIT}'")
        try:
            yield
        finally:
            if small:
                con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")

    def _large_locations(self, seq: int, table_pk: int, pack_rows: list[tuple], chunk: int) -> Iterator[pa.Table]:
        """One large table's located blobs, a range of packs per query (one short connection each)."""
        for r in self._pack_ranges(pack_rows, chunk):
            with self.read() as con:
                locs = self._locate(con, seq, table_pk, r)
            if locs.num_rows:
                yield locs

    @staticmethod
    def _pack_ranges(pack_rows: list[tuple], chunk: int) -> list[tuple[int, int, int, int]]:
        """(first pack, last pack, offsets from, to) ranges of about ``chunk`` blobs, small at first."""
        everything = 1 << 62
        ranges: list[tuple[int, int, int, int]] = []
        if pack_rows and pack_rows[0][2] > 4 * 8192:
            first, split = pack_rows[0][0], pack_rows[0][3] // 16
            ranges += [(first, first, 0, split), (first, first, split, everything)]
            pack_rows = pack_rows[1:]
        lo, n = None, 0
        step = min(chunk, 8192)
        for pseq, _name, nb, _size in pack_rows:
            lo = pseq if lo is None else lo
            n += nb
            if n >= step:
                ranges.append((lo, pseq, 0, everything))
                lo, n = None, 0
                step = min(chunk, step * 4)
        if lo is not None:
            ranges.append((lo, pack_rows[-1][0], 0, everything))
        return ranges

    #: The blobs of the pack range are the hash join's build side (bounded by the range), the
    #: table's record versions stream past them: written in that order, with the join-order
    #: optimizer off, because DuckDB would otherwise build on the record versions (memory and time
    #: growing with the table, once per range).
    _LOCATE = """SELECT rv.hash, b.pack_seq, b.off, b.clen, b.rlen, b.dict_hash, b.ioff
                 FROM record_version rv
                 JOIN (SELECT hash, pack_seq, off, clen, rlen, dict_hash, ioff FROM blob
                       WHERE pack_seq BETWEEN $lo AND $hi AND off >= $off_lo AND off < $off_hi) b
                   ON b.hash = rv.hash
                 WHERE rv.table_pk = $pk AND rv.begin_seq <= $seq AND (rv.end_seq IS NULL OR rv.end_seq > $seq)
                 ORDER BY b.pack_seq, b.off, b.ioff"""

    def _locate(self, con, seq: int, table_pk: int, r: tuple[int, int, int, int]) -> pa.Table:
        """One range's rows, in pack order."""
        with self._locate_memory(con):
            con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
            try:
                return con.execute(self._LOCATE, {"seq": seq, "pk": table_pk, "lo": r[0], "hi": r[1],
                                                  "off_lo": r[2], "off_hi": r[3]}).to_arrow_table()
            finally:
                con.execute("RESET disabled_optimizers")

    def missing_locations(self, seq: int, base_id: str, table_id: str) -> list[bytes]:
        """Hashes of the snapshot's records of one table whose blob is in no pack."""
        with self.read() as con:
            return [r[0] for r in con.execute(
                f"""SELECT rv.hash {self._MEMBERS.replace("WHERE", "LEFT JOIN blob b ON b.hash = rv.hash WHERE", 1)}
                    AND b.pack_seq IS NULL LIMIT 10""",
                {"seq": seq, "base": base_id, "table": table_id}).fetchall()]

    def record_hashes(self, seq: int, base_id: str, table_id: str) -> pa.Table:
        with self.read() as con:
            return con.execute(f"SELECT rv.record_id, rv.hash {self._MEMBERS} ORDER BY rv.record_id",
                               {"seq": seq, "base": base_id, "table": table_id}).to_arrow_table()

    def attachments_stored_by(self, seq: int) -> list[str]:
        """Ids of the attachments first stored by snapshot ``seq`` or before it."""
        with self.read() as con:
            return [r[0] for r in con.execute(
                "SELECT att_id FROM attachment WHERE first_seq <= ? ORDER BY att_id", [seq]).fetchall()]

    def blob_location(self, h: bytes) -> tuple | None:
        with self.read() as con:
            return con.execute(
                """SELECT p.name, b.off, b.clen, b.rlen, b.dict_hash, b.kind, b.ioff FROM blob b
                   LEFT JOIN pack p ON p.pack_seq = b.pack_seq WHERE b.hash = ?""",
                [h],
            ).fetchone()

    def attachment(self, att_id: str) -> tuple | None:
        with self.read() as con:
            return con.execute(
                "SELECT att_id, content_hash, size, mime, filename FROM attachment WHERE att_id = ?", [att_id]
            ).fetchone()
