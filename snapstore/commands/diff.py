"""`snapstore diff`: what changed between two snapshots. Thin: parses, calls snapstore.ops.diff, prints."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output, format_option
from snapstore.errors import Reported


@command()
@click.argument("a", required=False)
@click.argument("b", required=False)
@store_option
@click.option("--base", "bases", multiple=True, metavar="BASE", help="Only this base (id or name; repeatable).")
@click.option("--table", "tables", multiple=True, metavar="TABLE",
              help="Only this table (id or name as of either snapshot; repeatable).")
@format_option
@click.option("--fields", is_flag=True, help="Show, for each changed record, the fields that changed (old and new).")
@click.option("--limit", type=int, default=None, metavar="N",
              help="Records listed per table and kind (default 100 in text/markdown, all in json; 0 = all).")
@click.option("--exit-code", is_flag=True, help="Exit with status 1 when the snapshots differ (like git diff).")
def diff(a, b, store, bases, tables, fmt, fields, limit, exit_code, out: Output):
    """What changed from snapshot A to snapshot B.

    With no arguments: the latest snapshot against the one before it that holds the same bases
    (snapshots are grouped by their set of bases, as restic groups by paths; --base narrows to the
    snapshots holding that base). With one: A against the latest of its group. A and B are any
    name `snapstore log` shows: an id or prefix, latest, latest~N (counted among the snapshots
    holding --base), a date or an ISO time. A may be the newer one: the diff then shows going back
    from A to B (records created after B show as removed). A base one side did not capture is
    "not captured", never removed.
    """
    from snapstore.commands.diff_render import render
    from snapstore.ops.diff import add_labels, diff_snapshots
    from snapstore.selection import default_pair, resolve_snapshot

    s = open_store(store)
    fmt = "json" if out.json else fmt
    if b is None:  # the latest of a group: snapshots holding the same bases
        a, b = default_pair(s, bases or None, a)
    else:
        a, b = resolve_snapshot(s, a, bases or None), resolve_snapshot(s, b, bases or None)
    d = diff_snapshots(s, a, b, bases=bases or None, tables=tables or None, fields=fields)
    if not fields:  # name the records listed (by their primary field), in JSON too
        add_labels(s, d, (0 if fmt == "json" else 100) if limit is None else limit)
    colored = out.colored()
    click.echo(render(d, fmt, color=colored, limit=limit), color=colored)
    if exit_code and not d.empty:
        raise Reported(1)  # git diff --exit-code: the diff printed is the answer
