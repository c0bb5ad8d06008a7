"""snapstore migrate SRC DST: copy a store into a new store of the current format."""

from __future__ import annotations

import click

from snapstore.commands import password
from snapstore.commands.base import command
from snapstore.commands.options import open_store
from snapstore.commands.output import Output


@command()
@click.argument("src")
@click.argument("dst")
@click.option("--no-encryption", is_flag=True, help="Make DST a plain store (by default it is encrypted).")
def migrate(src: str, dst: str, no_encryption: bool, out: Output) -> None:
    """Copy every snapshot of store SRC, with its time, tags and note, into a new store DST of the
    current format (4).
    SRC is only read."""
    from snapstore.store import Store
    from snapstore.store.migrate import migrate as migrate_store

    source = open_store(src)
    target = Store.init(dst, password=None if no_encryption else password.resolve(dst, new=True))
    ids = migrate_store(source, target, progress=lambda old, new: out.echo(
        f"{old.id} -> {new.id}  {old.time:%Y-%m-%d %H:%M:%S}  {old.records} records"))
    if out.json:
        out.emit({"location": str(target.location), "format": target.format_version, "encrypted": target.encrypted,
                  "snapshots": [{"from": old, "id": new, "short_id": new[:8]} for old, new in ids.items()]})
        return
    out.echo(f"migrated {len(ids)} snapshot(s) into {target.location} (format {target.format_version})")
