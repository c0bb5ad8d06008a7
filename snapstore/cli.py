"""The `snapstore` command: one click group, thin. Each verb lives in its own module of
snapstore/commands/, parses its options, calls the library and prints; errors become one line and an
exit code in one place, snapstore/commands/base.py (`invoke_safely`). Every verb is declared with
`commands.base.command()`, which gives it the shared flags (--json, -q, -v, --config)."""

from __future__ import annotations

import click

from snapstore import __version__
from snapstore.commands import password
from snapstore.commands.base import SnapstoreGroup
from snapstore.commands.cat import cat
from snapstore.commands.check import check
from snapstore.commands.demo import demo
from snapstore.commands.diff import diff
from snapstore.commands.emulator import emulator
from snapstore.commands.export import export
from snapstore.commands.feed import feed
from snapstore.commands.find import find_cmd
from snapstore.commands.forget import forget
from snapstore.commands.history import history
from snapstore.commands.import_ import import_
from snapstore.commands.init import init
from snapstore.commands.key import key
from snapstore.commands.log import log_cmd
from snapstore.commands.migrate import migrate
from snapstore.commands.prune import prune_cmd
from snapstore.commands.rebuild_catalog import rebuild_catalog
from snapstore.commands.restore import restore
from snapstore.commands.show import show
from snapstore.commands.snapshot import snapshot
from snapstore.commands.sql import sql
from snapstore.commands.stats import stats
from snapstore.commands.tag import tag
from snapstore.commands.unlock import unlock
from snapstore.commands.verify import verify
from snapstore.errors import SnapstoreError  # noqa: F401 (the error root, for library users of the CLI)


@click.group(cls=SnapstoreGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="snapstore")
@click.option("--password-file", envvar="SNAPSTORE_PASSWORD_FILE", metavar="FILE",
              help="Read an encrypted store's password from FILE's first line ($SNAPSTORE_PASSWORD_FILE).")
def main(password_file: str | None) -> None:
    """Incremental, content-addressed backups of Airtable: snapshot, log, diff, export, restore.

    Every command takes --json, -q/--quiet, -v/--verbose and --config FILE ($SNAPSTORE_CONFIG);
    -n is --dry-run wherever there is one.

    Exit codes: 0 ok, 1 error, 2 usage, 3 incomplete, 10 no store, 11 locked, 12 wrong password,
    130 interrupted."""
    source = click.get_current_context().get_parameter_source("password_file")
    password.use(password_file, from_flag=source == click.core.ParameterSource.COMMANDLINE)


#: Every verb (click lists them by name).
VERBS = [demo, snapshot, check, feed, log_cmd, show, diff, history, find_cmd, cat, sql, export, restore, import_,
         forget, prune_cmd, verify, stats, tag, init, key, unlock, rebuild_catalog, migrate, emulator]

for _verb in VERBS:
    main.add_command(_verb)
