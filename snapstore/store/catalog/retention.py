"""The catalog's side of ``forget`` and ``tag``: dropping forgotten snapshots' rows, trimming the
record versions no kept snapshot shows, and what a store index lists.

The verbs (:mod:`snapstore.ops.retention`) call these; no SQL lives outside the catalog package.
"""

from __future__ import annotations

import duckdb

from snapstore.store.catalog import Catalog

#: Drop the record versions no remaining snapshot shows (an interval join against the kept
#: snapshots' tables), and reopen a version still open at its table's last remaining snapshot
#: (end_seq NULL), so the next writer diffs against what the newest kept snapshot holds.
#: Shared by forget and prune's catalog rewrite.
TRIM_VERSIONS = """
DELETE FROM record_version WHERE rowid IN (
    SELECT rv.rowid FROM record_version rv
    ASOF LEFT JOIN snapshot_table st ON rv.table_pk = st.table_pk AND rv.begin_seq <= st.seq
    WHERE st.seq IS NULL OR (rv.end_seq IS NOT NULL AND st.seq >= rv.end_seq));
UPDATE record_version SET end_seq = NULL
WHERE end_seq IS NOT NULL
  AND end_seq > (SELECT max(st.seq) FROM snapshot_table st WHERE st.table_pk = record_version.table_pk);
"""


def commit_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Full ids of every commit the catalog holds (what a store index written now covers)."""
    return [r[0] for r in con.execute("SELECT id FROM snapshot").fetchall()]


def pack_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM pack").fetchall()]


def standalone_blobs(con: duckdb.DuckDBPyConnection) -> list[tuple[bytes, int]]:
    """(hash, stored length) of the blobs kept as objects of their own (large attachments)."""
    return con.execute("SELECT hash, clen FROM blob WHERE pack_seq IS NULL").fetchall()


def attachment_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, bytes, int, str | None, str | None]]:
    """Every attachment as (att id, content hash, size, mime, filename): a store index's rows."""
    return con.execute("SELECT att_id, content_hash, size, mime, filename FROM attachment").fetchall()


def forget_snapshots(catalog: Catalog, full_ids: list[str]) -> None:
    """Drop the snapshots' rows and every record version no remaining snapshot shows, in one
    transaction (see :data:`TRIM_VERSIONS`): interrupted, the catalog is as it was, and the next
    forget or prune finishes the job from the commit objects."""
    with catalog.write() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            seqs = [r[0] for r in con.execute(
                "SELECT seq FROM snapshot WHERE list_contains(?, id)", [list(full_ids)]).fetchall()]
            if seqs:
                con.execute("DELETE FROM snapshot WHERE list_contains(?, seq)", [seqs])
                con.execute("DELETE FROM snapshot_table WHERE list_contains(?, seq)", [seqs])
            con.execute(TRIM_VERSIONS)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def set_tags(catalog: Catalog, full_id: str, tags: list[str], doc_json: str) -> None:
    """A snapshot's tags now, and its commit document as the catalog keeps it (with those tags)."""
    with catalog.write() as con:
        con.execute("UPDATE snapshot SET tags = ?, doc = ? WHERE id = ?", [tags, doc_json, full_id])
