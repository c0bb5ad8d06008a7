"""The `snapstore` command: one click group, thin. Each verb lives in snapstore/commands/, parses its
options, calls the library and prints; errors become one line and an exit code in one place,
snapstore/commands/base.py (`invoke_safely`)."""

from __future__ import annotations

import click

from snapstore import __version__
from snapstore.commands import (
    cat,
    demo,
    diff,
    emulator,
    export,
    feed,
    find,
    key,
    migrate,
    password,
    restore,
    retention,
    snapshot,
    store,
)
from snapstore.commands.base import SnapstoreCommand, SnapstoreGroup
from snapstore.errors import SnapstoreError  # noqa: F401 (the error root, for library users of the CLI)

#: The verb modules, each exposing ``commands`` (a list of click commands), in help order.
COMMAND_MODULES = [demo, snapshot, feed, diff, find, cat, export, restore, retention, store, key, migrate, emulator]


@click.group(cls=SnapstoreGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="snapstore")
@click.option("--password-file", envvar="SNAPSTORE_PASSWORD_FILE", metavar="FILE",
              help="Read an encrypted store's password from FILE's first line ($SNAPSTORE_PASSWORD_FILE).")
def main(password_file: str | None) -> None:
    """Incremental, content-addressed backups of Airtable: snapshot, log, diff, export, restore.

    Exit codes: 0 ok, 1 error, 2 usage, 3 incomplete, 10 no store, 11 locked, 12 wrong password,
    130 interrupted."""
    password.use(password_file)


def _adopt(cmd: click.Command) -> click.Command:
    """Give a verb declared with plain ``click.command``/``click.group`` the same error handling when
    it is run on its own (tests invoke verbs directly)."""
    if type(cmd) is click.Command:
        cmd.__class__ = SnapstoreCommand
    elif type(cmd) is click.Group:
        cmd.__class__ = SnapstoreGroup
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _adopt(sub)
    return cmd


for _mod in COMMAND_MODULES:
    for _cmd in _mod.commands:
        main.add_command(_adopt(_cmd))
