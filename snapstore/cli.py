"""The `snapstore` command: one click group, thin. Each verb lives in snapstore/commands/<verb>.py,
parses its options, calls the library and prints; no business logic here."""

from __future__ import annotations

import importlib

import click

from snapstore import __version__

#: Modules under snapstore.commands, each exposing ``commands`` (a list of click commands).
COMMAND_MODULES = [
    "demo",
    "snapshot",
    "diff",
    "export",
    "restore",
    "retention",
    "store",
    "emulator",
    "migrate",
]


class SnapstoreError(click.ClickException):
    """An error the user can act on: printed as one line, exit code 1."""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="snapstore")
def main() -> None:
    """Incremental, content-addressed backups of Airtable: snapshot, log, diff, export, restore."""


for _name in COMMAND_MODULES:
    _mod = importlib.import_module(f"snapstore.commands.{_name}")
    for _cmd in _mod.commands:
        main.add_command(_cmd)
