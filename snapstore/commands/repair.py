"""``snapstore repair``: write lost snapshot commits again from the catalog."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.options import dry_run_option, open_store, store_option
from snapstore.commands.output import Output
from snapstore.errors import SnapstoreError


@command()
@store_option
@click.option("--forget-lost", is_flag=True,
              help="Record the lost snapshots no catalog holds as forgotten, so prune may go on.")
@dry_run_option("Show what would be written again; change nothing.")
def repair(store, forget_lost, dry_run, out: Output) -> None:
    """Write snapshot commits that went missing (not forgotten) again from the catalog's copy."""
    from snapstore.ops.repair import repair as do_repair

    r = do_repair(open_store(store), forget_lost=forget_lost, dry_run=dry_run)
    if out.json:
        out.emit(r.to_dict())
    else:
        verb = "would write" if dry_run else "wrote"
        for lost, new in r.recovered.items():
            same = "under its own id" if new == lost else f"as {new[:8]}"
            out.echo(f"{verb} snapshot {lost[:8]} again {same}")
        for cid in r.unrecoverable:
            fate = "recorded as forgotten" if cid in r.forgotten else "cannot be written again (no catalog holds it)"
            out.echo(f"snapshot {cid[:8]}: {fate}")
        if not r.recovered and not r.unrecoverable:
            out.echo("no snapshot commit is missing")
    if not r.ok:
        out.fail(SnapstoreError(f"{len(r.unrecoverable)} lost snapshot(s) cannot be written again; "
                                "`snapstore repair --forget-lost` lets them go"))
