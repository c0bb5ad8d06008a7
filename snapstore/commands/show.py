"""``snapstore show``: one snapshot, per base and table."""

from __future__ import annotations

import click

from snapstore import units
from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output, iso, snapshot_json
from snapstore.feed.text import feed_lines


@command()
@store_option
@click.argument("name", default="latest", metavar="SNAPSHOT")
@click.option("--base", "-b", "bases", multiple=True,
              help="Only this base (id or name; repeatable); latest, latest~N and dates count among the "
                   "snapshots holding it.")
def show(store, name, bases, out: Output) -> None:
    """Show one snapshot per base and table: SNAPSHOT is a short id, latest, latest~N or a date."""
    from dataclasses import replace

    from snapstore.selection import resolve_snapshot, select

    info = resolve_snapshot(open_store(store), name, bases or None)
    wanted = select(bases, [(b.base_id, b.name) for b in info.bases], "base", f"in snapshot {info.id}")
    if wanted is not None:
        info = replace(info, bases=[b for b in info.bases if b.base_id in wanted])
    if out.json:
        out.emit({**info.to_dict(), "time": iso(info.time), "parent": info.parent})  # full ids, whole seconds
        return
    c = snapshot_json(info)
    out.echo(f"snapshot {info.id} ({info.full_id})")
    out.echo(f"  time    {info.time:%Y-%m-%d %H:%M:%S}Z")
    out.echo(f"  status  {info.status}")
    out.echo(f"  parent  {info.parent[:8] if info.parent else '-'}")
    if info.tags:
        out.echo(f"  tags    {', '.join(info.tags)}")
    if info.note:
        out.echo(f"  note    {info.note}")
    out.echo(f"  records {c['records']:,} (+{c['new']:,} new, ~{c['changed']:,} changed, "
             f"-{c['deleted']:,} deleted), {units.size(info.bytes_added)} added")
    run = info.stats or {}
    if run:
        att = run.get("attachments") or {}
        out.echo(f"  run     {run.get('requests', '?')} requests, {run.get('rate_limited_429', 0)} x 429, "
                 f"{run.get('retries', 0)} retries, {run.get('duration_seconds', '?')}s; attachments "
                 f"{att.get('new', 0)} new, {att.get('reused', 0)} reused")
    for b in info.bases:
        out.echo(f"  {b.name} ({b.base_id})")
        for t in b.tables:
            out.echo(f"    {t.name} ({t.table_id}): {units.count(t.records, 'record')}, "
                     f"+{t.new} ~{t.changed} -{t.deleted}")
    for line in feed_lines(list((run.get("feed") or {}).values())):
        out.echo(f"  {line}")
    names = {b.base_id: b.name for b in info.bases} | {t.table_id: t.name for b in info.bases for t in b.tables}
    for m in info.missing:
        label = lambda i: f"{names[i]} ({i})" if names.get(i) else i  # noqa: E731
        where = label(m.get("base_id", "?")) + (f" / {label(m['table_id'])}" if m.get("table_id") else "")
        out.echo(f"  MISSING {where}: {m.get('reason')}")
