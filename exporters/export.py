"""Materialise one snapshot into the backup folder users know.

```
airtable_backup_YYYY-MM-DD_HH-MM-SS/      (the snapshot's own time, UTC; _2, _3... if taken)
  data/{json,yaml,ndjson,csv,parquet}/<base>/<table>.<ext>   data/sqlite/<base>.sqlite
  data/{json,yaml,ndjson,csv,parquet}/<base>/<table>.comments.<ext>   (snapshots with comments; see comments.py)
  attachments/<attId>_<filename>
  metadata/snapshot.json  metadata/schema/<base>.json  metadata/manifest.json
  reports/summary.json  reports/summary.md
  logs/export.log
```

One pass over the snapshot: each table's records are read from the store once and fed to every
selected writer. Everything is written under a temporary name (``.snapstore-export-*.partial``) and
renamed at the very end, after the manifest, so a failed or interrupted export never leaves a folder
named like a finished one (a failed export deletes its temporary folder).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from snapstore_exporters import partial, stream
from snapstore_exporters.base import ExportContext, Writer
from snapstore_exporters.comments import TableComments
from snapstore_exporters.csv_writer import CsvWriter
from snapstore_exporters.json_writer import JsonWriter
from snapstore_exporters.naming import inside
from snapstore_exporters.ndjson_writer import NdjsonWriter
from snapstore_exporters.parallel import Executor, bounded_workers, can_fork, default_workers
from snapstore_exporters.parquet_writer import ParquetWriter
from snapstore_exporters.sqlite_writer import SqliteWriter
from snapstore_exporters.yaml_writer import WITH_LIBYAML, YamlWriter

from snapstore import __version__
from snapstore.errors import UsageError
from snapstore.store import SnapshotInfo, Store
from snapstore.store.backend import LocalBackend

log = logging.getLogger("snapstore.export")

FORMATS = ("json", "yaml", "ndjson", "csv", "sqlite", "parquet")
WRITERS: dict[str, type[Writer]] = {
    "json": JsonWriter, "yaml": YamlWriter, "ndjson": NdjsonWriter, "csv": CsvWriter,
    "sqlite": SqliteWriter, "parquet": ParquetWriter,
}
FOLDER_PREFIX = "airtable_backup_"
MANIFEST = "metadata/manifest.json"
SUBDIRS = ("data", "attachments", "metadata", "reports", "logs")
#: Records a chunk: the unit a worker reads and encodes (a few MB of output per format).
CHUNK_RECORDS = 2048
#: Below this many records an export runs in-process: starting workers would cost more than it saves.
PARALLEL_MIN_RECORDS = 20_000


@dataclass
class ExportResult:
    path: Path
    snapshot: SnapshotInfo
    formats: list[str]
    tables: list[dict]
    files: int
    bytes: int
    attachments: dict
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(t["records"] for t in self.tables)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path), "snapshot": self.snapshot.id, "formats": self.formats,
            "records": self.records, "tables": self.tables, "files": self.files, "bytes": self.bytes,
            "attachments": self.attachments, "errors": self.errors, "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


def folder_name(snap: SnapshotInfo) -> str:
    return f"{FOLDER_PREFIX}{snap.time.astimezone(UTC):%Y-%m-%d_%H-%M-%S}"


def parse_formats(formats: str | Iterable[str] | None) -> list[str]:
    if formats is None:
        return list(FORMATS)
    if isinstance(formats, str):
        formats = formats.split(",")
    wanted = [f.strip().lower() for f in formats if f and f.strip()]
    if "all" in wanted:
        return list(FORMATS)
    unknown = [f for f in wanted if f not in WRITERS]
    if unknown:
        raise UsageError(f"unknown export format(s): {', '.join(unknown)} (choose from {', '.join(FORMATS)})")
    if not wanted:
        raise UsageError("no export format chosen")
    return [f for f in FORMATS if f in wanted]


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as f:
        f.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


def export_snapshot(
    store: Store,
    snapshot: SnapshotInfo | str,
    out_dir: str | Path,
    formats: str | Iterable[str] | None = FORMATS,
    bases: list[str] | None = None,
    tables: list[str] | None = None,
    attachments: bool = True,
    csv_guard: bool = True,
    workers: int | None = None,
    chunk_records: int = CHUNK_RECORDS,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write ``snapshot`` as ``out_dir/airtable_backup_<time>/``; see the module docstring.

    ``workers``: processes encoding chunks (default: one per core when the store is local and the
    export large enough to gain from it; 1 runs everything in this process). The folder's content is
    the same whatever the number. ``progress(records written, records in the export)`` is called
    after each chunk (the CLI's live line: count and ETA)."""
    t0 = time.monotonic()
    snap = store.resolve(snapshot)
    fmts = parse_formats(formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stale = partial.remove_stale(out)
    folder = partial.PartialFolder(out, snap.id)
    tmp = folder.path
    try:
        for d in SUBDIRS:
            (tmp / d).mkdir()
        handler = logging.FileHandler(tmp / "logs" / "export.log", encoding="utf-8")
    except BaseException:
        folder.discard()
        raise
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger("snapstore.export"), logging.getLogger("snapstore.store")]
    old_levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    writers: list[Writer] = []
    try:
        if stale:
            log.info("removed %d temporary folder(s) left by killed exports", len(stale))
        log.info("exporting snapshot %s (%s) to %s: formats %s, attachments %s, csv guard %s",
                 snap.id, _iso(snap.time), out, ",".join(fmts), attachments, csv_guard)
        plan = stream.plan(store, snap, bases, tables)
        ctx = ExportContext(root=tmp, snapshot=snap, csv_guard=csv_guard)
        for f in fmts:
            ctx.data_dir(f)
        writers = [WRITERS[f](ctx) for f in fmts]
        sink = stream.AttachmentSink(store, tmp if attachments else None)
        encoders = tuple(type(w).encode for w in writers)
        total = sum(t.info.records for b in plan for t in b.tables if t.info)
        n_workers = _workers(store, workers, total)
        log.info("%d worker process(es), %d records a chunk", n_workers, chunk_records)
        table_rows = []
        order = [(base, t) for base in plan for t in base.tables]
        comments = store.table_comments(snap, [(b.base_id, t.table_id) for b, t in order])
        with Executor(n_workers, stream.use_store, (store,)) as ex:
            n = done = 0
            for event, k, result in _table_events(ex, store, snap, order, sink, encoders, ctx, chunk_records):
                base, t = order[k]
                if event == "chunk":
                    n_chunk, payloads, warnings = result
                    for w, payload in zip(writers, payloads, strict=True):
                        w.write(payload)
                    for fmt, column, message in warnings:
                        ctx.warn(fmt, t, column, message)
                    n += n_chunk
                    done += n_chunk
                    if progress is not None:
                        progress(done, total)
                elif event == "open":
                    n = 0
                    for w in writers:
                        w.open_table(t)
                else:
                    tc = _write_comments(writers, t, next(comments))
                    for w in writers:
                        w.close_table()
                    table_rows.append(_table_row(base, t, n, sink, k, fmts, ctx, tc))
                    log.info("%s/%s: %d records", base.name, t.name, n)
        for w in writers:
            w.close()
        shutil.rmtree(ctx.scratch, ignore_errors=True)
        errors = [f"table {m.get('table_id') or '(all)'} of base {m.get('base_id')} missing from the snapshot: "
                  f"{m.get('reason')}" for m in snap.missing]
        errors += sink.errors
        errors += [f"attachment {a} is not in the store (the snapshot did not download it)" for a in sink.missing]
        att = {"exported": attachments, "copied": sink.copied, "bytes": sink.bytes, "missing": len(sink.missing)}
        _write_metadata(store, snap, tmp, plan, fmts, bases, tables, attachments, csv_guard)
        summary = _summary(snap, fmts, table_rows, att, errors, ctx)
        _dump(tmp / "reports" / "summary.json", summary)
        (tmp / "reports" / "summary.md").write_text(_summary_md(summary), encoding="utf-8")
        log.info("export finished: %d tables, %d records, %d attachments, %d errors, %d warnings",
                 len(table_rows), summary["totals"]["records"], sink.copied, len(errors), len(ctx.warnings))
        _detach(loggers, old_levels, handler)
        handler = None
        files, nbytes = write_manifest(tmp, snap, ctx.digests)
        final = folder.publish(out, folder_name(snap))
    except BaseException:
        try:
            for w in writers:  # closing a file on a full disk fails too: the folder goes anyway
                with contextlib.suppress(Exception):
                    w.abort()
            if handler is not None:
                with contextlib.suppress(Exception):
                    _detach(loggers, old_levels, handler)
        finally:
            folder.discard()
        raise
    return ExportResult(final, snap, fmts, table_rows, files, nbytes, att, errors, list(ctx.warnings),
                        time.monotonic() - t0)


def _workers(store: Store, workers: int | None, records: int) -> int:
    """Worker processes for this export: one per core for a local store with enough records to pay
    for starting them (two forks cost about what 5,000 records take to export), else in-process."""
    if not isinstance(store.backend, LocalBackend) or not can_fork():
        return 1
    if workers is not None:
        return bounded_workers(workers)
    return default_workers() if records >= PARALLEL_MIN_RECORDS else 1


def _table_events(ex: Executor, store: Store, snap: SnapshotInfo, order: list[tuple[stream.BaseMeta, stream.TableMeta]],
                  sink: stream.AttachmentSink, encoders: tuple, ctx: ExportContext, chunk_records: int):
    """("open", k, None), ("chunk", k, (records, payload per writer, warnings))..., ("close", k, None)
    for each table ``order[k]`` in turn, empty tables included.

    One stream of chunks runs across all tables, so workers go on to the next table while the main
    process writes the last chunks of this one, and small tables are located together: a workspace of
    many small tables exports about as fast as one table of their total size. When attachments are
    exported, chunks of tables that can hold them are scanned first and their attachments copied and
    named here, in order, so the encoders get the paths."""
    specs = [stream.TableSpec.of(t, snap.full_id, ctx.csv_guard, scratch=str(ctx.scratch) if ex.parallel else None)
             for _base, t in order]
    position = {id(spec): k for k, spec in enumerate(specs)}
    located = ex.prefetch(store.table_chunks(snap, [(b.base_id, t.table_id) for b, t in order], size=chunk_records))
    chunks = ((specs[k], c) for k, c in located)
    if sink.enabled:
        scanned = ex.map(stream.scan_chunk, chunks, skip=lambda task: not task[0].attachment_fields)
        tasks = ((spec, c, None if refs is None else sink.paths(refs, position[id(spec)]), encoders)
                 for (spec, c), refs in scanned)
    else:
        tasks = ((spec, c, None, encoders) for spec, c in chunks)
    opened = -1
    for (spec, *_rest), result in ex.map(stream.encode_chunk, tasks):
        k = position[id(spec)]
        while opened < k:
            if opened >= 0:
                yield "close", opened, None
            opened += 1
            yield "open", opened, None
        yield "chunk", k, result
    while opened < len(order):  # the last table with records, then any empty ones after it
        if opened >= 0:
            yield "close", opened, None
        opened += 1
        if opened < len(order):
            yield "open", opened, None


def _write_comments(writers: list[Writer], t: stream.TableMeta, by_record: dict | None) -> TableComments | None:
    """The table's comments to every writer; None (and no comments files) when the snapshot did not
    capture them."""
    if by_record is None:
        return None
    tc = TableComments(t, by_record)
    for w in writers:
        w.write_comments(tc)
    return tc


def _comments_file(fmt: str, base: stream.BaseMeta, t: stream.TableMeta) -> str:
    """Beside the table's records file (SQLite: a table in the base's database)."""
    return _table_file(fmt, base, t) if fmt == "sqlite" else f"data/{fmt}/{base.stem}/{t.comments_stem}.{fmt}"


def _table_row(base: stream.BaseMeta, t: stream.TableMeta, n: int, sink: stream.AttachmentSink,
               k: int, fmts: list[str], ctx: ExportContext, comments: TableComments | None = None) -> dict:
    info = t.info
    if info is not None and info.records != n:
        ctx.warnings.append(f"{base.name}/{t.name}: snapshot says {info.records} records, exported {n}")
    return {
        "base_id": base.base_id, "base": base.name, "table_id": t.table_id, "table": t.name,
        "records": n, "snapshot_records": info.records if info else None,
        "new": info.new if info else None, "changed": info.changed if info else None,
        "deleted": info.deleted if info else None, "unchanged": info.unchanged if info else None,
        "attachments_copied": sink.copied_in.get(k, 0), "attachments_missing": sink.missing_in.get(k, 0),
        "files": {f: _table_file(f, base, t) for f in fmts},
        # None: the snapshot was taken without --comments (and no comments files were written)
        "comments": comments.count if comments else None,
        "records_with_comments": len(comments.entries) if comments else None,
        "comment_files": {f: _comments_file(f, base, t) for f in fmts} if comments else None,
    }


def _detach(loggers, levels, handler) -> None:
    for lg, lvl in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(lvl)
    handler.close()


def _table_file(fmt: str, base: stream.BaseMeta, t: stream.TableMeta) -> str:
    if fmt == "sqlite":
        return f"data/sqlite/{base.stem}.sqlite"
    return f"data/{fmt}/{base.stem}/{t.stem}.{fmt}"


def _write_metadata(store, snap, root, plan, fmts, bases, tables, attachments, csv_guard) -> None:
    for base in plan:
        _dump(inside(root / "metadata", "schema") / f"{base.stem}.json", base.schema)
    doc = snap.doc
    _dump(root / "metadata" / "snapshot.json", {
        "snapshot": {
            "id": snap.id, "full_id": snap.full_id, "time": _iso(snap.time), "parent": snap.parent,
            "status": snap.status, "tags": snap.tags, "note": snap.note, "missing": snap.missing,
            "command": doc.get("command"), "tool_version": doc.get("tool_version"), "canon": doc.get("canon"),
            "records": snap.records,
        },
        "store": {k: store.config.get(k) for k in ("format", "version", "store_id", "canon", "hash", "compression")},
        "export": {
            "tool": "snapstore", "tool_version": __version__, "exported_at": _iso(datetime.now(UTC)),
            "formats": fmts, "bases": bases or None, "tables": tables or None, "attachments": attachments,
            "csv_formula_guard": csv_guard, "yaml_libyaml": WITH_LIBYAML,
        },
        "bases": [
            {"base_id": b.base_id, "name": b.name, "folder": b.stem, "schema_file": f"metadata/schema/{b.stem}.json",
             "tables": [{"table_id": t.table_id, "name": t.name, "file_stem": t.stem,
                         "comments_file_stem": t.comments_stem,
                         "columns": dict(zip([f["id"] for f in t.fields], t.field_columns, strict=True))}
                        for t in b.tables]}
            for b in plan
        ],
    })


def _summary(snap, fmts, rows, att, errors, ctx) -> dict:
    return {
        "snapshot": {"id": snap.id, "full_id": snap.full_id, "time": _iso(snap.time),
                     "parent": snap.parent[:8] if snap.parent else None, "status": snap.status},
        "formats": fmts,
        "totals": {
            "tables": len(rows), "records": sum(r["records"] for r in rows),
            "new": sum(r["new"] or 0 for r in rows), "changed": sum(r["changed"] or 0 for r in rows),
            "deleted": sum(r["deleted"] or 0 for r in rows),
            "attachments_copied": att["copied"], "attachment_bytes": att["bytes"],
            "attachments_missing": att["missing"],
            "comments": sum(r["comments"] or 0 for r in rows),
            "tables_with_comments_captured": sum(r["comments"] is not None for r in rows),
        },
        "tables": rows,
        "missing_tables": snap.missing,
        "errors": errors,
        # sorted: chunks reach the main process in order, but the formats' warnings of one chunk come
        # together, so their interleaving depends on the chunk size; the folder must not
        "warnings": sorted(ctx.warnings),
        "warning_counts": [{"format": k[0], "table": k[1], "column": k[2], "count": n}
                           for k, n in sorted(ctx.warning_counts.items())],
    }


def _md(text) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _summary_md(s: dict) -> str:
    snap = s["snapshot"]
    tot = s["totals"]
    lines = [
        f"# Airtable backup — snapshot {snap['id']}", "",
        f"- Snapshot time: {snap['time']} (status {snap['status']}; parent {snap['parent'] or 'none'})",
        f"- Formats: {', '.join(s['formats'])}",
        f"- Tables: {tot['tables']}, records: {tot['records']} "
        f"(new {tot['new']}, changed {tot['changed']}, deleted {tot['deleted']} since the parent snapshot)",
        f"- Attachments: {tot['attachments_copied']} files, {tot['attachment_bytes']} bytes"
        f"{', ' + str(tot['attachments_missing']) + ' missing' if tot['attachments_missing'] else ''}",
        f"- Comments: {tot['comments']} in {tot['tables_with_comments_captured']} table(s) whose comments were captured"
        if tot["tables_with_comments_captured"] else "- Comments: not captured (snapshot taken without --comments)",
        "", "| Base | Table | Records | New | Changed | Deleted | Unchanged | Attachments | Comments |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["tables"]:
        lines.append(f"| {_md(r['base'])} | {_md(r['table'])} | {r['records']} | {_md(r['new'])} | "
                     f"{_md(r['changed'])} | {_md(r['deleted'])} | {_md(r['unchanged'])} | {r['attachments_copied']} | "
                     f"{_md(r['comments'] if r['comments'] is not None else '-')} |")
    lines += ["", "## Errors", ""]
    lines += [f"- {_md(e)}" for e in s["errors"]] or ["None."]
    if s["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {_md(w)}" for w in s["warnings"]]
    return "\n".join(lines) + "\n"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(root: Path, snap: SnapshotInfo, digests: dict[str, tuple[int, str]] | None = None
                   ) -> tuple[int, int]:
    """``metadata/manifest.json``: every other file in the folder with its SHA-256 and size.
    ``digests`` (path -> size, SHA-256) are those computed while the files were written; a file of
    another size is hashed again."""
    digests = digests or {}
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if rel == MANIFEST:
                continue
            size = p.stat().st_size
            known = digests.get(str(p))
            sha = known[1] if known is not None and known[0] == size else _sha256_file(p)
            entries.append({"path": rel, "size": size, "sha256": sha})
    total = sum(e["size"] for e in entries)
    _dump(root / MANIFEST, {"snapshot": snap.full_id, "algorithm": "sha256", "files": len(entries),
                            "bytes": total, "entries": entries})
    return len(entries), total


def verify_manifest(folder: str | Path) -> list[str]:
    """Problems found checking an export folder against its manifest (empty list: it verifies)."""
    root = Path(folder)
    doc = orjson.loads((root / MANIFEST).read_bytes())
    problems = []
    listed = set()
    for e in doc["entries"]:
        listed.add(e["path"])
        p = root / e["path"]
        if not p.is_file():
            problems.append(f"{e['path']}: missing")
        elif p.stat().st_size != e["size"]:
            problems.append(f"{e['path']}: size {p.stat().st_size} != {e['size']}")
        elif _sha256_file(p) != e["sha256"]:
            problems.append(f"{e['path']}: sha256 mismatch")
    for dirpath, _d, filenames in os.walk(root):
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel != MANIFEST and rel not in listed:
                problems.append(f"{rel}: not in the manifest")
    return problems
