"""The store's own catalog queries: where blobs and attachments are, a table's comments and latest
manifest, the cache's meta values. ``Store`` (snapstore/store/store.py) calls these and holds no SQL
of its own (issue 17), so the catalog's columns are known here and in this package only.

Each function opens its own short connection (``catalog.read()``/``write()``, the pinned one while
a writer pins), except :func:`locate_blobs`, which runs on the caller's open connection so that
callers can locate blobs in the same read as their own query.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from snapstore.errors import StoreError
from snapstore.store.catalog import Catalog

#: A blob's location row: (hash, pack name, offset, clen, rlen, dict_hash, standalone, inner).
BlobRow = tuple


def locate_blobs(con: duckdb.DuckDBPyConnection, hashes) -> list[BlobRow]:
    """Where blobs are, in one query on an open catalog connection: rows of
    (hash, pack name, offset, clen, rlen, dict_hash, standalone, inner) in pack order.
    Raises StoreError naming the first hash the catalog does not know."""
    arr = hashes if isinstance(hashes, pa.Array | pa.ChunkedArray) else pa.array(list(set(hashes)), pa.binary())
    if len(arr) == 0:
        return []
    con.register("want_blobs", pa.table({"hash": arr}))
    try:
        found_rows = con.execute(
            """SELECT b.hash, p.name, b.off, b.clen, b.rlen, b.dict_hash, b.pack_seq IS NULL, b.ioff
               FROM (SELECT DISTINCT hash FROM want_blobs) w JOIN blob b ON w.hash = b.hash
               LEFT JOIN pack p ON p.pack_seq = b.pack_seq"""
        ).fetchall()
    finally:
        con.unregister("want_blobs")
    rows = sorted(found_rows, key=lambda r: (r[1] or "", r[2], r[7]))
    found = {r[0] for r in rows}
    wanted = set(arr.to_pylist()) - {None}
    if len(found) < len(wanted):
        missing = next(h for h in wanted if h not in found)
        raise StoreError(f"blob {missing.hex()[:12]} is not in the store")
    return rows


def blob_rows(catalog: Catalog, hashes) -> list[BlobRow]:
    """:func:`locate_blobs` in a read of its own."""
    with catalog.read() as con:
        return locate_blobs(con, hashes)


_ATTACHMENTS = """SELECT a.att_id, a.content_hash, a.size, a.mime, a.filename,
                         p.name, b.off, b.clen, b.rlen, b.dict_hash, b.hash IS NOT NULL, b.ioff
                  FROM attachment a LEFT JOIN blob b ON b.hash = a.content_hash
                  LEFT JOIN pack p ON p.pack_seq = b.pack_seq"""


def attachment_rows(catalog: Catalog, att_ids=None) -> list[tuple]:
    """Stored attachments (all, or those of ``att_ids``) with their content's location: rows of
    (att_id, content_hash, size, mime, filename, pack name, offset, clen, rlen, dict_hash,
    content stored, inner); the pack is None for a standalone object."""
    with catalog.read() as con:
        if att_ids is None:
            return con.execute(_ATTACHMENTS).fetchall()
        con.register("want_atts", pa.table({"att_id": pa.array(sorted(set(att_ids)), pa.string())}))
        try:
            return con.execute(_ATTACHMENTS + " WHERE a.att_id IN (SELECT att_id FROM want_atts)").fetchall()
        finally:
            con.unregister("want_atts")


def comments_hash(catalog: Catalog, seq: int, base_id: str, table_id: str) -> bytes | None:
    """The comments blob of one table in snapshot ``seq``: None when none was captured."""
    with catalog.read() as con:
        row = con.execute(
            "SELECT comments_hash FROM snapshot_table WHERE seq = ? AND base_id = ? AND table_id = ?",
            [seq, base_id, table_id],
        ).fetchone()
    return row[0] if row else None


def comment_blob_rows(catalog: Catalog, seq: int) -> tuple[dict[tuple[str, str], bytes], dict[bytes, BlobRow]]:
    """Every table's comments blob in snapshot ``seq`` ({(base_id, table_id): hash}) and where
    those blobs are ({hash: location row}), in one read."""
    with catalog.read() as con:
        hashes = dict(((b, t), h) for b, t, h in con.execute(
            "SELECT base_id, table_id, comments_hash FROM snapshot_table WHERE seq = ? AND comments_hash IS NOT NULL",
            [seq]).fetchall())
        rows = {r[0]: r for r in locate_blobs(con, set(hashes.values()))}
    return hashes, rows


def latest_manifest(catalog: Catalog, base_id: str, table_id: str) -> str | None:
    """The manifest of the table's newest snapshot in the catalog (None: a table it has not seen)."""
    with catalog.read() as con:
        row = con.execute(
            """SELECT st.manifest FROM snapshot_table st WHERE st.base_id = ? AND st.table_id = ?
               ORDER BY st.seq DESC LIMIT 1""",
            [base_id, table_id],
        ).fetchone()
    return row[0] if row else None


def meta_value(catalog: Catalog, key: str) -> str | None:
    """One of the catalog's meta values (``store_id``, an S3 cache's ``remote_fp``)."""
    with catalog.read() as con:
        row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_meta_value(catalog: Catalog, key: str, value: str) -> None:
    with catalog.write() as con:
        con.execute("DELETE FROM meta WHERE key = ?", [key])
        con.execute("INSERT INTO meta VALUES (?, ?)", [key, value])
