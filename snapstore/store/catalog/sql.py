"""The catalog's answers for ``snapstore sql``: every version of a table's records, with the
snapshots that held it and where its blob is, in one read.

Versions are validity intervals ``[begin_seq, end_seq)``; what a user calls a version's life is
the snapshots *holding the table* inside that interval (forgotten snapshots leave no trace), the
same rule ``snapstore history`` applies record by record (snapstore/ops/diff.py).
"""

from __future__ import annotations

import pyarrow as pa

from snapstore.store.catalog import Catalog

# One row per version that some kept snapshot holds: its first and last holding snapshot, the
# table's next snapshot after the last (null: none yet), how it began and how it ended (the
# rules of `snapstore history`), and its blob's location, in pack order so that each frame is
# read once.
_VERSIONS_SQL = """
WITH ts AS (SELECT DISTINCT seq FROM snapshot_table WHERE table_pk = $pk),
nxt AS (SELECT seq, lead(seq) OVER (ORDER BY seq) AS after_seq FROM ts),
v AS (
    SELECT rv.record_id, rv.hash, min(ts.seq) AS first_seq, max(ts.seq) AS last_seq
    FROM record_version rv JOIN ts ON ts.seq >= rv.begin_seq AND (rv.end_seq IS NULL OR ts.seq < rv.end_seq)
    WHERE rv.table_pk = $pk AND ($rid IS NULL OR rv.record_id = $rid)
    GROUP BY rv.record_id, rv.hash, rv.begin_seq),
w AS (
    SELECT v.*, nxt.after_seq,
           lag(nxt.after_seq) OVER r AS prev_after, lag(v.first_seq) OVER r AS prev_first,
           lead(v.first_seq) OVER r AS next_first
    FROM v JOIN nxt ON nxt.seq = v.last_seq
    WINDOW r AS (PARTITION BY v.record_id ORDER BY v.first_seq))
SELECT w.record_id, w.hash, w.first_seq, w.last_seq, w.after_seq,
       CASE WHEN w.prev_first IS NULL THEN 'created' WHEN w.prev_after = w.first_seq THEN 'changed'
            ELSE 're-created' END AS began,
       CASE WHEN w.after_seq IS NULL THEN (CASE WHEN w.last_seq = $latest THEN NULL ELSE 'table absent' END)
            WHEN w.next_first = w.after_seq THEN 'changed' ELSE 'deleted' END AS ended,
       p.name AS pack, b.off, b.clen, b.rlen, b.dict_hash, b.ioff
FROM w JOIN blob b ON b.hash = w.hash JOIN pack p ON p.pack_seq = b.pack_seq
ORDER BY p.name, b.off, b.ioff, w.record_id, w.first_seq
"""


def table_versions(catalog: Catalog, base_id: str, table_id: str, latest_seq: int,
                   record_id: str | None = None) -> pa.Table:
    """Every version of the table's records (or of one record) that a kept snapshot holds: record_id, hash, first_seq,
    last_seq, after_seq (the table's first snapshot after the version, null if none), began
    (created, changed, re-created), ended (changed, deleted, table absent, null while current),
    and the blob's location (pack, off, clen, rlen, dict_hash, ioff), in pack order."""
    with catalog.read() as con:
        pk = con.execute("SELECT table_pk FROM at_table WHERE base_id = ? AND table_id = ?",
                         [base_id, table_id]).fetchone()
        if pk is None:
            return pa.table({})
        return con.execute(_VERSIONS_SQL, {"pk": pk[0], "latest": latest_seq, "rid": record_id}).to_arrow_table()


__all__ = ["table_versions"]
