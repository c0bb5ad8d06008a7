"""``snapstore verify``: is the store intact, and what does any damage reach?"""

from __future__ import annotations

import click

from snapstore.commands import params
from snapstore.commands.base import command
from snapstore.commands.options import open_store, progress_option, store_option
from snapstore.commands.output import Output
from snapstore.commands.progress import activity
from snapstore.errors import SnapstoreError


@command()
@store_option
@click.option("--read-data", is_flag=True, help="Also read every pack and object and re-hash every blob.")
@click.option("--read-data-subset", metavar="X%|n/t", callback=params.subset, help="Read a subset of the packs (10% at random, or 1/5).")
@progress_option
def verify(store, read_data, read_data_subset, progress, out: Output) -> None:
    """Check the store is intact; name the snapshots, tables and records any damage reaches.
    Exit status 1 if anything is damaged."""
    from snapstore.ops.verify import format_report
    from snapstore.ops.verify import verify as do_verify
    from snapstore.ops.verify_sealed import verify_sealed
    from snapstore.store.keys import PasswordNeeded

    if read_data and read_data_subset:
        raise click.UsageError("--read-data reads every pack and --read-data-subset only some: give one of them")
    try:
        s = open_store(store)
    except PasswordNeeded:  # an encrypted store, no password: what the stored bytes prove alone
        s = None
    try:
        what = "reading every pack" if read_data else "reading some packs" if read_data_subset else "checking"
        with activity(f"verify: {what}", out, progress) as act:
            rep = do_verify(s, read_data=read_data, subset=read_data_subset,
                            progress=lambda done, total: act.count(done, total, "packs")) if s else verify_sealed(store)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    if out.json:
        out.emit(rep.to_dict())
    else:
        out.echo(format_report(rep))
    if not rep.ok:
        out.fail(SnapstoreError("the store is damaged (snapstore verify lists what it reaches)"))
