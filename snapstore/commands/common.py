"""Options and helpers every verb shares, so each command module stays a thin layer."""

from __future__ import annotations

import os

import click

from snapstore.store import LockError, Store, StoreError

#: Where the store lives when neither --store nor SNAPSTORE_STORE says otherwise.
DEFAULT_STORE = "snapstore-data"


def default_store() -> str:
    return os.environ.get("SNAPSTORE_STORE") or DEFAULT_STORE


store_option = click.option(
    "--store", "-s", default=default_store, show_default=f"$SNAPSTORE_STORE or ./{DEFAULT_STORE}",
    help="The store folder.", type=click.Path(file_okay=False),
)


def open_store(path: str, *, create: bool = False) -> Store:
    """Open a store or exit with one clear line."""
    try:
        return Store.open(path, create=create)
    except (StoreError, LockError) as e:
        raise click.ClickException(str(e)) from e
