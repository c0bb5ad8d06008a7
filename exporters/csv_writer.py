"""CSV: one file per table, a row per record, a column per field in schema order.

Columns are ``_id`` (record id), ``_createdTime``, then every field of the snapshot's schema (empty cells for empty
fields, never missing columns). Nested values are flattened by :func:`exporters.values.csv_cell` (rules
in the README). UTF-8 with a byte-order mark (Excel reads it as UTF-8), RFC 4180 quoting, CRLF rows.
The formula-injection guard (on by default) prefixes ``'`` to any text cell, and any header, that starts
with ``=``, ``+``, ``-``, ``@``, tab or carriage return; number cells are never prefixed.
"""

from __future__ import annotations

import re

from exporters import values as V
from exporters.base import Writer
from exporters.stream import Batch, TableMeta

_GUARD = frozenset(V.FORMULA_START)


def _general(v, guard: bool) -> str:
    if v is None:
        return ""
    text, is_number = V.csv_cell(v)
    return "'" + text if guard and not is_number and text[:1] in _GUARD else text


_PLAIN_ITEM = re.compile(r'[^\s",](?:[^",]*[^\s",])?').fullmatch


def _str_list(v, guard: bool) -> str:
    """A list of strings (selects, links) joined per the rules; anything else via the general path."""
    if type(v) is not list:
        return _general(v, guard)
    try:
        text = V.LIST_SEP.join([x if _PLAIN_ITEM(x) else V.dumps_json(x) for x in v])
    except TypeError:  # not all strings
        return _general(v, guard)
    return "'" + text if guard and text[:1] in _GUARD else text


def _collaborator(v, guard: bool) -> str:
    if type(v) is dict and V.is_collaborator(v):
        text = V.collaborator_text(v)
        return "'" + text if guard and text[:1] in _GUARD else text
    return _general(v, guard)


def csv_column(kind: str, raw: list, guard: bool) -> list[str]:
    """One column's cells; fast paths for plain text and numbers, :func:`values.csv_cell` otherwise."""
    if kind == V.TEXT:
        if guard:
            return [("'" + v if v[:1] in _GUARD else v) if type(v) is str else _general(v, guard) for v in raw]
        return [v if type(v) is str else _general(v, guard) for v in raw]
    if kind in (V.FLOAT, V.INT):
        return [str(v) if type(v) in (int, float) else _general(v, guard) for v in raw]
    if kind in (V.DATE, V.DATETIME):
        return [v if type(v) is str and v[:1] not in _GUARD else _general(v, guard) for v in raw]
    if kind == V.STR_LIST:
        return ["" if v is None else _str_list(v, guard) for v in raw]
    if kind == V.COLLABORATOR:
        return ["" if v is None else _collaborator(v, guard) for v in raw]
    if kind == V.BOOL:
        return ["" if v is None else "true" if v is True else _general(v, guard) for v in raw]
    return ["" if v is None else _any(v, guard) for v in raw]


def _any(v, guard: bool) -> str:
    """A cell of a column whose values can take any shape (formula, rollup, lookup...)."""
    t = type(v)
    if t is str:
        return "'" + v if guard and v[:1] in _GUARD else v
    if t is int or t is float:
        return str(v)
    if t is list:
        return _str_list(v, guard)
    return _general(v, guard)


_NEEDS_QUOTES = re.compile(r'[",\r\n]').search


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


class CsvWriter(Writer):
    format = "csv"
    ext = ".csv"

    @staticmethod
    def encode(batch: Batch) -> bytes:
        spec = batch.spec
        guard = spec.csv_guard
        cols = [batch.ids, [c or "" for c in batch.created]]  # record ids and times never need quotes
        cols += [quoted(csv_column(kind, raw, guard)) for kind, raw in zip(spec.kinds, batch.columns(), strict=True)]
        return csv_rows(cols).encode("utf-8")

    def open_table(self, table: TableMeta) -> None:
        super().open_table(table)
        self.f = self.open_binary(self.table_path(table))
        header = [V.guard_formula(h) for h in table.columns] if self.ctx.csv_guard else list(table.columns)
        self.f.write(("\ufeff" + csv_rows([[h] for h in quoted(header)])).encode("utf-8"))

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
