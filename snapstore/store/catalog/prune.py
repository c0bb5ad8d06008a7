"""The catalog's side of ``prune``: what is live, where every blob is, and the one transaction
that rewrites the catalog after a repack.

The verb (:mod:`snapstore.ops.prune`) calls these; no SQL lives outside the catalog package. Each
query function takes an open connection, so the verb reads what it needs in one short
connection (a connection costs ~20 ms, and a writer's readers wait on it).
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

from snapstore.store.catalog import Catalog, insert_frames
from snapstore.store.catalog.retention import TRIM_VERSIONS
from snapstore.store.packs import entries_table

#: The record blobs some kept snapshot holds: an interval join (each record version against the
#: kept snapshots of its table), so an unchanged snapshot costs nothing per record.
LIVE_VERSIONS = """
SELECT DISTINCT rv.hash FROM record_version rv
ASOF JOIN snapshot_table st ON rv.table_pk = st.table_pk AND rv.begin_seq <= st.seq
WHERE rv.end_seq IS NULL OR st.seq < rv.end_seq
"""

#: A packed blob's location and kind: (hash, pack name, off, clen, rlen, dict_hash, kind, ioff).
BlobLocation = tuple[bytes, str, int, int, int, bytes | None, str, int]
#: A blob row as the catalog holds it: (hash, pack_seq, off, clen, rlen, kind, dict_hash, ioff);
#: pack_seq is None for a standalone object.
BlobRow = tuple[bytes, int | None, int, int, int, str, bytes | None, int]


def live_record_hashes(con: duckdb.DuckDBPyConnection) -> set[bytes]:
    """Hashes of the records some kept snapshot holds (see :data:`LIVE_VERSIONS`)."""
    return {r[0] for r in con.execute(LIVE_VERSIONS).fetchall()}


def kept_table_objects(con: duckdb.DuckDBPyConnection) -> list[tuple[str, bytes | None, bytes | None, bytes | None]]:
    """(manifest, dictionary, comments, schema) of every table a kept snapshot holds, once each."""
    return con.execute(
        "SELECT DISTINCT manifest, dict_hash, comments_hash, schema_hash FROM snapshot_table").fetchall()


def commit_docs(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The commit document (JSON text) of every kept snapshot."""
    return [r[0] for r in con.execute("SELECT doc FROM snapshot").fetchall()]


def packed_blob_locations(con: duckdb.DuckDBPyConnection, kind: str | None = None) -> list[BlobLocation]:
    """Every packed blob (of ``kind`` only, if given) with its pack's name, in pack order, so a
    reader that keeps one pack in memory reads each pack once."""
    if kind is not None and not (len(kind) == 1 and kind.isalpha()):
        raise ValueError(f"not a blob kind: {kind!r}")
    # the kind is a literal, not a parameter: DuckDB pushes a constant filter into the scan
    where = "" if kind is None else f"WHERE b.kind = '{kind}'"
    return con.execute(
        f"""SELECT b.hash, p.name, b.off, b.clen, b.rlen, b.dict_hash, b.kind, b.ioff FROM blob b
            JOIN pack p ON p.pack_seq = b.pack_seq {where} ORDER BY b.pack_seq, b.off, b.ioff""").fetchall()


def frame_item_hashes(con: duckdb.DuckDBPyConnection, fids: Iterable[bytes]) -> set[bytes]:
    """Hashes of the items of the frames named by id (format 3)."""
    con.register("named_frames", pa.table({"fid": pa.array(sorted(fids), pa.binary())}))
    try:
        return {r[0] for r in con.execute(
            """SELECT b.hash FROM frame f JOIN named_frames n ON n.fid = f.fid
               JOIN blob b ON b.pack_seq = f.pack_seq AND b.off = f.off""").fetchall()}
    finally:
        con.unregister("named_frames")


#: A frame a kept manifest names: (fid, pack_seq, pack name, off, clen, dict_hash, n_items, located),
#: ``located`` counting the blob rows that point into it (fewer than ``n_items`` when another copy
#: of some of its records is the one the catalog locates: two machines packed the same records).
NamedFrame = tuple[bytes, int, str, int, int, bytes | None, int, int]


def named_frames(con: duckdb.DuckDBPyConnection, fids: Iterable[bytes]) -> list[NamedFrame]:
    """Where the frames named by id are, and how many of their records the blob rows locate there."""
    con.register("named_frames", pa.table({"fid": pa.array(sorted(fids), pa.binary())}))
    try:
        return con.execute(
            """SELECT f.fid, f.pack_seq, p.name, f.off, f.clen, f.dict_hash, f.n_items,
                      (SELECT count(*) FROM blob b WHERE b.pack_seq = f.pack_seq AND b.off = f.off)
               FROM frame f JOIN named_frames n ON n.fid = f.fid JOIN pack p ON p.pack_seq = f.pack_seq
               ORDER BY f.pack_seq, f.off""").fetchall()
    finally:
        con.unregister("named_frames")


def snapshot_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM snapshot").fetchone()[0]


def attachment_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM attachment").fetchone()[0]


def pack_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, int]]:
    """(pack_seq, name, size) of every pack the catalog knows, by pack_seq."""
    return con.execute("SELECT pack_seq, name, size FROM pack ORDER BY pack_seq").fetchall()


def blob_rows(con: duckdb.DuckDBPyConnection) -> list[BlobRow]:
    """Every blob row (see :data:`BlobRow`), in pack order: a frame's rows are adjacent."""
    return con.execute(
        "SELECT hash, pack_seq, off, clen, rlen, kind, dict_hash, ioff FROM blob ORDER BY pack_seq, off, ioff").fetchall()


def rewrite_packs(catalog: Catalog, sealed: list[tuple[str, int, list]], drop: set[int],
                  live_blobs: set[bytes], live_att_ids: set[str]) -> None:
    """The catalog after a repack, in one transaction: the new packs' rows (a pack a rerun wrote
    again under a name the catalog already keeps is reused), live blobs repointed to their new
    place, dead blob, pack, frame and attachment rows dropped, record versions trimmed.

    ``sealed``: the new packs as (name, size, [BlobEntry]); ``drop``: pack_seqs of the dead and
    repacked packs. Killed anywhere before the commit, the catalog is as it was: the store index
    written before describes the store either way."""
    live_tbl = pa.table({"hash": pa.array(sorted(live_blobs), pa.binary())})
    att_tbl = pa.table({"att_id": pa.array(sorted(live_att_ids), pa.string())})
    with catalog.write() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            pack_seq = con.execute("SELECT coalesce(max(pack_seq), 0) FROM pack").fetchone()[0]
            first_seq = con.execute("SELECT coalesce(max(seq), 0) FROM snapshot").fetchone()[0]
            hs, ps, offs, clens, ioffs = [], [], [], [], []
            sealed_rows: list[pa.Table] = []
            known = dict(con.execute("SELECT name, pack_seq FROM pack").fetchall())
            for name, size, entries in sealed:
                if name in known and known[name] not in drop:
                    seq = known[name]
                else:
                    pack_seq += 1
                    seq = pack_seq
                    con.execute("INSERT INTO pack VALUES (?, ?, ?, ?, ?)", [seq, name, size, len(entries), first_seq])
                tbl = entries_table(entries)
                sealed_rows.append(tbl.append_column("pack_seq", pa.array([seq] * tbl.num_rows, pa.int32())))
                for e in entries:
                    hs.append(e.hash)
                    ps.append(seq)
                    offs.append(e.offset)
                    clens.append(e.clen)
                    ioffs.append(e.inner)
            con.register("live_b", live_tbl)
            con.register("live_a", att_tbl)
            if hs:
                con.register("moved", pa.table({"hash": pa.array(hs, pa.binary()), "pack_seq": pa.array(ps, pa.int32()),
                                                "off": pa.array(offs, pa.int64()), "clen": pa.array(clens, pa.int64()),
                                                "ioff": pa.array(ioffs, pa.int64())}))
                # a record may now be in two new frames (a frame a manifest names is copied whole,
                # and two machines may have packed the same record): its first copy is its place;
                # a blob whose pack stays keeps its place
                con.execute("""UPDATE blob SET pack_seq = m.pack_seq, off = m.off, clen = m.clen, ioff = m.ioff
                               FROM (SELECT * FROM moved QUALIFY row_number() OVER
                                     (PARTITION BY hash ORDER BY pack_seq, off, ioff) = 1) m
                               WHERE blob.hash = m.hash AND list_contains(?, blob.pack_seq)""", [sorted(drop)])
                con.unregister("moved")
            con.execute("DELETE FROM blob WHERE NOT EXISTS (SELECT 1 FROM live_b WHERE live_b.hash = blob.hash)")
            if drop:
                con.execute("DELETE FROM pack WHERE list_contains(?, pack_seq)", [sorted(drop)])
                con.execute("DELETE FROM frame WHERE list_contains(?, pack_seq)", [sorted(drop)])
            if sealed_rows:  # format 3: frames copied keep their id at their new place; new frames added
                con.register("sealed_blobs", pa.concat_tables(sealed_rows))
                insert_frames(con, "sealed_blobs")
                con.unregister("sealed_blobs")
            con.execute("DELETE FROM attachment WHERE NOT EXISTS (SELECT 1 FROM live_a WHERE live_a.att_id = attachment.att_id)")
            con.execute(TRIM_VERSIONS)
            con.unregister("live_b")
            con.unregister("live_a")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
