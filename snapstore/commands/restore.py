"""`snapstore restore`: getting the data back into Airtable. Thin: parses, calls snapstore.restore,
prints."""

from __future__ import annotations

from pathlib import Path

import click

from snapstore.commands.base import command
from snapstore.commands.options import (
    dry_run_option,
    make_source,
    open_store,
    progress_option,
    source_options,
    store_option,
)
from snapstore.commands.output import Output
from snapstore.commands.progress import activity
from snapstore.commands.progress import wanted as progress_wanted
from snapstore.errors import UsageError


def _human(rep: dict) -> str:
    lines = []
    dry = rep["dry_run"]
    head = "Plan" if dry else f"{rep['mode'].capitalize()} {rep['status']}"
    lines.append(f"{head}: {rep['source']} -> base {rep['target_base']}")
    would = "would " if dry else ""
    if rep["mode"] == "revert" and rep.get("plan"):
        p = rep["plan"]
        lines.append(f"  table {p['table']} ({p['table_id']}): {would}re-create {p['recreate']}, {would}rewrite "
                     f"{p['update']}, added since {p['added_since']} ({would + 'delete' if p['delete_added'] else 'keep'}), "
                     f"unchanged {p['unchanged']}")
        ch = p.get("schema_changes") or {}
        for r in ch.get("renamed", []):
            done = "renamed back" if r.get("reverted") else (f"{would}rename back" if p.get("schema")
                                                              else "kept (--schema renames it back)")
            lines.append(f"  field {r['from']!r} is now {r['to']!r}: {done}")
        for r in ch.get("added", []):
            lines.append(f"  field {r['name']!r} ({r['type']}) added since the snapshot: kept")
        for r in ch.get("removed", []):
            lines.append(f"  field {r['name']!r} ({r['type']}) removed since the snapshot: not restorable in place")
    for t in rep["tables"].values():
        target = t.get("new_name") or t["name"]
        verbs = ("would create", "would update", "would delete") if dry else ("created", "updated", "deleted")
        lines.append(f"  {t['name']} -> {target}{' (' + t['new_table'] + ')' if t.get('new_table') else ''}: "
                     f"{verbs[0]} {t['created']}, {verbs[1]} {t['updated']}, {verbs[2]} {t['deleted']}, "
                     f"skipped {t['skipped']}" + (f", already done {t['resumed']}" if t.get("resumed") else ""))
    renamed = (rep.get("plan") or {}).get("renamed") or []
    if renamed:
        lines.append(f"Renamed ({len(renamed)} fields whose names clash ignoring case):")
        lines += [f"  {r['table']}.{r['field']} -> {r['new_name']!r}" for r in renamed]
    nr = rep["not_restorable"]
    if nr:
        lines.append(f"Not restorable ({len(nr)} fields):")
        for f in nr:
            kept = " — last values kept as text" if f.get("kept_as") else ""
            where = f"{f['table']}." if f.get("table") else ""
            opt = f" option {f['option']}" if f.get("option") else ""
            lines.append(f"  {where}{f['field']} ({f.get('type', '')}){opt}: {f.get('reason')}{kept}")
    if rep.get("comments", {}).get("restored"):
        verb = "would re-create" if rep["dry_run"] else "re-created"
        lines.append(f"Comments: {verb} {rep['comments']['restored']} (author and time at the start of the text)")
    att = rep["attachments"]
    if att["uploaded"] or att["not_uploaded"]:
        lines.append(f"Attachments: {att['uploaded']} uploaded, {len(att['not_uploaded'])} not")
        for a in att["not_uploaded"][:20]:
            lines.append(f"  {a.get('filename')} ({a.get('attachment')}): {a.get('reason')}"
                         + (f" — file: {a['path']}" if a.get("path") else ""))
    for w in rep["warnings"][:20]:
        lines.append(f"warning: {w}")
    if fl := rep.get("floor"):
        lines.append(f"Write requests: {fl['writes']:,} (floor {fl['creates'] + fl['link_updates']:,}: "
                     f"{fl['creates']:,} creates + {fl['link_updates']:,} link updates; schema, uploads and "
                     "comments come on top)")
    if rep.get("id_map_file"):
        lines.append(f"Id map: {rep['id_map_file']}")
    if rep.get("journal"):
        lines.append(f"Journal: {rep['journal']}")
    return "\n".join(lines)


def _open(source: str, store: str, base: str | None, *, verify: bool):
    """What to restore from: an exported folder, or a snapshot of the store (latest, latest~N and
    dates count among the snapshots holding ``base``, the source base)."""
    from snapstore.restore import FolderSource, open_source
    from snapstore.selection import resolve_snapshot

    p = Path(source)
    if p.is_dir() and (p / "data").is_dir():
        return FolderSource(p, verify=verify)
    if p.exists() or "/" in source or source.startswith("."):  # a path, not a snapshot name
        what = "is not an exported folder (it has no data/ folder)" if p.exists() else "does not exist"
        raise UsageError(f"{source} {what}; give an airtable_backup_* folder or a snapshot name")
    st = open_store(store)
    return open_source(resolve_snapshot(st, source, [base] if base else None).full_id, st)


@command(imports=("snapstore.restore",))
@click.argument("source")
@store_option
@source_options
@click.option("--to-base", metavar="BASE_ID", help="Restore into new tables of this base.")
@click.option("--to-workspace", metavar="WSP_ID", help="Restore into a new base of this workspace (every table).")
@click.option("--base-name", metavar="NAME", help="With --to-workspace: the new base's name (default: the source's).")
@click.option("--base", "base", metavar="BASE",
              help="The source base (when the snapshot holds several); with --revert, the live base.")
@click.option("--table", "-t", "tables", multiple=True, help="Only this table (id or name; repeatable).")
@click.option("--keep-computed-values", is_flag=True,
              help="Keep the last values of computed fields (formula, rollup, ...) in text fields.")
@click.option("--no-comments", is_flag=True, help="Do not re-create the records' comments.")
@click.option("--revert", is_flag=True, help="Put an existing table back as it was in the snapshot.")
@click.option("--record", "-r", "records", multiple=True, help="With --revert: only these records.")
@click.option("--delete-added", is_flag=True, help="With --revert: delete records added since the snapshot.")
@click.option("--schema", "schema", is_flag=True,
              help="With --revert: rename fields renamed since the snapshot back to their old names.")
@click.option("--new", "--force", "new", is_flag=True,
              help="Restore again into new tables even though this restore was completed before.")
@click.option("--no-verify", is_flag=True, help="Use an exported folder without checking its manifest.")
@dry_run_option("Show the plan; send no write request.")
@click.option("--yes", "-y", is_flag=True, help="With --revert: do not ask before writing.")
@progress_option
def restore(source, store, to_base, to_workspace, base_name, base, tables, keep_computed_values, no_comments, revert, records, delete_added, schema,
            new,
            no_verify, dry_run, yes, progress, out: Output, **kw):
    """Restore SOURCE (a snapshot name, or an exported airtable_backup_* folder) into Airtable.

    \b
    snapstore restore latest --to-base appXXXX            new tables in base appXXXX
    snapstore restore latest --to-workspace wspXXXX       a new base holding every table
    snapstore restore ./airtable_backup_2026-... --to-base appXXXX
    snapstore restore latest --revert --base appXXXX --table Tasks [--record recX ...] [--delete-added]

    Computed fields cannot be created through the API and are reported with their definitions.
    An interrupted restore continues where it stopped when run again.
    """
    from snapstore.restore import RestoreError, RevertPlan, SnapshotSource
    from snapstore.restore import restore as run_restore
    from snapstore.restore import revert as run_revert

    if revert:
        if not base or not tables or len(tables) != 1:
            raise click.UsageError("--revert needs --base BASE and exactly one --table TABLE")
        if to_base or to_workspace:
            raise click.UsageError("--revert works in place; drop --to-base / --to-workspace")
    elif bool(to_base) == bool(to_workspace):
        raise click.UsageError("give --to-base BASE_ID or --to-workspace WSP_ID (or --revert --base B --table T)")
    if base_name and not to_workspace:
        raise click.UsageError("--base-name goes with --to-workspace")
    if (records or delete_added or schema) and not revert:
        raise click.UsageError("--record, --delete-added and --schema go with --revert")
    src = _open(source, store, base if not revert else None, verify=not no_verify)
    if revert and not isinstance(src, SnapshotSource):
        raise RestoreError("--revert needs a snapshot in a store (import the folder first: snapstore import)")
    client = None
    if not dry_run or kw.get("token") or kw.get("token_file"):
        client, _token = make_source(kw)
    if revert:
        def confirm(plan: RevertPlan) -> bool:
            if yes:
                return True
            c = plan.counts()
            click.echo(f"Revert {plan.table_name} ({plan.table_id}) in {base} to {src.label}: re-create "
                       f"{c['recreate']}, rewrite {c['update']}, {c['added_since']} added since "
                       f"({'will be deleted' if delete_added else 'kept'}).", err=True)
            return click.confirm("Go ahead?", default=False, err=True)

        if client is None:
            raise RestoreError("--revert --dry-run needs a token to read the live table")
        rep = run_revert(src, client=client, base_id=base, table=tables[0], records=records,
                         delete_added=delete_added, dry_run=dry_run, confirm=confirm, schema=schema)
    else:
        live = progress_wanted(out, None)
        with activity(f"restoring {src.label}", out, progress) as update:
            lines = update if live else None if out.quiet else (lambda m: click.echo(m, err=True))
            rep = run_restore(src, to_base=to_base, to_workspace=to_workspace, base_name=base_name, client=client,
                              base_id=base, tables=tables, keep_computed=keep_computed_values, dry_run=dry_run,
                              new=new, comments=not no_comments, log=lines)
    if client is not None:
        rep.requests = client.stats.snapshot()
    doc = rep.to_dict()
    if out.json:
        out.emit(doc)
    else:
        out.echo(_human(doc))
    if doc["status"] == "cancelled":
        out.fail(RestoreError("the restore was cancelled: nothing was written"))
