"""`snapstore import`: an exported folder becomes a snapshot in the store. Thin: parses, calls
snapstore.restore, prints."""

from __future__ import annotations

from pathlib import Path

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store, progress_option, store_option
from snapstore.commands.output import Output
from snapstore.commands.progress import activity


def _imported_before(info, before: dict):
    """An earlier snapshot imported from the same folder: the same note ("imported from NAME"),
    the same snapshot time (the exported snapshot's) and the same records."""
    same = [s for s in before.values()
            if s.note == info.note and s.time == info.time and s.records == info.records]
    return same[0] if same else None


@command("import", imports=("snapstore.restore",))
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@store_option
@click.option("--note", default=None, help="A note stored with the snapshot.")
@click.option("--tag", "tags", multiple=True, help="A tag stored with the snapshot (repeatable).")
@click.option("--no-verify", is_flag=True, help="Do not check the folder against its manifest.")
@click.option("--time", "when", metavar="ISO", default=None,
              help="The snapshot's time (default: the exported snapshot's own time, else now).")
@progress_option
def import_(folder, store, note, tags, no_verify, when, progress, out: Output):
    """Make an exported folder (airtable_backup_*, or another tool's folder with data/json) a snapshot
    in the store, with its original record ids, schema and attachments."""
    from snapstore.restore import import_folder

    st = open_store(store, create=True)
    before = {s.full_id: s for s in st.list_snapshots()}
    with activity(f"importing {Path(folder).name}", out, progress):
        info = import_folder(folder, st, note=note, tags=tags, verify=not no_verify, time=when)
    same = _imported_before(info, before)
    if same is not None:
        click.echo(f"warning: {Path(folder).name} was imported before as snapshot {same.id}; snapshot {info.id} "
                   f"holds the same records (snapstore forget {info.id} removes it)", err=True)
    if out.json:
        out.emit(info.to_dict())
    else:
        out.echo(f"imported {Path(folder).name} as snapshot {info.id} of {info.time:%Y-%m-%d %H:%M:%S} UTC: "
                   f"{info.records} records in "
                   f"{sum(len(b.tables) for b in info.bases)} tables"
                   + (f" ({len(info.missing)} tables missing)" if info.missing else ""))
