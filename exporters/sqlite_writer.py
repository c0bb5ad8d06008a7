"""SQLite: one database per base (``data/sqlite/<base>.sqlite``), one table per Airtable table.

Each table has ``_id TEXT PRIMARY KEY`` (the record id), ``_createdTime TEXT`` and a column per field in schema order:
REAL for number/percent/currency/duration, INTEGER for rating/autoNumber/count and checkbox (1, or NULL
when unchecked), TEXT for text and selects, ISO-8601 TEXT for dates and date-times, JSON TEXT for
everything else (lists, attachments, collaborators, barcode, button, aiText). Formula and rollup
columns take the SQL type of their result type (``options.result``), lookups are JSON arrays of typed
values; an error value is NULL and counted in the warnings. Table and column names go through
``snapstore_exporters.naming.safe_column`` (no control characters: a NUL cannot even be in a statement).
Every linked-record field also gets a link table ``<table>__<field>`` (record_id, position,
linked_record_id) with foreign keys to both tables (to the linked table only when it is part of the
export), so ``sqlite3`` and datasette can join across tables. Metadata tables: ``_airtable_snapshot``
(key/value), ``_airtable_schema`` (the raw schema JSON), ``_airtable_tables`` and ``_airtable_fields``
(Airtable ids, names, types, options and the SQL name each one got), ``_airtable_links``.
Comments (snapshots taken with ``--comments``): ``<table>__comments`` per table, a foreign key to the
record's row, and the view ``_comments`` over all of them (see exporters/comments.py).
"""

from __future__ import annotations

import os
import sqlite3

from snapstore_exporters import stream
from snapstore_exporters import values as V
from snapstore_exporters.base import Writer
from snapstore_exporters.comments import COLUMNS as COMMENT_COLUMNS
from snapstore_exporters.comments import TableComments
from snapstore_exporters.naming import NameAllocator, inside, safe_column
from snapstore_exporters.stream import BaseMeta, Batch, TableMeta

SQL_TYPES = {V.TEXT: "TEXT", V.FLOAT: "REAL", V.INT: "INTEGER", V.BOOL: "INTEGER", V.DATE: "TEXT",
             V.DATETIME: "TEXT"}
ENCODING = {V.DATE: "iso8601 date", V.DATETIME: "iso8601 datetime", V.BOOL: "1 or NULL",
            V.FLOAT_LIST: "json array of numbers", V.BOOL_LIST: "json array of booleans",
            V.DATE_LIST: "json array of iso8601 dates", V.DATETIME_LIST: "json array of iso8601 datetimes"}
#: Larger than SQLite's default 4096: copying chunks in (and the primary-key b-tree) measured 10-25%
#: faster, with a slightly smaller file.
PAGE_SIZE = 16384
META_TABLES = ("_airtable_snapshot", "_airtable_schema", "_airtable_tables", "_airtable_fields", "_airtable_links")
#: The view over every table's comments (``<table>__comments``), with the Airtable table's id beside each row.
COMMENTS_VIEW = "_comments"

_META_SQL = """
CREATE TABLE _airtable_snapshot (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE _airtable_schema (base_id TEXT PRIMARY KEY, base_name TEXT, schema_json TEXT NOT NULL);
CREATE TABLE _airtable_tables (table_id TEXT PRIMARY KEY, name TEXT NOT NULL, sql_table TEXT,
    primary_field_id TEXT, description TEXT, records INTEGER, schema_json TEXT, comments_sql_table TEXT,
    comments INTEGER);
CREATE TABLE _airtable_fields (table_id TEXT NOT NULL REFERENCES _airtable_tables(table_id),
    field_id TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL, type TEXT, sql_column TEXT,
    sql_type TEXT, encoding TEXT, description TEXT, options_json TEXT, PRIMARY KEY (table_id, field_id));
CREATE TABLE _airtable_links (sql_table TEXT PRIMARY KEY, table_id TEXT NOT NULL, field_id TEXT NOT NULL,
    linked_table_id TEXT, linked_sql_table TEXT);
"""


def q(name: str) -> str:
    """A quoted SQL identifier (any text but NUL: names are made safe first, snapstore_exporters.naming.safe_column)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_column(kind: str, raw: list, errors: list | None = None) -> list:
    """One column's SQLite values. A computed field's error value (``{"error": ...}``,
    ``{"specialValue": ...}``) is NULL, in a list too, and appended to ``errors``; any other value of
    an unexpected type is stored as its JSON text."""
    dumps = V.dumps_json

    def odd(v):
        if V.is_error(v):
            if errors is not None:
                errors.append(v)
            return None
        return dumps(v)

    if kind in (V.TEXT, V.DATE, V.DATETIME):
        return [v if v is None or type(v) is str else odd(v) for v in raw]
    if kind in (V.FLOAT, V.INT):
        return [v if v is None or type(v) in (int, float) else odd(v) for v in raw]
    if kind == V.BOOL:
        return [None if v is None else 1 if v is True else 0 if v is False else odd(v) for v in raw]
    if kind in V.LIST_ITEM:
        return [None if v is None else _json_list(v, odd) if type(v) is list and dict in map(type, v) else dumps(v)
                for v in raw]
    return [None if v is None else dumps(v) for v in raw]


def _json_list(items: list, odd) -> str:
    """A typed list as JSON, its error items null (``odd`` records them)."""
    return V.dumps_json([odd(x) if V.is_error(x) else x for x in items])


def _rows(batch: Batch) -> tuple[list[tuple], list[list[tuple]]]:
    """(rows of the table, rows of each link table in link-field order)."""
    spec = batch.spec
    ids = batch.ids
    raws = batch.columns()
    cols = [ids, batch.created]
    for col, kind, raw in zip(spec.columns[2:], spec.kinds, raws, strict=True):
        errors: list = []
        cols.append(sql_column(kind, raw, errors))
        if errors:  # rare: one more pass to name the records
            for rid, x in zip(ids, raw, strict=True):
                for v in (x if type(x) is list else (x,)):
                    if V.is_error(v):
                        batch.warn("sqlite", col, f"{rid}: error value {V.dumps_json(v)}; stored null")
    rows = list(zip(*cols, strict=True))
    links = []
    for i, typ in enumerate(spec.types):
        if typ == "multipleRecordLinks":
            links.append([(rid, pos, other) for rid, linked in zip(ids, raws[i], strict=True)
                          if type(linked) is list for pos, other in enumerate(linked) if type(other) is str])
    return rows, links


class SqliteWriter(Writer):
    format = "sqlite"
    ext = ".sqlite"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.con: sqlite3.Connection | None = None
        self.base: BaseMeta | None = None

    # ---- per base
    def _open_base(self, base: BaseMeta) -> None:
        self._close_base()
        path = inside(self.ctx.data_dir(self.format), base.stem + self.ext)
        self.files.append(path)
        self.con = sqlite3.connect(path, isolation_level=None)
        self.con.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self.con.execute("PRAGMA journal_mode=OFF")
        self.con.execute("PRAGMA synchronous=OFF")
        self.con.execute("PRAGMA cache_size=-65536")  # 64 MiB: large tables insert without re-reading pages
        self.con.execute("BEGIN")
        for stmt in _META_SQL.split(";"):
            if stmt.strip():
                self.con.execute(stmt)
        self.base = base
        alloc = NameAllocator(reserved=(*META_TABLES, COMMENTS_VIEW), max_bytes=4096)
        self.sql_names: dict[str, str] = {}
        for t in base.tables:
            name = t.name if not t.name.lower().startswith("sqlite_") else "_" + t.name
            self.sql_names[t.table_id] = alloc.take(name, sanitize=safe_column, fallback=t.table_id)
        self.link_names: dict[tuple[str, str], str] = {}
        for t in base.tables:
            for f in t.fields:
                if f.get("type") == "multipleRecordLinks":
                    self.link_names[(t.table_id, f["id"])] = alloc.take(
                        f"{self.sql_names[t.table_id]}__{f.get('name') or f['id']}", sanitize=safe_column)
        # after the link tables, so a link field called "comments" keeps the name it always had
        self.comment_names = {t.table_id: alloc.take(f"{self.sql_names[t.table_id]}__comments", sanitize=False)
                              for t in base.tables}
        self.comment_tables: list[tuple[str, str]] = []  # (table id, comments table) written
        snap = self.ctx.snapshot
        self.con.executemany("INSERT INTO _airtable_snapshot VALUES (?, ?)", [
            ("snapshot_id", snap.full_id), ("snapshot_time", snap.time.isoformat().replace("+00:00", "Z")),
            ("parent", snap.parent), ("base_id", base.base_id), ("base_name", base.name),
            ("tool_version", str(snap.doc.get("tool_version"))),
        ])
        self.con.execute("INSERT INTO _airtable_schema VALUES (?, ?, ?)",
                         (base.base_id, base.name, V.dumps_json(base.schema)))
        for ts in base.schema.get("tables", []):
            tid = ts.get("id")
            self.con.execute("INSERT INTO _airtable_tables VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, NULL)", (
                tid, ts.get("name") or tid, self.sql_names.get(tid), ts.get("primaryFieldId"),
                ts.get("description"), V.dumps_json(ts)))

    def _close_base(self) -> None:
        if self.con is not None:
            if self.comment_tables:
                self.con.execute(f"CREATE VIEW {q(COMMENTS_VIEW)} AS " + " UNION ALL ".join(
                    f"SELECT {_literal(tid)} AS table_id, * FROM {q(name)}" for tid, name in self.comment_tables))
            self.con.execute("COMMIT")
            bad = self.con.execute("PRAGMA foreign_key_check").fetchall()
            if bad:
                self.ctx.warnings.append(
                    f"sqlite: {self.base.name}: {len(bad)} link(s) point at records not in the export "
                    f"(first: {bad[0][0]} row {bad[0][1]})")
            self.con.close()
            self.con = None
            self.base = None

    # ---- per table
    def open_table(self, table: TableMeta) -> None:
        super().open_table(table)
        self.count = 0
        names = [f.get("name") or f["id"] for f in table.fields]
        if self.base is not table.base:
            self._open_base(table.base)
        con = self.con
        self.kinds = [V.column_kind(f) for f in table.fields]
        sql_table = self.sql_names[table.table_id]
        cols = [f"{q(table.columns[0])} TEXT PRIMARY KEY NOT NULL", f"{q(table.columns[1])} TEXT"]
        self.id_col = table.columns[0]
        for i, (f, col, kind) in enumerate(zip(table.fields, table.field_columns, self.kinds, strict=True)):
            sql_type = SQL_TYPES.get(kind, "TEXT")
            cols.append(f"{q(col)} {sql_type}")
            con.execute("INSERT INTO _airtable_fields VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                table.table_id, f["id"], i, names[i], f.get("type"), col, sql_type,
                ENCODING.get(kind, "json" if kind not in SQL_TYPES else "text"), f.get("description"),
                V.dumps_json(f.get("options")) if f.get("options") is not None else None))
        con.execute(f"CREATE TABLE {q(sql_table)} ({', '.join(cols)})")
        self.insert = f"INSERT INTO {q(sql_table)} VALUES ({', '.join('?' * len(cols))})"
        self.links: list[tuple[int, str]] = []  # (field index, link insert sql)
        self.link_indexes: list[str] = []
        for i, f in enumerate(table.fields):
            if f.get("type") != "multipleRecordLinks":
                continue
            lt = self.link_names[(table.table_id, f["id"])]
            target_id = (f.get("options") or {}).get("linkedTableId")
            target = self.sql_names.get(target_id)
            ref = f" REFERENCES {q(target)}({q(table.columns[0])})" if target else ""
            con.execute(
                f"CREATE TABLE {q(lt)} (record_id TEXT NOT NULL REFERENCES {q(sql_table)}({q(self.id_col)}), "
                f"position INTEGER NOT NULL, linked_record_id TEXT NOT NULL{ref}, PRIMARY KEY (record_id, position))"
            )
            con.execute("INSERT INTO _airtable_links VALUES (?, ?, ?, ?, ?)",
                        (lt, table.table_id, f["id"], target_id, target))
            self.links.append((i, f"INSERT INTO {q(lt)} VALUES (?, ?, ?)"))
            # built after the rows are in: one sort instead of a b-tree insert per link
            self.link_indexes.append(f"CREATE INDEX {q(lt + '__linked')} ON {q(lt)} (linked_record_id)")
        self.sql_table = sql_table

    @staticmethod
    def encode(batch: Batch):
        """(rows of the table, rows of each link table in link-field order); in a worker process,
        those rows written to a part database instead, and (its path, row count) returned: binding
        parameters costs as much as SQLite's inserting, so workers do it for their chunks and the
        main process copies each part in with one ``INSERT ... SELECT``."""
        rows, links = _rows(batch)
        scratch = batch.spec.scratch
        if scratch is None or not stream.in_worker():
            return rows, links
        path = os.path.join(scratch, f"sqlite-{batch.spec.base_id}-{batch.spec.table_id}-{batch.index}.part")
        con = sqlite3.connect(path, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute("BEGIN")
            n = len(batch.spec.columns)
            con.execute(f"CREATE TABLE t ({', '.join(f'c{i}' for i in range(n))})")
            con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * n)})", rows)
            for k, link_rows in enumerate(links):
                con.execute(f"CREATE TABLE l{k} (record_id, position, linked_record_id)")
                con.executemany(f"INSERT INTO l{k} VALUES (?, ?, ?)", link_rows)
            con.execute("COMMIT")
        finally:
            con.close()
        return path, len(rows)

    def write(self, payload) -> None:
        if isinstance(payload[0], str):
            self._merge(*payload)
            return
        rows, links = payload
        self.count += len(rows)
        self.con.executemany(self.insert, rows)
        for (_i, sql), link_rows in zip(self.links, links, strict=True):
            if link_rows:
                self.con.executemany(sql, link_rows)

    def _merge(self, path: str, n: int) -> None:
        """Copy a worker's part database in (ATTACH cannot happen inside a transaction)."""
        con = self.con
        con.execute("COMMIT")
        con.execute("ATTACH DATABASE ? AS part", (path,))
        try:
            con.execute("BEGIN")
            con.execute(f"INSERT INTO {q(self.sql_table)} SELECT * FROM part.t")
            for k, (_i, sql) in enumerate(self.links):
                con.execute(sql.replace("VALUES (?, ?, ?)", f"SELECT * FROM part.l{k}"))
            con.execute("COMMIT")
        finally:
            con.execute("DETACH DATABASE part")
            con.execute("BEGIN")
        os.unlink(path)
        self.count += n

    def write_comments(self, comments: TableComments) -> None:
        """``<table>__comments``: a row per comment (snapstore_exporters.comments.COLUMNS), each with a foreign
        key to its record's row; its primary key (record_id, position) serves the join."""
        name = self.comment_names[self.table.table_id]
        con = self.con
        con.execute(
            f"CREATE TABLE {q(name)} (record_id TEXT NOT NULL REFERENCES {q(self.sql_table)}({q(self.id_col)}), "
            "comment_id TEXT NOT NULL, position INTEGER NOT NULL, author_id TEXT, author_email TEXT, author_name TEXT, "
            "text TEXT, created_time TEXT, last_updated_time TEXT, PRIMARY KEY (record_id, position))")
        con.executemany(f"INSERT INTO {q(name)} VALUES ({', '.join('?' * len(COMMENT_COLUMNS))})", comments.rows())
        con.execute("UPDATE _airtable_tables SET comments_sql_table = ?, comments = ? WHERE table_id = ?",
                    (name, comments.count, self.table.table_id))
        self.comment_tables.append((self.table.table_id, name))

    def close_table(self) -> None:
        for sql in self.link_indexes:
            self.con.execute(sql)
        self.con.execute("UPDATE _airtable_tables SET records = ? WHERE table_id = ?", (self.count, self.table.table_id))
        super().close_table()

    def close(self) -> None:
        self._close_base()

    def abort(self) -> None:
        if self.con is not None:
            try:
                self.con.close()
            finally:
                self.con = None
