"""When every comment of a table is read again (a comment sweep), what it costs, and what it found.

A snapshot with comments re-reads a record's comments only when its ``commentCount`` changed: an
edited comment keeps the count, comments are not in the change feed, and the API gives no cheaper
sign of an edit, so without a sweep the old text would stay in the store for ever. A sweep reads the
comments of every record that has some: ``ceil(comments/100)`` requests per such record (pages of
100, newest first), whatever changed. Measured on the emulator (bench/comment_sweep.py): a table of
10,000 records with 1,000 commented ones costs 1,000 requests per sweep, ~200 s at 5 requests/s.

Schedule: a table is swept when its last sweep is older than ``--comments-every`` (weekly unless
told; ``never``: only with ``--comments full``). A run that read every commented record anyway (a
first snapshot with comments) counts as a sweep. Where the last sweep ran is recorded per table in
each snapshot's commit (``stats.comments.tables``), so the store itself says when the next is due,
whichever machine took the last snapshot.

Budget: a weekly sweep costs ``cost × 30/7`` calls a month: 4,300 for the table above, 4.3 % of a
Team plan's 100,000. :func:`fit_interval` is the planner's hook: the shortest interval (never
shorter than the one asked for) at which sweeps fit the calls a month left to them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from snapstore.feed.state import iso, parse_time

PER_PAGE = 100
DAY = 86400.0
#: ``--comments-every`` unless told: a week.
DEFAULT_EVERY = 7 * DAY
#: The month of a monthly API budget (Airtable counts calls per calendar month; 30 days is its floor).
MONTH = 30 * DAY
#: ``--comments`` values: off, only what changed (with sweeps on schedule), or a sweep now.
MODES = ("off", "changed", "full")


def key(base_id: str, table_id: str) -> str:
    return f"{base_id}/{table_id}"


def sweep_requests(counts: Iterable[int]) -> int:
    """Requests of one sweep: ``ceil(n/100)`` per record with ``n > 0`` comments."""
    return sum(math.ceil(n / PER_PAGE) for n in counts if n > 0)


def due(last: datetime | None, every: float | None, now: datetime) -> bool:
    """A table is swept when it never was, or its last sweep is ``every`` seconds old (never when
    ``every`` is None)."""
    if every is None:
        return False
    return last is None or (now - last).total_seconds() >= every


def fit_interval(cost: int, calls_per_month: float | None, wanted: float | None = DEFAULT_EVERY) -> float | None:
    """Seconds between sweeps costing ``cost`` requests so that they use at most ``calls_per_month``
    (None: no budget, ``wanted`` as is). Never shorter than ``wanted``; None when nothing is left
    for sweeps (then only ``--comments full`` sweeps)."""
    if wanted is None or calls_per_month is None or cost <= 0:
        return wanted
    if calls_per_month <= 0:
        return None
    return max(float(wanted), cost * MONTH / calls_per_month)


def budgeted_every(store, every: float | None, budget: int | None) -> float | None:
    """The sweep interval a snapshot uses under a monthly API ``budget``: ``every`` fitted into the
    calls the month has left once this snapshot's own expected cost is set aside (the ledger's record
    of the last snapshot). As the month's calls run low, sweeps are spaced out, and with none left
    they wait for the next month (or ``--comments full``), so a sweep never takes the calls the
    users' own integrations need."""
    if budget is None or every is None:
        return every
    from snapstore import ledger

    sid = store.config.get("store_id")
    used = ledger.usage(store.backend, budget=budget, store_id=sid)
    cost = sweep_cost(last_records(store.catalog.snapshot_docs()))
    left = budget - used.total - ledger.expected_requests(store.backend, "snapshot", used.month, sid)
    return fit_interval(cost, max(left, 0), every)


def sweep_cost(records: dict[str, dict]) -> int:
    """Requests one sweep of every table costs, from :func:`last_records`."""
    return sum(int(r.get("sweep_requests") or 0) for r in records.values())


def last_records(docs: list) -> dict[str, dict]:
    """Per table (``base/table``), the newest comments record a commit holds: ``last_sweep``,
    ``records_with_comments``, ``sweep_requests``, ``edits`` (see :func:`table_record`). ``docs``:
    ``catalog.snapshot_docs()`` (oldest first)."""
    out: dict[str, dict] = {}
    for _seq, _cid, doc_json in reversed(docs):
        doc = json.loads(doc_json) if isinstance(doc_json, str | bytes) else doc_json
        tables = ((doc.get("stats") or {}).get("comments") or {}).get("tables") or {}
        for k, rec in tables.items():
            if k not in out and isinstance(rec, dict):
                out[k] = rec
    return out


def table_record(*, swept: bool, sweep_due: bool, last_sweep: str | None, every: float | None, requests: int,
                 records_with_comments: int, sweep_cost: int, edits: int | None, now: datetime) -> dict:
    """What a snapshot commits about one table's comments (``stats.comments.tables[base/table]``)."""
    return {"swept": swept, "sweep_due": sweep_due, "last_sweep": iso(now) if swept else last_sweep,
            "every": every, "requests": requests, "records_with_comments": records_with_comments,
            "sweep_requests": sweep_cost, "edits": edits}


def summary(tables: dict[str, dict]) -> dict:
    """``stats.comments``: the per-table records and their sums."""
    swept = [r for r in tables.values() if r["swept"]]
    return {
        "tables": tables,
        "requests": sum(r["requests"] for r in tables.values()),
        "swept_tables": len(swept),
        "edits": sum(r["edits"] or 0 for r in swept) if swept else None,
        "sweep_requests": sum(r["sweep_requests"] for r in tables.values()),
    }


def plan(store, every: float | None = DEFAULT_EVERY, *, calls_per_month: float | None = None,
         now: datetime | None = None) -> dict:
    """For a planner (no token needed): per table, its last sweep, what a sweep costs, when the next
    is due at ``every`` fitted into ``calls_per_month`` (the calls a month left for sweeps), and the
    monthly cost at that interval. Costs come from the last snapshot that read the table's comments."""
    from datetime import UTC

    now = now or datetime.now(UTC)
    records = last_records(store.catalog.snapshot_docs())
    cost = sweep_cost(records)
    interval = fit_interval(cost, calls_per_month, every)
    tables = {}
    for k, r in sorted(records.items()):
        last = parse_time(r.get("last_sweep"))
        nxt = None if interval is None else (now if last is None else last + timedelta(seconds=interval))
        tables[k] = {"last_sweep": r.get("last_sweep"), "sweep_requests": int(r.get("sweep_requests") or 0),
                     "edits": r.get("edits"), "next_due": iso(nxt), "due": due(last, interval, now)}
    monthly = 0 if interval is None else math.ceil(cost * MONTH / max(interval, 1.0))
    return {"every": interval, "sweep_requests": cost, "calls_per_month": monthly, "tables": tables}


def summary_lines(stats: dict | None) -> list[str]:
    """The snapshot summary's comments line (empty without comments)."""
    if not stats:
        return []
    line = f"comments: {stats['requests']:,} request(s)"
    if stats.get("swept_tables"):
        line += (f"; swept {stats['swept_tables']} table(s) ({stats['sweep_requests']:,} requests a sweep), "
                 f"{stats['edits'] or 0} edited comment(s) found")
    else:
        line += f"; no sweep due (a sweep costs {stats['sweep_requests']:,} requests)"
    return [line]
