"""CSV: one file per table, a row per record, a column per field in schema order.

Columns are ``_id`` (record id), ``_createdTime``, then every field of the snapshot's schema (empty cells for empty
fields, never missing columns). Nested values are flattened by :func:`snapstore_exporters.values.csv_cell` (rules
in the README). UTF-8 with a byte-order mark (Excel reads it as UTF-8), RFC 4180 quoting, CRLF rows.
The formula-injection guard (on by default) prefixes ``'`` to any text cell, and any header, that starts
with ``=``, ``+``, ``-``, ``@``, tab or carriage return; number cells are never prefixed.
"""

from __future__ import annotations

import re

from snapstore_exporters import values as V
from snapstore_exporters.base import Writer
from snapstore_exporters.comments import COLUMNS as COMMENT_COLUMNS
from snapstore_exporters.comments import TableComments
from snapstore_exporters.stream import Batch, TableMeta

_GUARD = frozenset(V.FORMULA_START)
_NEEDS_QUOTES = re.compile(r'[",\r\n]').search


def _general(v, guard: bool) -> str:
    if v is None:
        return ""
    text, is_number = V.csv_cell(v)
    return "'" + text if guard and not is_number and text[:1] in _GUARD else text


_ITEM = r'[^\s",](?:[^",]*[^\s",])?'
_PLAIN_ITEM = re.compile(_ITEM).fullmatch
#: A joined list whose every item is plain (no comma, quote or edge space; not empty): one regex call
#: per cell instead of one per item.
_PLAIN_LIST = re.compile(f"{_ITEM}(?:, {_ITEM})*").fullmatch


def _str_list(v, guard: bool) -> str:
    """A list of strings (selects, links) joined per the rules, quoted when it needs to be;
    anything else via the general path."""
    if type(v) is not list:
        return _quoted_general(v, guard)
    if not v:
        return ""
    try:
        text = V.LIST_SEP.join(v)
    except TypeError:  # not all strings
        return _quoted_general(v, guard)
    if _PLAIN_LIST(text) and text.count(",") == len(v) - 1:  # every item plain: no quote in the text,
        # and a comma only between items (so only when there are two or more)
        if guard and text[:1] in _GUARD:
            text = "'" + text
        return '"' + text + '"' if len(v) > 1 or "\n" in text or "\r" in text else text
    text = V.LIST_SEP.join([x if _PLAIN_ITEM(x) else V.dumps_json(x) for x in v])
    return _quote("'" + text if guard and text[:1] in _GUARD else text)


def _collaborator(v, guard: bool) -> str:
    if type(v) is dict and V.is_collaborator(v):
        text = V.collaborator_text(v)
        return _quote("'" + text if guard and text[:1] in _GUARD else text)
    return _quoted_general(v, guard)


def _any(v, guard: bool) -> str:
    """A cell of a column whose values can take any shape (formula, rollup, lookup...), quoted."""
    t = type(v)
    if t is str:
        return _quote("'" + v if guard and v[:1] in _GUARD else v)
    if t is int or t is float:
        return str(v)
    if t is list:
        return _str_list(v, guard)
    return _quoted_general(v, guard)


def _quoted_general(v, guard: bool) -> str:
    return _quote(_general(v, guard))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES(text) else text


#: Kinds whose column is checked for quoting as a whole (plain text cells, fast when none needs it);
#: every other kind's cells come out of csv_column already quoted.
_CHECKED = frozenset({V.TEXT, V.DATE, V.DATETIME})


def csv_column(kind: str, raw: list, guard: bool) -> list[str]:
    """One column's cells (quoted, but for _CHECKED kinds); fast paths for plain text, numbers and
    lists of strings, :func:`values.csv_cell` otherwise."""
    if kind == V.TEXT:
        if guard:
            return [("'" + v if v[:1] in _GUARD else v) if type(v) is str else _general(v, guard) for v in raw]
        return [v if type(v) is str else _general(v, guard) for v in raw]
    if kind in (V.FLOAT, V.INT):
        return ["" if v is None else str(v) if type(v) in (int, float) else _quoted_general(v, guard) for v in raw]
    if kind in (V.DATE, V.DATETIME):
        return [v if type(v) is str and v[:1] not in _GUARD else _general(v, guard) for v in raw]
    if kind == V.STR_LIST:
        return ["" if v is None else _str_list(v, guard) for v in raw]
    if kind == V.COLLABORATOR:
        return ["" if v is None else _collaborator(v, guard) for v in raw]
    if kind == V.BOOL:
        return ["" if v is None else "true" if v is True else _quoted_general(v, guard) for v in raw]
    return ["" if v is None else _any(v, guard) for v in raw]


def quoted(cells: list[str]) -> list[str]:
    """RFC 4180 minimal quoting: a cell with a comma, a double quote or a line break is quoted."""
    if not _NEEDS_QUOTES("".join(cells)):  # one C-speed scan settles most columns
        return cells
    return [('"' + c.replace('"', '""') + '"') if _NEEDS_QUOTES(c) else c for c in cells]


def csv_rows(columns: list[list[str]]) -> str:
    """Rows of already quoted cells, CRLF after each."""
    if not columns or not columns[0]:
        return ""
    return "\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n"


def csv_chunk(plain: list[list[str]], kinds, raws, guard: bool) -> bytes:
    """Rows of ``plain`` columns (already CSV text, never quoted) followed by a column per kind."""
    cols = list(plain)
    for kind, raw in zip(kinds, raws, strict=True):
        col = csv_column(kind, raw, guard)
        cols.append(quoted(col) if kind in _CHECKED else col)
    return csv_rows(cols).encode("utf-8")


#: How each comments column is written (ids and the author as text, the guard applies to them too).
COMMENT_KINDS = (V.TEXT, V.TEXT, V.INT, V.TEXT, V.TEXT, V.TEXT, V.TEXT, V.DATETIME, V.DATETIME)


class CsvWriter(Writer):
    format = "csv"
    ext = ".csv"

    @staticmethod
    def encode(batch: Batch) -> bytes:
        spec = batch.spec
        cols = [batch.ids, [c or "" for c in batch.created]]  # record ids and times never need quotes
        return csv_chunk(cols, spec.kinds, batch.columns(), spec.csv_guard)

    def header(self, columns) -> bytes:
        """The byte-order mark and the header row (formula-guarded like the cells)."""
        header = [V.guard_formula(h) for h in columns] if self.ctx.csv_guard else list(columns)
        return ("\ufeff" + csv_rows([[h] for h in quoted(header)])).encode("utf-8")

    def open_table(self, table: TableMeta) -> None:
        super().open_table(table)
        self.f = self.open_binary(self.table_path(table))
        self.f.write(self.header(table.columns))

    def write_comments(self, comments: TableComments) -> None:
        """A row per comment, :data:`snapstore_exporters.comments.COLUMNS`; cells follow the records' rules."""
        f = self.open_binary(self.comments_path(comments.table))
        try:
            f.write(self.header(COMMENT_COLUMNS))
            f.write(csv_chunk([], COMMENT_KINDS, list(comments.columns.values()), self.ctx.csv_guard))
        finally:
            f.close()

    def write(self, payload: bytes) -> None:
        self.f.write(payload)

    def close_table(self) -> None:
        self.f.close()
        self.f = None
        super().close_table()

    def abort(self) -> None:
        f = getattr(self, "f", None)
        if f is not None and not f.closed:
            f.close()
