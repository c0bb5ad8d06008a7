"""snapstore migrate SRC DST: copy a store into a new store of the current format."""

from __future__ import annotations

import click

from snapstore.commands.common import open_store
from snapstore.store import Store, StoreError
from snapstore.store.migrate import migrate as migrate_store


@click.command()
@click.argument("src")
@click.argument("dst")
def migrate(src: str, dst: str) -> None:
    """Copy every snapshot of store SRC, with its time, tags and note, into a new store DST (format 3).
    SRC is only read."""
    source = open_store(src)
    try:
        target = Store.init(dst)
        ids = migrate_store(source, target, progress=lambda old, new: click.echo(
            f"{old.id} -> {new.id}  {old.time:%Y-%m-%d %H:%M:%S}  {old.records} records"))
    except StoreError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"migrated {len(ids)} snapshot(s) into {target.location} (format {target.format_version})")


commands = [migrate]
