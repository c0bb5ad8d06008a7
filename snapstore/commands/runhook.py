"""What happens around every run of a verb that writes the store or talks to Airtable: the API
budget is checked before its first request, its requests go into the store's ledger with its
outcome, and someone is told (notifications, the Healthchecks ping).

The options are declared here once and added to the verbs by ``commands.base.command()``:

- writing verbs (snapshot, forget, prune, verify, restore, import): ``--notify URL`` (repeatable),
  ``--notify-on EVENT`` (repeatable), ``--ping-url URL``;
- verbs that read Airtable for a snapshot or write to it (snapshot, restore): ``--api-budget N``,
  ``--plan free|team|business|enterprise``, ``--over-budget``.

All are settings of the config file too (``notify = [...]``, ``notify_on``, ``ping_url``,
``api_budget``, ``plan``). Whatever happens here after the run (an unreachable webhook, a store
that cannot be opened) is logged and never changes the run's exit code.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

log = logging.getLogger("snapstore.notify")

WRITING_VERBS = frozenset({"snapshot", "forget", "prune", "verify", "restore", "import"})
BUDGETED_VERBS = frozenset({"snapshot", "restore"})
#: verbs that show the budget (stats --api) take the budget's settings, not --over-budget
BUDGET_SHOWN = BUDGETED_VERBS | {"stats", "serve"}
_META = "snapstore.runhook"


def _put(name: str):
    def callback(ctx: click.Context, _param: click.Parameter, value):
        ctx.meta.setdefault(_META, {})[name] = value
        return value
    return callback


def _events(ctx: click.Context, param: click.Parameter, value):
    from snapstore.notify import EVENTS

    flat = [e.strip() for v in (value or ()) for e in str(v).split(",") if e.strip()]
    bad = [e for e in flat if e not in EVENTS]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not an event; the events: {', '.join(EVENTS)}")
    return _put("notify_on")(ctx, param, tuple(flat))


def options_for(name: str | None) -> list[click.Option]:
    """The options :func:`commands.base.command` adds to verb ``name``."""
    out: list[click.Option] = []
    if name in WRITING_VERBS:
        out += [
            click.Option(["--notify", "notify"], multiple=True, metavar="URL", expose_value=False,
                         callback=_put("notify"),
                         help="Tell someone how the run went: an apprise URL (mailto://, slack://, ntfy://, "
                              "json://host/path ...; repeatable)."),
            click.Option(["--notify-on", "notify_on"], multiple=True, expose_value=False, callback=_events,
                         metavar="EVENT",
                         help="When to notify: failure, partial, recovery, budget (the default), success."),
            click.Option(["--ping-url"], metavar="URL", expose_value=False, callback=_put("ping_url"),
                         help="Healthchecks-style ping: URL/start, URL on success, URL/<exit code> on failure."),
        ]
    if name in BUDGET_SHOWN:
        from snapstore.ledger import PLANS

        out += [
            click.Option(["--api-budget"], type=click.IntRange(min=1), metavar="N", expose_value=False,
                         callback=_put("api_budget"),
                         help="API calls a month (UTC) this store may spend; a run that would cross it is refused."),
            click.Option(["--plan"], type=click.Choice(list(PLANS)), expose_value=False, callback=_put("plan"),
                         help="Airtable plan, for the budget: free 1,000 calls a month, team 100,000."),
        ]
    if name in BUDGETED_VERBS:
        out += [
            click.Option(["--over-budget"], is_flag=True, expose_value=False, callback=_put("over_budget"),
                         help="Run even if it crosses the API budget."),
        ]
    return out


def budget(ctx: click.Context) -> int | None:
    """The month's API budget this run was given (``--api-budget``, ``--plan`` or the config), if any."""
    from snapstore import ledger

    s = ctx.meta.get(_META, {})
    return ledger.budget_of(s.get("api_budget"), s.get("plan"))


def applies(cmd: click.Command, imports: tuple[str, ...]) -> bool:
    return cmd.name in WRITING_VERBS or "snapstore.source" in imports


def around(cmd: click.Command, ctx: click.Context, call: Callable[[], Any]) -> Any:
    """Run the verb (``call``) with the budget check before and the ledger and notifications after."""
    from snapstore import ledger, notify

    s = {**ctx.meta.get(_META, {}), "dry_run": ctx.params.get("dry_run"), "bases": _listed(ctx.params.get("base"))}
    store = ctx.params.get("store")
    verb = cmd.name or ""
    ledger.reset()
    started = ledger.now()
    notify.ping(s.get("ping_url"), "start")
    budget = None
    try:
        budget = ledger.budget_of(s.get("api_budget"), s.get("plan"))
        if budget and not s.get("over_budget") and store and _exists(store):
            st = _open(store)
            ledger.check_budget(st.backend, verb, budget, st.config.get("store_id"))
    except BaseException as e:
        _finish(verb, store, s, e, started, budget)
        raise
    try:
        rv = call()
    except BaseException as e:
        _finish(verb, store, s, e, started, budget)
        raise
    _finish(verb, store, s, rv if isinstance(rv, int) and not isinstance(rv, bool) else 0, started, budget)
    return rv


def _listed(v) -> list[str]:
    return [v] if isinstance(v, str) else list(v or ())


def _exists(store: str) -> bool:
    from snapstore.store.s3 import parse_s3_url

    return parse_s3_url(str(store)) is not None or (Path(store) / "config.json").exists()


def _open(store: str):
    from snapstore.store import Store

    return Store.open(store)


def missing_text(missing: list[dict], names: dict[str, str] | None = None) -> str:
    """What a partial snapshot lacks, for one line: ``base B table T: reason; ...``."""
    names = names or {}
    parts = []
    for m in missing:
        where = f"base {names.get(m.get('base_id'), m.get('base_id'))}"
        if m.get("table_id"):
            where += f" table {names.get(m['table_id'], m['table_id'])}"
        parts.append(f"{where}: {m.get('reason', '?')}")
    return "; ".join(parts)


def _writable(st) -> bool:
    """A store this run may add a ledger record to: a read-only folder is left as it was (the
    record waits on this machine, as a failed run's does)."""
    from snapstore.store import catalog_home

    return bool(st.remote) or catalog_home.store_writable(st.root)


def _finish(verb: str, store: str | None, s: dict, result: BaseException | int, started: datetime,
            budget: int | None) -> None:
    """After the run: ledger record, notifications, ping. Never raises."""
    from snapstore import ledger, notify
    from snapstore.commands.base import describe

    if isinstance(result, BaseException):
        line, code, _kind = describe(result, sys.argv[1:])
        line = line.removeprefix("Error: ")
    else:
        line, code = "", result
    bases = list(s.get("bases") or [])
    more = f"snapstore log --store {store}" if store else ""
    previous_failed = False
    try:
        st = _open(store) if store and _exists(store) else None
    except Exception as e:  # noqa: BLE001 - a store that cannot be opened is the run's own error
        log.debug("ledger: store not opened: %s", e)
        st = None
    try:
        snap_id = None
        if st is not None:
            snaps = st.list_snapshots()
            latest = snaps[0] if snaps else None
            if verb == "snapshot" and latest is not None and latest.time >= started.replace(microsecond=0):
                snap_id = latest.full_id
                names = {b.base_id: b.name for b in latest.bases}
                names.update({t.table_id: t.name for b in latest.bases for t in b.tables})
                bases = bases or [b.name for b in latest.bases] + sorted(
                    {m["base_id"] for m in latest.missing if m.get("base_id") not in names})
                if code == 3 and latest.missing:
                    line = f"snapshot {latest.id} PARTIAL: {missing_text(latest.missing, names)}"
                more = f"snapstore show {latest.id} --store {store}"
            logs = sorted(Path(st.private_dir, "logs").glob(f"{verb}-*.log"), key=lambda p: p.stat().st_mtime)
            if code and logs and logs[-1].stat().st_mtime >= started.timestamp():
                more = f"{more}; the run's log: {logs[-1]}"
            month, sid = ledger.month_of(started), st.config.get("store_id")
            prior = [r for r in ledger.runs(st.backend, month, sid) + ledger.runs(st.backend, _previous(month), sid)
                     if r.verb == verb]
            prior.sort(key=lambda r: r.time)
            previous_failed = bool(prior) and prior[-1].exit_code != 0
            before = ledger.usage(st.backend, month, store_id=sid).total
            run = ledger.Run(verb=verb, time=started, exit_code=code, line=line, requests=ledger.counted(),
                             snapshot=snap_id, bases=bases)
            # requests are spent whatever the outcome, but a failed run or a dry run leaves the store
            # as it was: it waits on this machine for the next run that writes the store
            if code in (0, 3) and not s.get("dry_run") and sid and _writable(st):
                ledger.commit(st.backend, sid, run)
            elif sid and (run.requests or code):
                ledger.keep_pending(sid, run)
            if ledger.crossed_warning(before, before + run.total, budget):
                notify.budget_warning(str(store), before + run.total, budget, month,
                                      urls=s.get("notify") or (), notify_on=s.get("notify_on"))
    except Exception as e:  # noqa: BLE001 - the ledger never changes a run's outcome
        log.warning("the API call ledger could not be written: %s", e)
    try:
        from snapstore.commands import password

        o = notify.Outcome(verb=verb, store=str(store or ""), exit_code=code, line=line, bases=bases,
                           more=more, previous_failed=previous_failed)
        if not notify.after_run(o, urls=s.get("notify") or (), notify_on=s.get("notify_on"),
                                ping_url=s.get("ping_url"), secrets=password.secrets()):
            click.echo("warning: a notification could not be delivered (see the log)", err=True)
    except Exception as e:  # noqa: BLE001
        log.warning("notification failed: %s", e)


def show_api_usage(st, out) -> None:
    """``snapstore stats --api``: this month's and last month's API calls, per base."""
    from snapstore import ledger

    s = click.get_current_context().meta.get(_META, {})
    budget = ledger.budget_of(s.get("api_budget"), s.get("plan"))
    month = ledger.month_of(ledger.now())
    names = {b.base_id: b.name for snap in st.list_snapshots()[:1] for b in snap.bases}
    sid = st.config.get("store_id")
    months = [ledger.usage(st.backend, m, budget if m == month else None, sid) for m in (month, _previous(month))]
    if out.json:
        out.emit({"api": [u.to_dict() for u in months]})
        return
    for u in months:
        cap = f" of {u.budget:,} ({u.share:.0%})" if u.budget else ""
        out.echo(f"{u.month} (UTC): {u.total:,} API calls{cap} in {u.runs} run(s)")
        for b, n in sorted(u.by_base.items(), key=lambda kv: -kv[1]):
            label = "(no base: whoami, bases)" if b == ledger.NO_BASE else f"{names.get(b, '')} {b}".strip()
            out.echo(f"  {n:>9,}  {label}")


def _previous(month: str) -> str:
    y, m = map(int, month.split("-"))
    return f"{y - 1}-12" if m == 1 else f"{y}-{m - 1:02d}"
