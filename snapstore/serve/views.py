"""What serve's pages show, gathered from the same library functions the CLI calls (the store,
snapstore.ops.diff, snapstore.ops.find, the ledger): no page computes a diff or a search of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from snapstore import ledger, units
from snapstore.ops import diff as ops_diff
from snapstore.store import SnapshotInfo, Store

#: records per diff page
PAGE = 50


def ago(t: datetime | None, now: datetime | None = None) -> str:
    if t is None:
        return "never"
    s = int(((now or datetime.now(UTC)) - t).total_seconds())
    if s < 0:
        return "in " + ago(now or datetime.now(UTC), t).removesuffix(" ago")
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s // n} {unit} ago"
    return f"{s} s ago"


@dataclass
class BaseRow:
    base_id: str
    name: str
    status: str  # complete | partial | failed | never
    reason: str = ""
    snapshot: SnapshotInfo | None = None
    records: int = 0
    when: datetime | None = None

    @property
    def problem(self) -> bool:
        return self.status in ("partial", "failed")


def base_rows(snaps: list[SnapshotInfo], runs: list[ledger.Run]) -> list[BaseRow]:
    """Each base's last snapshot (complete or partial, with the reason), or its last failed run when
    a snapshot run failed after it; problems first."""
    rows: dict[str, BaseRow] = {}
    names = {b.base_id: b.name for s in reversed(snaps) for b in s.bases}  # the newest name of each base
    for s in snaps:  # newest first
        for b in s.bases:
            if b.base_id in rows:
                continue
            miss = [m for m in s.missing if m.get("base_id") == b.base_id]
            rows[b.base_id] = BaseRow(b.base_id, b.name, "partial" if miss else "complete",
                                      "; ".join(m.get("reason", "") for m in miss), s,
                                      sum(t.records for t in b.tables), s.time)
        for m in s.missing:
            if m.get("base_id") not in rows:
                rows[m["base_id"]] = BaseRow(m["base_id"], names.get(m["base_id"], m["base_id"]), "partial", m.get("reason", ""), s,
                                             when=s.time)
    for r in runs:  # oldest first: the last word wins
        if r.verb != "snapshot" or r.exit_code in (0, 3) or r.snapshot:
            continue
        hit = [row for row in rows.values() if row.base_id in r.line or row.name in r.bases
               or row.base_id in r.bases] or (list(rows.values()) if not r.bases else [])
        for row in hit:
            if row.when is None or r.time > row.when:
                row.status, row.reason, row.when = "failed", r.line, r.time
    return sorted(rows.values(), key=lambda r: (not r.problem, r.name.lower()))


def store_size(store: Store) -> int:
    return sum(s for p in ("packs", "objects", "snapshots", "index", "tags", "ledger")
               for _k, s in store.backend.list(p))


@dataclass
class Dashboard:
    bases: list[BaseRow]
    snapshots: int
    last: SnapshotInfo | None
    usage: ledger.Usage
    size: int
    growth: int  # bytes added by the snapshots of the last 30 days
    last_verify: ledger.Run | None
    failures: list[ledger.Run]
    jobs: list[Any] = field(default_factory=list)

    @property
    def size_text(self) -> str:
        return units.size(self.size)

    @property
    def growth_text(self) -> str:
        return units.size(self.growth)


def dashboard(store: Store, budget: int | None, jobs: list) -> Dashboard:
    snaps = store.list_snapshots()
    sid = store.config.get("store_id")
    runs = ledger.runs(store.backend, None, sid)
    now = datetime.now(UTC)
    growth = sum(s.bytes_added for s in snaps if (now - s.time).days < 30)
    verifies = [r for r in runs if r.verb == "verify"]
    last_ok = {}
    failures = []
    for r in runs:
        if r.exit_code in (0,):
            last_ok[r.verb] = r.time
    for r in runs:
        if r.exit_code not in (0,) and r.time >= last_ok.get(r.verb, r.time):
            failures.append(r)
    return Dashboard(base_rows(snaps, runs), len(snaps), snaps[0] if snaps else None,
                     ledger.usage(store.backend, budget=budget, store_id=sid), store_size(store), growth,
                     verifies[-1] if verifies else None, list(reversed(failures))[:10], jobs)


@dataclass
class TimelinePoint:
    snap: SnapshotInfo
    added: int
    changed: int
    deleted: int


def timeline(store: Store, base: str | None = None, limit: int = 120) -> list[TimelinePoint]:
    out = []
    for s in store.list_snapshots()[:limit]:
        tabs = [t for b in s.bases if base in (None, "", b.base_id) for t in b.tables]
        out.append(TimelinePoint(s, sum(t.new for t in tabs), sum(t.changed for t in tabs),
                                 sum(t.deleted for t in tabs)))
    return list(reversed(out))


def chart(points: list[TimelinePoint], width: int = 960, height: int = 180) -> dict:
    """Stacked bars (added, changed, deleted per snapshot) as SVG rectangles, computed here: the
    page draws them with no script."""
    if not points:
        return {"bars": [], "width": width, "height": height, "max": 0}
    top = max(1, max(p.added + p.changed + p.deleted for p in points))
    w = min(width / len(points), 48.0)  # a few snapshots: bars, not slabs
    bars = []
    for i, p in enumerate(points):
        y = height
        for kind, n in (("added", p.added), ("changed", p.changed), ("deleted", p.deleted)):
            h = n / top * (height - 10)
            if n:
                y -= h
                bars.append({"x": round(i * w + 1, 1), "y": round(y, 1), "w": round(max(1.0, w - 2), 1),
                             "h": round(max(h, 1.0), 1), "kind": kind, "title": f"{p.snap.id}: {n} {kind}"})
    return {"bars": bars, "width": width, "height": height, "max": top}


@dataclass
class DiffPage:
    diff: ops_diff.Diff
    tables: list[ops_diff.TableDiff]  # this page's records only
    page: int
    pages: int
    total: int


def diff_page(store: Store, a: str, b: str, page: int = 1) -> DiffPage:
    """One page of the diff of ``a`` and ``b``: the whole diff's ids and counts (the catalog's
    intervals, no record read), then the labels and changed cells of this page's records only."""
    d = ops_diff.diff_snapshots(store, a, b, fields=False)
    flat = [(td, kind, rc) for td in d.tables for kind in ("changed", "added", "removed")
            for rc in getattr(td, kind)]
    pages = max(1, -(-len(flat) // PAGE))
    page = min(max(1, page), pages)
    chunk = flat[(page - 1) * PAGE: page * PAGE]
    by_table: dict[int, ops_diff.TableDiff] = {}
    for td, kind, rc in chunk:
        t = by_table.get(id(td))
        if t is None:
            t = by_table[id(td)] = ops_diff.TableDiff(td.base_id, td.base_name, td.table_id, td.name_a, td.name_b,
                                                       td.status, td.records_a, td.records_b)
        getattr(t, kind).append(rc)
    tables = list(by_table.values())
    ops_diff.add_field_changes(store, d, tables)
    return DiffPage(d, tables, page, pages, len(flat))


def cell(v: Any, width: int = 200) -> str:
    """A cell as a person reads it: text as it is, anything else the CLI's short form; ∅ when empty."""
    if v is None:
        return "∅"
    if isinstance(v, str):
        return v if len(v) <= width else v[: width - 1] + "…"
    return ops_diff.short_value(v, width)
