"""Taking a snapshot: read every selected base from Airtable into a new store snapshot.

Usable without the CLI::

    from snapstore.ops.snapshot import Selection, SnapshotOptions, plan_snapshot, take_snapshot
    from snapstore.source import AirtableSource
    from snapstore.store import Store

    with AirtableSource(token, api_url) as source:
        plan = plan_snapshot(source, Selection(bases=["Sales"]))      # network only; store untouched
        store = Store.open("snapstore-data", create=True)
        result = take_snapshot(store, source, plan, SnapshotOptions(comments=True))
    result.exit_code   # 0 complete, 3 partial

Shape of a run:

1. **Plan** (:func:`plan_snapshot`): ``whoami`` (a bad token or an unreachable API fails here, before
   the store is touched), list the bases, resolve ``--base/--table/--exclude-*`` (ids or names), read
   each selected base's raw schema. A named base the token cannot see is an error; nothing has been
   written yet. When every selected base is fed (``feed=``, snapstore.feed.hints), the plan lists each
   base's hooks instead, and the first of those requests proves the token as ``whoami`` would.
2. **Read** (:func:`take_snapshot`): bases in parallel (enough threads to approach the token's limit:
   ``2 x rate_token / rate_base`` = 20, the token throttle caps their sum), the tables of one base one after another (they share the base's
   5 requests/s). A table is listed page after page straight into its table writer; nothing slow
   happens between two pages (attachments and comments come after the listing), and an expired
   iterator restarts the table (``tw.reset()``). A table that still fails after the retries is marked
   missing and the others continue: the snapshot commits as *partial* and the exit code says so.
3. **Attachments**: ids already in the store (or seen earlier in this run) are never fetched; new
   files are downloaded by a small shared pool while the next tables are being listed, streamed into
   the store, checked against their size; an expired URL is refreshed by re-reading the record.
4. **Comments** (optional): fetched only for records whose comment count is non-zero and differs from
   the parent snapshot; unchanged ones are carried over from the parent, except in a comment sweep
   (due on schedule, or ``comments="full"``), which reads them all again to catch edited comments
   (snapstore.ops.snapshot_comments, snapstore.ops.comment_sweep).
5. **Commit**, or on Ctrl-C/kill **abandon**: the store's write order makes a killed run safe, and the
   packs it already wrote are adopted by the next run.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snapstore.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from snapstore.errors import EXIT_INCOMPLETE as EXIT_PARTIAL
from snapstore.feed.state import iso

# Exit codes of ``snapstore snapshot`` (also used by ``check``) come from snapstore.errors;
# EXIT_PARTIAL is a snapshot committed with something unreadable (listed under ``missing``).
from snapstore.fieldtypes import is_attachment
from snapstore.selection import NoSuchName, SelectionError, find_id, pick, select_tables, table_pairs
from snapstore.source.errors import (
    AccessDenied,
    AttachmentExpired,
    AuthError,
    Cancelled,
    IteratorExpired,
    NotFound,
    SourceError,
    TransientError,
    Unreachable,
)
from snapstore.store import StoreError
from snapstore.store.catalog import CatalogNotUpdated

log = logging.getLogger("snapstore.ops.snapshot")


PAGE_SIZE = 100


# ---------------------------------------------------------------------------------------------
# planning


@dataclass
class Selection:
    """Which bases and tables to read. Each entry is an id or a name; a table may be qualified
    with its base as ``base/table`` (ids or names on either side)."""

    bases: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    exclude_bases: list[str] = field(default_factory=list)
    exclude_tables: list[str] = field(default_factory=list)


@dataclass
class TablePlan:
    table_id: str
    name: str
    attachment_fields: list[str]
    previous_records: int | None = None  # record count in the latest snapshot, when known


@dataclass
class BasePlan:
    base_id: str
    name: str
    permission_level: str | None
    schema: dict | None
    tables: list[TablePlan] = field(default_factory=list)
    error: str | None = None  # schema could not be read: the base will be marked missing
    schema_from_store: bool = False  # the parent snapshot's schema (a feed base): re-read when it changed
    hooks: list[dict] | None = None  # the base's webhooks, when the plan listed them (a feed run)


@dataclass
class Plan:
    user: dict
    bases: list[BasePlan]
    visible_bases: int
    requests: int = 0  # requests the plan itself made (whoami, bases, schemas; or the hook listings)
    selection: Selection = field(default_factory=Selection)
    # the bases listing this run rests on (``stats.bases_listed``: snapstore.feed.hints.listing_record);
    # "at" None: listed by this plan (the run stamps it with its clock)
    bases_listing: dict | None = None
    listing_skipped: str | None = None  # why no bases listing was needed (None: the bases were listed)
    notices: list[str] = field(default_factory=list)  # one line each, shown with the run's feed notices

    @property
    def tables(self) -> list[tuple[BasePlan, TablePlan]]:
        return [(b, t) for b in self.bases for t in b.tables]


def _match_base(spec: str, bases: list[dict]) -> list[dict]:
    """The base ``spec`` names (snapstore.selection's rule; ambiguous names are an error), or []."""
    bid = find_id(spec, [(b["id"], b.get("name")) for b in bases], "base", "visible to this token")
    return [b for b in bases if b["id"] == bid]


def _tables_of(bases: list[tuple[dict, dict | None]]) -> list[tuple[str, str | None, str, str | None]]:
    return [(b["id"], b.get("name"), t["id"], t.get("name")) for b, schema in bases if schema
            for t in schema.get("tables", [])]


def _excluded(spec: str, known: list) -> set[tuple[str, str]]:
    try:
        return table_pairs(spec, known)
    except NoSuchName:
        log.warning("--exclude-table %r matches no table", spec)
        return set()


def _attachment_fields(table: dict) -> list[str]:
    return [f["id"] for f in table.get("fields", []) if f.get("type") == "multipleAttachments"]


def plan_snapshot(
    source,
    selection: Selection | None = None,
    *,
    previous=None,
    workers: int | None = None,
    stored_schemas: dict[str, dict] | None = None,
    feed=None,
) -> Plan:
    """Check the token, list the bases, resolve the selection and read the selected schemas.

    Raises :class:`AuthError`, :class:`Unreachable` or :class:`SelectionError` (nothing is read
    or written after those). ``previous`` (a SnapshotInfo) fills in ``previous_records`` for
    estimates. ``stored_schemas`` (base id → schema, see ``snapstore.feed.state.stored_schemas``):
    bases whose schema the change feed will tell about, so the plan does not read it. ``feed``
    (``snapstore.feed.hints.feed_hints``, in place of ``stored_schemas``): also skip ``whoami`` and
    the bases listing when every selected base is fed (see that module for when they still happen).
    """
    sel = selection or Selection()
    before = source.stats.total
    notices: list[str] = []
    hooks, skipped = _feed_plan(source, sel, feed, notices) if feed is not None else ({}, None)
    if skipped is not None:
        user, visible = {}, list(feed.visible)
        listing = {"at": iso(feed.listed_at), "bases": feed.visible}
    else:
        user = source.preflight() if hasattr(source, "preflight") else source.whoami()
        visible = source.bases()
        listing = {"at": None, "bases": visible}
        if feed is not None and feed.visible is not None:
            _report_lost(sel, feed.visible, visible, notices)
    bases = _chosen_bases(sel, visible)
    if feed is not None:
        stored_schemas = feed.schemas

    # schemas, in parallel (each on its own base's budget)
    stored = stored_schemas or {}

    def read_schema(b: dict) -> tuple[dict, dict | None, str | None]:
        if b["id"] in stored:
            return b, stored[b["id"]], None
        try:
            return b, source.schema(b["id"]), None
        except (AuthError, Unreachable, Cancelled):
            raise
        except SourceError as e:
            return b, None, str(e)

    n = max(1, min(len(bases), workers or 10))
    with cf.ThreadPoolExecutor(n, thread_name_prefix="schema") as pool:
        results = list(pool.map(read_schema, bases))

    named = {b["id"] for spec in sel.bases for b in _match_base(spec, visible)}
    known = _tables_of([(b, schema) for b, schema, _err in results])
    wanted = select_tables(sel.tables, known, "in the selected bases visible to this token")
    excluded = {p for spec in sel.exclude_tables for p in _excluded(spec, known)}
    plans: list[BasePlan] = []
    for b, schema, err in results:
        if err is not None and b["id"] in named:
            raise SourceError(f"base {b.get('name')!r} ({b['id']}): {err}")
        bp = BasePlan(b["id"], b.get("name", b["id"]), b.get("permissionLevel"), schema, error=err,
                      schema_from_store=b["id"] in stored, hooks=hooks.get(b["id"]))
        if schema is not None:
            bp.tables = table_plans(b, schema, sel, previous, wanted=wanted, excluded=excluded)
        plans.append(bp)

    if sel.tables:
        # with --table, only the bases holding a selected table take part
        plans = [bp for bp in plans if bp.tables or bp.error]
    return Plan(user=user, bases=plans, visible_bases=len(visible), requests=source.stats.total - before,
                selection=sel, bases_listing=listing, listing_skipped=skipped, notices=notices)


def _chosen_bases(sel: Selection, visible: list[dict]) -> list[dict]:
    """The bases ``--base``/``--exclude-base`` select among ``visible`` (a base named that is not
    there: snapstore.selection's NotFound, a usage error naming the bases the token sees)."""
    if sel.bases:
        items = [(b["id"], b.get("name")) for b in visible]
        chosen = {pick(spec, items, "base", "visible to this token", hint="check the token's access list")
                  for spec in sel.bases}
        bases = [b for b in visible if b["id"] in chosen]
    else:
        bases = list(visible)
    for spec in sel.exclude_bases:
        hits = {b["id"] for b in _match_base(spec, bases)}
        if not hits:
            log.warning("--exclude-base %r matches no base", spec)
        bases = [b for b in bases if b["id"] not in hits]
    return bases


def _feed_plan(source, sel: Selection, feed, notices: list[str]) -> tuple[dict[str, list[dict]], str | None]:
    """A run over fed bases only: list each base's hooks here instead of ``whoami``, the bases and
    their schemas. Returns (hooks by base, None when the bases must be listed after all, else why not).

    The first hook listing runs alone with a preflight's quick retries, so a bad token (401) or a
    dead network fails here, before the store is touched, as ``whoami`` would. A base whose hooks
    cannot be listed (403/404: access lost, or the scope) sends the plan to the bases listing, which
    tells a lost base from a missing scope."""
    from snapstore.source import webhooks

    if sel.tables or sel.exclude_tables:
        return {}, None
    try:
        ids = [b["id"] for b in _chosen_bases(sel, feed.visible or [])]
    except SelectionError:
        ids = []  # a base the last listing did not have: list again
    why = feed.must_list(ids) if ids else "a selected base is not in the last bases listing"
    if why is not None:
        log.info("listing the bases: %s", why)
        return {}, None
    hooks: dict[str, list[dict]] = {}
    failed: list[str] = []

    def one(base_id: str) -> None:
        try:
            hooks[base_id] = webhooks.list_hooks(source, base_id)
        except (AuthError, Unreachable, Cancelled):
            raise
        except SourceError as e:
            failed.append(f"{base_id}: {e}")

    with source.quick_retries() if hasattr(source, "quick_retries") else contextlib.nullcontext():
        one(ids[0])
    if len(ids) > 1:
        with cf.ThreadPoolExecutor(min(10, len(ids) - 1), thread_name_prefix="hooks") as pool:
            list(pool.map(one, ids[1:]))
    if failed:
        log.warning("listing the bases: the hooks of %s could not be listed", "; ".join(failed))
        return hooks, None
    return hooks, f"every selected base is fed (bases last listed {iso(feed.listed_at)})"


def _report_lost(sel: Selection, before: list[dict], now: list[dict], notices: list[str]) -> None:
    """A base of the last listing that this one lacks: say so once (its stored snapshots stay). With
    ``--base``, a named base that is gone is an error of the selection instead."""
    if sel.bases:
        return
    ids = {b["id"] for b in now}
    for b in _chosen_bases(sel, before):
        if b["id"] not in ids:
            notices.append(f"{b['id']}: base {b.get('name')!r} is no longer visible to this token (access "
                           "removed, or the base deleted): not in this snapshot; its earlier snapshots are kept")


def table_plans(base: dict, schema: dict, sel: Selection, previous=None, *,
                wanted: set[tuple[str, str]] | None = None,
                excluded: set[tuple[str, str]] | None = None) -> list[TablePlan]:
    """The selected tables of one base's schema. ``wanted``/``excluded`` are the (base, table) pairs
    plan_snapshot resolved across every base; without them (a base whose schema changed in a feed
    run) they are resolved against this base alone, a --table naming another base's table matching
    nothing here."""
    if wanted is None and sel.tables:
        known = _tables_of([(base, schema)])
        wanted = set()
        for spec in sel.tables:
            try:
                wanted |= select_tables([spec], known) or set()
            except NoSuchName:
                continue
    if excluded is None:
        known = _tables_of([(base, schema)])
        excluded = {pair for spec in sel.exclude_tables for pair in _excluded(spec, known)}
    out = []
    for t in schema.get("tables", []):
        if (wanted is not None and (base["id"], t["id"]) not in wanted) or (base["id"], t["id"]) in excluded:
            continue
        prev = None
        if previous is not None:
            ti = previous.table(base["id"], t["id"])
            prev = ti.records if ti is not None else None
        out.append(TablePlan(t["id"], t.get("name", t["id"]), _attachment_fields(t), prev))
    return out


# ---------------------------------------------------------------------------------------------
# estimates (--dry-run)


def estimate(plan: Plan, *, rate_base: float, rate_token: float, workers: int = 10, margin: float = 0.03) -> dict:
    """Requests and time at the rate limit for the listing (attachments and comments not included).

    ceil(N/100) list requests per table (one for an empty table) needs N, which is only known from
    the previous snapshot; tables without one are reported as unknown.
    """
    rb = rate_base / (1 + margin)
    rt = rate_token / (1 + margin)
    bases = []
    unknown_tables = 0
    for bp in plan.bases:
        tables = []
        reqs = 1  # its schema
        for t in bp.tables:
            if t.previous_records is None:
                unknown_tables += 1
                est = None
            else:
                est = max(1, math.ceil(t.previous_records / PAGE_SIZE))
                reqs += est
            tables.append(
                {"table_id": t.table_id, "name": t.name, "records": t.previous_records, "requests": est}
            )
        bases.append({"base_id": bp.base_id, "name": bp.name, "requests": reqs, "tables": tables,
                      "error": bp.error})
    total = sum(b["requests"] for b in bases)
    # longest-processing-time assignment of bases to the worker threads
    loads = [0.0] * max(1, min(workers, len(bases) or 1))
    for b in sorted(bases, key=lambda b: -b["requests"]):
        i = loads.index(min(loads))
        loads[i] += b["requests"] / rb
    seconds = max(max(loads), total / rt)
    return {
        "bases": bases,
        "tables": sum(len(b["tables"]) for b in bases),
        "requests": total,
        "unknown_tables": unknown_tables,
        "complete": unknown_tables == 0,
        "seconds": round(seconds, 1),
        "rate_base": rate_base,
        "rate_token": rate_token,
    }


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class SnapshotOptions:
    attachments: bool = True
    # False/"off", True/"changed" (records whose comment count changed, plus sweeps on schedule), or
    # "full" (a comment sweep now): snapstore.ops.comment_sweep
    comments: bool | str = False
    comments_every: float | None = 7 * 86400.0  # seconds between comment sweeps of a table (None: never)
    note: str | None = None
    tags: tuple[str, ...] = ()
    base_workers: int | None = None  # default: 2 x rate_token / rate_base (20), at most one per base
    download_workers: int = 8
    max_restarts: int = 5  # expired-iterator restarts per table
    download_attempts: int = 5  # per attachment (expired URL refreshes and transient failures)
    changes: str = "auto"  # auto: the change feed where enabled and healthy; feed: also enable it; full
    # seconds between full listings of a feed base, "auto" (from the base's size: snapstore.feed.sweep)
    # or None (never on time)
    full_every: float | str | None = "auto"
    now: Callable[[], datetime] | None = None  # the clock hook expiry is judged by (tests: the emulator's)
    on_event: Callable[[str, dict], None] | None = None  # progress events (see Progress in the CLI)


@dataclass
class AttRef:
    att_id: str
    url: str | None
    size: int | None
    filename: str | None
    mime: str | None
    base_id: str
    table_id: str
    record_id: str
    field_id: str | None  # None: the attachment belongs to a comment
    comment_id: str | None = None


@dataclass
class TableResult:
    base_id: str
    base_name: str
    table_id: str
    name: str
    records: int = 0
    new: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    bytes_added: int = 0
    restarts: int = 0
    attachments_new: int = 0
    attachments_reused: int = 0
    comments_fetched: int = 0
    comments_carried: int = 0
    seconds: float = 0.0
    status: str = "pending"  # pending, listing, done, failed
    error: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SnapshotResult:
    info: Any  # SnapshotInfo of the committed snapshot
    tables: list[TableResult]
    attachments: dict
    requests: dict
    errors: list[str]
    seconds: float
    log_file: str | None = None
    feed: list[dict] = field(default_factory=list)  # per base: FeedReport.to_dict()
    notices: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.info.status

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.info.status == "complete" else EXIT_PARTIAL

    def to_dict(self) -> dict:
        return {
            "snapshot": self.info.to_dict(),
            "status": self.status,
            "exit_code": self.exit_code,
            "tables": [t.to_dict() for t in self.tables],
            "attachments": self.attachments,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "log_file": self.log_file,
            "feed": self.feed,
            "notices": self.notices,
        }


def _scan_attachments(value: Any) -> Iterable[dict]:
    if isinstance(value, list):
        for v in value:
            if is_attachment(v):
                yield v


class _Run:
    def __init__(self, store, source, plan: Plan, opts: SnapshotOptions, snap) -> None:
        self.store = store
        self.source = source
        self.plan = plan
        self.opts = opts
        self.snap = snap
        self.cancel: threading.Event = source.cancel
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._att_seen: set[str] = set()
        self.att_new = 0
        self.att_reused = 0
        self.att_failed = 0
        self.att_bytes = 0
        self._downloads: list[cf.Future] = []
        self.results: dict[tuple[str, str], TableResult] = {}
        for bp, tp in plan.tables:
            self.results[(bp.base_id, tp.table_id)] = TableResult(bp.base_id, bp.name, tp.table_id, tp.name)
        self.dl_pool: cf.ThreadPoolExecutor | None = None
        self.registry = None  # snapstore.feed.state.Registry when some base may use the feed
        self.registry_lock = threading.Lock()
        self.feed_reports: dict[str, Any] = {}
        self.feed_states: dict[str, Any] = {}
        self.notices: list[str] = []
        self._docs: list | None = None
        self.now = opts.now or (lambda: datetime.now(UTC))
        from snapstore.ops.snapshot_comments import CommentReader

        self.comment_reader = CommentReader(self)

    # -- helpers ---------------------------------------------------------------------------

    def event(self, kind: str, **info) -> None:
        if self.opts.on_event is not None:
            try:
                self.opts.on_event(kind, info)
            except Exception:  # a display problem must never break a backup
                log.debug("progress callback failed", exc_info=True)

    def error(self, base_id: str, table_id: str | None, reason: str, *, drop_table: bool) -> None:
        """Record something that could not be read; the snapshot will be partial.

        ``drop_table``: the table's records are incomplete and must not be committed. Otherwise (an
        attachment or comments failed) the table's records are kept and the problem is recorded
        against the base with the table named in the reason.
        """
        where = f"{base_id}/{table_id}" if table_id else base_id
        msg = f"{where}: {reason}"
        with self._lock:
            self.errors.append(msg)
        log.error("%s", msg)
        self.snap.mark_missing(base_id, table_id, reason, drop_table=drop_table)

    def notice(self, base_id: str, msg: str) -> None:
        """One line about the change feed, once per run (not an error: the snapshot is complete)."""
        line = f"{base_id}: {msg}"
        with self._lock:
            if line in self.notices:
                return
            self.notices.append(line)
        log.warning("%s", line)

    # -- bases and tables -------------------------------------------------------------------

    def run_base(self, bp: BasePlan) -> None:
        try:
            self._run_base(bp)
        except (AuthError, Unreachable, Cancelled):
            raise
        except (AccessDenied, NotFound) as e:
            # e.g. a fed base whose schema the plan took from the store, its access lost since: the
            # base is left out of this snapshot as an unreadable schema is (its earlier ones stay)
            with self.snap._mutex:
                self.snap._bases.pop(bp.base_id, None)
                for key in [k for k in self.snap._writers if k[0] == bp.base_id]:
                    self.snap._writers.pop(key, None)
                    self.snap._tables.pop(key, None)
            self.feed_states.pop(bp.base_id, None)
            self.error(bp.base_id, None, f"base unreadable: {e}", drop_table=True)

    def _run_base(self, bp: BasePlan) -> None:
        self.event("base_start", base_id=bp.base_id, name=bp.name, tables=len(bp.tables))
        if self.registry is not None and (bp.base_id in self.registry.hooks or self.opts.changes == "feed"
                                          or self.registry.problem):
            from snapstore.feed.engine import BaseFeed

            feed = BaseFeed(self, bp, self.registry, self.registry_lock, self.opts.changes, self.opts.full_every,
                            self.now())
            self.feed_reports[bp.base_id] = feed.report
            feed.execute()
        else:
            if bp.schema_from_store:
                self.refresh_schema(bp)
            for tp in bp.tables:
                if self.cancel.is_set():
                    raise Cancelled("interrupted")
                self.run_table(bp, tp)
        self.event("base_done", base_id=bp.base_id, name=bp.name)

    def refresh_schema(self, bp: BasePlan) -> None:
        """Read the base's schema now (the plan took the stored one, or a payload changed it)."""
        schema = self.source.schema(bp.base_id)
        bp.schema, bp.schema_from_store = schema, False
        bp.tables = table_plans({"id": bp.base_id, "name": bp.name}, schema, self.plan.selection)
        self.snap.add_base(bp.base_id, bp.name, schema, bp.permission_level)
        with self._lock:
            for key in [k for k in self.results if k[0] == bp.base_id]:
                if self.results[key].status == "pending":
                    del self.results[key]
            for tp in bp.tables:
                self.results.setdefault((bp.base_id, tp.table_id),
                                        TableResult(bp.base_id, bp.name, tp.table_id, tp.name))

    def snapshot_docs(self) -> list:
        """The catalog's commit documents, read once per run (the feed looks up each base's parent)."""
        with self._lock:
            if self._docs is None:
                self._docs = self.store.catalog.snapshot_docs()
            return self._docs

    def set_feed_state(self, base_id: str, state) -> None:
        with self._lock:
            self.feed_states[base_id] = state

    def _refs(self, bp: BasePlan, tp: TablePlan, rec: dict, refs: dict[str, AttRef]) -> None:
        fields = rec.get("fields") or {}
        for fid in tp.attachment_fields:
            for a in _scan_attachments(fields.get(fid)):
                if a["id"] not in refs:
                    refs[a["id"]] = AttRef(a["id"], a.get("url"), a.get("size"), a.get("filename"), a.get("type"),
                                           bp.base_id, tp.table_id, rec["id"], fid)

    def apply_table(self, bp: BasePlan, tp: TablePlan, records: list[dict], gone: set[str]) -> None:
        """A feed table: the parent's records carried over with these re-read and ``gone`` ended."""
        res = self.results[(bp.base_id, tp.table_id)]
        t0 = time.monotonic()
        self.event("table_start", base_id=bp.base_id, table_id=tp.table_id, name=tp.name, base_name=bp.name)
        try:
            tw = self.snap.table(bp.base_id, tp.table_id)
            counts_ = tw.apply_changes(records, gone)
        except StoreError as e:
            self._fail(res, f"store: {e}")
            return
        self._counts(res, counts_)
        refs: dict[str, AttRef] = {}
        if self.opts.attachments and tp.attachment_fields:
            for rec in records:
                self._refs(bp, tp, rec, refs)
        if refs:
            self.schedule_attachments(res, refs.values())
        if self.opts.comments:
            try:
                prev = self.snap.previous_comment_counts(bp.base_id, tp.table_id)
            except StoreError:
                prev = {}
            counts = {rid: n for rid, n in prev.items() if rid not in gone}
            counts.update({rec["id"]: int(rec.get("commentCount") or 0) for rec in records})
            self.run_comments(bp, tp, res, counts)
        res.seconds = round(time.monotonic() - t0, 3)
        res.status = "done"
        self.event("table_done", base_id=bp.base_id, table_id=tp.table_id, result=res)

    @staticmethod
    def _counts(res: TableResult, counts_) -> None:
        res.records, res.new, res.changed = counts_.records, counts_.new, counts_.changed
        res.deleted, res.unchanged, res.bytes_added = counts_.deleted, counts_.unchanged, counts_.bytes_added

    def run_table(self, bp: BasePlan, tp: TablePlan, observe: Callable[[dict], None] | None = None):
        """List a table in full; returns its writer (None when it failed). ``observe`` sees each record."""
        res = self.results[(bp.base_id, tp.table_id)]
        res.status = "listing"
        t0 = time.monotonic()
        self.event("table_start", base_id=bp.base_id, table_id=tp.table_id, name=tp.name, base_name=bp.name)
        log.info("listing %s/%s (%s / %s)", bp.base_id, tp.table_id, bp.name, tp.name)
        try:
            tw = self.snap.table(bp.base_id, tp.table_id)
        except StoreError as e:
            self._fail(res, f"store: {e}")
            return None
        att_fields = tp.attachment_fields if self.opts.attachments else []
        want_counts = bool(self.opts.comments)
        while True:
            refs: dict[str, AttRef] = {}
            counts: dict[str, int] = {}
            n = 0
            try:
                for page in self.source.iter_pages(bp.base_id, tp.table_id, comment_counts=want_counts):
                    for rec in page:
                        tw.add(rec)
                        if att_fields:
                            self._refs(bp, tp, rec, refs)
                        if observe is not None:
                            observe(rec)
                        if want_counts:
                            counts[rec["id"]] = int(rec.get("commentCount") or 0)
                    n += len(page)
                    res.records = n
                    self.event("table_page", base_id=bp.base_id, table_id=tp.table_id, records=n)
                break
            except IteratorExpired:
                res.restarts += 1
                if res.restarts > self.opts.max_restarts:
                    self._fail(res, f"the list iterator expired {res.restarts} times; giving up")
                    return None
                log.warning("%s/%s: list iterator expired after %d records; restarting the table (%d)",
                            bp.base_id, tp.table_id, n, res.restarts)
                self.event("table_restart", base_id=bp.base_id, table_id=tp.table_id, restarts=res.restarts)
                tw.reset()
                continue
            except (Cancelled, AuthError):
                raise
            except SourceError as e:
                self._fail(res, str(e))
                return None
            except StoreError as e:
                self._fail(res, f"store: {e}")
                return None
        try:
            counts_ = tw.finish()
        except StoreError as e:
            self._fail(res, f"store: {e}")
            return None
        self._counts(res, counts_)
        log.info("%s/%s: %d records (%d new, %d changed, %d deleted, %d unchanged), %d restarts",
                 bp.base_id, tp.table_id, res.records, res.new, res.changed, res.deleted, res.unchanged,
                 res.restarts)
        self.event("table_listed", base_id=bp.base_id, table_id=tp.table_id, result=res)
        if refs:
            self.schedule_attachments(res, refs.values())
        if want_counts:
            self.run_comments(bp, tp, res, counts)
        res.seconds = round(time.monotonic() - t0, 3)
        res.status = "done"
        self.event("table_done", base_id=bp.base_id, table_id=tp.table_id, result=res)
        return tw

    def _fail(self, res: TableResult, reason: str) -> None:
        res.status = "failed"
        res.error = reason
        self.error(res.base_id, res.table_id, reason, drop_table=True)
        self.event("table_failed", base_id=res.base_id, table_id=res.table_id, reason=reason)

    # -- comments -----------------------------------------------------------------------------

    def run_comments(self, bp: BasePlan, tp: TablePlan, res: TableResult, counts: dict[str, int]) -> None:
        self.comment_reader.read_table(bp, tp, res, counts)

    # -- attachments ---------------------------------------------------------------------------

    def schedule_attachments(self, res: TableResult, refs: Iterable[AttRef]) -> None:
        todo = []
        with self._lock:
            for r in refs:
                if r.att_id in self._att_seen:
                    continue
                self._att_seen.add(r.att_id)
                todo.append(r)
        new = {r.att_id for r in todo if not self.snap.known_attachment(r.att_id)}
        if new:
            self.event("attachments_scheduled", base_id=res.base_id, table_id=res.table_id, count=len(new))
        for r in todo:
            if r.att_id not in new:
                with self._lock:
                    self.att_reused += 1
                res.attachments_reused += 1
                continue
            res.attachments_new += 1
            assert self.dl_pool is not None
            fut = self.dl_pool.submit(self.download, r)
            with self._lock:
                self._downloads.append(fut)

    def _refresh(self, ref: AttRef) -> AttRef | None:
        """A fresh signed URL for ``ref``: re-read the record (or its comments). None if gone."""
        try:
            if ref.field_id is not None:
                rec = self.source.get_record(ref.base_id, ref.table_id, ref.record_id)
                candidates = _scan_attachments((rec.get("fields") or {}).get(ref.field_id))
            else:
                comments = self.source.comments(ref.base_id, ref.table_id, ref.record_id)
                candidates = (a for cm in comments for a in _scan_attachments(cm.get("attachments")))
        except NotFound:
            return None
        for a in candidates:
            if a["id"] == ref.att_id:
                return AttRef(ref.att_id, a.get("url"), a.get("size", ref.size), a.get("filename", ref.filename),
                              a.get("type", ref.mime), ref.base_id, ref.table_id, ref.record_id, ref.field_id,
                              ref.comment_id)
        return None

    def download(self, ref: AttRef) -> None:
        where = f"attachment {ref.att_id} of record {ref.record_id}"
        last = None
        for attempt in range(self.opts.download_attempts):
            if self.cancel.is_set():
                raise Cancelled("interrupted")
            try:
                if not ref.url:
                    raise AttachmentExpired("no URL")
                with self.source.open_attachment(ref.url) as f:
                    self.snap.add_attachment(ref.att_id, f, size=ref.size, filename=ref.filename, mime=ref.mime)
                    got = getattr(f, "bytes_read", ref.size or 0)
                with self._lock:
                    self.att_new += 1
                    self.att_bytes += got
                self.event("attachment", att_id=ref.att_id, bytes=got, base_id=ref.base_id)
                return
            except (Cancelled, AuthError):
                raise
            except AttachmentExpired as e:
                last = str(e)
                log.info("%s: %s; re-reading the record for a fresh URL", where, e)
                try:
                    fresh = self._refresh(ref)
                except (Cancelled, AuthError):
                    raise
                except SourceError as e2:
                    last = f"refresh failed: {e2}"
                    continue
                if fresh is None:
                    last = "the record or the attachment was removed during the run"
                    break
                ref = fresh
            except (TransientError, StoreError, OSError) as e:
                last = str(e)
                log.warning("%s: %s (attempt %d)", where, e, attempt + 1)
                delay = min(5.0, self.source.policy.backoff * (2**attempt))
                if self.cancel.wait(delay):
                    raise Cancelled("interrupted") from None
            except SourceError as e:
                last = str(e)
                break
            except Exception as e:  # never let one file abort the whole snapshot
                log.exception("%s: unexpected error", where)
                last = f"{type(e).__name__}: {e}"
                break
        with self._lock:
            self.att_failed += 1
        self.error(ref.base_id, None, f"{where} in table {ref.table_id} not stored: {last}", drop_table=False)


def take_snapshot(store, source, plan: Plan, opts: SnapshotOptions | None = None, *, log_file: str | None = None
                  ) -> SnapshotResult:
    """Read ``plan`` from ``source`` into a new snapshot of ``store`` and commit it.

    Returns a :class:`SnapshotResult` (``exit_code`` 0 or 3). Raises :class:`AuthError` and other
    fatal errors after abandoning the snapshot, and ``KeyboardInterrupt``/:class:`Cancelled` when
    interrupted (the snapshot is abandoned; nothing becomes visible).
    """
    opts = opts or SnapshotOptions()
    opts.comments = _comments_mode(opts.comments)
    t0 = time.monotonic()
    req0 = source.stats.snapshot()
    snap = store.begin_snapshot(note=opts.note, tags=opts.tags, command="snapshot")
    run = _Run(store, source, plan, opts, snap)
    for line in plan.notices:
        run.notice(*line.split(": ", 1))
    try:
        _load_feed(run)
    except BaseException:
        snap.abandon()
        raise
    # Twice the token/base ratio (2 x 50/5): against the real API a listing's pages are latency-bound
    # (one request after the other, 200-300 ms each), so a base rarely reaches its 5/s alone; the
    # shared token throttle keeps the sum at 50/s whatever the number of threads.
    workers = opts.base_workers or max(
        1, 2 * int(source.throttle.token_limit.count // max(1, source.throttle.base_limit.count))
    )
    workers = max(1, min(workers, len(plan.bases) or 1))
    base_pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="base")
    run.dl_pool = cf.ThreadPoolExecutor(max(1, opts.download_workers), thread_name_prefix="download")
    committed = False
    try:
        for bp in plan.bases:
            if bp.schema is not None:
                snap.add_base(bp.base_id, bp.name, bp.schema, bp.permission_level)
            else:
                run.error(bp.base_id, None, f"schema unreadable: {bp.error}", drop_table=True)
        run.event("start", bases=len(plan.bases), tables=len(plan.tables))
        futures = {base_pool.submit(run.run_base, bp): bp for bp in plan.bases if bp.schema is not None}
        _wait_all(futures.keys())
        for fut in futures:
            _raise_fatal(fut)
        # downloads scheduled by the last tables may still be running
        while True:
            with run._lock:
                pending = [f for f in run._downloads if not f.done()]
            if not pending:
                break
            _wait_all(pending)
        for fut in list(run._downloads):
            _raise_fatal(fut)
        _commit_feed(run)
        duration = time.monotonic() - t0
        req = _diff_stats(req0, source.stats.snapshot())
        dl = source.download_stats.snapshot()
        atts = {"new": run.att_new, "reused": run.att_reused, "failed": run.att_failed, "bytes": run.att_bytes,
                "download_retries": dl["retries"]}
        snap.stats.update({
            "duration_seconds": round(duration, 3),
            "requests": req["requests"],
            "requests_by_route": req["requests_by_route"],
            "rate_limited_429": req["rate_limited_429"],
            "retries": req["retries"],
            "network_errors": req["network_errors"],
            "bytes_received": req["bytes_received"],
            "plan_requests": plan.requests,
            "attachments": atts,
            "iterator_restarts": sum(r.restarts for r in run.results.values()),
            "errors": list(run.errors),
            "throttle_wait_seconds": round(sum(source.throttle.waited.values()), 3),
            "api_url": source.api_url,
            "log_file": log_file,
            **({"feed": {b: r.to_dict() for b, r in run.feed_reports.items()}} if run.feed_reports else {}),
            **_listing_stats(plan, run),
            **({"comments": c} if (c := run.comment_reader.stats()) else {}),
        })
        info = snap.commit()
        committed = True
        event_result = SnapshotResult(
            info=info, tables=list(run.results.values()), attachments=atts, requests=req,
            errors=list(run.errors), seconds=time.monotonic() - t0, log_file=log_file,
            feed=[r.to_dict() for r in run.feed_reports.values()], notices=list(run.notices),
        )
        log.info("snapshot %s committed: %s, %d requests, %d 429s, %.1fs", info.id, info.status,
                 req["requests"], req["rate_limited_429"], duration)
        run.event("done", result=event_result)
        return event_result
    except BaseException as exc:
        source.cancel.set()
        if not committed and not isinstance(exc, CatalogNotUpdated):  # (that one is committed, and says so)
            log.warning("snapshot abandoned (%s): nothing was committed", type(exc).__name__)
        raise
    finally:
        base_pool.shutdown(wait=False, cancel_futures=True)
        run.dl_pool.shutdown(wait=False, cancel_futures=True)
        if not committed:
            _join_quietly(base_pool, run.dl_pool, timeout=10.0)
            snap.abandon()
        source.cancel.clear()  # the source stays usable by the caller


def _comments_mode(value: bool | str | None) -> str | bool:
    """``SnapshotOptions.comments`` as "changed" or "full", or False."""
    if value in (False, None, "off"):
        return False
    if value in (True, "changed"):
        return "changed"
    if value == "full":
        return "full"
    raise ValueError(f"comments must be off, changed or full, not {value!r}")


def _listing_stats(plan: Plan, run: _Run) -> dict:
    """``stats.bases_listed``: the bases listing this snapshot rests on (a later feed run may skip
    its own listing while this one is fresh: snapstore.feed.hints)."""
    if plan.bases_listing is None:
        return {}
    from snapstore.feed.hints import listing_record

    return {"bases_listed": listing_record(plan.bases_listing["bases"], plan.bases_listing["at"] or run.now()),
            "bases_listing_skipped": plan.listing_skipped}


def _load_feed(run: _Run) -> None:
    """The store's feed registry, when a base of this run may use the change feed."""
    if run.opts.changes not in ("auto", "feed", "full"):
        raise ValueError(f"changes must be auto, feed or full, not {run.opts.changes!r}")
    from snapstore.feed.state import load_registry, recover_registry, save_registry

    reg = load_registry(run.store)
    if reg.problem:
        reg = recover_registry(run.store, reg)
        run.notice("feed", f"{reg.problem}; rebuilt from the last snapshots' feed state "
                           f"({len(reg.hooks)} hook(s))")
        save_registry(run.store, reg, run.now())
        reg.problem = None
    if reg.hooks or run.opts.changes == "feed":
        run.registry = reg


def _commit_feed(run: _Run) -> None:
    """Feed states go into the commit, except for a base with a table missing: its records are
    not all this snapshot's, so its next run lists it in full rather than trust the cursor."""
    broken = {m["base_id"] for m in run.snap._missing if not m.get("records_kept")}
    run.snap.feed = {b: st.to_dict() for b, st in sorted(run.feed_states.items()) if b not in broken}
    for b in broken & set(run.feed_states):
        run.notice(b, "a table could not be read: no feed state kept, the next run lists the base in full")


def _wait_all(futures: Iterable[cf.Future]) -> None:
    """Wait for futures in short slices, so Ctrl-C reaches the main thread; stop at the first
    fatal error (bad token, store failure, interruption)."""
    pending = set(futures)
    while pending:
        done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_EXCEPTION)
        for f in done:
            if f.exception() is not None:
                _raise_fatal(f)


def _raise_fatal(fut: cf.Future) -> None:
    exc = fut.exception() if fut.done() else None
    if exc is None:
        return
    raise exc


def _join_quietly(*pools: cf.ThreadPoolExecutor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for pool in pools:
        for t in list(getattr(pool, "_threads", ())):
            t.join(max(0.0, deadline - time.monotonic()))


def _diff_stats(a: dict, b: dict) -> dict:
    out = dict(b)
    for k in ("requests", "rate_limited_429", "retries", "network_errors", "bytes_received"):
        out[k] = b[k] - a.get(k, 0)
    for k in ("requests_by_route", "requests_by_base"):
        out[k] = {r: n - a.get(k, {}).get(r, 0) for r, n in b[k].items() if n - a.get(k, {}).get(r, 0)}
    return out


# ---------------------------------------------------------------------------------------------
# run log


class RedactFilter(logging.Filter):
    """Defence in depth: replace the token wherever it might appear in a log line."""

    def __init__(self, secrets_: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets_ if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            if any(s in msg for s in self.secrets):
                for s in self.secrets:
                    msg = msg.replace(s, "<token>")
                record.msg, record.args = msg, None
        return True


def open_run_log(store_root: str | Path, *, secrets: Iterable[str] = (), level: int = logging.DEBUG,
                 prefix: str = "snapshot") -> tuple[logging.Handler, Path]:
    """A per-run log file ``<store>/logs/<prefix>-YYYYMMDD-HHMMSS-<pid>.log`` attached to the
    ``snapstore`` logger. Detach with ``logging.getLogger("snapstore").removeHandler(handler)``."""
    import os

    logs = Path(store_root) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{prefix}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{os.getpid()}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"))
    handler.addFilter(RedactFilter(secrets))
    root = logging.getLogger("snapstore")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    return handler, path


__all__ = [
    "AccessDenied", "BasePlan", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE",
    "Plan", "Selection", "SnapshotOptions", "SnapshotResult", "TablePlan", "TableResult",
    "estimate", "open_run_log", "plan_snapshot", "table_plans", "take_snapshot",
]
