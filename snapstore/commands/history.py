"""`snapstore history`: every version of one record. Thin: parses, calls snapstore.ops.diff, prints."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output, format_option


@command()
@click.argument("record_id")
@store_option
@click.option("--field", "field", default=None, metavar="FIELD",
              help="Only the versions where this field changed (id, or name as of any snapshot).")
@format_option
def history(record_id, store, field, fmt, out: Output):
    """Every version of one record across the store's snapshots, and what changed each time."""
    from snapstore.commands.diff_render import render_history
    from snapstore.ops.diff import history as record_history
    from snapstore.ops.diff_comments import record_comment_history

    s = open_store(store)
    versions = record_history(s, record_id, field=field)
    comments = None if field else record_comment_history(s, record_id, versions)
    colored = out.colored()
    click.echo(render_history(record_id, versions, "json" if out.json else fmt, color=colored, field=field,
                              comments=comments), color=colored)
