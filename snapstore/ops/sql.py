"""``snapstore sql``: DuckDB over the store's snapshots, through the one Arrow reader.

What a query sees (docs/sql.md): a view per table of the chosen snapshot (``"Sales"."Deals"``, or
``Deals`` when no other base has a table of that name), typed as the Parquet export types it;
``at(snapshot, table)``, ``history(table)`` and ``changes(table, a, b)``; and the small relations
``snapshots``, ``tables``, ``fields``, ``comments``, ``attachments``.

Only what a query names is read. DuckDB's table macros cannot call back into Python, and a
replacement scan sees only Python variables, so before a statement runs its ``at(...)``,
``history(...)`` and ``changes(...)`` calls are rewritten into the names of relations registered for
them (a call is read once per session, however often a query names it), and DuckDB's own parser
then says which tables the statement names (``duckdb.get_table_names``): those, and only those,
are read and registered. A table is registered as a materialised Arrow table, not a stream: a
stream scanned twice (a self-join) is silently empty on its second scan (measured: ``SELECT
count(*) FROM r a JOIN r b`` gives 0 on a RecordBatchReader).

The store is never written: the session's DuckDB database is in memory, and once registration is
set up, ``enable_external_access`` is off and the configuration locked, so a query can neither
read nor write files (COPY, ATTACH, INSTALL, LOAD, read_csv are refused by DuckDB) nor turn that
back on. ``--attach FILE`` is attached before that, by the session itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from snapstore_exporters.comments import COLUMNS as COMMENT_COLUMNS
from snapstore_exporters.comments import TableComments
from snapstore_exporters.parquet_writer import COMMENTS_SCHEMA, _schema_of
from snapstore_exporters.stream import BaseMeta, TableMeta, TableSpec
from snapstore_exporters.values import column_names

from snapstore import arrowread
from snapstore.errors import SnapstoreError, StoreError, UsageError
from snapstore.selection import NoSuchName, SelectionError, find_id, resolve_snapshot, select, table_pairs
from snapstore.store import BlobReader, SnapshotInfo, Store
from snapstore.store.catalog import sql as catalog_sql
from snapstore.store.catalog.snapshots import attachment_rows
from snapstore.store.reader import LocatedChunk

log = logging.getLogger("snapstore.sql")

#: The relations every session has (registered when a query names them).
BUILTINS = ("snapshots", "tables", "fields", "comments", "attachments")
#: The calls rewritten into registered relations, and how many arguments each takes.
CALLS = {"at": (2, 2), "history": (1, 2), "changes": (3, 3)}
#: Version rows read per batch in history().
CHUNK = 4096
_TS = pa.timestamp("ms", tz="UTC")


class SqlError(SnapstoreError):
    """DuckDB refused or failed the query (one line, DuckDB's message; exit 1)."""


# ---- the query text ----------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+) | (?P<comment>--[^\n]*|/\*.*?\*/) | (?P<str>'(?:[^']|'')*') | (?P<qid>"(?:[^"]|"")*")
    | (?P<dollar>\$\$.*?\$\$) | (?P<word>[A-Za-z_][A-Za-z_0-9$]*) | (?P<num>\d+(?:\.\d*)?) | (?P<op>.)
""", re.S | re.X)


@dataclass
class Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def value(self) -> str:
        """A string literal's or a quoted identifier's text, unquoted; a word as written."""
        if self.kind == "str":
            return self.text[1:-1].replace("''", "'")
        if self.kind == "qid":
            return self.text[1:-1].replace('""', '"')
        return self.text


def tokens(sql: str) -> list[Token]:
    """The query's tokens but whitespace and comments (an unterminated quote is one last token)."""
    out = []
    for m in _TOKEN.finditer(sql):
        if m.lastgroup not in ("ws", "comment"):
            out.append(Token(m.lastgroup, m.group(), m.start(), m.end()))
    return out


@dataclass
class Call:
    name: str  # at, history, changes
    args: tuple[str, ...]
    start: int
    end: int


def find_calls(sql: str) -> list[Call]:
    """The ``at(...)``, ``history(...)`` and ``changes(...)`` calls of a query, each argument a
    string literal, a quoted identifier, a word or a number."""
    toks = tokens(sql)
    out = []
    i = 0
    while i < len(toks):
        t = toks[i]
        name = t.text.lower()
        if (t.kind == "word" and name in CALLS and i + 1 < len(toks) and toks[i + 1].text == "("
                and not (i and toks[i - 1].text == ".")):
            args, j = [], i + 2
            while j < len(toks) and toks[j].text != ")":
                if toks[j].text != ",":
                    if toks[j].kind not in ("str", "qid", "word", "num"):
                        raise UsageError(f"{name}(...): arguments are names in quotes, e.g. "
                                         f"{name}({', '.join(repr(a) for a in _EXAMPLE[name])})")
                    args.append(toks[j].value)
                j += 1
            lo, hi = CALLS[name]
            if j >= len(toks) or not lo <= len(args) <= hi:
                raise UsageError(f"{name}() takes {lo if lo == hi else f'{lo} or {hi}'} argument(s): e.g. "
                                 f"{name}({', '.join(repr(a) for a in _EXAMPLE[name])})")
            out.append(Call(name, tuple(args), t.start, toks[j].end))
            i = j + 1
            continue
        i += 1
    return out


_EXAMPLE = {"at": ("2026-11-01", "Deals"), "history": ("Deals",), "changes": ("Deals", "latest~1", "latest")}


def split_name(text: str) -> list[str]:
    """A table reference as DuckDB's parser prints it (``"Sales Team"."Deals" AS d``) as its parts."""
    parts = []
    for t in tokens(text):
        if t.kind == "word" and t.text.upper() == "AS":
            break
        if t.text != ".":
            parts.append(t.value)
    return parts


def referenced(sql: str) -> list[list[str]]:
    """The tables a statement names, each as its parts (``["Sales", "Deals"]``): DuckDB's parser says
    which (CTE names and column names are not tables), when it can parse the statement before its
    tables exist; otherwise every dotted name in it (a name that is not a table costs nothing)."""
    try:
        return [split_name(text) for text in sorted(duckdb.get_table_names(sql, qualified=True))]
    except duckdb.Error:
        pass
    out, chain = [], []
    for t in tokens(sql):
        if t.kind in ("word", "qid") and (not chain or chain[-1] == "."):
            chain.append(t)
        elif t.text == "." and chain and chain[-1] != ".":
            chain.append(".")
        else:
            if chain:
                out.append([x.value for x in chain if x != "."])
            chain = [t] if t.kind in ("word", "qid") else []
    if chain:
        out.append([x.value for x in chain if x != "."])
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ---- the session -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """A table of the chosen snapshot, as views name it (``"base"."name"``)."""

    base: str
    name: str
    base_id: str
    table_id: str


@dataclass
class Session:
    """One DuckDB connection over one store; tables are read when a statement first names them.

    ``snapshot``: what the plain table names mean (default ``latest``); ``bases``: only these bases'
    tables get views (and ``latest``/dates count among the snapshots holding them)."""

    store: Store
    snapshot: str = "latest"
    bases: Sequence[str] | None = None
    attach: str | None = None
    con: duckdb.DuckDBPyConnection = field(init=False)
    snap: SnapshotInfo = field(init=False)

    def __post_init__(self) -> None:
        self.snaps = self.store.list_snapshots()
        if not self.snaps:
            raise UsageError("the store has no snapshots yet: take one with `snapstore snapshot`")
        self.snap = self.resolve(self.snapshot)
        self.base_ids = select(self.bases, [(b.base_id, b.name) for b in self.snap.bases], "base",
                               f"in snapshot {self.snap.id}")
        self.by_seq = {s.seq: s for s in self.snaps}
        self.reader = BlobReader(self.store)
        self._schemas: dict[str, dict] = {}  # schema hash -> schema
        self._relations: dict[tuple, str] = {}  # what was registered -> its relation name
        self._calls = 0
        self._viewed: set[str] = set()  # ids of the tables that have their views
        self.tables = [_Table(b.name, t.name, b.base_id, t.table_id) for b in self.snap.bases
                       if self.base_ids is None or b.base_id in self.base_ids for t in b.tables]
        self.con = duckdb.connect(":memory:", config={"threads": 2})
        if self.attach:
            self.con.execute(f"ATTACH {_literal(self.attach)} AS out")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    # -- names ----------------------------------------------------------------------------------

    def resolve(self, name: str) -> SnapshotInfo:
        """A snapshot by the one grammar of snapshot names; an unknown one is a usage error that
        names the newest snapshots."""
        try:
            return resolve_snapshot(self.store, name, self.bases)
        except UsageError:
            raise
        except StoreError as e:
            shown = ", ".join(f"{s.id} ({s.time:%Y-%m-%d %H:%M})" for s in self.snaps[:8])
            more = f", … ({len(self.snaps) - 8} more)" if len(self.snaps) > 8 else ""
            raise UsageError(f"{e} (snapshots: {shown}{more}; or latest, latest~N, a date)") from e

    def _table_items(self, snaps: Iterable[SnapshotInfo]) -> list[tuple[str, str, str, str]]:
        return [(b.base_id, b.name, t.table_id, t.name) for s in snaps for b in s.bases
                if self.base_ids is None or b.base_id in self.base_ids for t in b.tables]

    def _pick_table(self, spec: str, snaps: list[SnapshotInfo], where: str) -> tuple[str, str]:
        pairs = table_pairs(spec, self._table_items(snaps), where)
        return next(iter(pairs))

    def listing(self) -> str:
        names = [f"{_quote(t.base)}.{_quote(t.name)}" for t in self.tables]
        shown = ", ".join(names[:20]) + (f", … ({len(names) - 20} more)" if len(names) > 20 else "")
        return f"tables of snapshot {self.snap.id}: {shown or 'none'}; and {', '.join(BUILTINS)}"

    # -- statements -----------------------------------------------------------------------------

    def prepare(self, sql: str) -> str:
        """The statement with its calls rewritten and everything it names registered."""
        calls = find_calls(sql)
        out = []
        last = 0
        for c in calls:
            out.append(sql[last:c.start])
            out.append(self._register_call(c))
            last = c.end
        out.append(sql[last:])
        sql = "".join(out)
        for parts in referenced(sql):
            self._register_name(parts)
        return sql

    def execute(self, sql: str) -> duckdb.DuckDBPyConnection:
        """Run one query (or several; the last one's result is returned)."""
        prepared = self.prepare(sql)
        try:
            return self.con.execute(prepared)
        except duckdb.CatalogException as e:
            m = re.search(r"Table with name (.+?) does not exist", str(e))
            if m:
                raise UsageError(f"no table {m.group(1)}: {self.listing()}") from e
            raise SqlError(one_line(e)) from e
        except duckdb.Error as e:
            raise SqlError(one_line(e)) from e

    def arrow(self, sql: str) -> pa.Table:
        return self.execute(sql).to_arrow_table()

    # -- registration ---------------------------------------------------------------------------

    def _exists(self, parts: list[str]) -> bool:
        schema, name = (parts[-2], parts[-1]) if len(parts) >= 2 else (None, parts[-1])
        q = ("SELECT count(*) FROM (SELECT schema_name, table_name AS n FROM duckdb_tables() UNION ALL "
             "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal) WHERE lower(n) = lower($n)")
        q += " AND lower(schema_name) = lower($s)" if schema else " AND schema_name IN ('main', 'temp')"
        args = {"n": name} | ({"s": schema} if schema else {})
        return bool(self.con.execute(q, args).fetchone()[0])

    def _register_name(self, parts: list[str]) -> None:
        if not parts or len(parts) > 3 or self._exists(parts):
            return
        if len(parts) == 1 and parts[0].lower() in BUILTINS:
            self._register_builtin(parts[0].lower())
            return
        try:
            found = self._find_table(parts[-2:])
        except SelectionError:  # a name two bases' tables share: only "base"."table" names one
            return
        if found is not None:
            self._register_view(found)

    def _find_table(self, parts: list[str]) -> _Table | None:
        if len(parts) == 2:
            base_id = find_id(parts[0], [(t.base_id, t.base) for t in self.tables], "base", f"in snapshot {self.snap.id}")
            tables = [t for t in self.tables if t.base_id == base_id]
        else:
            tables = self.tables
        if not tables:
            return None
        tid = find_id(parts[-1], [(t.table_id, t.name) for t in tables], "table", f"in snapshot {self.snap.id}",
                      labels={t.table_id: f"{t.base} / {t.name}" for t in tables})
        return next((t for t in tables if t.table_id == tid), None)

    def _register_view(self, t: _Table) -> None:
        if t.table_id in self._viewed:
            return
        rel = self.table_at(self.snap, t.base_id, t.table_id)
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(t.base)}")
        self.con.execute(f"CREATE OR REPLACE VIEW {_quote(t.base)}.{_quote(t.name)} AS SELECT * FROM {rel}")
        same = [x for x in self.tables if x.name.lower() == t.name.lower()]
        if len(same) == 1 and t.name.lower() not in BUILTINS:
            self.con.execute(f"CREATE OR REPLACE VIEW main.{_quote(t.name)} AS SELECT * FROM {rel}")
        self._viewed.add(t.table_id)

    def _register(self, key: tuple, prefix: str, build) -> str:
        rel = self._relations.get(key)
        if rel is None:
            self._calls += 1
            rel = f"__{prefix}_{self._calls}"
            # copied into a DuckDB table as the batches are read: the Arrow batches are let go as
            # they are copied, and DuckDB scans its own tables faster and in parallel (a filtered
            # count over 100,000 registered Arrow records took 0.48 s, 6.6x DuckDB on Parquet)
            src = rel + "_arrow"
            self.con.register(src, build())
            try:
                self.con.execute(f"CREATE TEMP TABLE {_quote(rel)} AS SELECT * FROM {_quote(src)}")
            finally:
                self.con.unregister(src)
            self._relations[key] = rel
        return _quote(rel)

    def _register_call(self, c: Call) -> str:
        if c.name == "at":
            snap = self.resolve(c.args[0])
            base_id, table_id = self._pick_table(c.args[1], [snap], f"in snapshot {snap.id}")
            return self.table_at(snap, base_id, table_id)
        if c.name == "history":
            base_id, table_id = self._pick_table(c.args[0], self.snaps, "in this store")
            rid = c.args[1] if len(c.args) > 1 else None
            return self._register(("history", base_id, table_id, rid), "history",
                                  lambda: self.history(base_id, table_id, rid))
        sa, sb = self.resolve(c.args[1]), self.resolve(c.args[2])
        base_id, table_id = self._pick_table(c.args[0], [sb, sa], f"in snapshots {sa.id} or {sb.id}")
        data = self._register(("changes", base_id, table_id, sa.seq, sb.seq), "changes",
                              lambda: self.changes(base_id, table_id, sa, sb))
        view = _quote(data.strip('"') + "_json")
        # old and new are JSON text: a view gives them DuckDB's JSON type (an Arrow table cannot)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS "
                         f"SELECT * REPLACE (old::JSON AS old, new::JSON AS new) FROM {data}")
        return view

    def _register_builtin(self, name: str) -> None:
        self.con.register(name, getattr(self, f"rel_{name}")())

    # -- what is read ---------------------------------------------------------------------------

    def table_at(self, snap: SnapshotInfo, base_id: str, table_id: str) -> str:
        """The relation holding a snapshot's table (read once per session)."""
        def build() -> pa.RecordBatchReader:
            meta = arrowread.table_meta(self.store, snap, base_id, table_id)
            schema = _schema_of(arrowread.spec_of(meta, snap))
            return pa.RecordBatchReader.from_batches(
                schema, arrowread.table_batches(self.store, snap, meta, reader=self.reader))
        return self._register(("at", snap.seq, base_id, table_id), "t", build)

    def schema_of(self, snap: SnapshotInfo, base_id: str) -> dict:
        h = next(b.schema_hash for b in snap.bases if b.base_id == base_id)
        if h not in self._schemas:
            self._schemas[h] = self.store.schemas(snap, [base_id])[base_id]
        return self._schemas[h]

    def history_table(self, base_id: str, table_id: str) -> tuple[TableMeta, list[SnapshotInfo]]:
        """The table as history shows it: every field any snapshot's schema had, keyed by field id,
        named and typed by the newest schema holding it, newest schema's order first."""
        holding = [s for s in self.snaps if s.table(base_id, table_id) is not None]
        fields: dict[str, dict] = {}
        newest_ts: dict | None = None
        for s in holding:  # newest first
            ts = next((x for x in self.schema_of(s, base_id).get("tables", []) if x.get("id") == table_id), None)
            if ts is None:
                continue
            newest_ts = newest_ts or ts
            for f in ts.get("fields") or []:
                fields.setdefault(f["id"], f)
        newest = holding[0]
        b = next(x for x in newest.bases if x.base_id == base_id)
        bm = BaseMeta(base_id, b.name, b.name, {})
        flist = list(fields.values())
        name = newest.table(base_id, table_id).name
        tm = TableMeta(base=bm, table_id=table_id, name=name, stem=name, schema=newest_ts or {}, fields=flist,
                       columns=column_names(flist), info=None)
        return tm, holding

    def history(self, base_id: str, table_id: str, record_id: str | None = None) -> pa.RecordBatchReader:
        """Every version of every record of the table (or of ``record_id`` only), each read once,
        with the snapshots it spans."""
        tm, _holding = self.history_table(base_id, table_id)
        spec = TableSpec.of(tm, "history")
        latest = max(self.by_seq)
        versions = catalog_sql.table_versions(self.store.catalog, base_id, table_id, latest, record_id)
        schema = _schema_of(spec)
        extra = [pa.field("_valid_from", _TS), pa.field("_valid_to", _TS), pa.field("_from_snapshot", pa.string()),
                 pa.field("_to_snapshot", pa.string()), pa.field("_last_snapshot", pa.string()),
                 pa.field("_change", pa.string()), pa.field("_ended", pa.string())]
        out_schema = pa.schema(list(schema) + extra, metadata=schema.metadata)
        times = {q: s.time for q, s in self.by_seq.items()}
        ids = {q: s.id for q, s in self.by_seq.items()}
        pieces = versions.to_batches(max_chunksize=CHUNK) if versions.num_columns else []
        return pa.RecordBatchReader.from_batches(out_schema, self._versions(spec, pieces, out_schema, times, ids))

    def _versions(self, spec: TableSpec, pieces, out_schema: pa.Schema, times: dict, ids: dict):
        for k, piece in enumerate(pieces):
            cols = piece.to_pydict()
            chunk = LocatedChunk(k, cols["hash"], cols["pack"], cols["off"], cols["clen"], cols["rlen"],
                                 cols["dict_hash"], cols["ioff"])
            typed = arrowread.typed_batch(spec, self.reader.read_chunk(chunk))
            first, after, last = cols["first_seq"], cols["after_seq"], cols["last_seq"]
            arrays = list(typed.batch.columns) + [
                pa.array([times[q] for q in first], _TS), pa.array([times.get(q) for q in after], _TS),
                pa.array([ids[q] for q in first]), pa.array([ids.get(q) for q in after], pa.string()),
                pa.array([ids[q] for q in last]), piece.column(piece.schema.get_field_index("began")),
                piece.column(piece.schema.get_field_index("ended")),
            ]
            yield pa.RecordBatch.from_arrays(arrays, schema=out_schema)

    def changes(self, base_id: str, table_id: str, sa: SnapshotInfo, sb: SnapshotInfo) -> pa.Table:
        """One row per changed cell (and one per added or removed record) between two snapshots:
        exactly what ``snapstore diff --fields`` reports, from the same function."""
        from snapstore.ops.diff import diff_snapshots

        d = diff_snapshots(self.store, sa, sb, tables=[table_id], fields=True)
        rows: dict[str, list] = {k: [] for k in ("_id", "_change", "field_id", "field", "old_field", "type",
                                                 "old", "new")}

        def add(rid, change, fid=None, name=None, old_name=None, typ=None, old=None, new=None):
            for k, v in zip(rows, (rid, change, fid, name, old_name, typ, _json(old), _json(new)), strict=True):
                rows[k].append(v)

        for td in d.tables:
            if td.base_id != base_id or td.table_id != table_id:
                continue
            for rc in td.added:
                add(rc.record_id, "added")
            for rc in td.removed:
                add(rc.record_id, "removed")
            for rc in td.changed:
                for fc in rc.fields or []:
                    add(rc.record_id, "changed", fc.field_id, fc.name, fc.old_name, fc.type, fc.old, fc.new)
        return pa.table(rows, schema=pa.schema([(k, pa.string()) for k in rows]))

    # -- the small relations --------------------------------------------------------------------

    def rel_snapshots(self) -> pa.Table:
        s = self.snaps
        return pa.table({
            "id": [x.id for x in s], "full_id": [x.full_id for x in s], "time": pa.array([x.time for x in s], _TS),
            "parent": [x.parent[:8] if x.parent else None for x in s], "status": [x.status for x in s],
            "records": pa.array([x.records for x in s], pa.int64()),
            **{k: pa.array([sum(getattr(t, k) for b in x.bases for t in b.tables) for x in s], pa.int64())
               for k in ("new", "changed", "deleted")},
            "tags": pa.array([x.tags for x in s], pa.list_(pa.string())), "note": [x.note for x in s],
            "seq": pa.array([x.seq for x in s], pa.int64()),
        })

    def rel_tables(self) -> pa.Table:
        rows = [(s.id, s.time, b.base_id, b.name, t.table_id, t.name, t.records, t.new, t.changed, t.deleted)
                for s in self.snaps for b in s.bases for t in b.tables]
        names = ["snapshot", "time", "base_id", "base", "table_id", "table", "records", "new", "changed", "deleted"]
        types = [pa.string(), _TS, pa.string(), pa.string(), pa.string(), pa.string()] + [pa.int64()] * 4
        return _from_rows(rows, names, types)

    def rel_fields(self) -> pa.Table:
        rows = []
        for s in self.snaps:
            for b in s.bases:
                for ts in self.schema_of(s, b.base_id).get("tables", []):
                    for pos, f in enumerate(ts.get("fields") or []):
                        rows.append((s.id, s.time, b.base_id, b.name, ts.get("id"), ts.get("name"), f.get("id"),
                                     f.get("name"), f.get("type"), f.get("description"), pos,
                                     f.get("id") == ts.get("primaryFieldId"), _json(f.get("options"))))
        names = ["snapshot", "time", "base_id", "base", "table_id", "table", "field_id", "field", "type",
                 "description", "position", "primary", "options"]
        types = [pa.string(), _TS] + [pa.string()] * 8 + [pa.int64(), pa.bool_(), pa.string()]
        return _from_rows(rows, names, types)

    def rel_comments(self) -> pa.Table:
        keys = [(t.base_id, t.table_id) for t in self.tables]
        cols: dict[str, list] = {"base": [], "table": [], **{c: [] for c in COMMENT_COLUMNS}}
        for t, by_record in zip(self.tables, self.store.table_comments(self.snap, keys), strict=True):
            if not by_record:
                continue
            tc = TableComments(None, by_record).columns
            n = len(tc["record_id"])
            cols["base"] += [t.base] * n
            cols["table"] += [t.name] * n
            for c in COMMENT_COLUMNS:
                cols[c] += tc[c]
        schema = pa.schema([pa.field("base", pa.string()), pa.field("table", pa.string()),
                            *[pa.field(f.name, pa.string() if f.type == _TS else f.type) for f in COMMENTS_SCHEMA]])
        out = pa.table(cols, schema=schema)
        for name in ("created_time", "last_updated_time"):
            i = out.schema.get_field_index(name)
            out = out.set_column(i, name, out.column(name).cast(_TS))
        return out

    def rel_attachments(self) -> pa.Table:
        rows = [(r[0], r[4], r[2], r[3], r[1].hex() if r[1] else None, bool(r[10]))
                for r in attachment_rows(self.store.catalog)]
        return _from_rows(rows, ["att_id", "filename", "size", "mime", "content_hash", "stored"],
                          [pa.string(), pa.string(), pa.int64(), pa.string(), pa.string(), pa.bool_()])

    # -- --attach -------------------------------------------------------------------------------

    def materialise(self, names: Sequence[str] = (), history: Sequence[str] = ()) -> list[str]:
        """Copy tables of the chosen snapshot (all when ``names`` is empty) and the history of
        ``history`` tables into the attached database, as ``"<base>.<table>"`` tables (and
        ``"<table> history"``); returns what was written."""
        if not self.attach:
            raise UsageError("materialise needs --attach FILE")
        chosen = [self._find_table(split_name(n) if "." in n else [n]) for n in names] if names else self.tables
        written = []
        for t in chosen:
            if t is None:
                continue
            self._register_view(t)
            target = f"out.{_quote(t.base + '.' + t.name)}"
            self.con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {_quote(t.base)}.{_quote(t.name)}")
            written.append(t.base + "." + t.name)
        for h in history:
            rel = self._register_call(Call("history", (h,), 0, 0))
            base_id, table_id = self._pick_table(h, self.snaps, "in this store")
            info = next(t for s in self.snaps for b in s.bases if b.base_id == base_id for t in b.tables
                        if t.table_id == table_id)
            target = f"out.{_quote(info.name + ' history')}"
            self.con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {rel}")
            written.append(info.name + " history")
        return written

    def close(self) -> None:
        self.con.close()


def _from_rows(rows: list[tuple], names: list[str], types: list[pa.DataType]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    return pa.table([pa.array(list(c), t) for c, t in zip(cols, types, strict=True)],
                    schema=pa.schema(list(zip(names, types, strict=True))))


def _json(v: Any) -> str | None:
    return None if v is None else orjson.dumps(v).decode()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def one_line(e: BaseException) -> str:
    """DuckDB's message on one line (its hints and carets dropped)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def run(store: Store, query: str, *, snapshot: str = "latest", bases: Sequence[str] | None = None) -> pa.Table:
    """One query's answer as an Arrow table (the library's entry point; the CLI streams instead)."""
    s = Session(store, snapshot, bases)
    try:
        return s.arrow(query)
    finally:
        s.close()


__all__ = ["BUILTINS", "NoSuchName", "Session", "SqlError", "find_calls", "one_line", "run", "split_name", "tokens"]
