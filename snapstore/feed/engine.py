"""One base through the change feed: decide feed or full listing, then do it.

Called by the snapshot run for every base (``snapstore.ops.snapshot._Run.run_base``). The order of a
feed snapshot of a base:

1. list the base's hooks (health: gone, disabled, expired) — 1 request;
2. read the payloads from the committed cursor, 50 a request until ``mightHaveMore`` is false;
3. re-read the schema if a payload touched fields or tables (1 request);
4. re-read the created and changed records (100 a request), then the knock-on records;
5. hand each table's re-read records and destroyed ids to its writer (``TableWriter.apply_changes``):
   every other record carries over from the parent with no request and no work per record;
6. leave the new feed state (cursor after these payloads) for the commit.

Anything doubtful falls back to a full listing of the base with a one-line reason, after
re-creating the hook where the hook is the problem, so that nothing falls between the hook and the
listing. A full listing of a base whose hook is healthy also measures the feed: the records the
listing found changed but the payloads (with their knock-ons) did not name are the feed's misses.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from snapstore.canonical import loads
from snapstore.feed import knockon, sweep
from snapstore.feed.links import LinkIndex, cells
from snapstore.feed.payloads import Changes, FeedBroken, FeedGap, changes_from, read_payloads
from snapstore.feed.reread import PER_REQUEST, reread
from snapstore.feed.state import FeedState, Hook, doc_schema, iso, latest_state, parse_time, save_registry
from snapstore.source import webhooks
from snapstore.source.errors import AccessDenied, AuthError, Cancelled, NotFound, SourceError, Unreachable
from snapstore.store import objects

log = logging.getLogger("snapstore.feed")

#: Airtable deletes payloads a week after they were made (reference §1.4).
RETENTION = timedelta(days=7)
#: A hook lives 7 days after its creation or its last payload read or refresh (reference §1.2).
HOOK_LIFE = timedelta(days=7)


@dataclass
class FeedReport:
    """What the feed did for one base in one run (summary, ``--json``, commit stats)."""

    base_id: str
    name: str
    mode: str = "full"  # feed | full
    reason: str = ""
    hook_id: str | None = None
    cursor: int | None = None
    expires: str | None = None
    payloads: int = 0
    transactions: int = 0
    reread_changed: int = 0
    reread_knockon: int = 0
    destroyed: int = 0
    tables_listed: int = 0
    schema_reread: bool = False
    requests: int = 0
    reread_by_table: dict[str, int] = field(default_factory=dict)  # records re-read per table (1 request a 100)
    sweep_every: float | None = None  # seconds between full listings of this base (--full-every, auto: its size)
    missed: int | None = None
    warning: str | None = None
    hook_recreated: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class FeedOff(Exception):
    """The feed cannot be used for this base this run, and no feed state is kept."""


@dataclass
class _Decision:
    mode: str  # feed | verify (full listing, payloads read: measure misses) | baseline | plain
    reason: str
    hook: dict | None = None
    cursor: int | None = None
    changes: Changes | None = None


@dataclass
class BaseFeed:
    """The feed of one base in one run. ``run`` is the snapshot's ``_Run``."""

    run: object
    bp: object
    registry: object
    registry_lock: threading.Lock
    changes_mode: str  # auto | feed | full
    full_every: float | str | None  # seconds, "auto" (sweep.interval) or None: never on time
    now: datetime
    report: FeedReport = field(init=False)

    def __post_init__(self) -> None:
        self.report = FeedReport(self.bp.base_id, self.bp.name)
        self.source = self.run.source
        self.store = self.run.store
        self.base_id = self.bp.base_id

    # -- the entry point ---------------------------------------------------------------------

    def execute(self) -> None:
        r = self.report
        before = self.source.stats.snapshot()["requests_by_base"].get(self.base_id, 0)
        try:
            self._execute()
        except (AuthError, Unreachable, Cancelled, AccessDenied, NotFound):
            raise  # the run's own handling: fatal, or the base left out as unreadable
        except SourceError as e:
            self._failed(e)
        finally:
            r.requests = self.source.stats.snapshot()["requests_by_base"].get(self.base_id, 0) - before
            r.requests += self.bp.hooks is not None  # the hook listing the plan made for this base
            log.info("%s: %s (%s); %d payloads, %d re-read (+%d knock-on), %d requests", self.base_id, r.mode,
                     r.reason, r.payloads, r.reread_changed, r.reread_knockon, r.requests)

    def _failed(self, e: SourceError) -> None:
        """A request of this base failed for good (its retries spent): as a full listing does, the
        base's tables not yet written are marked failed by name and the snapshot goes on with the
        other bases (partial, exit 3); no feed state is kept, so the next run lists the base in full."""
        r = self.report
        r.reason = f"{r.reason}; stopped: {e}" if r.reason else f"stopped: {e}"
        for tp in self.bp.tables:
            res = self.run.results.get((self.base_id, tp.table_id))
            if res is not None and res.status not in ("done", "failed"):
                self.run._fail(res, f"{e}")
        with self.run._lock:
            self.run.feed_states.pop(self.base_id, None)

    def _execute(self) -> None:
        doc, state, problem = latest_state(self.store, self.base_id, self.run.snapshot_docs())
        self.parent_doc, self.state = doc, state
        self.report.sweep_every = sweep.interval(self.full_every, self._parent_tables().values())
        hook = self.registry.hooks.get(self.base_id)
        if self.bp.schema is not None and len(self.bp.tables) < len(self.bp.schema.get("tables") or []):
            # the cursor is the whole base's: advancing it for some tables would lose the others' changes
            self.report.reason = "a table selection: the selected tables are listed in full, no feed state kept"
            self._full(None)
            return
        try:
            d = self._decide(hook, state, problem)
        except FeedOff as e:
            self.report.reason = str(e)
            self.run.notice(self.base_id, str(e))
            self._full(None)
            return
        self.report.reason = d.reason
        if d.mode == "feed":
            if self._feed(d):
                return
            d = self._decision  # the feed gave up: a verified full listing
            self.report.reason = d.reason
        self._full(d)

    # -- deciding ----------------------------------------------------------------------------

    def _decide(self, hook: Hook | None, state: FeedState | None, problem: str | None) -> _Decision:
        if self.registry.problem and hook is None:
            raise FeedOff(f"{self.registry.problem}; full listing")
        if hook is None:
            if self.changes_mode != "feed":
                return _Decision("plain", "the feed is not enabled for this base")
            return self._recreate(None, "no hook yet")
        try:
            # the plan may have listed them already (a run that skipped whoami and the bases listing)
            hooks = self.bp.hooks if self.bp.hooks is not None else webhooks.list_hooks(self.source, self.base_id)
        except AccessDenied:
            raise FeedOff("the token cannot manage webhooks on this base (403: scope webhook:manage or the "
                          "creator role missing); feed off for this base, full listing") from None
        except (AuthError, Unreachable, Cancelled, NotFound):
            raise
        except SourceError as e:  # e.g. 503s past every retry: the records may still be readable
            raise FeedOff(f"listing the base's webhooks failed ({e}); full listing") from None
        live = next((h for h in hooks if h.get("id") == hook.hook_id), None)
        if live is None:
            return self._recreate(None, "the hook is gone (deleted outside snapstore)")
        exp = parse_time(live.get("expirationTime"))
        if exp is not None and exp <= self.now:
            return self._recreate(live, "the hook expired")
        if live.get("isHookEnabled") is False:
            return self._recreate(live, "the hook was disabled by Airtable")
        next_cursor = int(live.get("cursorForNextPayload") or 1)
        if state is None:
            why = problem or "no feed baseline yet"
            return _Decision("baseline", f"{why}; full listing from cursor {next_cursor}", live, next_cursor)
        if state.hook_id != hook.hook_id:
            return _Decision("baseline", "the feed state names another hook; full listing", live, next_cursor)
        read_at = parse_time(state.read_at)
        if read_at is None or self.now - read_at > RETENTION:
            days = "?" if read_at is None else f"{(self.now - read_at).total_seconds() / 86400:.1f}"
            return _Decision("baseline", f"payloads were last read {days} days ago, longer than Airtable keeps "
                                         "them (7 days): a gap cannot be proven empty; full listing", live, next_cursor)
        if state.cursor > next_cursor:
            return _Decision("baseline", f"the stored cursor {state.cursor} is ahead of the hook's "
                                         f"{next_cursor}; full listing", live, next_cursor)
        try:
            got = read_payloads(self.source, self.base_id, hook.hook_id, state.cursor)
        except FeedBroken as e:
            return self._recreate(live, f"an error payload ({e.code})")
        except FeedGap as e:
            return _Decision("baseline", f"{e}: a gap cannot be proven empty; full listing", live, next_cursor)
        except NotFound:
            return self._recreate(None, "the hook is gone (404)")
        except AccessDenied:
            raise FeedOff("the token cannot read this base's webhook payloads (403); feed off for this base, "
                          "full listing") from None
        except (AuthError, Unreachable, Cancelled):
            raise
        except SourceError as e:  # a full listing now covers every payload before the hook's cursor
            return _Decision("baseline", f"reading the payloads failed ({e}); full listing", live, next_cursor)
        if got.cursor < next_cursor:
            # the hook had made payloads up to cursorForNextPayload, and reading from the stored cursor
            # returned fewer: Airtable deleted them (7 days) and answers an empty page with the cursor
            # sent. A detectable gap: not proven empty, so a full listing.
            return _Decision("baseline", f"payloads {got.cursor} to {next_cursor - 1} are gone (the hook is at "
                                         f"{next_cursor}, reading from {state.cursor} returned {len(got.payloads)}): "
                                         "a gap cannot be proven empty; full listing", live, next_cursor)
        r = self.report
        r.payloads, r.transactions = len(got.payloads), got.transactions
        ch = changes_from(got.payloads)
        if self.changes_mode == "full":
            return _Decision("verify", "--changes full", live, got.cursor, ch)
        if sweep.due(parse_time(state.last_full), self.report.sweep_every, self.now) and self.changes_mode == "auto":
            how = ", auto: its listing's pages as hours" if self.full_every == sweep.AUTO else ""
            return _Decision("verify", f"periodic full listing (--full-every: every "
                                       f"{self.report.sweep_every / 3600:g} h{how})", live, got.cursor, ch)
        return _Decision("feed", f"{len(got.payloads)} payload(s) since cursor {state.cursor}", live, got.cursor, ch)

    def _recreate(self, old: dict | None, why: str) -> _Decision:
        """A new hook before the full listing: changes during the listing land in its payloads."""
        reg_hook = self.registry.hooks.get(self.base_id)
        if old is not None and reg_hook is not None:
            try:
                webhooks.delete_hook(self.source, self.base_id, reg_hook.hook_id)
            except NotFound:
                pass
            except (AuthError, Cancelled):
                raise
            except SourceError as e:
                log.warning("%s: could not delete the old hook %s (%s)", self.base_id, reg_hook.hook_id, e)
        hook = self.create_hook(self.source, self.store, self.registry, self.registry_lock, self.base_id, self.now)
        self.report.hook_recreated = True
        return _Decision("baseline", f"{why}; hook re-created, full listing", {"id": hook.hook_id,
                         "expirationTime": hook.expires}, 1)

    @staticmethod
    def create_hook(source, store, registry, lock, base_id: str, now: datetime) -> Hook:
        """Create snapstore's hook on a base and record it in the registry (FeedOff when it cannot)."""
        try:
            created = webhooks.create_hook(source, base_id)
        except webhooks.HookLimit as e:
            raise FeedOff(f"{e}; feed off for this base, full listing") from None
        except AccessDenied:
            raise FeedOff("the token cannot create webhooks on this base (403: scope webhook:manage or the "
                          "creator role missing); feed off for this base, full listing") from None
        except (AuthError, Cancelled):
            raise
        except SourceError as e:
            try:
                n = len(webhooks.list_hooks(source, base_id))
            except SourceError:
                n = 0
            if n >= webhooks.MAX_HOOKS_PER_BASE:
                raise FeedOff(f"the base already has {n} webhooks, Airtable's limit; feed off for this base, "
                              "full listing") from None
            raise FeedOff(f"creating a webhook failed ({e}); full listing") from None
        hook = Hook(base_id, created["id"], iso(now), created.get("expirationTime"))
        with lock:
            registry.hooks[base_id] = hook
            save_registry(store, registry, now)
        return hook

    # -- the feed path -----------------------------------------------------------------------

    def _feed(self, d: _Decision) -> bool:
        """Apply the payloads. False (and ``self._decision`` set) when a full listing is better."""
        run, bp, r = self.run, self.bp, self.report
        ch = d.changes
        # the plan's schema is the parent's when it came from the store (one blob read fewer)
        old_schema = self.bp.schema if getattr(self.bp, "schema_from_store", False) else self._parent_schema()
        if old_schema is None:
            self._decision = _Decision("verify", "the parent snapshot's schema is unreadable; full listing",
                                       d.hook, d.cursor, ch)
            return False
        if ch.schema or bp.schema is None:
            run.refresh_schema(bp)
            r.schema_reread = True
        schema = bp.schema
        parent_tables = self._parent_tables()
        try:
            index = LinkIndex.load(self.store, self.state.links)
        except Exception as e:  # noqa: BLE001 - a damaged index only costs a listing
            self._decision = _Decision("verify", f"the feed's link index is unreadable ({e}); full listing",
                                       d.hook, d.cursor, ch)
            return False
        now_tables = {tp.table_id: tp for tp in bp.tables}
        full = knockon.full_tables(schema, old_schema, ch.full, ch.touched_fields, ch.destroyed_tables)
        for tid in now_tables:
            if tid not in parent_tables:
                full.setdefault(tid, "not in the parent snapshot")
        full = {t: why for t, why in full.items() if t in now_tables}
        direct = {t: ids for t, ids in ch.records.items() if t in now_tables and ids}
        destroyed = {t: ids for t, ids in ch.destroyed.items() if t in now_tables and ids}
        cost_full = sum(self._pages(parent_tables.get(t)) for t in now_tables)
        cost = sum(math.ceil(len(v) / PER_REQUEST) for t, v in direct.items() if t not in full) + \
            sum(self._pages(parent_tables.get(t)) for t in full)
        if cost > cost_full:
            self._decision = _Decision("verify", f"more changes than a full listing would cost ({cost} requests "
                                                 f"against {cost_full}); full listing", d.hook, d.cursor, ch)
            return False
        one_sided = LinkIndex.one_sided(schema)
        # 1. the tables listed in full, first: their changed records are captured for the closure
        captured: dict[str, dict[str, dict]] = {}
        for tid, why in full.items():
            log.info("%s/%s: listed in full (%s)", self.base_id, tid, why)
            self._list(now_tables[tid], index, one_sided, direct.get(tid), captured)
        # 2. the knock-on records predicted from the old cells and the link cells the payloads carry,
        #    re-read in the same requests as the changed ones (one round for most runs)
        comments = run.opts.comments
        old = self._old_reader()
        gone = {t: set(ids) for t, ids in destroyed.items()}
        guess = {t: self._guess(t, ids, ch, old) for t, ids in direct.items() if t not in full}
        knock, moving = knockon.closure(schema, direct, gone, old, {**guess, **captured}, index, set(full))
        late = {t: "knock-on changes deeper than the closure follows" for t in moving if t in now_tables}
        fetched: dict[str, dict[str, dict]] = {}
        asked: dict[str, set[str]] = {}

        def fetch(want: dict[str, set[str]], why: str) -> None:
            for tid, ids in sorted(want.items()):
                ids = ids - asked.get(tid, set())
                if not ids or tid in full or tid in late or tid not in now_tables:
                    continue
                if math.ceil((len(ids) + len(asked.get(tid, ()))) / PER_REQUEST) > \
                        self._pages(parent_tables.get(tid)):
                    late[tid] = f"more {why} re-reads than its listing costs"
                    continue
                got = self._reread(tid, ids, comments)
                asked.setdefault(tid, set()).update(ids)
                fetched.setdefault(tid, {}).update(got)
                gone.setdefault(tid, set()).update(ids - set(got))  # deleted since: ended

        fetch({t: direct.get(t, set()) | knock.get(t, set()) for t in set(direct) | set(knock)}, "changed")
        # 3. the closure again from the records as re-read: knock-ons the payloads did not predict
        knock2, moving2 = knockon.closure(schema, direct, gone, old, {**fetched, **captured}, index, set(full))
        for t in moving2:
            if t in now_tables:
                late.setdefault(t, "knock-on changes deeper than the closure follows")
        fetch(knock2, "knock-on")
        r.reread_changed = sum(len(v) for t, v in direct.items() if t not in full and t not in late)
        r.reread_knockon = sum(len(v - direct.get(t, set())) for t, v in asked.items() if t not in late)
        r.reread_by_table = {t: len(v) for t, v in sorted(asked.items()) if t not in late}
        r.destroyed = sum(len(v) for t, v in gone.items() if t not in full and t not in late)
        # 4. every other table carries over from the parent with what was re-read
        for tid, tp in now_tables.items():
            if tid in full or tid in late:
                continue
            recs = list(fetched.get(tid, {}).values())
            run.apply_table(bp, tp, recs, gone.get(tid, set()))
            index.update(tid, [lk.field for lk in one_sided if lk.table == tid], recs, gone.get(tid, set()))
        for tid, why in late.items():
            log.info("%s/%s: listed in full (%s)", self.base_id, tid, why)
            self._list(now_tables[tid], index, one_sided)
        r.tables_listed = len(full) + len(late)
        r.mode = "feed"
        index.keep_only(schema)
        self._commit_state(d.hook, d.cursor, "feed", r.reason, index, full_listing=False, missed=None)
        return True

    @staticmethod
    def _guess(tid: str, ids: set[str], ch: Changes, old) -> dict[str, dict]:
        """Changed records as the payloads describe them: the parent's cells with the link cells the
        payloads carry laid over (``[{id, name}]`` in webhook shape, or plain ids)."""
        olds = old(tid, ids)
        out = {}
        for rid in ids:
            fields = dict((olds.get(rid) or {}).get("fields") or {})
            for fid, v in ch.cells.get(tid, {}).get(rid, {}).items():
                if v is None:
                    fields.pop(fid, None)
                elif isinstance(v, list):
                    fields[fid] = [x.get("id") if isinstance(x, dict) else x for x in v]
            out[rid] = {"id": rid, "fields": fields}
        return out

    def _reread(self, tid: str, ids: set[str], comments: bool) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for page in reread(self.source, self.base_id, tid, ids, comment_counts=comments):
            for rec in page:
                if rec.get("id") in ids:
                    out[rec["id"]] = rec
        return out

    def _old_reader(self):
        """Parent records by id, read from the store (blobs of the few records involved)."""
        cache: dict[tuple[str, str], dict | None] = {}
        versions: dict[str, pa.Table] = {}

        def old(tid: str, ids: set[str]) -> dict[str, dict]:
            want = [i for i in ids if (tid, i) not in cache]
            if want:
                if tid not in versions:
                    versions[tid] = self.store.catalog.table_state(self.base_id, tid).open_versions
                ov = versions[tid]
                hit = ov.filter(pc.is_in(ov.column("record_id"), value_set=pa.array(want, pa.string())))
                rids, hashes = hit.column("record_id").to_pylist(), hit.column("hash").to_pylist()
                blobs = self.store.read_blobs(set(hashes)) if hashes else {}
                for rid, h in zip(rids, hashes, strict=True):
                    cache[(tid, rid)] = loads(blobs[h])
                for i in want:
                    cache.setdefault((tid, i), None)
            return {i: cache[(tid, i)] for i in ids if cache.get((tid, i)) is not None}

        return old

    # -- full listings -----------------------------------------------------------------------

    def _full(self, d: _Decision | None) -> None:
        """List every table of the base; measure the feed when its payloads were read."""
        run, bp, r = self.run, self.bp, self.report
        r.mode = "full"
        if bp.schema is None or getattr(bp, "schema_from_store", False):
            run.refresh_schema(bp)
            r.schema_reread = True
        if d is None or d.mode == "plain":
            for tp in bp.tables:
                run.run_table(bp, tp)
            r.tables_listed = len(bp.tables)
            return
        schema = bp.schema
        index = LinkIndex()
        one_sided = LinkIndex.one_sided(schema)
        ch = d.changes if d.mode == "verify" else None
        want: dict[str, set[str]] = {}
        if ch is not None:
            want = {t: set(ids) for t, ids in ch.records.items()}
        captured: dict[str, dict[str, dict]] = {}
        writers = {}
        for tp in bp.tables:
            writers[tp.table_id] = self._list(tp, index, one_sided, want.get(tp.table_id), captured)
        r.tables_listed = len(bp.tables)
        missed = self._misses(ch, captured, writers) if ch is not None else None
        r.missed = missed
        if missed:
            log.warning("%s: the feed missed %d changed record(s) this full listing found", self.base_id, missed)
        self._commit_state(d.hook, d.cursor, "full", r.reason, index, full_listing=True, missed=missed)

    def _list(self, tp, index: LinkIndex, one_sided, want: set[str] | None = None,
              captured: dict | None = None):
        fields = [lk.field for lk in one_sided if lk.table == tp.table_id]
        entries: dict[str, dict[str, frozenset]] = {f: {} for f in fields}
        cap = captured.setdefault(tp.table_id, {}) if captured is not None else None

        def observe(rec: dict) -> None:
            for f in fields:
                c = cells(rec, f)
                if c:
                    entries[f][rec["id"]] = frozenset(c)
            if want and cap is not None and rec["id"] in want:
                cap[rec["id"]] = rec

        tw = self.run.run_table(self.bp, tp, observe=observe if (fields or want) else None)
        index.replace_table(tp.table_id, fields, entries)
        return tw

    def _misses(self, ch: Changes, captured: dict, writers: dict) -> int | None:
        """Records the full listing found added, changed or ended that the payloads (with their
        knock-ons) did not name. None when the base could not be compared (a table failed)."""
        parent_tables = self._parent_tables()
        schema = self.bp.schema
        full = knockon.full_tables(schema, self._parent_schema(), ch.full, ch.touched_fields, ch.destroyed_tables)
        for tp in self.bp.tables:
            if tp.table_id not in parent_tables:
                full.setdefault(tp.table_id, "new")
        try:
            old = self._old_reader()
            changed = {t: set(v) for t, v in ch.records.items()}
            gone = {t: set(v) for t, v in ch.destroyed.items()}
            for t, ids in changed.items():
                gone.setdefault(t, set()).update(ids - set(captured.get(t, {})))
            knock, moving = knockon.closure(schema, changed, gone, old, captured, LinkIndex(self._index_data()),
                                            set(full))
        except Exception as e:  # noqa: BLE001 - measuring must never fail a backup
            log.warning("%s: the feed's misses could not be measured (%s)", self.base_id, e)
            return None
        missed = 0
        for tid, tw in writers.items():
            if tw is None or tw.finished is None:
                return None
            if tid in full or tid in moving:
                continue
            predicted = changed.get(tid, set()) | gone.get(tid, set()) | knock.get(tid, set()) \
                | ch.destroyed.get(tid, set())
            missed += len(tw.delta_ids() - predicted)
        return missed

    def _index_data(self):
        try:
            return LinkIndex.load(self.store, self.state.links if self.state else None).data
        except Exception:  # noqa: BLE001
            return {}

    # -- state -------------------------------------------------------------------------------

    def _parent_tables(self) -> dict[str, int]:
        doc = self.parent_doc or {}
        for b in doc.get("bases") or []:
            if b.get("base_id") == self.base_id:
                return {t["table_id"]: int(t.get("records") or 0) for t in b.get("tables") or []}
        return {}

    def _parent_schema(self) -> dict | None:
        doc = self.parent_doc
        if not doc:
            return None
        try:
            return doc_schema(self.store, doc, self.base_id)
        except Exception:  # noqa: BLE001
            return None

    @staticmethod
    def _pages(n: int | None) -> int:
        return max(1, math.ceil((n or 0) / PER_REQUEST))

    def _commit_state(self, hook: dict | None, cursor: int | None, mode: str, reason: str, index: LinkIndex,
                      *, full_listing: bool, missed: int | None) -> None:
        st = self.state
        now = iso(self.now)
        if full_listing:  # the base's size as listed now (a first listing has no parent to size it by)
            counts = [res.records for (b, _t), res in self.run.results.items() if b == self.base_id]
            self.report.sweep_every = sweep.interval(self.full_every, counts)
        links = st.links if st is not None and not index.dirty else None
        if index.data and (index.dirty or links is None):
            name, data = index.encode(self.store.box)
            self.store.backend.put(objects.object_key(name), data)
            links = name
        elif not index.data:
            links = None
        expires = iso(self.now + HOOK_LIFE)
        fs = FeedState(
            store_id=self.store.config["store_id"], hook_id=(hook or {}).get("id"), cursor=int(cursor or 1),
            read_at=now, expires=expires, mode=mode, reason=reason,
            last_full=now if full_listing else (st.last_full if st else None),
            last_feed=now if mode == "feed" else (st.last_feed if st else None),
            missed=missed if missed is not None else (st.missed if st else None),
            missed_at=now if missed is not None else (st.missed_at if st else None),
            links=links, sweep_every=self.report.sweep_every,
        )
        r = self.report
        r.hook_id, r.cursor, r.expires = fs.hook_id, fs.cursor, fs.expires
        # a run expected as far ahead as the last one was behind: warn if the hook dies before it
        prev_time = parse_time(st.read_at) if st is not None else None  # the feed's clock, not the commit's
        if prev_time is not None:
            gap = self.now - prev_time
            if gap >= HOOK_LIFE:
                r.warning = (f"the hook expires {expires}, before the next run expected around "
                             f"{iso(self.now + gap)} (runs {gap.total_seconds() / 86400:.1f} days apart); "
                             "snapshot at least weekly to keep the feed")
                log.warning("%s: %s", self.base_id, r.warning)
        self.run.set_feed_state(self.base_id, fs)
