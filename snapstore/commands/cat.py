"""`snapstore cat`: one stored record version, with the field names of that snapshot's schema
(restic's `dump` for a record). Thin: parses, calls snapstore.ops.find, prints."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output
from snapstore.commands.render import json_value, span_text


@command("cat")
@click.argument("snapshot")
@click.argument("record_id", metavar="RECORD")
@store_option
def cat(snapshot, record_id, store, out: Output):
    """Print record RECORD as snapshot SNAPSHOT holds it (an id, latest, latest~N, a date).

    Fields are named as that snapshot's schema named them, values are JSON; empty fields are
    absent, as Airtable omits them."""
    from snapstore.ops.find import stored_record

    s = open_store(store)
    r = stored_record(s, snapshot, record_id)
    if out.json:  # fields keyed by name
        out.emit(r.to_dict())
        return
    when = r.snapshot.time.strftime("%Y-%m-%d %H:%M:%S")
    out.echo(f"{r.record_id}  {r.base} / {r.table}  snapshot {r.snapshot.id} ({when})")
    out.echo(f"createdTime: {r.created_time}")
    width = max((len(n) for n in r.fields), default=0)
    for name, v in r.fields.items():
        out.echo(f"{name.ljust(width)}: {json_value(v)}")
    out.echo(f"# this version is {span_text(r.snapshots, r.snapshots[-1].seq == s.list_snapshots()[0].seq)}")

