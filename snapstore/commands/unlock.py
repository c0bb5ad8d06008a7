"""``snapstore unlock``: remove a writer lock left behind."""

from __future__ import annotations

from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output


@command()
@store_option
def unlock(store: str, out: Output) -> None:
    """Remove the store's writer lock (after a crash on another machine; same-host stale locks are
    broken automatically)."""
    holder = open_store(store).unlock()
    if out.json:
        out.emit({"removed": holder is not None, "holder": holder.describe() if holder else None})
        return
    out.echo(f"removed lock held by {holder.describe()}" if holder else "the store was not locked")
