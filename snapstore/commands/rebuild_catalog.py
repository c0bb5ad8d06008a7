"""``snapstore rebuild-catalog``: recreate the DuckDB index from the store's objects."""

from __future__ import annotations

from snapstore import units
from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output


@command("rebuild-catalog")
@store_option
def rebuild_catalog(store: str, out: Output) -> None:
    """Recreate the DuckDB catalog from the store's objects alone."""
    from snapstore.ops.retention import check_no_lost_commits

    s = open_store(store)
    with s.lock("rebuild-catalog"):
        check_no_lost_commits(s)  # the catalog's copy of a lost commit is what `repair` writes back
        n = s.rebuild_catalog()
    if out.json:
        out.emit({"snapshots": n})
        return
    out.echo(f"catalog rebuilt: {units.count(n, 'snapshot')}")
