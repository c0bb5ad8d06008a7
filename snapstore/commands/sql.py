"""`snapstore sql`: a query over the store's snapshots (or a small shell without one). Thin: parses,
opens a session of snapstore.ops.sql, prints the result batch by batch (docs/sql.md)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("table", "csv", "json", "ndjson", "parquet")
#: Rows a table-format answer shows before it says how many more there are.
TABLE_ROWS = 1000
#: Width at which a cell of the table format is cut.
CELL_WIDTH = 60
BATCH = 8192


@command("sql", imports=("pyarrow.csv", "pyarrow.parquet"))
@click.argument("query", required=False)
@store_option
@click.option("--snapshot", default="latest", show_default=True, metavar="SNAPSHOT",
              help="What plain table names mean: an id, latest, latest~N, a date.")
@click.option("--base", "bases", multiple=True, metavar="BASE", help="Only this base's tables (id or name; repeatable).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="How the answer is printed (parquet needs --out).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the answer to FILE instead of standard output.")
@click.option("--attach", "attach", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Copy the snapshot's tables into the DuckDB file FILE (created if needed).")
@click.option("--attach-table", "attach_tables", multiple=True, metavar="TABLE",
              help="With --attach: only this table (repeatable; default all).")
@click.option("--attach-history", "attach_history", multiple=True, metavar="TABLE",
              help="With --attach: also every version of this table (repeatable).")
def sql(query, store, snapshot, bases, fmt, out_file, attach, attach_tables, attach_history, out: Output):
    """Query the store's snapshots with SQL (DuckDB): one view per table, at(snapshot, table),
    history(table), changes(table, a, b), snapshots, tables, fields, comments, attachments.
    Without QUERY (and without --attach), an interactive shell. Never writes to the store."""
    from snapstore.ops.sql import Session

    if fmt == "parquet" and not out_file:
        raise click.UsageError("--format parquet needs --out FILE")
    if (attach_tables or attach_history) and not attach:
        raise click.UsageError("--attach-table and --attach-history need --attach FILE")
    if out.json and fmt == "table":
        fmt = "json"
    session = Session(open_store(store), snapshot, bases or None, attach=attach)
    try:
        if attach:
            for name in session.materialise(attach_tables, attach_history):
                out.echo(f"attached {name}", err=True)
            if query is None:
                return
        if query is None:
            if not sys.stdin.isatty():
                query = sys.stdin.read()
            else:
                shell(session)
                return
        result = session.execute(query)
        json_columns = {d[0] for d in result.description or () if str(d[1]) == "JSON"}
        write_result(result.to_arrow_reader(BATCH), fmt, out_file, json_columns)
    finally:
        session.close()


def write_result(reader: pa.RecordBatchReader, fmt: str, out_file: str | None,
                 json_columns: set[str] = frozenset()) -> None:
    """The answer in ``fmt``, streamed batch by batch (the table format keeps TABLE_ROWS rows).
    ``json_columns``: columns of DuckDB's JSON type, which Arrow carries as text: the JSON formats
    embed their values instead of quoting them."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(out_file, reader.schema, compression="zstd") as w:
            for b in reader:
                w.write_batch(b)
        return
    f = open(out_file, "wb") if out_file else sys.stdout.buffer  # noqa: SIM115
    try:
        if fmt == "csv":
            import pyarrow.csv as pacsv

            with pacsv.CSVWriter(f, reader.schema) as w:
                for b in reader:
                    w.write_batch(b)
        elif fmt in ("json", "ndjson"):
            _write_json(reader, f, fmt == "json", json_columns)
        else:
            f.write(render_table(reader).encode())
        f.flush()
    finally:
        if out_file:
            f.close()


def _write_json(reader: pa.RecordBatchReader, f, array: bool, json_columns: set[str]) -> None:
    import orjson

    opt = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    embed = [c for c in reader.schema.names if c in json_columns]
    first = True
    if array:
        f.write(b"[")
    for b in reader:
        for row in b.to_pylist():
            for c in embed:
                if row[c] is not None:
                    row[c] = orjson.loads(row[c])
            line = orjson.dumps(row, default=str, option=opt)
            if array:
                f.write(b"\n" if first else b",\n")
                f.write(line)
            else:
                f.write(line + b"\n")
            first = False
    if array:
        f.write(b"\n]\n" if not first else b"]\n")


def _cell(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, list | dict):
        import orjson

        text = orjson.dumps(v, default=str).decode()
    elif isinstance(v, bool):
        text = "true" if v else "false"
    else:
        text = str(v)
    text = text.replace("\n", "\\n")
    return text if len(text) <= CELL_WIDTH else text[:CELL_WIDTH - 1] + "…"


def render_table(reader: pa.RecordBatchReader) -> str:
    """Aligned columns with a header rule; the row count last."""
    names = reader.schema.names
    rows: list[list[str]] = []
    total = 0
    for b in reader:
        total += b.num_rows
        if len(rows) < TABLE_ROWS:
            rows += [[_cell(v) for v in r.values()] for r in b.slice(0, TABLE_ROWS - len(rows)).to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    more = f" (showing {len(rows)})" if total > len(rows) else ""
    lines.append(f"({total} row{'s' if total != 1 else ''}{more})")
    return "\n".join(lines) + "\n"


def shell(session) -> None:
    """A small REPL (DuckDB's own CLI is not a dependency): statements end with ``;``; line history
    through readline, kept in snapstore's cache folder."""
    from snapstore.errors import SnapstoreError

    try:
        import readline
    except ImportError:  # pragma: no cover - not on every platform
        readline = None
    from snapstore.store.store import cache_root

    hist = cache_root() / "sql_history"
    if readline is not None:
        try:
            hist.parent.mkdir(parents=True, exist_ok=True)
            readline.read_history_file(hist)
        except OSError:
            pass
    click.echo(f"snapstore sql on snapshot {session.snap.id}; {session.listing()}.\n"
               "End a statement with ';'. Ctrl-D leaves.", err=True)
    buf: list[str] = []
    try:
        while True:
            try:
                line = input("sql> " if not buf else "...> ")
            except EOFError:
                click.echo(err=True)
                break
            except KeyboardInterrupt:
                click.echo(err=True)
                buf = []
                continue
            buf.append(line)
            text = "\n".join(buf).strip()
            if not text:
                buf = []
                continue
            if not text.endswith(";"):
                continue
            buf = []
            try:
                result = session.execute(text)
                if result.description is not None:
                    sys.stdout.write(render_table(result.to_arrow_reader(BATCH)))
                    sys.stdout.flush()
            except SnapstoreError as e:
                click.echo(f"error: {e}", err=True)
    finally:
        if readline is not None:
            try:
                readline.write_history_file(hist)
            except OSError:
                pass
