"""`snapstore cat`: one stored record version, with the field names of that snapshot's schema
(restic's `dump` for a record). Thin: parses, calls snapstore.find, prints."""

from __future__ import annotations

import json

import click

from snapstore.commands.base import command
from snapstore.commands.common import open_store, store_option
from snapstore.commands.find import fail, json_value, span_text
from snapstore.errors import SnapstoreError
from snapstore.find import stored_record


@command("cat")
@click.argument("snapshot")
@click.argument("record_id", metavar="RECORD")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON (fields keyed by name).")
def cat(snapshot, record_id, store, as_json):
    """Print record RECORD as snapshot SNAPSHOT holds it (an id, latest, latest~N, a date).

    Fields are named as that snapshot's schema named them, values are JSON; empty fields are
    absent, as Airtable omits them."""
    s = open_store(store)
    try:
        r = stored_record(s, snapshot, record_id)
    except SnapstoreError as e:
        raise fail(e) from e
    if as_json:
        click.echo(json.dumps(r.to_dict(), indent=2, ensure_ascii=False))
        return
    when = r.snapshot.time.strftime("%Y-%m-%d %H:%M:%S")
    click.echo(f"{r.record_id}  {r.base} / {r.table}  snapshot {r.snapshot.id} ({when})")
    click.echo(f"createdTime: {r.created_time}")
    width = max((len(n) for n in r.fields), default=0)
    for name, v in r.fields.items():
        click.echo(f"{name.ljust(width)}: {json_value(v)}")
    click.echo(f"# this version is {span_text(r.snapshots, r.snapshots[-1].seq == s.list_snapshots()[0].seq)}")


commands = [cat]
