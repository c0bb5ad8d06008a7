"""`snapstore find`: records whose field contains a text, in one snapshot or in all of them, with
the snapshots each version spans. Thin: parses, calls snapstore.find, prints."""

from __future__ import annotations

import json

import click
import orjson

from snapstore.commands.base import command
from snapstore.commands.common import open_store, store_option
from snapstore.diff import short_value
from snapstore.errors import SnapstoreError
from snapstore.find import Hit, find

#: Snapshot ids listed in full for a span; a longer one shows its first and last.
SPAN_IDS = 4


def fail(e: SnapstoreError) -> click.ClickException:
    """The error as one line, with the exit code the error carries (2 for a bad selection)."""
    err = click.ClickException(str(e))
    err.exit_code = e.exit_code
    return err


def json_value(v) -> str:
    """A cell value as a person reads it in this tool: JSON, non-ASCII kept."""
    return orjson.dumps(v).decode()


def span_text(snaps: list, current: bool) -> str:
    """``in 3 snapshots: 1a2b3c4d 5e6f7a8b 9c0d1e2f (2026-01-01 → 2026-01-03)``, ``(current)``
    when the latest snapshot holds the version."""
    if not snaps:
        return "in no snapshot"
    ids = [s.id for s in snaps]
    shown = " ".join(ids) if len(ids) <= SPAN_IDS else f"{ids[0]} … {ids[-1]}"
    first, last = snaps[0].time.strftime("%Y-%m-%d %H:%M"), snaps[-1].time.strftime("%Y-%m-%d %H:%M")
    when = first if first == last else f"{first} → {last}"
    n = len(snaps)
    return f"in {n} snapshot{'s' if n != 1 else ''}: {shown} ({when}){' (current)' if current else ''}"


def hit_lines(h: Hit) -> list[str]:
    name = f"  {short_value(h.primary, 60)}" if h.primary is not None else ""
    out = [f"{h.record_id}  {h.base} / {h.table}{name}"]
    out += [f"    {field}: {short_value(v, 100)}" for field, v in h.matched.items()]
    out.append(f"    {span_text(h.snapshots, h.current)}")
    return out


@command("find")
@click.argument("text")
@store_option
@click.option("--field", default=None, metavar="FIELD", help="Only this field (id or name, as of any snapshot).")
@click.option("--base", "bases", multiple=True, metavar="BASE", help="Only this base (id or name; repeatable).")
@click.option("--table", "tables", multiple=True, metavar="TABLE", help="Only this table (id or name; repeatable).")
@click.option("--snapshot", "snapshot", default="latest", show_default=True, metavar="SNAPSHOT",
              help="Search this snapshot (an id, latest, latest~N, a date).")
@click.option("--all", "everywhere", is_flag=True,
              help="Search every version of every record the store holds, not one snapshot.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of the matching versions.")
def find_cmd(text, store, field, bases, tables, snapshot, everywhere, as_json):
    """Records whose field (or any field) contains TEXT, case-insensitively, with the snapshots
    each matching version spans. `snapstore cat SNAPSHOT RECORD` then prints one in full."""
    if everywhere and snapshot != "latest":
        raise click.UsageError("--snapshot and --all exclude each other")
    s = open_store(store)
    n = 0
    try:
        hits = find(s, text, field=field, bases=bases or None, tables=tables or None, snapshot=snapshot,
                    everywhere=everywhere)
        if as_json:
            click.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
            return
        for h in hits:
            n += 1
            click.echo("\n".join(hit_lines(h)))
    except SnapstoreError as e:
        raise fail(e) from e
    where = "any snapshot" if everywhere else f"snapshot {snapshot}"
    click.echo(f"{n} version{'s' if n != 1 else ''} found" if n else f"no record contains {text!r} in {where}")


commands = [find_cmd]
