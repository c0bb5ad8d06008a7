"""Benchmark: `snapstore serve`'s pages, rendered on the server, on a store with many snapshots.

Builds a store through the writer API: one table of --records records, --snapshots snapshots each
editing --churn of them, and a last snapshot editing --diff-changes records (the big diff). Then
times each page through the app in-process (Starlette's TestClient: routing, the gate, the library
calls and the template; no network), median of --repeat. Targets: dashboard and record page
< 300 ms, any diff page < 1 s. Prints figures; never passes or fails on time.

    python bench/bench_serve.py                       # 20,000 records, 100 snapshots, 20,000-change diff
    python bench/bench_serve.py --records 1000000 --snapshots 1000 --diff-changes 100000   # the issue's size (hours)
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapstore.serve.app import Context, build  # noqa: E402
from snapstore.serve.security import COOKIE, Gate  # noqa: E402
from snapstore.store import Store  # noqa: E402
from tests.storegen import make_records, snapshot  # noqa: E402


def edit(records: list[dict], n: int, rng: random.Random) -> None:
    for i in rng.sample(range(len(records)), min(n, len(records))):
        r = records[i]
        records[i] = dict(r, fields={**r["fields"], "fldNOTES000000001": f"edited {rng.random()}"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--snapshots", type=int, default=100)
    ap.add_argument("--churn", type=float, default=0.002, help="share of records edited per snapshot")
    ap.add_argument("--diff-changes", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", help="build the store here (or reuse it) instead of a temporary folder")
    a = ap.parse_args()

    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-serve-"))
    loc = root / "store"
    t0 = time.perf_counter()
    if not (loc / "config.json").exists():
        st = Store.init(loc)
        rng = random.Random(1)
        records = make_records(a.records)
        for k in range(a.snapshots - 1):
            snapshot(st, records)
            edit(records, int(a.records * a.churn), rng)
            if (k + 1) % 20 == 0:
                print(f"  {k + 1} snapshots, {time.perf_counter() - t0:.0f} s", flush=True)
        edit(records, a.diff_changes, rng)
        snapshot(st, records)
        print(f"built {a.snapshots} snapshots of {a.records:,} records in {time.perf_counter() - t0:.0f} s")
    st = Store.open(loc)
    snaps = st.list_snapshots()
    rid = make_records(1)[0]["id"]

    from starlette.testclient import TestClient

    gate = Gate({"testserver"})
    app = build(Context(store=st, location=str(loc), gate=gate, budget=100_000))
    client = TestClient(app)
    client.cookies.set(COOKIE, gate.session)
    pages_total = -(-a.diff_changes // 50)
    pages = [
        ("dashboard", "/", 0.3),
        ("timeline", "/timeline", 0.3),
        ("record page", f"/record/{rid}", 0.3),
        (f"diff of {a.diff_changes:,} changes, page 1", "/diff", 1.0),
        (f"diff of {a.diff_changes:,} changes, last page", f"/diff?page={pages_total}", 1.0),
        (f"diff of {int(a.records * a.churn):,} changes", f"/diff?a={snaps[2].full_id}&b={snaps[1].full_id}", 1.0),
    ]
    print(f"store: {len(snaps)} snapshots, {a.records:,} records a snapshot; median of {a.repeat}")
    for name, path, target in pages:
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            r = client.get(path)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
        med = statistics.median(times)
        print(f"  {name:<40} {med * 1000:8.0f} ms  (target < {target * 1000:.0f} ms{'' if med < target else ': MISSED'})")
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
