"""``snapstore tag``: change snapshots' tags (restic's --add/--remove/--set)."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output
from snapstore.errors import UsageError


def _names_snapshot(store, name: str) -> bool:
    from snapstore.store import StoreError

    try:
        store.resolve(name)
    except StoreError:
        return False
    return True


#: What a bare ``--remove`` (today's flag: "the TAGS given are to be removed") parses to.
_BARE = "\0bare --remove"


@command()
@store_option
@click.argument("args", nargs=-1, required=True, metavar="SNAPSHOT [TAG...] | SNAPSHOT...")
@click.option("--add", "add", multiple=True, metavar="TAG", help="Add TAG to each SNAPSHOT (repeatable).")
@click.option("--remove", "remove", multiple=True, is_flag=False, flag_value=_BARE, metavar="TAG",
              help="Remove TAG from each SNAPSHOT (repeatable). Bare, after `SNAPSHOT TAG...`: remove those TAGs.")
@click.option("--set", "set_to", multiple=True, metavar="TAG",
              help="Replace the tags of each SNAPSHOT with these (repeatable; a single --set '' clears them).")
def tag(store, args, add, remove, set_to, out: Output) -> None:
    """Change snapshots' tags; a tag pins a snapshot under `forget --keep-tag TAG`.

    \b
    snapstore tag --add pinned --remove nightly SNAPSHOT [SNAPSHOT...]   (restic's shape)
    snapstore tag --set monthly SNAPSHOT...                              replace the tags
    snapstore tag SNAPSHOT TAG...  [--remove]                            add (or remove) TAGs

    Tags cannot be blank or hold a comma (`forget --keep-tag a,b` means a and b)."""
    from snapstore.ops.retention import retag

    bare = _BARE in remove
    remove = [t for t in remove if t != _BARE]
    if add or remove or set_to:
        if bare:
            raise click.UsageError("a bare --remove goes with `tag SNAPSHOT TAG...`, not with --add/--remove TAG/--set")
        names, kw = list(args), {"add": add, "remove": remove,
                                 "set_to": ([] if set_to == ("",) else list(set_to)) if set_to else None}
    else:  # today's form: SNAPSHOT TAG... [--remove]
        if len(args) < 2:
            raise click.UsageError("give TAGs after SNAPSHOT, or --add/--remove/--set TAG before the snapshots")
        names, tags = [args[0]], list(args[1:])
        kw = {"add": () if bare else tags, "remove": tags if bare else ()}
    s = open_store(store)
    if len(remove) == 1 and not add and not set_to and _names_snapshot(s, remove[0]) \
            and not any(_names_snapshot(s, a) for a in args):
        names, kw = [remove[0]], {"remove": list(args)}  # today's `tag --remove SNAPSHOT TAG...`
    try:
        now = retag(s, names, **kw)
    except UsageError as e:
        raise click.UsageError(str(e)) from e
    if out.json:
        out.emit([{"id": fid, "short_id": fid[:8], "tags": tags} for fid, tags in now.items()])
        return
    for fid, tags in now.items():
        out.echo(f"{fid[:8]}: tags {', '.join(tags) or '(none)'}")
