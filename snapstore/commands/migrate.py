"""snapstore migrate SRC DST: copy a store into a new store of the current format."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store
from snapstore.commands.output import Output
from snapstore.store import Store
from snapstore.store.migrate import migrate as migrate_store


@command()
@click.argument("src")
@click.argument("dst")
def migrate(src: str, dst: str, out: Output) -> None:
    """Copy every snapshot of store SRC, with its time, tags and note, into a new store DST (format 2).
    SRC is only read."""
    source = open_store(src)
    target = Store.init(dst)
    ids = migrate_store(source, target, progress=lambda old, new: out.echo(
        f"{old.id} -> {new.id}  {old.time:%Y-%m-%d %H:%M:%S}  {old.records} records"))
    if out.json:
        out.emit({"location": str(target.location), "format": target.format_version,
                  "snapshots": [{"from": old, "id": new, "short_id": new[:8]} for old, new in ids.items()]})
        return
    out.echo(f"migrated {len(ids)} snapshot(s) into {target.location} (format {target.format_version})")
