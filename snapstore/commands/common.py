"""Options and helpers every verb shares, so each command module stays a thin layer."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from snapstore import interrupts as interrupts_
from snapstore.store import Store

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
    """Open a store; its errors (no store: exit 10, locked: 11, damaged: 1) reach the one place that
    prints them (snapstore/commands/base.py)."""
    return Store.open(path, create=create)


@contextmanager
def interrupts(cancel: threading.Event | None = None) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the command the same way (a service manager's stop, a job's timeout):
    the main thread raises KeyboardInterrupt once, and ``cancel`` tells worker threads
    (snapstore/interrupts.py has the rules)."""
    interrupts_.install()
    if cancel is None:
        yield
        return
    with interrupts_.cancel_on_stop(cancel):
        try:
            yield
        except KeyboardInterrupt:
            cancel.set()
            raise
