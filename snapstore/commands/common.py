"""Options and helpers every verb shares, so each command module stays a thin layer."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def interrupts(cancel: threading.Event | None = None) -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C (a service manager's stop, a job's timeout): the main thread
    raises KeyboardInterrupt, so the command cleans up as it does for Ctrl-C; ``cancel`` tells
    worker threads."""
    def on_term(signum, frame):
        if cancel is not None:
            cancel.set()
        raise KeyboardInterrupt

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except KeyboardInterrupt:
        if cancel is not None:
            cancel.set()
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
