"""The catalog's answers for ``diff`` and ``history``: the record versions that differ between two
snapshots, a table's records at one, every version of one record, and the comments hash of each
table (comments change no record hash, so diff compares them by this hash first).

The functions that take a connection let ``diff`` make all its reads in one short connection
(a connection costs ~20 ms).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from snapstore.store.catalog import Catalog

# The versions that differ between lo < hi are exactly those valid at lo that end in (lo, hi]
# and those valid at hi that begin in (lo, hi]: two filters on integer columns (begin_seq is
# clustered, so zone maps skip most row groups), then a join of the two small sets. A record
# deleted and re-created with the same content, or born and gone in between, drops out.
_DIFF_SQL = """
WITH v_lo AS (
    SELECT table_pk, record_id, hash FROM record_version
    WHERE table_pk IN (SELECT unnest($pks::INTEGER[]))
      AND begin_seq <= $lo AND end_seq > $lo AND end_seq <= $hi),
v_hi AS (
    SELECT table_pk, record_id, hash FROM record_version
    WHERE table_pk IN (SELECT unnest($pks::INTEGER[]))
      AND begin_seq > $lo AND begin_seq <= $hi AND (end_seq IS NULL OR end_seq > $hi))
SELECT table_pk, record_id, {old}.hash AS old_hash, {new}.hash AS new_hash
FROM v_lo FULL OUTER JOIN v_hi USING (table_pk, record_id)
WHERE v_lo.hash IS DISTINCT FROM v_hi.hash
ORDER BY table_pk, record_id
"""

_MEMBERS_SQL = """
SELECT rv.table_pk, rv.record_id, rv.hash FROM record_version rv
WHERE rv.table_pk IN (SELECT unnest($pks::INTEGER[]))
  AND rv.begin_seq <= $s AND (rv.end_seq IS NULL OR rv.end_seq > $s)
ORDER BY rv.table_pk, rv.record_id
"""

_HISTORY_SQL = """
SELECT rv.table_pk, t.base_id, t.table_id, rv.hash, rv.begin_seq, rv.end_seq,
       list(st.seq ORDER BY st.seq) FILTER (WHERE st.seq IS NOT NULL) AS seqs
FROM record_version rv JOIN at_table t USING (table_pk)
LEFT JOIN snapshot_table st ON st.table_pk = rv.table_pk AND st.seq >= rv.begin_seq
     AND (rv.end_seq IS NULL OR st.seq < rv.end_seq)
WHERE rv.record_id = $rid
GROUP BY ALL
ORDER BY rv.begin_seq, rv.table_pk
"""


def table_keys(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], int]:
    """(base_id, table_id) -> table_pk, every table the catalog has known."""
    return {(r[0], r[1]): r[2] for r in con.execute("SELECT base_id, table_id, table_pk FROM at_table").fetchall()}


def changed_versions(con: duckdb.DuckDBPyConnection, table_pks: list[int], seq_a: int, seq_b: int) -> pa.Table:
    """The records of the tables ``table_pks`` whose version differs between snapshots ``seq_a``
    and ``seq_b`` (either may be the older one): an Arrow table (table_pk, record_id, old_hash,
    new_hash) by table and record id, ``old_hash`` the version at ``seq_a`` (null: not there),
    ``new_hash`` the one at ``seq_b``. Its cost is proportional to the change, not to the tables."""
    sql = _DIFF_SQL.format(old="v_lo", new="v_hi") if seq_a <= seq_b else _DIFF_SQL.format(old="v_hi", new="v_lo")
    return con.execute(sql, {"pks": table_pks, "lo": min(seq_a, seq_b), "hi": max(seq_a, seq_b)}).to_arrow_table()


def versions_at(con: duckdb.DuckDBPyConnection, table_pks: list[int], seq: int) -> pa.Table:
    """Every record of the tables ``table_pks`` in snapshot ``seq``: an Arrow table (table_pk,
    record_id, hash) by table and record id (a table only one side of a diff holds)."""
    return con.execute(_MEMBERS_SQL, {"pks": table_pks, "s": seq}).to_arrow_table()


def record_versions(con: duckdb.DuckDBPyConnection, record_id: str) -> list[tuple]:
    """Every version of one record, by first seq then table: (table_pk, base_id, table_id, hash,
    begin_seq, end_seq, [seqs of the snapshots holding it] or None when every one was forgotten)."""
    return con.execute(_HISTORY_SQL, {"rid": record_id}).fetchall()


def table_seqs(con: duckdb.DuckDBPyConnection, table_pk: int) -> list[int]:
    """The seqs of the snapshots holding the table, oldest first."""
    return [r[0] for r in con.execute(
        "SELECT DISTINCT seq FROM snapshot_table WHERE table_pk = ? ORDER BY seq", [table_pk]).fetchall()]


def comment_hashes(catalog: Catalog, seqs: list[int]) -> dict[tuple[int, str, str], bytes | None]:
    """(seq, base_id, table_id) -> the hash of the table's comments in that snapshot (None: none
    stored), for every table of the snapshots ``seqs``."""
    with catalog.read() as con:
        rows = con.execute("SELECT seq, base_id, table_id, comments_hash FROM snapshot_table WHERE seq IN ("
                           + ", ".join("?" for _ in seqs) + ")", list(seqs)).fetchall()
    return {(s, b, t): (bytes(h) if h is not None else None) for s, b, t, h in rows}


__all__ = ["changed_versions", "comment_hashes", "record_versions", "table_keys", "table_seqs", "versions_at"]
