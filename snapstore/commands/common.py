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
    help="The store: a folder, or s3://bucket/prefix (endpoint and credentials from AWS_ENDPOINT_URL, "
         "AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).",
)


def open_store(path: str, *, create: bool = False) -> Store:
    """Open a store or exit with one clear line."""
    try:
        return Store.open(path, create=create)
    except (StoreError, LockError) as e:
        raise click.ClickException(str(e)) from e
