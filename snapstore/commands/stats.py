"""``snapstore stats``: store size, deduplication, growth per base."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output


@command()
@store_option
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True, help="Snapshots per base to list (text output).")
@click.option("--api", "api", is_flag=True, help="API calls to Airtable this month and last, per base, against "
              "the budget (the store's ledger: every machine's runs).")
def stats(store, last, api, out: Output) -> None:
    """Store size, deduplication ratio, and growth of each base per snapshot."""
    if api:
        from snapstore.commands.runhook import show_api_usage

        return show_api_usage(open_store(store), out)
    from snapstore.ops.stats import format_stats
    from snapstore.ops.stats import stats as do_stats

    st = do_stats(open_store(store))
    if out.json:
        out.emit(st)
    else:
        out.echo(format_stats(st, last))
