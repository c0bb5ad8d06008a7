"""``snapstore stats``: store size, deduplication, growth per base."""

from __future__ import annotations

import click

from snapstore import units
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
    from snapstore.ops.stats import stats as do_stats

    s = open_store(store)
    st = do_stats(s)
    if out.json:
        out.emit(st)
        return
    names: dict[str, str] = {}
    for snap in s.list_snapshots():  # newest first: the newest name
        for b in snap.bases:
            names.setdefault(b.base_id, b.name)
    out.echo(format_stats(st, last, names))


def format_stats(st: dict, last: int = 20, names: dict[str, str] | None = None) -> str:
    """The text of ``stats``: the store's size, then per base (by name) its growth, in 70 columns."""
    from snapstore.store.inventory import INDEX_PREFIX

    size, n, d = units.size, units.number, st["disk"]
    ratio = f"{st['dedup_ratio']}x" if st["dedup_ratio"] is not None else "-"
    lines = [
        f"store {st['store']}: {units.count(st['snapshots'], 'snapshot')}",
        f"  stored   {size(st['stored_bytes'])} (packs {size(d['packs'])}, objects {size(d['objects'])}, "
        f"commits {size(d['snapshots'])}, indexes {size(d[INDEX_PREFIX])}); catalog {size(st['catalog_bytes'])}",
        f"  logical  {size(st['logical_bytes'])} across all snapshots; deduplication ratio {ratio}",
    ]
    for base, rows in st["bases"].items():
        name = (names or {}).get(base)
        lines.append(f"{name} ({base})" if name else base)
        lines.append(f"  last {min(last, len(rows))} of {units.count(len(rows), 'snapshot')}:")
        lines.append(f"  {'snapshot':<8}  {'time (UTC)':<16}  {'records':>9}  {'delta':>7}  {'logical':>9}  {'added':>9}")
        for r in rows[-last:]:
            lines.append(f"  {r['id']:<8}  {r['time'][:16].replace('T', ' '):<16}  {n(r['records']):>9}  "
                         f"{r['records_delta']:>+7,}  {size(r['logical_bytes']):>9}  {size(r['added_bytes']):>9}")
    return units.fit("\n".join(lines))
