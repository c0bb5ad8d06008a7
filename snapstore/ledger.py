"""The API call ledger: every request snapstore makes to Airtable, counted per base and per UTC
month, kept in the store one small object per run, so several machines sharing a store add up.

Airtable caps API calls per workspace and month on some plans (Free: 1,000; Team: 100,000; calls
over the Free limit are refused with ``PUBLIC_API_BILLING_LIMIT_EXCEEDED``), and the remaining
quota cannot be asked of the API. The only count there is, is the one snapstore keeps.

A run record (``ledger/YYYY-MM/<sha256 of its bytes>``, JSON sealed like a tag event: an encrypted
store's records say nothing in clear) is written create-only after each run of a verb that talks to
Airtable or writes the store, whatever its outcome::

    {"type": "run", "v": 1, "time": iso, "verb": "snapshot", "host": "...", "exit_code": 3,
     "line": "the CLI's one line", "snapshot": full id or null, "requests": {"app...": 12, "-": 2}}

``"-"`` counts requests that name no base (whoami, the bases listing). Reading sums a month's
records. Nothing here imports the store at import time: the Airtable client registers each of its
request counters with :func:`track` as it is made.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from snapstore.errors import SnapstoreError

PREFIX = "ledger"
#: requests naming no base (whoami, list bases)
NO_BASE = "-"
#: Monthly API calls per workspace by Airtable plan (Business and Enterprise: no monthly cap).
PLANS: dict[str, int | None] = {"free": 1_000, "team": 100_000, "business": None, "enterprise": None}
#: the share of the budget at which a notification goes out
WARN_SHARE = 0.8

_tracked: list[Any] = []
_tracked_lock = threading.Lock()


def track(stats: Any) -> None:
    """Count what ``stats`` (a source's RequestStats: requests per base) sees in this process's run."""
    with _tracked_lock:
        _tracked.append(stats)


def reset() -> None:
    """A new run in this process (the CLI's verb starts)."""
    with _tracked_lock:
        _tracked.clear()


def counted() -> dict[str, int]:
    """Requests per base of every client made since :func:`reset` (``"-"``: no base)."""
    out: Counter[str] = Counter()
    with _tracked_lock:
        stats = list(_tracked)
    for s in stats:
        snap = s.snapshot()
        out.update(snap["requests_by_base"])
        out[NO_BASE] += snap["requests"] - sum(snap["requests_by_base"].values())
    return {k: v for k, v in out.items() if v}


def month_of(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Run:
    """One run as the ledger keeps it."""

    verb: str
    time: datetime
    exit_code: int
    line: str = ""
    requests: dict[str, int] = field(default_factory=dict)
    snapshot: str | None = None
    host: str = ""
    bases: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def to_dict(self) -> dict:
        return {"type": "run", "v": 1, "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "verb": self.verb, "host": self.host, "exit_code": self.exit_code, "line": self.line,
                "snapshot": self.snapshot, "requests": dict(sorted(self.requests.items())),
                "bases": list(self.bases)}

    @classmethod
    def from_dict(cls, d: dict) -> Run:
        t = datetime.fromisoformat(str(d["time"]).replace("Z", "+00:00"))
        return cls(verb=d.get("verb", ""), time=t, exit_code=int(d.get("exit_code", 0)), line=d.get("line", ""),
                   requests={k: int(v) for k, v in (d.get("requests") or {}).items()},
                   snapshot=d.get("snapshot"), host=d.get("host", ""), bases=list(d.get("bases") or []))


def record(backend, run: Run) -> str:
    """Write ``run`` create-only under its month; its name is the SHA-256 of its sealed bytes."""
    from snapstore.store.crypto import box_of

    if not run.host:
        run.host = socket.gethostname()
    data = box_of(backend).seal(json.dumps(run.to_dict(), sort_keys=True).encode() + b"\n")
    name = hashlib.sha256(data).hexdigest()
    backend.put(f"{PREFIX}/{month_of(run.time)}/{name}", data)
    return name


def pending_dir(store_id: str):
    """This machine's runs not yet in the store: a run that failed or was a dry run leaves the store as
    it was (bad input changes nothing), so its requests wait here until the next run that writes the
    store carries them in (:func:`commit`). Outside the store: a plain store's folder is the store."""
    import os
    from pathlib import Path

    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "snapstore" / "ledger" / store_id


def keep_pending(store_id: str, run: Run) -> None:
    d = pending_dir(store_id)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps(run.to_dict(), sort_keys=True).encode()
    tmp = d / f".tmp-{hashlib.sha256(data).hexdigest()}"
    tmp.write_bytes(data)
    tmp.rename(d / f"{hashlib.sha256(data).hexdigest()}.json")


def pending(store_id: str | None) -> list[tuple[Any, Run]]:
    if not store_id:
        return []
    out = []
    for p in sorted(pending_dir(store_id).glob("*.json")):
        try:
            out.append((p, Run.from_dict(json.loads(p.read_bytes()))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def commit(backend, store_id: str, run: Run) -> None:
    """Write ``run`` and this machine's pending runs into the store (then forget the pending ones)."""
    for path, p in pending(store_id):
        record(backend, p)
        path.unlink(missing_ok=True)
    record(backend, run)


def runs(backend, month: str | None = None, store_id: str | None = None) -> list[Run]:
    """The runs of ``month`` (``YYYY-MM``; None: every month), oldest first. A record that cannot be
    read (damaged, another key) is skipped: the ledger counts, it never stops a backup."""
    from snapstore.store.backend import ObjectMissing
    from snapstore.store.crypto import Damaged, box_of

    out = []
    box = box_of(backend)
    for key, _size in backend.list(f"{PREFIX}/{month}" if month else PREFIX):
        try:
            out.append(Run.from_dict(json.loads(box.open(backend.get(key), "ledger record"))))
        except (ObjectMissing, Damaged, ValueError, KeyError, TypeError):
            continue
    out += [r for _p, r in pending(store_id) if month is None or month_of(r.time) == month]
    out.sort(key=lambda r: r.time)
    return out


@dataclass
class Usage:
    """A month's API calls: per base, in total, against the budget."""

    month: str
    by_base: dict[str, int]
    runs: int
    budget: int | None

    @property
    def total(self) -> int:
        return sum(self.by_base.values())

    @property
    def share(self) -> float | None:
        return None if not self.budget else self.total / self.budget

    def to_dict(self) -> dict:
        return {"month": self.month, "requests": self.total, "by_base": dict(sorted(self.by_base.items())),
                "runs": self.runs, "budget": self.budget,
                "share": None if self.share is None else round(self.share, 4)}


def usage(backend, month: str | None = None, budget: int | None = None, store_id: str | None = None) -> Usage:
    """A month's calls: the store's records, and this machine's pending ones with ``store_id``."""
    month = month or month_of(now())
    total: Counter[str] = Counter()
    rs = runs(backend, month, store_id)
    for r in rs:
        total.update(r.requests)
    return Usage(month, dict(total), len(rs), budget)


def budget_of(api_budget: int | None, plan: str | None) -> int | None:
    """``api_budget`` wins over ``plan``; neither: no budget."""
    if api_budget:
        return int(api_budget)
    if plan:
        return PLANS[plan.lower()]
    return None


def expected_requests(backend, verb: str, month: str | None = None, store_id: str | None = None) -> int:
    """What a run of ``verb`` is expected to cost: the last such run's count (this month, else
    any): a nightly snapshot costs about what last night's did."""
    for m in (month or month_of(now()), None):
        same = [r for r in runs(backend, m, store_id) if r.verb == verb and r.total]
        if same:
            return same[-1].total
    return 0


class OverBudget(SnapstoreError):
    """A run would cross the month's API budget: one line, exit 1, before its first request."""


def check_budget(backend, verb: str, budget: int | None, store_id: str | None = None) -> Usage | None:
    """Refuse a run that would cross ``budget`` (raises :class:`OverBudget`) before its first
    request; the month's usage otherwise (None without a budget)."""
    if not budget:
        return None
    u = usage(backend, budget=budget, store_id=store_id)
    need = expected_requests(backend, verb, u.month, store_id)
    if u.total + need > budget:
        raise OverBudget(
            f"this {verb} would cross the API budget: {u.total:,} of {budget:,} calls used in {u.month} "
            f"(UTC), and the last {verb} took {need:,}; run it anyway with --over-budget, or raise "
            "api_budget")
    return u


def crossed_warning(before: int, after: int, budget: int | None) -> bool:
    """This run took the month from below 80% of the budget to 80% or more."""
    if not budget:
        return False
    mark = WARN_SHARE * budget
    return before < mark <= after
