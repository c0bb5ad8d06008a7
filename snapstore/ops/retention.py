"""Retention: which snapshots a policy keeps (restic's ``forget`` rules), forgetting the others, and tags.

Policy evaluation is restic's ``ApplyPolicy`` (internal/restic/snapshot_policy.go): snapshots are
grouped (here: by the set of bases they hold), sorted newest first, and walked once. Every
``--keep-<period> N`` rule keeps the newest snapshot of each of the newest N calendar periods that
have a snapshot (hour = YYYY-MM-DD HH, day, ISO year-week, month, year; UTC); ``--keep-last N``
the N newest; ``--keep-within D`` every snapshot newer than the group's newest minus D
(``1y5m7d2h``, calendar arithmetic like Go's ``AddDate``); ``--keep-within-<period> D`` the newest
snapshot of each period within D; ``--keep-tag a,b`` every snapshot carrying all of a and b. Rules
are ORed. If a counted rule still has periods left when the walk reaches the oldest snapshot, the
oldest snapshot is kept too ("oldest daily snapshot"). N = -1 means unlimited. An empty policy is refused.

Forgetting a snapshot deletes its commit object (the truth) and then its catalog rows. Before it
deletes anything, forget writes a store index (see ``snapstore.store.inventory``) that covers every
commit present, so the packs, large attachments and attachment rows that the forgotten commits
introduced stay known to ``rebuild-catalog``, and a forget record per commit, so that a commit
whose object is gone is told apart: recorded, an interrupted forget (finished by the next forget or
prune); not recorded, a lost commit (damage: forget and prune refuse to act until it is repaired or
named to forget). Data is only removed by ``prune``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from snapstore import isotime
from snapstore.errors import UsageError
from snapstore.store import Store, StoreError, objects
from snapstore.store import inventory as inv
from snapstore.store.catalog import retention as catalog_ret

log = logging.getLogger("snapstore.ops.retention")

# ---- durations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        s = text.strip()
        if not re.fullmatch(r"(\d+[ymdh])+", s):
            raise ValueError(f"invalid duration {text!r}: use numbers with y, m, d, h, like 1y6m or 2d3h")
        parts = {"y": 0, "m": 0, "d": 0, "h": 0}
        for n, unit in re.findall(r"(\d+)([ymdh])", s):
            parts[unit] += int(n)
        return cls(parts["y"], parts["m"], parts["d"], parts["h"])

    def zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        out = "".join(f"{v}{u}" for v, u in ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")) if v)
        return out or "0h"

    def before(self, t: datetime) -> datetime:
        """``t`` minus this duration, as Go's ``t.AddDate(-y, -m, -d).Add(-h)`` (days overflow forward)."""
        y = t.year - self.years
        m = t.month - self.months
        y += (m - 1) // 12
        m = (m - 1) % 12 + 1
        base = t.replace(year=y, month=m, day=1)
        return base + timedelta(days=t.day - 1 - self.days) - timedelta(hours=self.hours)


# ---- policy --------------------------------------------------------------------------------------

PERIODS = ("hourly", "daily", "weekly", "monthly", "yearly")


def period_key(kind: str, t: datetime) -> tuple:
    """restic's buckets: natural calendar boundaries (ISO week for weekly)."""
    if kind == "hourly":
        return (t.year, t.month, t.day, t.hour)
    if kind == "daily":
        return (t.year, t.month, t.day)
    if kind == "weekly":
        y, w, _ = t.isocalendar()
        return (y, w)
    if kind == "monthly":
        return (t.year, t.month)
    if kind == "yearly":
        return (t.year,)
    raise ValueError(kind)


@dataclass
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None
    within_periods: dict[str, Duration] = field(default_factory=dict)  # "hourly" -> Duration
    tags: list[list[str]] = field(default_factory=list)  # each: all of these tags

    def empty(self) -> bool:
        return (
            not any((self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly))
            and (self.within is None or self.within.zero())
            and not any(not d.zero() for d in self.within_periods.values())
            and not self.tags
        )

    def describe(self) -> str:
        parts = [f"keep-{k} {'unlimited' if v == -1 else v}" for k, v in
                 (("last", self.last), *((p, getattr(self, p)) for p in PERIODS)) if v]
        if self.within and not self.within.zero():
            parts.append(f"keep-within {self.within}")
        parts += [f"keep-within-{p} {d}" for p, d in self.within_periods.items() if not d.zero()]
        parts += [f"keep-tag {','.join(t)}" for t in self.tags]
        return ", ".join(parts)


@dataclass
class Candidate:
    id: str
    time: datetime
    tags: list[str] = field(default_factory=list)
    group: tuple = ()


@dataclass
class Decision:
    snap: Candidate
    keep: bool
    reasons: list[str]


def apply_policy(snaps: Iterable[Candidate], policy: Policy) -> list[Decision]:
    """One group: newest first, each with keep/forget and the reasons it is kept (restic's wording)."""
    if policy.empty():
        raise StoreError("refusing an empty policy: give at least one --keep-* option")
    ordered = sorted(snaps, key=lambda s: (s.time, s.id), reverse=True)
    if not ordered:
        return []
    counted = [["last", policy.last, None, "last snapshot"]] + [
        [p, getattr(policy, p), None, f"{p} snapshot"] for p in PERIODS
    ]
    within_b = [[p, d, None, f"{p} within"] for p, d in policy.within_periods.items() if not d.zero()]
    latest = ordered[0].time
    out = []
    n = len(ordered)
    for nr, cur in enumerate(ordered):
        reasons: list[str] = []
        for tl in policy.tags:
            if all(t in cur.tags for t in tl):
                reasons.append(f"has tags [{' '.join(tl)}]")
        if policy.within is not None and not policy.within.zero() and cur.time > policy.within.before(latest):
            reasons.append(f"within {policy.within}")
        for b in counted:
            kind, count, last, reason = b
            if count > 0 or count == -1:
                val = nr if kind == "last" else period_key(kind, cur.time)
                if val != last or nr == n - 1:
                    if val == last and nr == n - 1:
                        reason = f"oldest {reason}"
                    b[2] = val
                    if count > 0:
                        b[1] = count - 1
                    reasons.append(reason)
        for b in within_b:
            kind, dur, last, reason = b
            if cur.time > dur.before(latest):
                val = period_key(kind, cur.time)
                if val != last or nr == n - 1:
                    if val == last and nr == n - 1:
                        reason = f"oldest {reason}"
                    b[2] = val
                    reasons.append(f"{reason} {dur}")
        out.append(Decision(cur, bool(reasons), reasons))
    return out


def plan(snaps: Iterable[Candidate], policy: Policy) -> dict[tuple, list[Decision]]:
    """Group by ``Candidate.group`` and apply the policy to each group."""
    groups: dict[tuple, list[Candidate]] = {}
    for s in snaps:
        groups.setdefault(s.group, []).append(s)
    return {g: apply_policy(v, policy) for g, v in sorted(groups.items())}


# ---- forgetting ----------------------------------------------------------------------------------


@dataclass
class ForgetResult:
    policy: str
    groups: dict[tuple, list[Decision]]
    removed: list[str]  # full ids
    dry_run: bool

    @property
    def kept(self) -> list[Decision]:
        return [d for ds in self.groups.values() for d in ds if d.keep]

    def to_dict(self) -> dict:
        return {
            "policy": self.policy, "dry_run": self.dry_run,
            "groups": [
                {"bases": list(g), "keep": [{"id": d.snap.id[:8], "time": _iso(d.snap.time), "reasons": d.reasons}
                                            for d in ds if d.keep],
                 "remove": [{"id": d.snap.id[:8], "time": _iso(d.snap.time)} for d in ds if not d.keep]}
                for g, ds in self.groups.items()
            ],
            "removed": [r[:8] for r in self.removed],
        }


def _iso(t: datetime) -> str:
    return isotime.iso(t)


def candidates(store: Store) -> list[Candidate]:
    return [Candidate(s.full_id, s.time, list(s.tags), tuple(sorted(b.base_id for b in s.bases)))
            for s in store.list_snapshots()]


@contextlib.contextmanager
def writer_lock(store: Store, command: str, *, dry_run: bool) -> Iterator[None]:
    """The store's lock for ``command``; a dry run, which writes nothing, goes on without it when
    the lock file cannot be written at all (a read-only store or disk): it only reads."""
    try:
        held = store.lock(command).acquire()
    except OSError as e:
        if not dry_run or e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
            raise
        log.info("%s: the store cannot be locked (%s); a dry run reads it without the lock", command, e.strerror)
        yield
        return
    try:
        yield
    finally:
        held.release()


def forget(store: Store, policy: Policy | None = None, *, ids: Iterable[str] = (), dry_run: bool = False) -> ForgetResult:
    """Apply ``policy`` (and/or forget the named snapshots) under the writer lock."""
    ids = list(ids)
    if (policy is None or policy.empty()) and not ids:
        raise StoreError("refusing an empty policy: give at least one --keep-* option or snapshot ids")
    with writer_lock(store, "forget", dry_run=dry_run):
        store.sync()
        explicit = {store.resolve(i).full_id for i in ids}
        if not dry_run:  # a lost commit named here is forgotten on purpose
            finish_pending_forgets(store, forgetting=explicit)
        snaps = candidates(store)
        if policy is not None and not policy.empty():
            groups = plan(snaps, policy)
        else:
            groups = {(): [Decision(s, s.id not in explicit, ["not named"] if s.id not in explicit else [])
                           for s in sorted(snaps, key=lambda s: (s.time, s.id), reverse=True)]}
        for ds in groups.values():
            for d in ds:
                if d.snap.id in explicit:
                    d.keep, d.reasons = False, []
        remove = [d.snap.id for ds in groups.values() for d in ds if not d.keep]
        if not dry_run and remove:
            remove_snapshots(store, remove)
        return ForgetResult(policy.describe() if policy else "", groups, remove, dry_run)


def write_store_index(store: Store, *, rename: dict[str, str] | None = None) -> str:
    """A store index of everything the catalog knows now, covering every commit in it (``rename``:
    commits it covers under another id, as repair writes them again)."""
    with store.catalog.read() as con:
        covers = [(rename or {}).get(c, c) for c in catalog_ret.commit_ids(con)]
        packs = catalog_ret.pack_names(con)
        standalone = catalog_ret.standalone_blobs(con)
        atts = catalog_ret.attachment_rows(con)
    name, _doc = inv.write_index(store.backend, covers=covers, packs=packs, standalone=standalone, attachments=atts)
    return name


def remove_snapshots(store: Store, full_ids: list[str]) -> None:
    """Forget commits: index first, then the commit objects (the truth), then the catalog rows.
    Interrupted after the objects, the catalog still lists them until the next forget or prune
    finishes the job (``finish_pending_forgets``); their data is untouched until prune."""
    name = write_store_index(store)
    inv.write_forget_records(store.backend, full_ids)
    for cid in full_ids:
        store.backend.delete(objects.snapshot_key(cid))
    catalog_forget(store, full_ids)
    for cid in full_ids:
        inv.delete_tag_events(store.backend, cid)
    inv.delete_indexes_except(store.backend, name)


def catalog_forget(store: Store, full_ids: list[str]) -> None:
    """Drop the snapshots' rows and every record version no remaining snapshot shows; a version
    still open at its table's last remaining snapshot is reopened (end_seq NULL), so the next
    writer diffs against what the newest kept snapshot holds."""
    catalog_ret.forget_snapshots(store.catalog, full_ids)


class LostCommits(StoreError):
    """Commits the store had, gone without a forget recording them: nothing is deleted (exit 1)."""

    def __init__(self, lost: list[str]) -> None:
        self.lost = lost
        names = ", ".join(c[:8] for c in lost[:5]) + (" ..." if len(lost) > 5 else "")
        super().__init__(
            f"{len(lost)} snapshot commit object(s) are missing from the store although no forget recorded "
            f"them ({names}): that is damage, not an interrupted forget, so nothing was deleted; run "
            "`snapstore repair` to write them again from the catalog (or `snapstore forget ID` to let them go)")


def check_no_lost_commits(store: Store, *, forgetting=()) -> None:
    """Raise :class:`LostCommits` if a commit the catalog or the newest store index knows is gone
    without a forget record (``forgetting``: ids the caller forgets on purpose)."""
    lost = [c for c in inv.lost_commits(store.backend, store.catalog.snapshot_ids()) if c not in set(forgetting)]
    if lost:
        raise LostCommits(lost)


def finish_pending_forgets(store: Store, *, forgetting=()) -> list[str]:
    """Catalog snapshots whose commit object is gone: an interrupted forget (a forget record
    names them, or the caller forgets them now: ``forgetting``) has its rows dropped; any other
    is a lost commit, and :class:`LostCommits` is raised before anything changes."""
    check_no_lost_commits(store, forgetting=forgetting)
    present = inv.present_commits(store.backend)
    ghosts = [cid for cid in store.catalog.snapshot_ids() if cid not in present]
    if ghosts:
        inv.write_forget_records(store.backend, [c for c in ghosts if c in set(forgetting)])
        log.warning("finishing an interrupted forget of %d snapshot(s)", len(ghosts))
        catalog_forget(store, ghosts)
    return ghosts


# ---- tags ------------------------------------------------------------------------------------------


def check_tag(tag: str) -> str:
    """A tag as stored, or UsageError: no commas (``forget --keep-tag a,b`` splits on them, so a tag
    holding one could never be matched and its snapshot would not be pinned), not blank, no
    control characters, no space around it."""
    if not isinstance(tag, str) or not tag.strip():
        raise UsageError("a tag cannot be blank")
    if "," in tag:
        raise UsageError(f"a tag cannot hold a comma ({tag!r}): `forget --keep-tag a,b` reads a comma as "
                         "'and'; tag with a and b separately")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in tag):
        raise UsageError(f"a tag cannot hold control characters ({tag!r})")
    if tag != tag.strip():
        raise UsageError(f"a tag cannot start or end with a space ({tag!r})")
    return tag


def check_tags(tags: Iterable[str]) -> list[str]:
    """Every tag checked (:func:`check_tag`), duplicates dropped, order kept."""
    return list(dict.fromkeys(check_tag(t) for t in tags))


def retag(store: Store, names: Iterable[str], *, add: Iterable[str] = (), remove: Iterable[str] = (),
          set_to: Iterable[str] | None = None) -> dict[str, list[str]]:
    """restic's ``tag``: on each snapshot of ``names``, ``set_to`` replaces its tags, or ``add`` and
    ``remove`` change them (one tag event per snapshot, beside its immutable commit). Every tag and
    every name is checked before anything is written. Returns full id -> its tags now."""
    add, remove = check_tags(add), check_tags(remove)
    wanted = None if set_to is None else check_tags(set_to)
    if wanted is not None and (add or remove):
        raise UsageError("--set replaces the tags: give it without --add or --remove")
    if wanted is None and not add and not remove:
        raise UsageError("nothing to do: give --add, --remove or --set")
    names = list(names)
    if not names:
        raise UsageError("name the snapshots to tag")
    out: dict[str, list[str]] = {}
    with store.lock("tag"):
        snaps = list({s.full_id: s for s in (store.resolve(n) for n in names)}.values())
        for snap in snaps:
            a, r = (add, remove) if wanted is None else (wanted, [t for t in snap.tags if t not in wanted])
            inv.write_tag_event(store.backend, snap.full_id, a, r)
            tags = inv.apply_tag_events(snap.tags, [{"add": a, "remove": r}])
            doc = dict(snap.doc, tags=tags)
            catalog_ret.set_tags(store.catalog, snap.full_id, tags, json.dumps(doc))
            out[snap.full_id] = tags
    return out


def tag(store: Store, name: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> list[str]:
    """Add/remove tags on one snapshot; returns its tags (see :func:`retag`)."""
    return next(iter(retag(store, [name], add=add, remove=remove).values()))
