"""Store maintenance verbs: init, unlock, rebuild-catalog."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.common import open_store, store_option
from snapstore.store import Store, StoreError
from snapstore.store.store import FORMAT_VERSION


@command()
@store_option
@click.option("--format", "format_version", type=click.IntRange(1, 3), default=FORMAT_VERSION, show_default=True,
              help="Store format: 3 names a table's record frames by id (no per-record hash on disk); "
                   "2 packs records many to a frame, each with its hash; 1 (older snapstore) one record per frame.")
def init(store: str, format_version: int) -> None:
    """Create an empty store in STORE (a new or empty folder)."""
    try:
        s = Store.init(store, format_version=format_version)
    except StoreError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"created store {s.config['store_id'][:8]} in {s.location}")


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
