"""``snapstore snapshot``: a thin layer over snapstore.ops.snapshot.

Exit codes::

    0    complete snapshot committed
    1    error: nothing was written (bad token, unreachable API, unknown base/table, store locked…)
    2    bad usage (click)
    3    partial snapshot committed: something could not be read (listed under "missing")
    130  interrupted (Ctrl-C / SIGTERM): nothing committed, the store stays consistent
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import click

from snapstore import units
from snapstore.commands.base import command, stoppable
from snapstore.commands.logs import run_logging, start_file_log
from snapstore.commands.options import (
    dry_run_option,
    make_source,
    progress_option,
    source_options,
    store_option,
)
from snapstore.commands.output import Output
from snapstore.commands.progress import Progress
from snapstore.commands.progress import wanted as progress_wanted
from snapstore.errors import Incomplete, Interrupted, NoStore, Reported, SnapstoreError, UsageError
from snapstore.feed.text import feed_lines, parse_duration
from snapstore.ops.comment_sweep import summary_lines

log = logging.getLogger("snapstore.cli")


_fmt_int = units.number


def table_rows(head: tuple[str, ...], rows: list[tuple[str, ...]], width: int = units.WIDTH) -> list[str]:
    """A table whose first column (a name) takes what the numbers leave of ``width``, cut with an
    ellipsis, and whose other columns are right-aligned."""
    nums = [max(len(r[i]) for r in [head, *rows]) for i in range(1, len(head))]
    room = width - sum(nums) - 2 * len(nums)
    name_w = max(8, min(room, max(len(r[0]) for r in [head, *rows])))
    return ["  ".join([units.clip(r[0], name_w).ljust(name_w), *(c.rjust(w) for c, w in zip(r[1:], nums, strict=True))])
            .rstrip() for r in [head, *rows]]


def _summary_text(result, plan) -> str:
    info = result.info
    n = units.number
    rows = [(f"{t.base_name} / {t.name}", n(t.records), n(t.new), n(t.changed), n(t.deleted), n(t.unchanged),
             t.status if t.status != "done" else "ok") for t in result.tables]
    lines = table_rows(("table", "records", "new", "changed", "deleted", "same", "status"), rows)
    tot = lambda k: sum(getattr(t, k) for t in result.tables)  # noqa: E731
    lines.append(
        f"total: {units.count(tot('records'), 'record')} in {units.count(len(result.tables), 'table')}: "
        f"{n(tot('new'))} new, {n(tot('changed'))} changed, {n(tot('deleted'))} deleted, {n(tot('unchanged'))} same"
    )
    a = result.attachments
    lines.append(f"attachments: {n(a['new'])} new ({units.size(a['bytes'])}), {n(a['reused'])} already stored"
                 + (f", {n(a['failed'])} failed" if a["failed"] else ""))
    r = result.requests
    lines.append(f"requests: {n(r['requests'])} (+{n(plan.requests)} to plan), {n(r['rate_limited_429'])} x 429, "
                 f"{n(r['retries'])} retries; {result.seconds:.1f}s")
    lines.append(f"added to the store: {units.size(info.bytes_added)}")
    lines.extend(feed_lines(result.feed))
    lines.extend(summary_lines(info.stats.get("comments")))
    lines.extend(f"notice: {n}" for n in result.notices)
    for e in result.errors:
        lines.append(f"error: {e}")
    status = "complete" if info.status == "complete" else f"PARTIAL ({len(info.missing)} missing)"
    lines.append(f"snapshot {info.id} {status}")
    if result.log_file:
        lines.append(f"log: {result.log_file}")
    return units.fit("\n".join(lines))


@command(own_logging=True, imports=("snapstore.ops.snapshot",))
@source_options
@store_option
@click.option("--base", "-b", multiple=True, help="Base id or name to read (repeatable; default: all).")
@click.option("--table", "-t", multiple=True,
              help="Table id or name, or BASE/TABLE, to read (repeatable; default: all).")
@click.option("--exclude-base", multiple=True, help="Base id or name to skip (repeatable).")
@click.option("--exclude-table", multiple=True, help="Table id or name, or BASE/TABLE, to skip (repeatable).")
@click.option("--attachments/--no-attachments", default=True, show_default=True,
              help="Download new attachment files.")
@click.option("--comments", metavar="[changed|full]", is_flag=False, flag_value="changed",
              default=None, callback=lambda c, p, v: _comments(v),
              help="Back up record comments: one request per record whose comment count changed, and every "
                   "commented record when its table's sweep is due (--comments-every); full: sweep now.")
@click.option("--no-comments", is_flag=True, help="No comments (the default).")
@click.option("--comments-every", default="7d", show_default=True, callback=lambda c, p, v: _sweep_every(v),
              help="A table's comments are all read again (edited comments caught) when its last sweep is "
                   "older than this; never: only with --comments full.")
@dry_run_option("Show what would be read and an estimate; read no records.")
@click.option("--note", default=None, help="A note stored with the snapshot.")
@click.option("--tag", "tags", multiple=True,
              help="A tag stored with the snapshot (repeatable; no commas).")
@click.option("--workers", type=click.IntRange(min=1, max=100), default=None,
              help="Bases read in parallel (default: 2 x token rate / base rate = 20).")
@progress_option
@click.option("--changes", type=click.Choice(["auto", "feed", "full"]), default="auto", show_default=True,
              help="auto: read only what changed where the change feed is enabled and healthy; feed: also "
                   "enable it on bases without it; full: list everything (and measure the feed).")
@click.option("--full-every", default="auto", show_default=True, callback=lambda c, p, v: _duration(v),
              help="A feed base is listed in full (its feed measured) when its last full listing is older; "
                   "auto: as many hours as the listing costs requests (24 h to 7 days); a duration; never.")
def snapshot(store, base, table, exclude_base, exclude_table, attachments, comments, no_comments, comments_every,
             dry_run, note, tags, workers, progress, changes, full_every, out: Output, **kw) -> None:
    """Take a complete snapshot of every base the token can read (or those named), storing only
    what changed since the last one.

    The token comes from --token, $AIRTABLE_TOKEN or --token-file / $AIRTABLE_TOKEN_FILE and is
    never written anywhere. Exit codes: 0 complete, 1 error (nothing written), 3 partial snapshot
    (see `missing`), 130 interrupted.
    """
    from snapstore.ops.snapshot import Selection, SnapshotOptions, plan_snapshot, take_snapshot
    from snapstore.source import Cancelled
    from snapstore.store import LockError, Store
    from snapstore.store.s3 import parse_s3_url

    tags = _checked_tags(tags)  # (here, not in a callback: its library loads with the verb's, base.preload)
    cancel = threading.Event()
    source, token = make_source(kw, cancel)
    show_progress = progress_wanted(out, progress)
    selection = Selection(list(base), list(table), list(exclude_base), list(exclude_table))
    store_path = Path(store)
    to_stderr = not show_progress and not out.json and not out.quiet or out.verbose
    with source, run_logging(token, to_stderr=to_stderr, verbose=out.verbose) as logstate, stoppable(cancel):
        log.debug("snapstore snapshot: api %s, store %s", source.api_url, store_path)
        # 1. plan: network only, the store is untouched until every check passed
        previous = None
        if dry_run and _store_exists(store):
            try:
                previous = Store.open(store).list_snapshots()
                previous = previous[0] if previous else None
            except NoStore:
                if parse_s3_url(str(store)) is None:
                    raise
                previous = None  # an empty bucket prefix: nothing taken yet
        stored = _feed_schemas(store, changes, full_every) if not dry_run else None
        try:
            plan = plan_snapshot(source, selection, previous=previous, workers=workers, feed=stored)
        except KeyboardInterrupt:
            raise Interrupted("nothing was written") from None
        if dry_run:
            _dry_run_output(plan, source, kw, workers, previous, out)
            return
        if not plan.tables and not any(bp.error for bp in plan.bases):
            raise SnapstoreError("nothing to snapshot: the selection matches no table")
        # 2. the store
        st = Store.open(store_path, create=True)
        holder = st.lock_holder()
        if holder is not None and not holder.is_stale():  # say so before writing even a log file
            raise LockError(f"the store is busy: locked by {holder.describe()}; if that process is gone, "
                            "`snapstore unlock` frees it")
        log_path = start_file_log(logstate, st.private_dir, token)
        if comments and not no_comments:  # sweeps fitted into the month's API budget, if one is set
            from snapstore.commands.runhook import budget
            from snapstore.ops.comment_sweep import budgeted_every

            comments_every = budgeted_every(st, comments_every, budget(click.get_current_context()))
        opts = SnapshotOptions(attachments=attachments, comments=False if no_comments else comments, note=note,
                               tags=tuple(tags), base_workers=workers, changes=changes, full_every=full_every,
                               comments_every=comments_every)
        prog = None
        if show_progress:
            prog = Progress(source, plan=plan, color=out.color).start()
            opts.on_event = prog
        try:
            result = take_snapshot(st, source, plan, opts, log_file=str(log_path))
        except (KeyboardInterrupt, Cancelled):
            if prog:
                prog.stop()
            log.warning("interrupted: the snapshot was abandoned; nothing committed, the store is consistent")
            raise Interrupted("nothing committed; the next run reuses what was already written") from None
        finally:
            if prog:
                prog.stop()
        if out.json:
            doc = result.to_dict()
            doc["plan"] = {"requests": plan.requests, "visible_bases": plan.visible_bases}
            out.emit(doc)
        else:
            out.echo(_summary_text(result, plan))
        if result.exit_code and out.quiet and not out.json:
            from snapstore.commands.runhook import missing_text  # the bases and tables that failed, and why

            names = {**{t.base_id: t.base_name for t in result.tables}, **{t.table_id: t.name for t in result.tables}}
            raise Incomplete(f"snapshot {result.info.id} PARTIAL: {missing_text(result.info.missing, names)} "
                             f"(snapstore show {result.info.id})")
        if result.exit_code:
            raise Reported(result.exit_code)  # the summary above says PARTIAL and what is missing


def _comments(value) -> str | bool:
    """``--comments`` alone, with a mode, or from the config file (``comments = true`` or ``"full"``)."""
    mode = None if value is None else str(value).strip().lower()
    if mode in (None, "false", "off"):
        return False
    if mode in ("true", "changed", "on"):
        return "changed"
    if mode == "full":
        return "full"
    raise click.BadParameter(f"{value!r}: expected changed or full")


def _sweep_every(value: str) -> float | None:
    every = _duration(value)
    if isinstance(every, str):  # "auto", the only text _duration returns
        raise click.BadParameter("a duration (e.g. 7d, 24h) or never")
    return every


def _duration(value: str) -> float | str | None:
    from snapstore.commands.params import seconds

    try:
        return seconds(parse_duration(value), "--full-every")
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _feed_schemas(store: str, changes: str, full_every):
    """What the store knows of its feed bases (snapstore.feed.hints: schemas, the last bases listing),
    so a feed run skips whoami, the bases listing and the schemas; read-only, nothing on any doubt."""
    if not _store_exists(store):
        return None
    from snapstore.feed.hints import feed_hints
    from snapstore.store import LockError, Store, StoreError

    try:
        return feed_hints(Store.open(store), full_every=full_every, changes=changes)
    except (StoreError, LockError, OSError):
        return None


def _dry_run_output(plan, source, kw, workers, previous, out: Output) -> None:
    from snapstore.ops.snapshot import estimate

    est = estimate(plan, rate_base=kw["rate_limit_base"], rate_token=kw["rate_limit_token"],
                   workers=workers or max(1, 2 * int(kw["rate_limit_token"] // kw["rate_limit_base"])),
                   margin=source.throttle.margin)
    est["previous_snapshot"] = previous.id if previous is not None else None
    est["plan_requests"] = plan.requests
    if out.json:
        out.emit(est)
        return
    out.echo(f"dry run: {len(plan.bases)} base(s), {est['tables']} table(s) would be read"
               + (f" (estimates from snapshot {previous.id})" if previous else " (no previous snapshot)"))
    for b in est["bases"]:
        out.echo(f"  {b['name']} ({b['base_id']})" + (f": SCHEMA UNREADABLE: {b['error']}" if b["error"] else ""))
        for t in b["tables"]:
            out.echo(f"    {t['name']} ({t['table_id']}): {_fmt_int(t['records'])} records, "
                       f"{_fmt_int(t['requests'])} list requests")
    if est["complete"]:
        out.echo(f"estimate: {est['requests']:,} requests, about {est['seconds']:.0f}s at "
                   f"{kw['rate_limit_base']:g}/s per base and {kw['rate_limit_token']:g}/s per token "
                   "(plus attachments and comments)")
    else:
        known = est["requests"]
        out.echo(f"estimate: unknown for {est['unknown_tables']} table(s) never snapshotted "
                   f"(record counts are only known from a previous snapshot); at least {known:,} requests, "
                   f"{est['seconds']:.0f}s for the rest; each table needs ceil(records/100) requests "
                   f"at {kw['rate_limit_base']:g}/s per base")


def _checked_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    from snapstore.ops.retention import check_tags

    try:
        return tuple(check_tags(tags))
    except UsageError as e:
        raise click.BadParameter(str(e), param_hint="--tag") from None


def _store_exists(store: str | Path) -> bool:
    """A local store has its config.json; an s3:// store is asked when it is opened."""
    from snapstore.store.s3 import parse_s3_url

    return parse_s3_url(str(store)) is not None or (Path(store) / "config.json").exists()
