"""Export benchmark: seconds per format for N records, and peak memory (RSS) of an NDJSON export at two
sizes to show it stays flat.

    python bench/bench_export.py                      # 100,000 records per format; memory at 100k and 1M
    python bench/bench_export.py --records 20000 --memory-records 0   # quick
    python bench/bench_export.py --workers 1,2,auto                  # compare worker counts
    python bench/bench_export.py --tables 50 --memory-records 0      # the same records over 50 tables

Records are generated (realistic mix: text, numbers, selects, dates, collaborators, links, attachment
metadata, lookups, formulas; ~600 B canonical) and written through the store's writer API. Each
export runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own.
Targets: NDJSON, JSON, CSV, Parquet, SQLite >= 100,000 records/s; YAML >= 5,000 records/s; memory flat;
CSV and Parquet within 1.5x the CPU of DuckDB's own conversion of the same records from NDJSON
(``duckdb-csv``, ``duckdb-parquet``: ``COPY (SELECT id, createdTime, fields.* FROM read_ndjson(...))``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE = "appBENCH000000001"
TABLE = "tblBENCH000000001"
WORDS = ("alpha beta gamma delta invoice client review draft final budget plan launch report urgent "
         "north south east west mission soma castro marina sunset richmond").split()
FIELDS = [
    ("fldNAME0000000001", "Name", "singleLineText", None),
    ("fldNOTES000000001", "Notes", "multilineText", None),
    ("fldEMAIL000000001", "Email", "email", None),
    ("fldAMOUNT00000001", "Amount", "currency", {"precision": 2, "symbol": "$"}),
    ("fldQTY00000000001", "Qty", "number", {"precision": 0}),
    ("fldSTARS000000001", "Stars", "rating", {"icon": "star", "color": "yellowBright", "max": 5}),
    ("fldDONE0000000001", "Done", "checkbox", {"icon": "check", "color": "greenBright"}),
    ("fldSTATUS00000001", "Status", "singleSelect", {"choices": []}),
    ("fldTAGS0000000001", "Tags", "multipleSelects", {"choices": []}),
    ("fldDUE0000000001", "Due", "date", {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}}),
    ("fldWHEN0000000001", "When", "dateTime", {"timeZone": "utc", "dateFormat": {"name": "iso"}, "timeFormat": {"name": "24hour"}}),
    ("fldOWNER000000001", "Owner", "singleCollaborator", {}),
    ("fldLINKS000000001", "Related", "multipleRecordLinks", {"linkedTableId": TABLE, "isReversed": False, "prefersSingleRecordLink": False}),
    ("fldFILES000000001", "Files", "multipleAttachments", {"isReversed": False}),
    ("fldLOOKUP00000001", "Related names", "multipleLookupValues", {"isValid": True, "result": {"type": "singleLineText"}}),
    ("fldCALC0000000001", "Calc", "formula", {"formula": "1", "isValid": True, "result": {"type": "number"}}),
    ("fldAUTO0000000001", "ID", "autoNumber", None),
]
SCHEMA = {"tables": [{
    "id": TABLE, "name": "Work items", "primaryFieldId": FIELDS[0][0], "views": [],
    "fields": [{"id": i, "name": n, "type": t, **({"options": o} if o is not None else {})} for i, n, t, o in FIELDS],
}]}
USERS = [{"id": f"usrBENCH{i:09d}", "email": f"user{i}@example.com", "name": f"User {i}"} for i in range(50)]


def rec_id(i: int) -> str:
    return f"rec{i:014d}"


def make_record(rng: random.Random, i: int, n: int) -> dict:
    f = {
        "fldNAME0000000001": f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} #{i}",
        "fldNOTES000000001": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))),
        "fldEMAIL000000001": f"{rng.choice(WORDS)}{i}@example.com",
        "fldAMOUNT00000001": round(rng.uniform(0, 10000), 2),
        "fldQTY00000000001": rng.randint(0, 500),
        "fldSTARS000000001": rng.randint(1, 5),
        "fldSTATUS00000001": rng.choice(["Todo", "Doing", "Done"]),
        "fldTAGS0000000001": rng.sample(WORDS, rng.randint(0, 3)),
        "fldDUE0000000001": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "fldWHEN0000000001": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.000Z",
        "fldOWNER000000001": rng.choice(USERS),
        "fldLINKS000000001": [rec_id(rng.randrange(n)) for _ in range(rng.randint(0, 2))],
        "fldLOOKUP00000001": [rng.choice(WORDS)],
        "fldCALC0000000001": rng.randint(0, 1000),
        "fldAUTO0000000001": i + 1,
    }
    if rng.random() < 0.5:
        f["fldDONE0000000001"] = True
    if rng.random() < 0.1:
        f["fldFILES000000001"] = [{"id": f"attB{i:013d}", "url": "https://x", "filename": f"doc{i}.pdf",
                                   "size": 1000 + i, "type": "application/pdf"}]
    return {"id": rec_id(i), "createdTime": "2024-01-01T00:00:00.000Z", "fields": {k: v for k, v in f.items() if v != []}}


def schema(tables: int) -> dict:
    """SCHEMA's table, ``tables`` times (ids tblBENCH000000001, tblBENCH000000002, ...)."""
    out = []
    for k in range(tables):
        t = json.loads(json.dumps(SCHEMA["tables"][0]))
        t["id"], t["name"] = f"tblBENCH{k + 1:09d}", f"Work items {k + 1}" if tables > 1 else t["name"]
        out.append(t)
    return {"tables": out}


def build_store(path: Path, n: int, tables: int = 1) -> float:
    """A store of one snapshot: ``n`` records spread evenly over ``tables`` tables."""
    from snapstore.store import Store

    t0 = time.perf_counter()
    store = Store.open(path, create=True)
    snap = store.begin_snapshot(note=f"bench {n}", command="bench")
    sch = schema(tables)
    snap.add_base(BASE, "Bench", sch)
    rng = random.Random(42)
    with open(path.parent / f"{path.name}.ndjson", "wb") as nd:  # the same records, for DuckDB's anchor
        for k, t in enumerate(sch["tables"]):
            tw = snap.table(BASE, t["id"])
            for i in range(n * k // tables, n * (k + 1) // tables):
                rec = make_record(rng, i, n)
                tw.add(rec)
                nd.write(json.dumps(rec).encode() + b"\n")
            tw.finish()
    snap.commit()
    return time.perf_counter() - t0


def duckdb_child(store_path: str, fmt: str, out: str) -> dict:
    """The anchor: DuckDB converting the same records from NDJSON (``COPY ... TO``), one column per
    field, on the same cores."""
    import duckdb

    src = Path(store_path).parent / f"{Path(store_path).name}.ndjson"
    con = duckdb.connect()
    t0 = time.perf_counter()
    c0 = time.process_time()
    opts = "(FORMAT parquet, COMPRESSION zstd)" if fmt == "parquet" else "(FORMAT csv, HEADER)"
    n = con.execute(f"COPY (SELECT id, createdTime, fields.* FROM read_ndjson('{src}')) TO '{out}.{fmt}' {opts}"
                    ).fetchone()[0]
    return {"format": f"duckdb-{fmt}", "records": n, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "peak_rss_mb": peak_rss_mb(), "worker_peak_rss_mb": 0}


def child(store_path: str, fmt: str, out: str, workers: int | None = None) -> None:
    """Run one export in this (fresh) process; print seconds, CPU seconds (this process and its
    workers) and peak RSS (this process, and the largest worker) as JSON."""
    from snapstore_exporters import stream
    from snapstore_exporters.export import export_snapshot

    from snapstore.store import Store

    if fmt.startswith("duckdb-"):
        print(json.dumps(duckdb_child(store_path, fmt.split("-", 1)[1], out)))
        return
    store = Store.open(store_path)
    t0 = time.perf_counter()
    c0 = time.process_time()
    if fmt == "read":  # the stream alone, in-process: store read + parse + Airtable's shape, no writer
        snap = store.resolve("latest")
        n = 0
        tables = [t for base in stream.plan(store, snap) for t in base.tables]
        specs = [stream.TableSpec.of(t, snap.full_id) for t in tables]
        stream.use_store(store)
        for k, chunk in store.table_chunks(snap, [(t.base.base_id, t.table_id) for t in tables], size=2048):
            n += stream.encode_chunk(specs[k], chunk, None, (stream.Batch.shaped,))[0]
    else:
        res = export_snapshot(store, "latest", out, formats=fmt, attachments=False, workers=workers)
        n = res.records
    secs = time.perf_counter() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + kids.ru_utime + kids.ru_stime
    rss_mb = peak_rss_mb()
    print(json.dumps({"format": fmt, "records": n, "seconds": secs, "cpu_seconds": cpu, "peak_rss_mb": rss_mb,
                      "worker_peak_rss_mb": kids.ru_maxrss / 1024}))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM (Linux) is per address space, so unlike ru_maxrss it does not
    inherit the parent's peak across fork+exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_in_child(path: Path, n: int, tables: int = 1) -> float:
    """Build a store in a subprocess, so this process stays small."""
    cp = subprocess.run([sys.executable, __file__, "--build", str(path), str(n), str(tables)],
                        capture_output=True, text=True, check=True)
    return float(cp.stdout.strip().splitlines()[-1])


def run_child(store: Path, fmt: str, out: Path, workers: int | None = None) -> dict:
    cp = subprocess.run([sys.executable, __file__, "--child", str(store), fmt, str(out), str(workers or 0)],
                        capture_output=True, text=True, check=True)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--memory-records", type=int, default=1_000_000, help="0 to skip the large memory run")
    ap.add_argument("--formats", default="duckdb-csv,duckdb-parquet,read,ndjson,json,csv,parquet,sqlite,yaml,all",
                    help="duckdb-csv, duckdb-parquet: DuckDB's COPY from NDJSON of the same records (the anchor)")
    ap.add_argument("--workers", default="1,auto",
                    help="worker counts to compare, e.g. 1,2 ('auto': one per core, what export picks)")
    ap.add_argument("--tables", type=int, default=1, help="spread the records over this many tables")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--build", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child[:3], workers=int(args.child[3]) or None)
        return
    if args.build:
        print(build_store(Path(args.build[0]), int(args.build[1]), int((args.build[2:] or [1])[0])))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        store = work / "store"
        secs = build_in_child(store, args.records, args.tables)
        print(f"store: {args.records:,} records in {args.tables} table(s) written in {secs:.1f}s")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (records/s by wall and by CPU time)")
        counts = [None if w == "auto" else int(w) for w in args.workers.split(",")]
        print(f"{'format':8} {'workers':>7} {'seconds':>8} {'records/s':>10} {'cpu s':>7} {'rec/cpu-s':>10} "
              f"{'peak RSS MB':>12}")
        for fmt in args.formats.split(","):
            fmts = "json,yaml,ndjson,csv,sqlite,parquet" if fmt == "all" else fmt
            for w in counts if fmt != "read" and not fmt.startswith("duckdb") else [1]:
                r = run_child(store, fmts if fmt != "read" else "read", work / f"out-{fmt}", w)
                label = "auto" if w is None else str(w)
                print(f"{fmt:8} {label:>7} {r['seconds']:8.2f} {r['records'] / r['seconds']:10,.0f} "
                      f"{r['cpu_seconds']:7.2f} {r['records'] / r['cpu_seconds']:10,.0f} {r['peak_rss_mb']:12.0f}"
                      + (f" (+ workers {r['worker_peak_rss_mb']:.0f} each)" if r["worker_peak_rss_mb"] > 50 else ""),
                      flush=True)
                shutil.rmtree(work / f"out-{fmt}", ignore_errors=True)
        if args.memory_records:
            big = work / "store-big"
            secs = build_in_child(big, args.memory_records)
            print(f"store: {args.memory_records:,} records written in {secs:.1f}s")
            runs = [(args.records, run_child(store, fmt, work / f"mem-small-{fmt}")) for fmt in ("read", "ndjson")]
            runs += [(args.memory_records, run_child(big, fmt, work / f"mem-large-{fmt}")) for fmt in ("read", "ndjson")]
            for n, r in runs:
                print(f"{r['format']:6} {n:>9,} records: {r['seconds']:.1f}s ({r['records'] / r['seconds']:,.0f}/s wall, "
                      f"{r['records'] / r['cpu_seconds']:,.0f}/cpu-s), peak RSS {r['peak_rss_mb']:.0f} MB"
                      f" (largest worker {r['worker_peak_rss_mb']:.0f} MB)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
