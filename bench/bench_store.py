"""The store alone, on generated records: first snapshot, unchanged, 1% changed.

Prints seconds of local work, bytes written, catalog rows added and peak memory.
Targets (issue 3): >= 50,000 records/s first snapshot; unchanged 100k in < 1 s; catalog growth per
unchanged snapshot independent of the record count; peak memory for 1,000,000 records < 1 GiB.

    python3 bench/bench_store.py --records 100000
    python3 bench/bench_store.py --records 1000000
    python3 bench/bench_store.py --records 100000 --format 1   # the format-1 layout, to compare
    python3 bench/bench_store.py --records 1000000 --format 3 --rebuild   # + rebuild-catalog's time
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from storegen import BASE, SCHEMA, TABLE, make_record  # noqa: E402

from snapstore.store import Store  # noqa: E402


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "catalog" not in p.name)


def catalog_rows(store: Store) -> dict[str, int]:
    with store.catalog.read() as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("snapshot", "snapshot_table", "blob", "record_version", "pack")}


def records(n: int, seed: int, edit: float, pregenerated: list | None):
    import random

    rng = random.Random(seed)
    erng = random.Random(1000 + int(edit * 1000))
    for i in range(n):
        # regenerated identically from the seed (the same records each run) unless held in memory
        r = pregenerated[i] if pregenerated is not None else make_record(rng, i)
        if edit and erng.random() < edit:
            r = dict(r, fields=dict(r["fields"]))
            r["fields"]["fldNOTES000000001"] += " edited"
        yield r


def run(store: Store, n: int, seed: int, edit: float, pregenerated: list | None) -> tuple[float, object]:
    t0 = time.perf_counter()
    snap = store.begin_snapshot()
    snap.add_base(BASE, "bench", SCHEMA)
    tw = snap.table(BASE, TABLE)
    for r in records(n, seed, edit, pregenerated):
        tw.add(r)
    tw.finish()
    info = snap.commit()
    return time.perf_counter() - t0, info


def gen_time(n: int, seed: int) -> float:
    import random

    rng = random.Random(seed)
    t0 = time.perf_counter()
    for i in range(n):
        make_record(rng, i)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--format", type=int, default=2, choices=(1, 2, 3), help="store format to write")
    ap.add_argument("--rebuild", action="store_true", help="also time rebuild-catalog (format 3 hashes every "
                    "record frame's records)")
    args = ap.parse_args()
    n = args.records
    pre = None
    if n <= 200_000:
        # held in memory so the timing is the store's work alone
        import random

        rng = random.Random(0)
        pre = [make_record(rng, i) for i in range(n)]
        gen = 0.0
        print(f"records: {n:,} (pre-generated in memory; times are the store's work alone)")
    else:
        gen = gen_time(n, 0)
        print(f"records: {n:,} generated on the fly (generation alone {gen:.2f} s, subtracted as 'local work'); "
              "peak RSS is the figure to read here")
    gc.freeze()
    with tempfile.TemporaryDirectory() as d:
        store = Store.init(Path(d) / "store", format_version=args.format)
        print(f"store format {args.format}")
        prev_bytes, prev_rows = dir_bytes(store.root), catalog_rows(store)
        for label, edit in (("first", 0.0), ("unchanged", 0.0), ("1% changed", 0.01)):
            secs, info = run(store, n, 0, edit, pre)
            b, rows = dir_bytes(store.root), catalog_rows(store)
            added = {k: rows[k] - prev_rows[k] for k in rows}
            local = max(secs - gen, 1e-9)
            t = info.table(BASE, TABLE)
            print(f"{label:>11}: {secs:6.2f} s total, {local:6.2f} s local work ({n / local:,.0f} rec/s); "
                  f"bytes written {b - prev_bytes:,}; new/changed {t.new:,}/{t.changed:,}; catalog rows added {added}")
            prev_bytes, prev_rows = b, rows
        t0 = time.perf_counter()
        got = sum(1 for _ in store.records(info, BASE, TABLE))
        secs = time.perf_counter() - t0
        print(f"  read back: {got:,} records in {secs:.2f} s ({got / secs:,.0f} rec/s, decoded to dicts)")
        if args.rebuild:
            t0 = time.perf_counter()
            store.rebuild_catalog()
            secs = time.perf_counter() - t0
            print(f"  rebuild-catalog: {secs:.2f} s for {len(store.list_snapshots())} snapshots of {n:,} records "
                  f"({secs / n * 1e6:.2f} s per million records)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {peak:,.0f} MiB; store on disk {dir_bytes(store.root):,} bytes + catalog "
              f"{(store.root / 'catalog.duckdb').stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
