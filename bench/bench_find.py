"""find benchmark: records searched per second and peak memory (RSS) of `find` at two store sizes, to
show the search streams (memory flat with store size), for one snapshot and for --all over several.

    python bench/bench_find.py                     # 50,000 and 200,000 records, 3 snapshots (5% edited each)
    python bench/bench_find.py --records 20000,80000

Each search runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snapstore.store import Store  # noqa: E402
from tests.storegen import churn, make_records, snapshot  # noqa: E402

_CHILD = """
import json, resource, sys, time
from snapstore.ops.find import find
from snapstore.store import Store
store = Store.open(sys.argv[1])
t = time.perf_counter()
n = sum(1 for _ in find(store, sys.argv[2], everywhere=sys.argv[3] == "all"))
print(json.dumps({"hits": n, "seconds": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build(path: Path, n: int, snaps: int) -> None:
    store = Store.init(path)
    recs = make_records(n)
    for k in range(snaps):
        snapshot(store, recs)
        recs = churn(recs, 0.05, seed=k + 1)


def run(path: Path, text: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), text, mode], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", default="50000,200000")
    ap.add_argument("--snapshots", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.records.split(",")):
            path = Path(tmp) / f"s{n}"
            t = time.perf_counter()
            build(path, n, args.snapshots)
            print(f"{n:,} records x {args.snapshots} snapshots built in {time.perf_counter() - t:.1f}s")
            for text, mode in (("edited", "one"), ("edited", "all"), ("zzznothing", "one")):
                r = run(path, text, mode)
                versions = n if mode == "one" else int(n * (1 + 0.05 * (args.snapshots - 1)))
                print(f"  find {text!r} {'--all' if mode == 'all' else 'latest':7} {r['hits']:>7,} hits  "
                      f"{r['seconds']:6.2f}s  {versions / r['seconds']:>9,.0f} versions/s  peak RSS {r['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
