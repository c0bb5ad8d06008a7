"""`snapstore export`: materialise a snapshot into the backup folder (JSON, YAML, NDJSON, CSV, SQLite,
Parquet, attachments, metadata, reports, logs)."""

from __future__ import annotations

import re

import click

from snapstore import units
from snapstore.commands.base import command, stoppable
from snapstore.commands.options import open_store, progress_option, store_option
from snapstore.commands.output import Output
from snapstore.commands.progress import activity
from snapstore.constants import MAX_WORKERS
from snapstore.errors import Incomplete, Interrupted, Reported, UsageError, os_error


def _split(values: tuple[str, ...], flag: str) -> list[str] | None:
    """``--base A,B --base C``; an empty one names nothing, which is a mistake, not "everything"."""
    out = [v.strip() for value in values for v in value.split(",")]
    if any(not v for v in out):
        raise UsageError(f"{flag} '' names nothing: give a {flag[2:]} id or name")
    return out or None


def _out_folder(out_dir: str) -> None:
    """The folder the export goes in may be new, but its parent must exist: a typo must not
    create a tree of folders (as root, under /)."""
    import errno
    from pathlib import Path

    parent = Path(out_dir).expanduser().absolute().parent
    if not Path(out_dir).exists() and not parent.is_dir():
        err = FileNotFoundError(errno.ENOENT, "no such folder", str(parent))
        raise os_error(err, f"exporting to {out_dir}")


_RECORD = re.compile(r"\brec[A-Za-z0-9]{14}: ")
_VALUE = re.compile(r" [\[{].*?[\]}](?=;|$)")


def grouped_warnings(warnings: list[str]) -> list[str]:
    """One line per table and kind of warning, however many records and formats repeat it: an
    export of ordinary #ERROR! and NaN formula values printed 180 lines (five sample records per
    column, again for SQLite and Parquet) and scrolled its result away. Each record stays listed in
    the export's reports/."""
    groups: dict[tuple[str, str], list[str]] = {}
    for w in warnings:
        fmt, sep, rest = w.partition(": ")
        table, sep2, detail = rest.partition(", ")
        if not (sep and sep2 and _RECORD.search(detail)):
            groups.setdefault((w, ""), [])
            continue
        kind = _VALUE.sub("", _RECORD.sub("", re.sub(r"^column '[^']*': ", "", detail)))
        groups.setdefault((table, kind), []).append(fmt)
    out = []
    for (table, kind), fmts in groups.items():
        if not kind:
            out.append(table)
            continue
        n = len(fmts)
        out.append(f"{table}: {kind} ({units.count(n, 'value')} in {', '.join(dict.fromkeys(fmts))}; "
                   "each listed in the export's reports/)")
    return out


@command(imports=("snapstore_exporters.export",))
@click.argument("snapshot", default="latest")
@store_option
@click.option("--out", "-o", "out_dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder in which airtable_backup_YYYY-MM-DD_HH-MM-SS/ is created.")
@click.option("--format", "-f", "formats", default="all", show_default=True,
              help="Comma-separated: json,yaml,ndjson,csv,sqlite,parquet (or all).")
@click.option("--base", "bases", multiple=True, help="Only this base (id or name); repeat or comma-separate.")
@click.option("--table", "tables", multiple=True, help="Only this table (id or name); repeat or comma-separate.")
@click.option("--no-attachments", is_flag=True, help="Do not copy attachment files (records keep their metadata).")
@click.option("--no-csv-guard", is_flag=True,
              help="Do not prefix ' to CSV cells starting with = + - @ (spreadsheet formula injection guard).")
@progress_option
@click.option("--workers", "-j", type=click.IntRange(min=1, max=MAX_WORKERS), default=None,
              help="Processes encoding records, at most one per core [default: one per core for a local "
                   "store and 20,000+ records].")
def export(snapshot: str, store: str, out_dir: str, formats: str, bases: tuple[str, ...], tables: tuple[str, ...],
           no_attachments: bool, no_csv_guard: bool, workers: int | None, progress: bool | None,
           out: Output) -> None:
    """Export SNAPSHOT (id, latest, latest~N, a date or ISO time; default latest) as a backup folder."""
    from snapstore_exporters.export import export_snapshot

    from snapstore.selection import resolve_snapshot

    bases_, tables_ = _split(bases, "--base"), _split(tables, "--table")
    _out_folder(out_dir)
    s = open_store(store)
    try:
        snap = resolve_snapshot(s, snapshot, bases_)  # latest: the latest holding --base
        with stoppable(), activity(f"exporting snapshot {snap.id}", out, progress) as act:
            res = export_snapshot(s, snap, out_dir, formats=formats, bases=bases_, tables=tables_,
                                  attachments=not no_attachments, csv_guard=not no_csv_guard, workers=workers,
                                  progress=act.count)
    except KeyboardInterrupt:
        raise Interrupted("no export folder was written") from None
    except OSError as e:  # the output folder: full, read-only, not a folder...
        raise os_error(e, f"exporting to {out_dir}") from e
    incomplete = Incomplete(f"the export in {res.path} is incomplete: {len(res.errors)} error(s), listed in its "
                            "reports/summary.md") if res.errors else None
    if out.json:
        out.emit({**res.to_dict(), "snapshot": {"id": res.snapshot.full_id, "short_id": res.snapshot.id}})
        if incomplete:
            raise Reported(incomplete.exit_code)
        return
    out.echo(f"exported snapshot {res.snapshot.id} to {res.path}")
    out.echo(f"  {units.count(len(res.tables), 'table')}, {units.count(res.records, 'record')}, "
               f"{units.count(res.attachments['copied'], 'attachment')}, {units.count(res.files, 'file')}, "
               f"{units.size(res.bytes)} in {res.seconds:.1f}s")
    for e in res.errors:
        out.echo(f"  error: {e}", err=True)
    for w in grouped_warnings(res.warnings):
        out.echo(f"  warning: {w}", err=True)
    if incomplete:
        raise incomplete

