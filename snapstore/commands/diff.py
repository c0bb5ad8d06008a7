"""`snapstore diff` and `snapstore history`: what changed between two snapshots, and every
version of one record. Thin: parses, calls snapstore.diff, prints."""

from __future__ import annotations

import os
import sys

import click

from snapstore.commands.base import command
from snapstore.commands.common import open_store, store_option
from snapstore.commands.find import fail
from snapstore.diff import add_labels, diff_snapshots
from snapstore.diff import history as record_history
from snapstore.diff_comments import record_comment_history
from snapstore.diff_render import FORMATS, render, render_history
from snapstore.selection import SelectionError, default_pair, resolve_snapshot
from snapstore.store import CatalogBusy, LockError, StoreError

_FORMAT = click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
                       help="text for a terminal, json for scripts, markdown for a ticket.")


def _color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


@command()
@click.argument("a", required=False)
@click.argument("b", required=False)
@store_option
@click.option("--base", "bases", multiple=True, metavar="BASE", help="Only this base (id or name; repeatable).")
@click.option("--table", "tables", multiple=True, metavar="TABLE",
              help="Only this table (id or name as of either snapshot; repeatable).")
@_FORMAT
@click.option("--fields", is_flag=True, help="Show, for each changed record, the fields that changed (old and new).")
@click.option("--limit", type=int, default=None, metavar="N",
              help="Records listed per table and kind (default 100 in text/markdown, all in json; 0 = all).")
@click.option("--exit-code", is_flag=True, help="Exit with status 1 when the snapshots differ (like git diff).")
def diff(a, b, store, bases, tables, fmt, fields, limit, exit_code):
    """What changed from snapshot A to snapshot B.

    With no arguments: the latest snapshot against the one before it that holds the same bases
    (snapshots are grouped by their set of bases, as restic groups by paths; --base narrows to the
    snapshots holding that base). With one: A against the latest of its group. A and B are any
    name `snapstore log` shows: an id or prefix, latest, latest~N (counted among the snapshots
    holding --base), a date or an ISO time. A may be the newer one: the diff then shows going back
    from A to B (records created after B show as removed). A base one side did not capture is
    "not captured", never removed.
    """
    s = open_store(store)
    try:
        if b is None:  # the latest of a group: snapshots holding the same bases
            a, b = default_pair(s, bases or None, a)
        else:
            a, b = resolve_snapshot(s, a, bases or None), resolve_snapshot(s, b, bases or None)
        d = diff_snapshots(s, a, b, bases=bases or None, tables=tables or None, fields=fields)
        if fmt != "json" and not fields:  # name the records listed (by their primary field)
            add_labels(s, d, 100 if limit is None else limit)
        out = render(d, fmt, color=_color(), limit=limit)
    except SelectionError as e:
        raise fail(e) from e
    except (StoreError, LockError, CatalogBusy) as e:
        raise click.ClickException(str(e)) from e
    click.echo(out)
    if exit_code and not d.empty:
        click.get_current_context().exit(1)


@command()
@click.argument("record_id")
@store_option
@click.option("--field", "field", default=None, metavar="FIELD",
              help="Only the versions where this field changed (id, or name as of any snapshot).")
@_FORMAT
def history(record_id, store, field, fmt):
    """Every version of one record across the store's snapshots, and what changed each time."""
    s = open_store(store)
    try:
        versions = record_history(s, record_id, field=field)
        comments = None if field else record_comment_history(s, record_id, versions)
        out = render_history(record_id, versions, fmt, color=_color(), field=field, comments=comments)
    except (StoreError, LockError, CatalogBusy) as e:
        raise click.ClickException(str(e)) from e
    click.echo(out)


commands = [diff, history]
