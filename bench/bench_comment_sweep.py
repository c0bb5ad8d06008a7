"""What a comment sweep costs, measured on the emulator, and how often one fits a monthly API budget.

A table of ``--records`` records, ``--commented`` of them with comments (one table, one base). Prints
the requests of a first snapshot with comments, of a snapshot that reads changed counts only (no
sweep due), and of ``--comments full`` (a sweep), counted by snapstore and by the emulator; the time
a sweep takes at Airtable's 5 requests/s; and, for a plan's monthly budget (Team: 100,000 calls), the
calls a month daily snapshots of the table take, what a weekly sweep adds, and the interval
``comment_sweep.fit_interval`` gives when sweeps may use the calls left.

    python3 bench/bench_comment_sweep.py --records 10000 --commented 1000
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from snapstore.emulator import Emulator, generate_workspace
from snapstore.ops import comment_sweep
from snapstore.ops.snapshot import Selection, SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.source import AirtableSource
from snapstore.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--commented", type=int, default=1_000)
    ap.add_argument("--budget", type=int, default=100_000, help="API calls a month (Team plan: 100,000)")
    args = ap.parse_args()
    ws = generate_workspace(seed=1, bases=1, tables_per_base=1, records_per_table=args.records,
                            attachment_share=0.0, comment_share=0.0)
    table = ws.bases[0].tables[0]
    users = ws.users
    for i, rec in enumerate(list(table.records.values())[: args.commented]):
        rec.comments = [{"id": f"com{i:014d}", "author": dict(users[i % len(users)]), "text": f"comment {i}",
                         "createdTime": "2024-01-01T00:00:00.000Z", "lastUpdatedTime": None}]
    with tempfile.TemporaryDirectory() as tmp, Emulator(ws, rate_limits=False) as emu:
        client = AirtableSource(emu.token, emu.url, rate_base=5000, rate_token=50000)
        store = Store.open(Path(tmp) / "store", create=True)

        def run(mode) -> dict:
            emu.counters.reset()
            res = take_snapshot(store, client, plan_snapshot(client, Selection()), SnapshotOptions(comments=mode))
            c = res.info.stats["comments"]
            return {"listing": res.requests["requests_by_route"].get("list_records", 0), "comments": c["requests"],
                    "emulator_comments": emu.counters.requests("list_comments"), "swept": c["swept_tables"],
                    "sweep_requests": c["sweep_requests"]}

        first, changed, full = run("changed"), run("changed"), run("full")
        client.close()
    print(f"table: {args.records:,} records, {args.commented:,} with comments")
    for name, r in (("first snapshot with comments", first), ("next snapshot (counts only)", changed),
                    ("--comments full (a sweep)", full)):
        print(f"  {name:30} list {r['listing']:>6,}  comments {r['comments']:>6,} (emulator {r['emulator_comments']:,})"
              f"  swept tables {r['swept']}")
    cost = full["comments"]
    print(f"a sweep: {cost:,} requests, {cost / 5:.0f} s at 5 requests/s")
    daily = math.ceil(args.records / 100) * 30
    weekly = math.ceil(cost * comment_sweep.MONTH / comment_sweep.DEFAULT_EVERY)
    print(f"a month: daily snapshots {daily:,} calls (listing), weekly sweeps +{weekly:,} "
          f"({100 * weekly / args.budget:.1f}% of {args.budget:,})")
    left = args.budget - daily
    fit = comment_sweep.fit_interval(cost, left)
    print(f"fit_interval with the {left:,} calls left: every {fit / 86400:.1f} days" if fit else "no room for sweeps")


if __name__ == "__main__":
    main()
