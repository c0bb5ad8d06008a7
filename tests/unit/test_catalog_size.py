"""The catalog costs what it indexes: small blocks from the first row, and no dead space kept
after a prune drops rows."""

from __future__ import annotations

import duckdb
from storegen import BASE, TABLE, churn, make_records
from storegen import snapshot as _snapshot

from snapstore.ops.prune import prune
from snapstore.ops.retention import Policy, forget
from snapstore.ops.verify import verify
from snapstore.store import Store
from snapstore.store.catalog import BLOCK_SIZE


def _blocks(store: Store) -> tuple[int, int, int]:
    """(block size, blocks, free blocks) of the catalog file."""
    store.catalog.unpin()
    con = duckdb.connect(str(store.catalog.path), read_only=True)
    try:
        _n, _s, block, total, _used, free, *_ = con.execute("PRAGMA database_size").fetchone()
    finally:
        con.close()
    return block, total, free


def test_a_new_catalog_is_small_before_its_first_row(tmp_path):
    store = Store.init(tmp_path / "s")
    block, total, _free = _blocks(store)
    assert block == BLOCK_SIZE == 16384
    # nine tables: with DuckDB's default 256 KiB blocks this file was 2.2 MiB
    assert store.catalog.path.stat().st_size < 512 * 1024


def test_prune_gives_the_dropped_rows_space_back_and_keeps_every_kept_record(tmp_path):
    store = Store.init(tmp_path / "s")
    recs = make_records(4000)
    _snapshot(store, recs)
    for day in range(1, 6):  # 30% churn a day: most of the first snapshot's versions end
        recs = churn(recs, 0.3, seed=day)
        _snapshot(store, recs)
    forget(store, Policy(last=1))
    keep = sorted((r["id"], r["fields"]) for r in store.records("latest", BASE, TABLE))
    prune(store, max_unused="0%")
    _block, total, free = _blocks(store)
    assert free / total < 0.25, (total, free)
    assert sorted((r["id"], r["fields"]) for r in store.records("latest", BASE, TABLE)) == keep
    assert len(store.list_snapshots()) == 1 and not verify(store).damage


def test_compact_rewrites_an_old_catalog_of_large_blocks(tmp_path, monkeypatch):
    import snapstore.store.catalog as catalog

    with monkeypatch.context() as m:  # a catalog as they were made before: DuckDB's 256 KiB blocks
        m.setattr(catalog, "BLOCK_SIZE", 262144)
        store = Store.init(tmp_path / "s")
        _snapshot(store, make_records(500))
        assert _blocks(store)[0] == 262144
    rows = sorted(store.records("latest", BASE, TABLE), key=lambda r: r["id"])
    assert store.catalog.compact()
    assert _blocks(store)[0] == BLOCK_SIZE
    assert sorted(store.records("latest", BASE, TABLE), key=lambda r: r["id"]) == rows
    assert not store.catalog.compact(), "a compact file is left alone"
