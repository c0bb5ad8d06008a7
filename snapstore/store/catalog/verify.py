"""The catalog's answers for ``verify``: everything it lists (to hold against the objects), one
table's records at a snapshot (to hold against its manifest), and whom a damaged blob reaches.

Rows are plain tuples, in the column order each docstring gives: verify walks millions of blob
rows, and a dataclass per row would double its memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from snapstore.store.catalog import Catalog


@dataclass
class Listing:
    """What the catalog says the store holds, read in one connection (so the parts agree)."""

    #: (seq, commit id, commit document as JSON), oldest first
    snapshots: list[tuple[int, str, str]]
    #: (pack_seq, pack name, size in bytes)
    packs: list[tuple[int, str, int]]
    #: (hash, pack_seq, pack name, off, clen, rlen, kind, dict_hash, ioff); pack_seq and name are
    #: None for a standalone object (a large attachment)
    blobs: list[tuple]
    #: (seq, table_pk, base_id, table_id, manifest, dict_hash, comments_hash, schema_hash)
    tables: list[tuple]
    #: the hashes of the record versions some kept snapshot holds
    live_hashes: set[bytes]
    #: (attachment id, content hash, filename)
    attachments: list[tuple[str, bytes, str | None]]


def listing(catalog: Catalog) -> Listing:
    """Everything verify checks the objects against."""
    with catalog.read() as con:
        snapshots = con.execute("SELECT seq, id, doc FROM snapshot ORDER BY seq").fetchall()
        packs = con.execute("SELECT pack_seq, name, size FROM pack").fetchall()
        blobs = con.execute(
            "SELECT b.hash, b.pack_seq, p.name, b.off, b.clen, b.rlen, b.kind, b.dict_hash, b.ioff FROM blob b "
            "LEFT JOIN pack p ON p.pack_seq = b.pack_seq").fetchall()
        tables = con.execute(
            "SELECT seq, table_pk, base_id, table_id, manifest, dict_hash, comments_hash, schema_hash "
            "FROM snapshot_table").fetchall()
        # a version is live when a snapshot holding its table falls in its interval: the ASOF join
        # pairs each version with the first snapshot of its table at or after its beginning
        live = con.execute(
            """SELECT DISTINCT rv.hash FROM record_version rv
               ASOF JOIN snapshot_table st ON rv.table_pk = st.table_pk AND rv.begin_seq <= st.seq
               WHERE rv.end_seq IS NULL OR st.seq < rv.end_seq""").fetchall()
        attachments = con.execute("SELECT att_id, content_hash, filename FROM attachment").fetchall()
    return Listing(snapshots, packs, blobs, tables, {r[0] for r in live}, attachments)


def frame_record_hashes(con: duckdb.DuckDBPyConnection, pack: str, off: int) -> set[bytes]:
    """The hashes of the records stored in the frame at ``off`` of pack ``pack`` (to name what a
    damaged frame loses)."""
    return {r[0] for r in con.execute(
        "SELECT b.hash FROM blob b JOIN pack p ON p.pack_seq = b.pack_seq WHERE p.name = ? AND b.off = ?",
        [pack, off]).fetchall()}


def table_records_at(con: duckdb.DuckDBPyConnection, table_pk: int, seq: int) -> list[tuple[str, bytes]]:
    """(record id, hash) of the table's records in snapshot ``seq``, by record id: the order a
    manifest folds to."""
    return con.execute(
        """SELECT rv.record_id, rv.hash FROM record_version rv WHERE rv.table_pk = ?
           AND rv.begin_seq <= ? AND (rv.end_seq IS NULL OR rv.end_seq > ?) ORDER BY record_id""",
        [table_pk, seq, seq]).fetchall()


@dataclass
class Reach:
    """Whom a set of blobs reaches, for verify to name what a damage costs."""

    #: (hash, base_id, table_id, record id, [commit ids of the snapshots holding that version])
    records: list[tuple]
    #: (hash, base_id, table_id, commit id, "schema" or "comments"): the blob is that table's
    #: schema or comments in that snapshot
    tables: list[tuple]
    #: seq -> commit id, every snapshot
    snapshot_ids: dict[int, str]
    #: table_pk -> (base_id, table_id), every table
    table_keys: dict[int, tuple[str, str]]


def reach(catalog: Catalog, hashes: Iterable[bytes]) -> Reach:
    """The records, schemas and comments the blobs ``hashes`` are, in which snapshots."""
    all_h = sorted(set(hashes))
    with catalog.read() as con:
        if all_h:
            con.register("dmg", pa.table({"hash": pa.array(all_h, pa.binary())}))
            rec = con.execute(
                """SELECT rv.hash, st.base_id, st.table_id, rv.record_id, list(DISTINCT s.id ORDER BY s.id)
                   FROM record_version rv JOIN dmg ON dmg.hash = rv.hash
                   JOIN snapshot_table st ON st.table_pk = rv.table_pk AND rv.begin_seq <= st.seq
                        AND (rv.end_seq IS NULL OR rv.end_seq > st.seq)
                   JOIN snapshot s ON s.seq = st.seq
                   GROUP BY ALL""").fetchall()
            meta = con.execute(
                """SELECT dmg.hash, st.base_id, st.table_id, s.id,
                          CASE WHEN st.schema_hash = dmg.hash THEN 'schema' ELSE 'comments' END
                   FROM snapshot_table st JOIN dmg ON dmg.hash = st.schema_hash OR dmg.hash = st.comments_hash
                   JOIN snapshot s ON s.seq = st.seq""").fetchall()
            con.unregister("dmg")
        else:
            rec, meta = [], []
        ids = dict(con.execute("SELECT seq, id FROM snapshot").fetchall())
        pks = {r[0]: (r[1], r[2]) for r in con.execute("SELECT table_pk, base_id, table_id FROM at_table").fetchall()}
    return Reach(rec, meta, ids, pks)


__all__ = ["Listing", "Reach", "frame_record_hashes", "listing", "reach", "table_records_at"]
