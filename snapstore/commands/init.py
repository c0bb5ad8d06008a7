"""``snapstore init``: create an empty store."""

from __future__ import annotations

import click

from snapstore.commands import password
from snapstore.commands.base import command
from snapstore.commands.options import store_option
from snapstore.commands.output import Output
from snapstore.constants import FORMAT_VERSION


@command()
@store_option
@click.option("--format", "format_version", type=click.IntRange(1, FORMAT_VERSION), default=FORMAT_VERSION, show_default=True,
              help="Store format: 4 stores a table's small batches (a day's changes) as column frames; "
                   "3 names a table's record frames by id (no per-record hash on disk); "
                   "2 packs records many to a frame, each with its hash; 1 (older snapstore) one record per frame.")
@click.option("--no-encryption", is_flag=True, help="Make a plain store (by default a new store is encrypted).")
def init(store: str, format_version: int, no_encryption: bool, out: Output) -> None:
    """Create an empty store in STORE (a new or empty folder), encrypted with a password unless
    --no-encryption."""
    from snapstore.store import Store

    s = Store.init(store, format_version=format_version,
                   password=None if no_encryption else password.resolve(str(store), new=True))
    if out.json:
        out.emit({"store_id": s.config["store_id"], "short_id": s.config["store_id"][:8],
                  "location": str(s.location), "format": s.format_version, "encrypted": s.encrypted})
        return
    kind = "an encrypted" if s.encrypted else "a plain"
    out.echo(f"created {kind} store {s.config['store_id'][:8]} in {s.location}")
