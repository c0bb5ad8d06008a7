"""The catalog's side of ``stats``: each snapshot's records and logical bytes, what each added,
and the catalog's row counts.

The verb (:mod:`snapstore.ops.stats`) calls these; no SQL lives outside the catalog package.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from snapstore.store.catalog import BLOB_SHARE

#: Per (snapshot, base): records held, their logical bytes (raw length plus the bytes of the
#: attachments they name, from the registered ``att_w`` view) and the stored bytes of the blobs
#: it was first to hold. Computed from the record versions' intervals (a running sum of
#: begin/end events per table), never per snapshot per record: an unchanged snapshot costs a row.
PER_SNAPSHOT = """
WITH w AS (
    SELECT rv.table_pk, rv.begin_seq, rv.end_seq, b.rlen + coalesce(a.att_bytes, 0) AS bytes
    FROM record_version rv LEFT JOIN blob b ON b.hash = rv.hash LEFT JOIN att_w a ON a.hash = rv.hash),
ev AS (
    SELECT table_pk, begin_seq AS seq, count(*) AS dn, sum(bytes) AS db FROM w GROUP BY ALL
    UNION ALL
    SELECT table_pk, end_seq, -count(*), -sum(bytes) FROM w WHERE end_seq IS NOT NULL GROUP BY ALL),
cum AS (
    SELECT table_pk, seq,
           sum(dn) OVER (PARTITION BY table_pk ORDER BY seq) AS n,
           sum(db) OVER (PARTITION BY table_pk ORDER BY seq) AS bytes
    FROM (SELECT table_pk, seq, sum(dn) dn, sum(db) db FROM ev GROUP BY ALL)),
firsts AS (
    SELECT rv.hash, min(rv.begin_seq) AS seq, arg_min(rv.table_pk, rv.begin_seq) AS table_pk
    FROM record_version rv GROUP BY rv.hash),
added AS (
    SELECT f.seq, f.table_pk, sum(b.share) AS clen FROM firsts f JOIN """ + BLOB_SHARE + """ b ON b.hash = f.hash
    GROUP BY ALL)
SELECT st.seq, s.id, st.base_id, sum(coalesce(c.n, 0))::BIGINT AS records,
       sum(coalesce(c.bytes, 0))::BIGINT AS logical, sum(coalesce(ad.clen, 0))::BIGINT AS added
FROM snapshot_table st JOIN snapshot s ON s.seq = st.seq
ASOF LEFT JOIN cum c ON c.table_pk = st.table_pk AND st.seq >= c.seq
LEFT JOIN added ad ON ad.table_pk = st.table_pk AND ad.seq = st.seq
GROUP BY ALL ORDER BY st.seq, st.base_id
"""


def attachment_sizes(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Attachment id -> its size in bytes."""
    return dict(con.execute("SELECT att_id, size FROM attachment").fetchall())


def per_snapshot(con: duckdb.DuckDBPyConnection, att_w: pa.Table) -> list[tuple[int, str, str, int, int, int]]:
    """(seq, commit id, base id, records, logical bytes, added bytes) per snapshot and base, oldest
    first (see :data:`PER_SNAPSHOT`); ``att_w``: (record hash, bytes of the attachments it names)."""
    con.register("att_w", att_w)
    rows = con.execute(PER_SNAPSHOT).fetchall()
    con.unregister("att_w")
    return rows


def row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many packs, blobs, record versions and attachments the catalog holds."""
    return dict(zip(("packs", "blobs", "record_versions", "attachments"), con.execute(
        """SELECT (SELECT count(*) FROM pack), (SELECT count(*) FROM blob),
                  (SELECT count(*) FROM record_version), (SELECT count(*) FROM attachment)""").fetchone(),
        strict=True))


def bytes_added(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, int]]:
    """(seq, commit id, bytes the snapshot added as its writer counted them), oldest first."""
    return con.execute("SELECT seq, id, bytes_added FROM snapshot ORDER BY seq").fetchall()
