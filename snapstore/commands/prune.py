"""``snapstore prune``: remove the data no snapshot uses."""

from __future__ import annotations

import click

from snapstore.commands import params
from snapstore.commands.base import command
from snapstore.commands.options import dry_run_option, open_store, progress_option, store_option
from snapstore.commands.output import Output
from snapstore.commands.progress import activity
from snapstore.commands.render import prune_lines
from snapstore.errors import SnapstoreError


@command("prune")
@store_option
@click.option("--max-unused", default="5%", show_default=True, callback=params.size_or_percent,
              help="Unused space to tolerate in partly used packs: a percentage, a size (100M) or 'unlimited'.")
@click.option("--repack-threshold", type=params.Finite(0, 1), default=None,
              help="Also repack every pack whose own unused share is at least this (0..1).")
@dry_run_option("Show what would be removed; change nothing.")
@progress_option
def prune_cmd(store, max_unused, repack_threshold, dry_run, progress, out: Output) -> None:
    """Remove data no snapshot uses; repack packs that are mostly unused. Safe to interrupt."""
    from snapstore.ops.prune import prune

    s = open_store(store)
    try:
        with activity("pruning" + (" (dry run)" if dry_run else ""), out, progress) as act:
            r = prune(s, max_unused=max_unused, repack_threshold=repack_threshold, dry_run=dry_run,
                      progress=lambda done, total: act.count(done, total, "packs repacked"))
    except ValueError as e:
        raise SnapstoreError(str(e)) from e
    if out.json:
        out.emit(r.to_dict())
        return
    for line in prune_lines(r):
        out.echo(line)
