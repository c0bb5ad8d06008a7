"""Store maintenance verbs: init, unlock, rebuild-catalog."""

from __future__ import annotations

import click

from snapstore.commands import password
from snapstore.commands.base import command
from snapstore.commands.common import open_store, store_option
from snapstore.store import Store, StoreError


@command()
@store_option
@click.option("--format", "format_version", type=click.IntRange(1, 2), default=2, show_default=True,
              help="Store format: 2 packs a table's records many to a compressed frame; 1 (older "
                   "snapstore) one record per frame.")
@click.option("--no-encryption", is_flag=True, help="Make a plain store (by default a new store is encrypted).")
def init(store: str, format_version: int, no_encryption: bool) -> None:
    """Create an empty store in STORE (a new or empty folder), encrypted with a password unless
    --no-encryption."""
    try:
        s = Store.init(store, format_version=format_version,
                       password=None if no_encryption else password.resolve(str(store), new=True))
    except StoreError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"created {'an encrypted' if s.encrypted else 'a plain'} store {s.config['store_id'][:8]} in {s.location}")


@command()
@store_option
def unlock(store: str) -> None:
    """Remove the store's writer lock (after a crash on another machine; same-host stale locks are
    broken automatically)."""
    s = open_store(store)
    holder = s.unlock()
    click.echo(f"removed lock held by {holder.describe()}" if holder else "the store was not locked")


@command("rebuild-catalog")
@store_option
def rebuild_catalog(store: str) -> None:
    """Recreate the DuckDB catalog from the store's objects alone."""
    s = open_store(store)
    with s.lock("rebuild-catalog"):
        n = s.rebuild_catalog()
    click.echo(f"catalog rebuilt: {n} snapshot(s)")


commands = [init, unlock, rebuild_catalog]
