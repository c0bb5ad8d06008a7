"""``snapstore init``: create an empty store."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.options import store_option
from snapstore.commands.output import Output
from snapstore.store import Store


@command()
@store_option
@click.option("--format", "format_version", type=click.IntRange(1, 2), default=2, show_default=True,
              help="Store format: 2 packs a table's records many to a compressed frame; 1 (older "
                   "snapstore) one record per frame.")
def init(store: str, format_version: int, out: Output) -> None:
    """Create an empty store in STORE (a new or empty folder)."""
    s = Store.init(store, format_version=format_version)
    if out.json:
        out.emit({"store_id": s.config["store_id"], "short_id": s.config["store_id"][:8],
                  "location": str(s.location), "format": s.format_version})
        return
    out.echo(f"created store {s.config['store_id'][:8]} in {s.location}")
