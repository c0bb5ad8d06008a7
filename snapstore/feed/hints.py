"""What the store already knows, so that a feed snapshot's plan makes no request it can do without.

A run that reads only fed bases needs neither ``whoami`` nor the bases listing nor their schemas:
the parent snapshot holds the schemas (re-read only when a payload says they changed), and the last
bases listing (``stats.bases_listed`` of the newest commit: when, and what it returned) names the
bases and their permission levels. The token is then proven by the first real request (the hook
listing of each base, which the plan makes with the quick retries of a preflight).

The bases are listed again (with ``whoami``, as before the feed) whenever anything is in doubt:
the last listing is older than :data:`sweep.BASES_EVERY` (24 h: a new base joins within a day), a
selected base is not in it or not read through a healthy feed, a base is due for a sweep (its full
listing costs far more than this one request), a table selection, ``--changes full``, or a hook
listing that failed for a base (access lost: the listing tells and the run says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from snapstore.feed import sweep
from snapstore.feed.state import doc_schema, iso, latest_state, load_registry, parse_time


@dataclass
class FeedHints:
    now: datetime
    schemas: dict[str, dict] = field(default_factory=dict)  # fed base id → its stored schema
    fed: set[str] = field(default_factory=set)  # bases with a registry hook and a feed state naming it
    sweep_due: set[str] = field(default_factory=set)  # fed bases whose next run is a full listing
    listed_at: datetime | None = None  # the last bases listing this store's snapshots carry
    visible: list[dict] | None = None  # what it returned: [{id, name, permissionLevel}]
    skip: bool = True  # False: always list the bases (--changes full, or a doubt about the store)

    def must_list(self, base_ids: list[str]) -> str | None:
        """Why the plan must list the bases for a run over ``base_ids`` (None: it need not)."""
        if not self.skip:
            return "the feed is not used this run"
        if self.visible is None or self.listed_at is None:
            return "no earlier bases listing"
        if self.now - self.listed_at >= sweep.BASES_EVERY:
            return f"the last bases listing is older than {sweep.BASES_EVERY.total_seconds() / 3600:g} h"
        if not base_ids:
            return "no base selected"
        for b in base_ids:
            if b not in self.fed:
                return f"base {b} is not read through the feed"
            if b in self.sweep_due:
                return f"base {b} is due for a full listing"
        return None


def feed_hints(store, *, full_every: float | str | None = sweep.AUTO, changes: str = "auto",
               now: datetime | None = None) -> FeedHints:
    """The hints for a run of ``store`` at ``now``. Never raises: on any doubt the plan lists."""
    hints = FeedHints(now or datetime.now(UTC), skip=changes != "full")
    try:
        docs = store.catalog.snapshot_docs()
        if docs:
            listing = (json.loads(docs[-1][2]).get("stats") or {}).get("bases_listed") or {}
            if isinstance(listing.get("bases"), list) and parse_time(listing.get("at")) is not None:
                hints.listed_at, hints.visible = parse_time(listing["at"]), listing["bases"]
        if changes == "full":
            return hints
        reg = load_registry(store)
        if reg.problem:
            hints.skip = False
            return hints
        for base_id, hook in reg.hooks.items():
            doc, st, _problem = latest_state(store, base_id, docs)
            if doc is None or st is None:
                continue
            hints.schemas[base_id] = doc_schema(store, doc, base_id)
            if st.hook_id != hook.hook_id:
                continue
            hints.fed.add(base_id)
            counts = [t.get("records") for b in doc.get("bases") or [] if b.get("base_id") == base_id
                      for t in b.get("tables") or []]
            if sweep.due(parse_time(st.last_full), sweep.interval(full_every, counts), hints.now):
                hints.sweep_due.add(base_id)
    except Exception:  # noqa: BLE001 - an optimisation only: the plan then lists everything
        return FeedHints(hints.now, skip=False)
    return hints


def listing_record(visible: list[dict], at: datetime | str | None) -> dict:
    """``stats.bases_listed`` of a commit: when the bases were listed and what the listing returned."""
    return {"at": at if isinstance(at, str) or at is None else iso(at),
            "bases": [{"id": b["id"], "name": b.get("name"), "permissionLevel": b.get("permissionLevel")}
                      for b in visible]}
