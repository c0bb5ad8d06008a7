"""Benchmark the change feed: what a snapshot costs at the source when little changed.

    python bench/bench_feed.py            # 100,000 records in 5 tables (generation takes ~30 s)
    python bench/bench_feed.py --quick    # 10,000 records

A base of 5 tables with links, lookups and rollups; the emulator's rate limits ON, its clock running
``--scale`` times real time and snapstore's throttle matched to it; requests counted by the emulator.
Every simulated hour 0.1% of the records are edited (through churn, as a user in the UI would), then a
feed snapshot runs. Prints figures, never passes or fails:

- requests per feed snapshot, against ``3 + ceil(re-read / 100)`` and against a full listing;
- time at Airtable's real limits (5 requests/s per base: requests / 5), against the full listing's;
- an unchanged base: its requests and the local work of the run;
- calls per month for hourly snapshots (with and without the periodic full listing);
- the share of records re-read only for knock-ons.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapstore.emulator import Emulator, ScaledClock, generate_workspace  # noqa: E402
from snapstore.feed import manage  # noqa: E402
from snapstore.feed.hints import feed_hints  # noqa: E402
from snapstore.snapshot import SnapshotOptions, plan_snapshot, take_snapshot  # noqa: E402
from snapstore.source import AirtableSource  # noqa: E402
from snapstore.store import Store  # noqa: E402

HOURS_PER_MONTH = 24 * 30


def run(emu, src, store, **opts):
    now = lambda: datetime.fromtimestamp(emu.clock.now(), UTC)  # noqa: E731
    emu.counters.reset()
    t = time.perf_counter()
    hints = feed_hints(store, full_every=None, changes=opts.get("changes", "auto"), now=now())
    plan = plan_snapshot(src, feed=hints)
    res = take_snapshot(store, src, plan, SnapshotOptions(attachments=False, now=now, full_every=None, **opts))
    wall = time.perf_counter() - t
    c = emu.counters.snapshot()
    return res, wall, c["total"]["requests"], {r: v["requests"] for r, v in c["routes"].items() if v["requests"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--hours", type=int, default=6, help="simulated hourly snapshots")
    ap.add_argument("--scale", type=float, default=50.0, help="emulator clock speed (limits scale with it)")
    ap.add_argument("--edit-share", type=float, default=0.001)
    args = ap.parse_args()
    per_table = 2000 if args.quick else 20000
    t = time.perf_counter()
    ws = generate_workspace(seed=1, bases=1, tables_per_base=5, records_per_table=per_table, attachment_share=0.0,
                            comment_share=0.0, link_share=0.3)
    total = ws.record_count()
    print(f"workspace: {total:,} records in 5 tables with links, lookups and rollups "
          f"(generated in {time.perf_counter() - t:.0f}s); clock x{args.scale:g}, limits on")
    k = args.scale
    with Emulator(ws, clock=ScaledClock(k)) as emu, tempfile.TemporaryDirectory() as d:
        src = AirtableSource(emu.token, emu.url, rate_base=5 * k, rate_token=50 * k, penalty=30 / k)
        store = Store.open(Path(d) / "store", create=True)
        base_id = ws.bases[0].id
        manage.enable(store, src, [{"id": base_id}], now=datetime.fromtimestamp(emu.clock.now(), UTC))
        res, wall, full_reqs, routes = run(emu, src, store)
        print(f"baseline full listing: {full_reqs:,} requests ({routes}), {wall:.1f}s at x{k:g}; "
              f"at Airtable's 5/s: {full_reqs / 5:,.0f}s")
        feed_rows = []
        for h in range(args.hours):
            emu.clock.advance(3600)
            emu.churn(seed=100 + h, edit_share=args.edit_share, add_share=0.0, delete_share=0.0)
            res, wall, reqs, routes = run(emu, src, store)
            f = res.feed[0]
            reread = f["reread_changed"] + f["reread_knockon"]
            feed_rows.append((reqs, wall, f, reread, routes))
            target = 3 + math.ceil(reread / 100)
            touched = sum(1 for t in res.tables if t.new or t.changed or t.deleted)
            floor = 4 + touched  # whoami, bases, hook list, payloads + one list request per table touched
            print(f"  hour {h + 1}: {f['mode']}, {f['payloads']} payload(s), re-read {f['reread_changed']} changed + "
                  f"{f['reread_knockon']} knock-on, {f['tables_listed']} table(s) listed; {reqs} requests "
                  f"(issue's target 3 + ceil(re-read/100) = {target}; the list API is per table, so at least "
                  f"4 + {touched} tables touched = {floor}) {routes}; {wall:.2f}s at x{k:g}, at 5/s: {reqs / 5:.1f}s")
        emu.clock.advance(3600)
        res, wall_u, reqs_u, routes_u = run(emu, src, store)
        local = res.info.stats.get("local_seconds")
        print(f"unchanged base: {reqs_u} requests ({routes_u}; whoami and list bases are per run, not per base), "
              f"{res.feed[0]['requests']} for the base; run {wall_u:.2f}s, the store's local work {local}s")
        emu.clock.advance(3600)
        res, wall_f, reqs_f, routes_f = run(emu, src, store, changes="full")
        print(f"full listing for comparison: {reqs_f:,} requests, {wall_f:.1f}s at x{k:g}, at 5/s: {reqs_f / 5:,.0f}s; "
              f"records the feed missed: {res.feed[0]['missed']}")
        src.close()
    reqs = [r[0] for r in feed_rows]
    mean = statistics.mean(reqs)
    knock = sum(r[2]["reread_knockon"] for r in feed_rows)
    rer = sum(r[3] for r in feed_rows)
    print("summary:")
    print(f"  requests per feed snapshot: mean {mean:.1f}, max {max(reqs)} (full listing: {reqs_f:,})")
    print(f"  time at Airtable's 5 requests/s: feed {mean / 5:.1f}s (max {max(reqs) / 5:.1f}s) vs full "
          f"{reqs_f / 5:,.0f}s; measured at x{k:g}: feed {statistics.mean(r[1] for r in feed_rows):.2f}s per run")
    month_feed = mean * HOURS_PER_MONTH
    month_daily = mean * (HOURS_PER_MONTH - 30) + reqs_f * 30
    month_weekly = mean * (HOURS_PER_MONTH - 4) + reqs_f * 4
    print(f"  calls per month, hourly: feed only {month_feed:,.0f}; with --full-every 24h {month_daily:,.0f}; "
          f"with --full-every 7d {month_weekly:,.0f}; full listings every hour {reqs_f * HOURS_PER_MONTH:,.0f}")
    print(f"  knock-on share of re-reads: {knock}/{rer} = {knock / max(rer, 1):.0%}")


if __name__ == "__main__":
    main()
