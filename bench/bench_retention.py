"""Retention benchmark (issue 8): 30 daily snapshots of 100,000 records at 1 % churn a day.

Reports the store's bytes after the first snapshot and after all 30, against 30 full NDJSON exports
of the same data (the naive backup: one dated folder per day), with the store broken down by object
kind (packs, manifests, dictionaries, commits). Then forget --keep-last 7, prune, verify --read-data.
Targets: store <= 1.5x one snapshot; >= 20x smaller than the naive folders.

    python3 bench/bench_retention.py                   # 100,000 records, 30 days
    python3 bench/bench_retention.py --records 20000   # quicker

Measured (2026-11-25, shared 4-core VM under load): day 1 store 16.30 MiB (NDJSON 36.25 MiB);
after 30 days 21.30 MiB = 1.307x one snapshot (packs 15.59, manifests 5.61, dictionaries 0.06,
commits 0.03 MiB); 30 naive NDJSON exports 1087.79 MiB = 51.1x the store; stats dedup ratio 49.7x;
forget --keep-last 7 + prune 7.1 s (21.27 -> 18.80 MiB); verify --read-data 8.5 s, clean.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from storegen import make_record, snapshot  # noqa: E402

from snapstore.ops.prune import prune  # noqa: E402
from snapstore.ops.retention import Policy, forget  # noqa: E402
from snapstore.ops.stats import stats  # noqa: E402
from snapstore.ops.verify import verify  # noqa: E402
from snapstore.store import Store  # noqa: E402
from snapstore.store import objects as objs  # noqa: E402


def breakdown(store: Store) -> dict[str, int]:
    out = {"packs": 0, "manifests": 0, "dictionaries": 0, "other objects": 0, "commits": 0, "indexes": 0}
    for _k, s in store.backend.list("packs"):
        out["packs"] += s
    for key, s in store.backend.list("objects"):
        head = store.backend.get_range(key, 0, 4)
        if head == b"\x37\xa4\x30\xec":
            out["dictionaries"] += s
            continue
        try:
            kind = objs.decode(store.backend.get(key)).get("type")
        except Exception:  # noqa: BLE001
            kind = None
        out["manifests" if kind == objs.MANIFEST else "other objects"] += s
    out["commits"] = sum(s for _k, s in store.backend.list("snapshots"))
    out["indexes"] = sum(s for _k, s in store.backend.list("index"))
    return out


def mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--churn", type=float, default=0.01)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-retention-")) / "store"
    store = Store.init(root)
    rng = random.Random(0)
    recs = [make_record(rng, i) for i in range(args.records)]
    ndjson_day = sum(len(orjson.dumps(r)) + 1 for r in recs)
    t0 = time.monotonic()
    first = None
    naive = 0
    for day in range(args.days):
        if day:
            for i in rng.sample(range(len(recs)), int(len(recs) * args.churn)):
                r = recs[i]
                recs[i] = dict(r, fields=dict(r["fields"], fldNOTES000000001=r["fields"]["fldNOTES000000001"] + f" day {day}"))
        naive += sum(len(orjson.dumps(r)) + 1 for r in recs) if day in (0, args.days - 1) else ndjson_day
        info = snapshot(store, recs)
        if first is None:
            first = sum(breakdown(store).values())
            print(f"day 1: {info.records} records, store {mib(first)} ({info.bytes_added} bytes added); "
                  f"NDJSON export {mib(ndjson_day)}")
    secs = time.monotonic() - t0
    b = breakdown(store)
    total = sum(b.values())
    print(f"{args.days} snapshots of {args.records} records at {args.churn:.0%} churn/day in {secs:.1f} s")
    print(f"  store after day {args.days}: {mib(total)} = {total / first:.3f}x one snapshot ({mib(first)})")
    print("    " + ", ".join(f"{k} {mib(v)}" for k, v in b.items()))
    print(f"  naive: {args.days} NDJSON exports = {mib(naive)}; the store is {naive / total:.1f}x smaller")
    st = stats(store)
    print(f"  stats: logical {mib(st['logical_bytes'])}, dedup ratio {st['dedup_ratio']}x, "
          f"catalog {mib(st['catalog_bytes'])} (rebuildable, not counted)")
    target = total <= 1.5 * first and naive / total >= 20
    print(f"  targets (<= 1.5x one snapshot, >= 20x smaller than naive): {'met' if target else 'MISSED'}")
    t = time.monotonic()
    forget(store, Policy(last=7))
    res = prune(store)
    print(f"forget --keep-last 7 + prune: {time.monotonic() - t:.1f} s, {mib(res.bytes_before)} -> "
          f"{mib(res.bytes_after)} ({len(res.packs_repack)} packs repacked, {len(res.packs_dead)} dropped, "
          f"{len(res.objects_dead)} objects dropped)")
    t = time.monotonic()
    rep = verify(store, read_data=True)
    print(f"verify --read-data: {'clean' if rep.ok else 'DAMAGE'} in {time.monotonic() - t:.1f} s ({rep.checked})")


if __name__ == "__main__":
    main()
