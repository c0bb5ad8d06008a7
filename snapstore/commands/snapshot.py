"""``snapstore snapshot``, ``check``, ``log`` and ``show``: thin layers over snapstore.snapshot.

Exit codes (``snapshot``; ``check`` uses 0/1/3 the same way)::

    0    complete snapshot committed
    1    error: nothing was written (bad token, unreachable API, unknown base/table, store locked…)
    2    bad usage (click)
    3    partial snapshot committed: something could not be read (listed under "missing")
    130  interrupted (Ctrl-C / SIGTERM): nothing committed, the store stays consistent

Configuration file (``--config FILE`` or ``$SNAPSTORE_CONFIG``), TOML; keys are the long option names
(``api_url`` or ``api-url``), top level for every command or in a ``[snapshot]`` / ``[check]`` table;
options given on the command line or in the environment win::

    store = "/backups/airtable"
    api_url = "https://api.airtable.com"
    token_file = "~/.config/snapstore/token"      # the token itself is never read from this file
    base = ["Sales", "appXXXXXXXXXXXXXX"]
    exclude_table = ["Sales/Scratch"]
    comments = true
    attachments = true
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path

import click

from snapstore import units
from snapstore.commands.base import command
from snapstore.commands.common import interrupts, store_option
from snapstore.commands.find import fail
from snapstore.errors import Interrupted, NoStore, SnapstoreError, UsageError
from snapstore.feed.text import feed_lines, parse_duration
from snapstore.retention import check_tags
from snapstore.selection import find_id, holding
from snapstore.snapshot import (
    EXIT_ERROR,
    EXIT_PARTIAL,
    RedactFilter,
    Selection,
    SnapshotOptions,
    estimate,
    open_run_log,
    plan_snapshot,
    take_snapshot,
)
from snapstore.source import DEFAULT_API_URL, AirtableSource, Cancelled, RetryPolicy, SourceError
from snapstore.store import LockError, Store, StoreError
from snapstore.store.s3 import parse_s3_url

log = logging.getLogger("snapstore.cli")


class SnapshotCommandError(SnapstoreError):
    """One clear line on stderr, exit code 1, nothing written."""

    exit_code = EXIT_ERROR


# ---------------------------------------------------------------------------------------------
# configuration


_FORBIDDEN_KEYS = {"token"}


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Eager: read the TOML file into ctx.default_map so options fall back to it."""
    if not value:
        return value
    path = Path(value).expanduser()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise click.BadParameter(f"{path} does not exist", ctx=ctx, param=_param) from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise click.BadParameter(f"{path}: {e}", ctx=ctx, param=_param) from None
    cmd = ctx.command.name or ""
    flat = {k: v for k, v in doc.items() if not isinstance(v, dict)}
    section = doc.get(cmd) if isinstance(doc.get(cmd), dict) else {}
    merged = {**flat, **section}
    # keys may be the parameter names or the long option names: "tags" or "tag", "as_json" or "json"
    names: dict[str, str] = {}
    for p in ctx.command.params:
        if not p.name or p.name in ("config", "help"):
            continue
        names[p.name] = p.name
        for opt in getattr(p, "opts", []):
            if opt.startswith("--"):
                names.setdefault(opt[2:].replace("-", "_"), p.name)
    out = {}
    for key, v in merged.items():
        k = key.replace("-", "_")
        if k in _FORBIDDEN_KEYS:
            raise click.BadParameter(
                f"{path}: the token must not be stored in the config file; use token_file, "
                "$AIRTABLE_TOKEN or $AIRTABLE_TOKEN_FILE", ctx=ctx, param=_param)
        if k not in names:
            # keys meant for another command are fine at top level, not in this command's section
            if key in section:
                raise click.BadParameter(f"{path}: unknown key {key!r} in [{cmd}]", ctx=ctx, param=_param)
            continue
        k = names[k]
        if isinstance(v, str) and k in ("token_file", "store"):
            v = str(Path(v).expanduser())
        out[k] = v
    ctx.default_map = {**(ctx.default_map or {}), **out}
    return value


config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False), envvar="SNAPSTORE_CONFIG", is_eager=True,
    expose_value=False, callback=_load_config,
    help="TOML file with defaults for every option (flags and environment win). [env: SNAPSTORE_CONFIG]",
)


def _source_options(f):
    opts = [
        click.option("--token", envvar="AIRTABLE_TOKEN", show_envvar=True, default=None,
                     help="Airtable personal access token (prefer the environment or --token-file)."),
        click.option("--token-file", type=click.Path(dir_okay=False), envvar="AIRTABLE_TOKEN_FILE",
                     show_envvar=True, default=None, help="Read the token from this file."),
        click.option("--api-url", envvar="AIRTABLE_API_URL", show_envvar=True, default=DEFAULT_API_URL,
                     show_default=True, help="API endpoint (the emulator's URL in tests and demos)."),
        click.option("--rate-limit-base", type=click.FloatRange(min=0.01), default=5.0, show_default=True,
                     help="Requests per second per base (Airtable: 5). Higher values only make sense "
                          "against the time-accelerated emulator."),
        click.option("--rate-limit-token", type=click.FloatRange(min=0.01), default=50.0, show_default=True,
                     help="Requests per second for the whole token (Airtable: 50)."),
        click.option("--penalty", type=click.FloatRange(min=0.0), default=30.0, show_default=True,
                     help="Seconds a base is paused after a 429 (Airtable: 30)."),
        click.option("--retry-backoff", type=click.FloatRange(min=0.0), default=0.5, hidden=True,
                     help="First backoff delay for 5xx/connection retries (tests)."),
        click.option("--max-retries", type=click.IntRange(min=0), default=8, hidden=True),
        config_option,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _read_token(token: str | None, token_file: str | None) -> str:
    if token and token.strip():
        return token.strip()
    if token_file:
        p = Path(token_file).expanduser()
        try:
            value = p.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise SnapshotCommandError(f"cannot read the token file {p}: {e.strerror or e}") from None
        if not value:
            raise SnapshotCommandError(f"the token file {p} is empty")
        return value
    raise SnapshotCommandError(
        "no Airtable token: set AIRTABLE_TOKEN, or pass --token-file FILE (or --token)")


def _make_source(kw: dict, cancel: threading.Event | None = None) -> tuple[AirtableSource, str]:
    token = _read_token(kw.get("token"), kw.get("token_file"))
    policy = RetryPolicy(max_retries=kw.get("max_retries", 8), backoff=kw.get("retry_backoff", 0.5))
    try:
        src = AirtableSource(
            token, kw.get("api_url") or DEFAULT_API_URL,
            rate_base=kw["rate_limit_base"], rate_token=kw["rate_limit_token"], penalty=kw["penalty"],
            policy=policy, cancel=cancel,
        )
    except SourceError as e:
        raise SnapshotCommandError(str(e)) from None
    return src, token


# ---------------------------------------------------------------------------------------------
# logging and progress


class _Buffer(logging.Handler):
    """Holds log records until the run's log file exists (the store is opened after the checks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _logging(token: str, *, to_stderr: bool, verbose: bool):
    root = logging.getLogger("snapstore")
    old_level = root.level
    root.setLevel(logging.DEBUG)
    buf = _Buffer()
    buf.addFilter(RedactFilter([token]))
    root.addHandler(buf)
    stderr_h = None
    if to_stderr:
        stderr_h = logging.StreamHandler(sys.stderr)
        stderr_h.setLevel(logging.DEBUG if verbose else logging.INFO)
        stderr_h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        stderr_h.addFilter(RedactFilter([token]))
        root.addHandler(stderr_h)
    state = {"buffer": buf, "file": None}
    try:
        yield state
    finally:
        for h in (buf, stderr_h, state["file"]):
            if h is not None:
                root.removeHandler(h)
                h.close()
        root.setLevel(old_level)


def _start_file_log(state: dict, store_root: Path, token: str) -> Path:
    handler, path = open_run_log(store_root, secrets=[token])
    buf: _Buffer = state["buffer"]
    for rec in buf.records:
        if rec.levelno >= handler.level:
            handler.handle(rec)
    logging.getLogger("snapstore").removeHandler(buf)
    buf.records.clear()
    state["file"] = handler
    return path


def _fmt_int(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


_fmt_bytes = units.size


class Progress:
    """Per base and table progress from the run's events: a redrawn block on a terminal."""

    def __init__(self, source: AirtableSource, stream=None, interval: float = 0.25) -> None:
        self.source = source
        self.stream = stream or sys.stderr
        self.interval = interval
        self.lock = threading.Lock()
        self.tables: dict[tuple[str, str], dict] = {}
        self.bases: dict[str, str] = {}
        self.att_new = 0
        self.att_scheduled = 0
        self.att_bytes = 0
        self.total = 0
        self.t0 = time.monotonic()
        self._lines = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, kind: str, info: dict) -> None:
        with self.lock:
            if kind == "start":
                self.total = info.get("tables", 0)
            elif kind == "base_start":
                self.bases[info["base_id"]] = info["name"]
            elif kind == "table_start":
                self.tables[(info["base_id"], info["table_id"])] = {
                    "name": info["name"], "status": "listing", "records": 0, "restarts": 0}
            elif kind == "table_page":
                self.tables[(info["base_id"], info["table_id"])]["records"] = info["records"]
            elif kind == "table_restart":
                self.tables[(info["base_id"], info["table_id"])]["restarts"] = info["restarts"]
            elif kind == "table_done":
                r = info["result"]
                self.tables[(info["base_id"], info["table_id"])].update(status="done", records=r.records)
            elif kind == "table_failed":
                self.tables[(info["base_id"], info["table_id"])].update(status="FAILED")
            elif kind == "attachments_scheduled":
                self.att_scheduled += info.get("count", 0)
            elif kind == "attachment":
                self.att_new += 1
                self.att_bytes += info.get("bytes") or 0

    def start(self) -> Progress:
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self._clear()

    def _clear(self) -> None:
        if self._lines:
            self.stream.write(f"\x1b[{self._lines}F\x1b[J")
            self.stream.flush()
            self._lines = 0

    def lines(self) -> list[str]:
        s = self.source.stats.snapshot()
        dt = max(time.monotonic() - self.t0, 1e-6)
        with self.lock:
            done = sum(1 for t in self.tables.values() if t["status"] != "listing")
            records = sum(t["records"] for t in self.tables.values())
            out = [
                f"snapshot: {done}/{self.total or len(self.tables)} tables, {records:,} records, "
                f"{s['requests']:,} requests ({s['requests'] / dt:.1f}/s), {s['rate_limited_429']} x 429, "
                f"attachments {self.att_new}/{self.att_scheduled} new ({_fmt_bytes(self.att_bytes)}), {dt:.0f}s"
            ]
            for (base_id, _tid), t in self.tables.items():
                if t["status"] == "listing":
                    extra = f", restarted {t['restarts']}x" if t["restarts"] else ""
                    out.append(f"  {self.bases.get(base_id, base_id)} / {t['name']}: "
                               f"{t['records']:,} records{extra}")
        return out[:20]

    def draw(self) -> None:
        text = self.lines()
        width = 150
        self._clear()
        self.stream.write("".join(line[:width] + "\n" for line in text))
        self.stream.flush()
        self._lines = len(text)


# ---------------------------------------------------------------------------------------------
# output


def _summary_text(result, plan) -> str:
    info = result.info
    lines = []
    rows = [("base", "table", "records", "new", "changed", "deleted", "unchanged", "status")]
    for t in result.tables:
        rows.append((t.base_name, t.name, _fmt_int(t.records), str(t.new), str(t.changed), str(t.deleted),
                     str(t.unchanged), t.status if t.status != "done" else "ok"))
    widths = [min(32, max(len(r[i]) for r in rows)) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c[:widths[i]].ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    tot = lambda k: sum(getattr(t, k) for t in result.tables)  # noqa: E731
    lines.append(
        f"total: {tot('records'):,} records in {len(result.tables)} tables: {tot('new'):,} new, "
        f"{tot('changed'):,} changed, {tot('deleted'):,} deleted, {tot('unchanged'):,} unchanged"
    )
    a = result.attachments
    lines.append(f"attachments: {a['new']} new ({_fmt_bytes(a['bytes'])}), {a['reused']} already stored"
                 + (f", {a['failed']} failed" if a["failed"] else ""))
    r = result.requests
    lines.append(f"requests: {r['requests']:,} (+{plan.requests} to plan), {r['rate_limited_429']} x 429, "
                 f"{r['retries']} retries; bytes added to the store: {_fmt_bytes(info.bytes_added)}; "
                 f"duration {result.seconds:.1f}s")
    lines.extend(feed_lines(result.feed))
    lines.extend(f"notice: {n}" for n in result.notices)
    for e in result.errors:
        lines.append(f"error: {e}")
    status = "complete" if info.status == "complete" else f"PARTIAL ({len(info.missing)} missing)"
    lines.append(f"snapshot {info.id} {status}")
    if result.log_file:
        lines.append(f"log: {result.log_file}")
    return "\n".join(lines)


def _echo_json(doc) -> None:
    click.echo(json.dumps(doc, indent=2, default=str, sort_keys=False))


# ---------------------------------------------------------------------------------------------
# commands


def _selection(base, table, exclude_base, exclude_table) -> Selection:
    return Selection(list(base), list(table), list(exclude_base), list(exclude_table))


@command()
@_source_options
@store_option
@click.option("--base", "-b", multiple=True, help="Base id or name to read (repeatable; default: all).")
@click.option("--table", "-t", multiple=True,
              help="Table id or name, or BASE/TABLE, to read (repeatable; default: all).")
@click.option("--exclude-base", multiple=True, help="Base id or name to skip (repeatable).")
@click.option("--exclude-table", multiple=True, help="Table id or name, or BASE/TABLE, to skip (repeatable).")
@click.option("--attachments/--no-attachments", default=True, show_default=True,
              help="Download new attachment files.")
@click.option("--comments/--no-comments", default=False, show_default=True,
              help="Back up record comments (one request per record whose comment count changed).")
@click.option("--dry-run", is_flag=True, help="Show what would be read and an estimate; read no records.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result on stdout.")
@click.option("--note", default=None, help="A note stored with the snapshot.")
@click.option("--tag", "tags", multiple=True, callback=lambda _c, _p, v: _checked_tags(v),
              help="A tag stored with the snapshot (repeatable; no commas).")
@click.option("--workers", type=click.IntRange(min=1, max=100), default=None,
              help="Bases read in parallel (default: 2 x token rate / base rate = 20).")
@click.option("--progress/--no-progress", default=None,
              help="Progress display (default: on when stderr is a terminal).")
@click.option("-v", "--verbose", is_flag=True, help="Debug lines on stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Nothing on success; one line on failure (cron).")
@click.option("--changes", type=click.Choice(["auto", "feed", "full"]), default="auto", show_default=True,
              help="auto: read only what changed where the change feed is enabled and healthy; feed: also "
                   "enable it on bases without it; full: list everything (and measure the feed).")
@click.option("--full-every", default="24h", show_default=True, callback=lambda c, p, v: _duration(v),
              help="A feed base is listed in full (its feed measured) when its last full listing is older.")
def snapshot(store, base, table, exclude_base, exclude_table, attachments, comments, dry_run, as_json, note,
             tags, workers, progress, verbose, quiet, changes, full_every, **kw) -> None:
    """Take a complete snapshot of every base the token can read (or those named), storing only
    what changed since the last one.

    The token comes from --token, $AIRTABLE_TOKEN or --token-file / $AIRTABLE_TOKEN_FILE and is
    never written anywhere. Exit codes: 0 complete, 1 error (nothing written), 3 partial snapshot
    (see `missing`), 130 interrupted.
    """
    cancel = threading.Event()
    source, token = _make_source(kw, cancel)
    tty = sys.stderr.isatty()
    show_progress = tty and not as_json and not quiet if progress is None else progress
    selection = _selection(base, table, exclude_base, exclude_table)
    store_path = Path(store)
    with source, _logging(token, to_stderr=not show_progress and not as_json and not quiet or verbose,
                          verbose=verbose) as logstate, interrupts(cancel):
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
        stored = _feed_schemas(store, changes) if not dry_run else None
        try:
            plan = plan_snapshot(source, selection, previous=previous, workers=workers, stored_schemas=stored)
        except KeyboardInterrupt:
            raise Interrupted("nothing was written") from None
        if dry_run:
            _dry_run_output(plan, source, kw, workers, previous, as_json)
            return
        if not plan.tables and not any(bp.error for bp in plan.bases):
            raise SnapshotCommandError("nothing to snapshot: the selection matches no table")
        # 2. the store
        st = Store.open(store_path, create=True)
        holder = st.lock_holder()
        if holder is not None and not holder.is_stale():  # say so before writing even a log file
            raise LockError(f"the store is busy: locked by {holder.describe()}")
        log_path = _start_file_log(logstate, st.private_dir, token)
        opts = SnapshotOptions(attachments=attachments, comments=comments, note=note, tags=tuple(tags),
                               base_workers=workers, changes=changes, full_every=full_every)
        prog = None
        if show_progress:
            prog = Progress(source).start()
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
        if as_json:
            doc = result.to_dict()
            doc["plan"] = {"requests": plan.requests, "visible_bases": plan.visible_bases}
            _echo_json(doc)
        elif not quiet or result.exit_code:
            click.echo(_summary_text(result, plan) if not quiet else
                       f"snapshot {result.info.id} PARTIAL: {len(result.info.missing)} missing", err=quiet)
        if result.exit_code:
            raise click.exceptions.Exit(result.exit_code)


def _duration(value: str) -> float | None:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _feed_schemas(store: str, changes: str) -> dict | None:
    """Stored schemas of the feed bases (their schema request is skipped unless a payload says it
    changed); read-only, and nothing on any doubt."""
    if changes == "full" or not _store_exists(store):
        return None
    from snapstore.feed.state import stored_schemas

    try:
        return stored_schemas(Store.open(store))
    except (StoreError, LockError, OSError):
        return None


def _dry_run_output(plan, source, kw, workers, previous, as_json) -> None:
    est = estimate(plan, rate_base=kw["rate_limit_base"], rate_token=kw["rate_limit_token"],
                   workers=workers or max(1, 2 * int(kw["rate_limit_token"] // kw["rate_limit_base"])),
                   margin=source.throttle.margin)
    est["previous_snapshot"] = previous.id if previous is not None else None
    est["plan_requests"] = plan.requests
    if as_json:
        _echo_json(est)
        return
    click.echo(f"dry run: {len(plan.bases)} base(s), {est['tables']} table(s) would be read"
               + (f" (estimates from snapshot {previous.id})" if previous else " (no previous snapshot)"))
    for b in est["bases"]:
        click.echo(f"  {b['name']} ({b['base_id']})" + (f": SCHEMA UNREADABLE: {b['error']}" if b["error"] else ""))
        for t in b["tables"]:
            click.echo(f"    {t['name']} ({t['table_id']}): {_fmt_int(t['records'])} records, "
                       f"{_fmt_int(t['requests'])} list requests")
    if est["complete"]:
        click.echo(f"estimate: {est['requests']:,} requests, about {est['seconds']:.0f}s at "
                   f"{kw['rate_limit_base']:g}/s per base and {kw['rate_limit_token']:g}/s per token "
                   "(plus attachments and comments)")
    else:
        known = est["requests"]
        click.echo(f"estimate: unknown for {est['unknown_tables']} table(s) never snapshotted "
                   f"(record counts are only known from a previous snapshot); at least {known:,} requests, "
                   f"{est['seconds']:.0f}s for the rest; each table needs ceil(records/100) requests "
                   f"at {kw['rate_limit_base']:g}/s per base")


def _checked_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return tuple(check_tags(tags))
    except UsageError as e:
        raise click.BadParameter(str(e), param_hint="--tag") from None


@command()
@_source_options
@click.option("--base", "-b", multiple=True, help="Only check these bases (ids or names).")
@click.option("--comments", is_flag=True, help="Also check the comments scope (data.recordComments:read).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable verdicts.")
def check(base, comments, as_json, **kw) -> None:
    """Verify the token and its access: a verdict per base (schema and records readable).

    Exit codes: 0 every base readable, 1 the token or API failed, 3 some bases not readable.
    """
    source, _token = _make_source(kw)
    with source:
        try:
            user = source.preflight()
            visible = source.bases()
        except SourceError as e:
            raise SnapshotCommandError(str(e)) from None
        verdicts = []
        wanted = list(base)
        chosen = visible
        if wanted:
            chosen = []
            for spec in wanted:
                try:
                    bid = find_id(spec, [(b["id"], b.get("name")) for b in visible], "base")
                except UsageError as e:
                    raise fail(e) from None
                hits = [b for b in visible if b["id"] == bid]
                if not hits:
                    verdicts.append({"base_id": spec, "name": None, "ok": False,
                                     "verdict": "not visible to this token"})
                chosen.extend(hits)
        for b in chosen:
            v = {"base_id": b["id"], "name": b.get("name"), "permission_level": b.get("permissionLevel"),
                 "ok": True}
            try:
                schema = source.schema(b["id"])
                tables = schema.get("tables", [])
                v["tables"] = len(tables)
                if tables:
                    recs = source.first_record(b["id"], tables[0]["id"])
                    if comments and recs:
                        source.comments(b["id"], tables[0]["id"], recs[0]["id"])
                v["verdict"] = (f"ok: {len(tables)} table(s), records readable"
                                + (", comments readable" if comments else ""))
            except SourceError as e:
                v["ok"] = False
                v["verdict"] = str(e)
            verdicts.append(v)
        failed = [v for v in verdicts if not v["ok"]]
        if as_json:
            _echo_json({"user": user, "api_url": source.api_url, "bases": verdicts, "ok": not failed})
        else:
            click.echo(f"token ok: user {user.get('id')}" + (f" <{user['email']}>" if user.get("email") else "")
                       + (f", scopes {' '.join(user['scopes'])}" if user.get("scopes") else "")
                       + f"; {len(visible)} base(s) visible at {source.api_url}")
            for v in verdicts:
                mark = "ok  " if v["ok"] else "FAIL"
                name = f"{v['name']} ({v['base_id']})" if v["name"] else v["base_id"]
                click.echo(f"  {mark} {name}: {v['verdict'].removeprefix('ok: ')}")
            if not verdicts:
                click.echo("  (the token sees no base: grant it bases in its access settings)")
        if failed or not verdicts:
            raise click.exceptions.Exit(EXIT_PARTIAL)


def _store_exists(store: str | Path) -> bool:
    """A local store has its config.json; an s3:// store is asked when it is opened."""
    return parse_s3_url(str(store)) is not None or (Path(store) / "config.json").exists()


def _open_existing(store: str) -> Store:
    if not _store_exists(store):
        raise NoStore(f"no store at {store} (take a snapshot first, or pass --store)")
    return Store.open(store)


def _counts(info) -> dict:
    tables = [t for b in info.bases for t in b.tables]
    return {k: sum(getattr(t, k) for t in tables) for k in ("records", "new", "changed", "deleted")} | {
        "bases": len(info.bases), "tables": len(tables)}


@command("log")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=None, help="Show at most N snapshots.")
@click.option("--base", "-b", "bases", multiple=True, help="Only snapshots holding this base (id or name; repeatable).")
def log_cmd(store, as_json, limit, bases) -> None:
    """List snapshots, newest first, with their counts and status."""
    st = _open_existing(store)
    try:
        snaps = holding(st.list_snapshots(), bases)
    except UsageError as e:
        raise fail(e) from None
    snaps = snaps[:limit] if limit else snaps
    if as_json:
        _echo_json([{**_counts(s), "id": s.id, "time": s.time.isoformat().replace("+00:00", "Z"),
                     "status": s.status, "parent": s.parent[:8] if s.parent else None, "tags": s.tags,
                     "note": s.note, "bytes_added": s.bytes_added, "missing": s.missing} for s in snaps])
        return
    if not snaps:
        click.echo("no snapshots yet")
        return
    for s in snaps:
        c = _counts(s)
        extra = ""
        if s.tags:
            extra += f"  [{', '.join(s.tags)}]"
        if s.note:
            extra += f"  {s.note}"
        click.echo(f"{s.id}  {s.time:%Y-%m-%d %H:%M:%S}Z  {s.status:8}  {units.count(c['bases'], 'base')} "
                   f"{units.count(c['tables'], 'table')}  {units.count(c['records'], 'record')}  +{c['new']:,} ~{c['changed']:,} "
                   f"-{c['deleted']:,}  {_fmt_bytes(s.bytes_added)}{extra}")


@command()
@store_option
@click.argument("name", default="latest", metavar="SNAPSHOT")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable details.")
def show(store, name, as_json) -> None:
    """Show one snapshot per base and table: SNAPSHOT is a short id, latest, latest~N or a date."""
    st = _open_existing(store)
    info = st.resolve(name)
    if as_json:
        _echo_json(info.to_dict())
        return
    c = _counts(info)
    click.echo(f"snapshot {info.id} ({info.full_id})")
    click.echo(f"  time    {info.time:%Y-%m-%d %H:%M:%S}Z")
    click.echo(f"  status  {info.status}")
    click.echo(f"  parent  {info.parent[:8] if info.parent else '-'}")
    if info.tags:
        click.echo(f"  tags    {', '.join(info.tags)}")
    if info.note:
        click.echo(f"  note    {info.note}")
    click.echo(f"  records {c['records']:,} (+{c['new']:,} new, ~{c['changed']:,} changed, "
               f"-{c['deleted']:,} deleted), {_fmt_bytes(info.bytes_added)} added")
    st_ = info.stats or {}
    if st_:
        att = st_.get("attachments") or {}
        click.echo(f"  run     {st_.get('requests', '?')} requests, {st_.get('rate_limited_429', 0)} x 429, "
                   f"{st_.get('retries', 0)} retries, {st_.get('duration_seconds', '?')}s; attachments "
                   f"{att.get('new', 0)} new, {att.get('reused', 0)} reused")
    for b in info.bases:
        click.echo(f"  {b.name} ({b.base_id})")
        for t in b.tables:
            click.echo(f"    {t.name} ({t.table_id}): {units.count(t.records, 'record')}, +{t.new} ~{t.changed} -{t.deleted}")
    for line in feed_lines(list((st_.get("feed") or {}).values())):
        click.echo(f"  {line}")
    for m in info.missing:
        where = m.get("base_id", "?") + (f"/{m['table_id']}" if m.get("table_id") else "")
        click.echo(f"  MISSING {where}: {m.get('reason')}")


commands = [snapshot, check, log_cmd, show]
