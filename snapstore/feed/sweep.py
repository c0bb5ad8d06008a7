"""When a feed base is listed in full (a sweep), and when the bases themselves are listed again.

A sweep costs what a full listing costs (Σ ceil(records/100) over the base's tables), so with a fixed
interval the sweeps of a large base dominate its monthly calls: measured on bench_feed's 100,000
records, hourly feed snapshots cost ~5,000 calls a month and a daily sweep 30,000 more. ``auto`` (the
default of ``--full-every``) gives each base an interval in hours equal to its listing's cost in
pages, clamped to [24 h, 7 days]: sweeps then average at most about one request an hour per base
(never more than the feed itself costs), small bases are still swept daily, and no base goes longer
than a week (Airtable's payload retention) without its feed being measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

PER_PAGE = 100
AUTO = "auto"
#: The clamp of ``auto``, in hours.
MIN_HOURS, MAX_HOURS = 24, 7 * 24
#: A run that skips the bases listing (every base it reads is fed) still lists them when the last
#: listing is older than this: a base created in the workspace joins the snapshots within a day,
#: for 30 requests a month.
BASES_EVERY = timedelta(hours=24)


def listing_pages(record_counts: Iterable[int | None]) -> int:
    """Requests of a full listing: ceil(n/100) per table, one for an empty table."""
    return sum(max(1, math.ceil((n or 0) / PER_PAGE)) for n in record_counts)


def interval(full_every: float | str | None, record_counts: Iterable[int | None]) -> float | None:
    """Seconds between sweeps of a base: ``full_every`` as given (seconds, or None for never), or
    for ``auto`` its listing's pages as hours, clamped to [24 h, 7 days]."""
    if full_every != AUTO:
        return None if full_every is None else float(full_every)
    return float(min(MAX_HOURS, max(MIN_HOURS, listing_pages(record_counts))) * 3600)


def due(last_full: datetime | None, every: float | None, now: datetime) -> bool:
    """A sweep is due: never listed in full, or the last full listing is ``every`` seconds old."""
    if every is None:
        return False
    return last_full is None or (now - last_full).total_seconds() >= every


def next_due(last_full: datetime | None, every: float | None) -> datetime | None:
    if every is None or last_full is None:
        return None
    return last_full + timedelta(seconds=every)
