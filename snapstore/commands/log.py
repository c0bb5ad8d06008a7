"""``snapstore log``: the snapshots, newest first, with their counts and status."""

from __future__ import annotations

import click

from snapstore import units
from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output, snapshot_json


@command("log")
@store_option
@click.option("--limit", "--last", "limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Show at most N snapshots (the newest).")
@click.option("--base", "-b", "bases", multiple=True, help="Only snapshots holding this base (id or name; repeatable).")
def log_cmd(store, limit, bases, out: Output) -> None:
    """List snapshots, newest first, with their counts and status."""
    from snapstore.selection import holding

    snaps = holding(open_store(store).list_snapshots(), bases)
    snaps = snaps[:limit] if limit else snaps
    if out.json:
        out.emit([snapshot_json(s) for s in snaps])
        return
    if not snaps:
        out.echo("no snapshots yet")
    for s in snaps:
        c = snapshot_json(s)
        extra = (f"  [{', '.join(s.tags)}]" if s.tags else "") + (f"  {s.note}" if s.note else "")
        out.echo(f"{s.id}  {s.time:%Y-%m-%d %H:%M:%S}Z  {s.status:8}  {units.count(c['bases'], 'base')} "
                 f"{units.count(c['tables'], 'table')}  {units.count(c['records'], 'record')}  +{c['new']:,} "
                 f"~{c['changed']:,} -{c['deleted']:,}  {units.size(s.bytes_added)}{extra}")
