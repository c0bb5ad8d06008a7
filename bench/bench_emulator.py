"""Benchmark: the emulator with one 100,000-record table (every field type).

Prints generation time, a full listing through pyairtable (time, requests, bytes) and memory:
resident set after generation, and the process's peak RSS (VmHWM). Then snapstore's own snapshot of a
smaller workspace under each rate-limit model (strict window, token bucket) with a per-request latency:
requests against the floor (ceil(records/100) a table), 429s, the wall time it takes on a clock
``--scale`` times faster, and what the requests alone need at Airtable's 5/s. Figures, not pass/fail.

    python3 bench/bench_emulator.py [--records 100000] [--attachment-share 0.2] [--use-field-ids]
                                    [--floor-records 20000] [--latency lognormal:0.25:0.4] [--scale 50]
"""

from __future__ import annotations

import argparse
import gc
import time


def _status(key: str) -> int:
    """kB value of a /proc/self/status line (VmRSS, VmHWM)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--attachment-share", type=float, default=0.2)
    ap.add_argument("--comment-share", type=float, default=0.1)
    ap.add_argument("--use-field-ids", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--floor-records", type=int, default=20_000, help="records of the rate-model runs (4 tables)")
    ap.add_argument("--latency", default="lognormal:0.25:0.4", help="the emulator's per-request latency")
    ap.add_argument("--scale", type=float, default=50.0, help="the rate-model runs' clock speed")
    args = ap.parse_args()
    if args.records:
        listing(args)
    for model in ("window", "bucket"):
        rate_model_run(args, model)


def rate_model_run(args, model: str) -> None:
    """snapstore's snapshot under one rate-limit model: requests, 429s, wall time."""
    import math
    import tempfile
    from pathlib import Path

    from snapstore.emulator import Emulator, ScaledClock, generate_workspace
    from snapstore.ops.snapshot import SnapshotOptions, plan_snapshot, take_snapshot
    from snapstore.source import AirtableSource
    from snapstore.store import Store

    k = args.scale
    ws = generate_workspace(seed=args.seed, bases=2, tables_per_base=2, records_per_table=args.floor_records // 4,
                            attachment_share=0.0, comment_share=0.0)
    floor = sum(math.ceil(len(t.records) / 100) for b in ws.bases for t in b.tables)
    with Emulator(ws, clock=ScaledClock(k), rate_model=model, latency=args.latency) as emu, \
            tempfile.TemporaryDirectory() as d:
        src = AirtableSource(emu.token, emu.url, rate_base=5 * k, rate_token=50 * k, penalty=30 / k)
        t0 = time.perf_counter()
        res = take_snapshot(Store.open(Path(d) / "s", create=True), src, plan_snapshot(src),
                            SnapshotOptions(attachments=False))
        wall = time.perf_counter() - t0
        src.close()
        c = emu.counters.snapshot()
    lists = c["routes"]["list_records"]["requests"]
    print(f"rate model {model} (latency {args.latency} clock s, clock x{k:g}): {res.status}, {lists:,} list requests "
          f"(floor {floor:,}), {c['total']['requests']:,} in all, {c['total']['429s']} x 429; wall {wall:.1f}s at "
          f"x{k:g} (local work included); at Airtable's 5/s per base the requests alone need "
          f">= {max(c['bases'][b]['requests'] for b in c['bases']) / 5:.0f}s; mean latency "
          f"{emu.latency_total / max(1, c['total']['requests']):.3f} s a request")


def listing(args) -> None:

    from pyairtable import Api

    from snapstore.emulator import Emulator, generate_workspace

    base_rss = _status("VmRSS")
    t0 = time.perf_counter()
    ws = generate_workspace(seed=args.seed, bases=1, tables_per_base=1, records_per_table=args.records,
                            attachment_share=args.attachment_share, link_share=0.5, comment_share=args.comment_share)
    gen_s = time.perf_counter() - t0
    gc.collect()
    gen_rss = _status("VmRSS")
    table = ws.bases[0].tables[0]
    cells = sum(len(r.cells) for r in table.records.values())
    print(f"workspace: {args.records:,} records x {len(table.fields)} fields ({len({f['type'] for f in table.fields})} "
          f"types), {cells:,} non-empty cells, {len(ws.attachments):,} attachment files "
          f"({sum(len(b) for b in ws.blobs.values()) / 1e6:.1f} MB)")
    print(f"generate: {gen_s:.1f} s; RSS {base_rss / 1024:.0f} MB -> {gen_rss / 1024:.0f} MB "
          f"(+{(gen_rss - base_rss) / 1024:.0f} MB for the workspace)")

    with Emulator(ws, rate_limits=False) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        t = api.table(ws.bases[0].id, table.id)
        emu.counters.reset()
        n = 0
        t0 = time.perf_counter()
        for page in t.iterate(use_field_ids=args.use_field_ids):
            n += len(page)
        list_s = time.perf_counter() - t0
        snap = emu.counters.snapshot()["routes"]["list_records"]
    assert n == args.records, (n, args.records)
    peak = _status("VmHWM")
    print(f"full listing: {n:,} records in {list_s:.1f} s ({n / list_s:,.0f} records/s), "
          f"{snap['requests']:,} requests, {snap['bytes_sent'] / 1e6:.1f} MB sent "
          f"(client + server in one process, rate limits off)")
    print(f"peak RSS (VmHWM, whole process incl. pyairtable client): {peak / 1024:.0f} MB")


if __name__ == "__main__":
    main()
