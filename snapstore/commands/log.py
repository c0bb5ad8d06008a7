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
        return
    rows = []
    for s in snaps:
        c = snapshot_json(s)
        rows.append((s.id, f"{s.time:%Y-%m-%d %H:%M}", s.status, units.number(c["records"]),
                     f"+{c['new']:,} ~{c['changed']:,} -{c['deleted']:,}", units.size(s.bytes_added),
                     (f"[{', '.join(s.tags)}]" if s.tags else "") + (f" {s.note}" if s.note else "")))
    head = ("id", "time (UTC)", "status", "records", "changes", "added", "")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    for r in [head, *rows]:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].ljust(widths[2]), r[3].rjust(widths[3]),
                 r[4].rjust(widths[4]), r[5].rjust(widths[5])]
        line = "  ".join(cells).rstrip()
        if r[6] and len(line) + 2 + len(r[6]) <= units.WIDTH:
            line += f"  {r[6]}"
        elif r[6]:  # tags and note on a line of their own under the id, whole: they are the user's words
            line += "\n" + units.fit(" " * (widths[0] + 2) + r[6])
        out.echo(line)
    out.echo("changes: +new ~changed -deleted records; added: new bytes stored")
