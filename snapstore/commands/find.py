"""`snapstore find`: records whose field contains a text, in one snapshot or in all of them, with
the snapshots each version spans. Thin: parses, calls snapstore.ops.find, prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output
from snapstore.commands.render import span_text

if TYPE_CHECKING:
    from snapstore.ops.find import Hit


def hit_lines(h: Hit) -> list[str]:
    from snapstore.ops.diff import short_value

    name = f"  {short_value(h.primary, 60)}" if h.primary is not None else ""
    out = [f"{h.record_id}  {h.base} / {h.table}{name}"]
    out += [f"    {field}: {short_value(v, 100)}" for field, v in h.matched.items()]
    out.append(f"    {span_text(h.snapshots, h.current)}")
    return out


@command("find")
@click.argument("text")
@store_option
@click.option("--field", default=None, metavar="FIELD", help="Only this field (id or name, as of any snapshot).")
@click.option("--base", "bases", multiple=True, metavar="BASE", help="Only this base (id or name; repeatable).")
@click.option("--table", "tables", multiple=True, metavar="TABLE", help="Only this table (id or name; repeatable).")
@click.option("--snapshot", "snapshot", default="latest", show_default=True, metavar="SNAPSHOT",
              help="Search this snapshot (an id, latest, latest~N, a date).")
@click.option("--all", "everywhere", is_flag=True,
              help="Search every version of every record the store holds, not one snapshot.")
def find_cmd(text, store, field, bases, tables, snapshot, everywhere, out: Output):
    """Records whose field (or any field) contains TEXT, case-insensitively, with the snapshots
    each matching version spans. `snapstore cat SNAPSHOT RECORD` then prints one in full."""
    from snapstore.ops.find import find

    if everywhere and snapshot != "latest":
        raise click.UsageError("--snapshot and --all exclude each other")
    hits = find(open_store(store), text, field=field, bases=bases or None, tables=tables or None,
                snapshot=snapshot, everywhere=everywhere)
    if out.json:
        out.emit([h.to_dict() for h in hits])
        return
    n = 0
    for h in hits:
        n += 1
        out.echo("\n".join(hit_lines(h)))
    where = "any snapshot" if everywhere else f"snapshot {snapshot}"
    out.echo(f"{n} version{'s' if n != 1 else ''} found" if n else f"no record contains {text!r} in {where}")

