"""What encryption costs: the same records into a plain and an encrypted store, in one run.

Prints seconds for a first snapshot, an unchanged snapshot, a 1%-churn snapshot, reading every
record back (what export streams), and a store open (scrypt included once per process, then
cached), plain vs encrypted, with the ratio, and the store sizes. Issue 17's target: encryption
costs <= 10% on first snapshot, unchanged snapshot and export. Best of ``--repeat`` runs.

    python3 bench/bench_crypt.py --records 100000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from storegen import BASE, TABLE, churn, make_records, snapshot  # noqa: E402

from snapstore.store import Store, keys  # noqa: E402

PASSWORD = "bench password"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def one_run(root: Path, recs: list[dict], changed: list[dict], password: str | None) -> dict:
    keys._derived.clear()
    out = {"open (first, scrypt)": timed(lambda: Store.init(root, password=password))}
    store = Store.open(root, password=password)
    store.backend.fsync = False
    out["open (again)"] = timed(lambda: Store.open(root, password=password))
    out["first snapshot"] = timed(lambda: snapshot(store, recs))
    out["unchanged snapshot"] = timed(lambda: snapshot(store, recs))
    out["1% churn snapshot"] = timed(lambda: snapshot(store, changed))
    out["read all records"] = timed(lambda: sum(1 for _ in store.records("latest", BASE, TABLE)))
    out["_bytes"] = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith("catalog"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    recs = make_records(args.records)
    changed = churn(recs, 0.01)
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for kind, pw in (("plain", None), ("encrypted", PASSWORD)):  # interleaved: the machine's load hits both
                r = one_run(Path(tmp) / f"{kind}{i}", recs, changed, pw)
                b = best.setdefault(kind, r)
                for k, v in r.items():
                    b[k] = min(b[k], v)
    print(f"{args.records:,} records, best of {args.repeat}")
    print(f"{'':24} {'plain s':>9} {'encrypted s':>12} {'ratio':>7}")
    for k in best["plain"]:
        if k.startswith("_"):
            continue
        p, e = best["plain"][k], best["encrypted"][k]
        print(f"{k:24} {p:9.3f} {e:12.3f} {e / p if p else float('nan'):7.2f}")
    pb, eb = best["plain"]["_bytes"], best["encrypted"]["_bytes"]
    print(f"{'store bytes':24} {pb:9,} {eb:12,} {eb / pb:7.3f}")


if __name__ == "__main__":
    main()
