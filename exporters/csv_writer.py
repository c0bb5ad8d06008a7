"""CSV: one file per table, a row per record, a column per field in schema order.

Columns are ``_id`` (record id), ``_createdTime``, then every field of the snapshot's schema (empty cells for empty
fields, never missing columns). Nested values are flattened by :func:`exporters.values.csv_cell` (rules
in the README). UTF-8 with a byte-order mark (Excel reads it as UTF-8), RFC 4180 quoting, CRLF rows.
The formula-injection guard (on by default) prefixes ``'`` to any text cell, and any header, that starts
with ``=``, ``+``, ``-``, ``@``, tab or carriage return; number cells are never prefixed.
"""

from __future__ import annotations

import csv
import re

from exporters import values as V
from exporters.base import BUFFER, BatchWriter
from exporters.stream import TableMeta

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
    return [_general(v, guard) for v in raw]


class CsvWriter(BatchWriter):
    format = "csv"
    ext = ".csv"
    batch = 5000

    def open_table(self, table: TableMeta) -> None:
        super().open_table(table)
        self.f = open(self.table_path(table), "x", encoding="utf-8-sig", newline="", buffering=BUFFER)
        self.w = csv.writer(self.f, lineterminator="\r\n")
        self.guard = self.ctx.csv_guard
        self.kinds = [V.column_kind(f) for f in table.fields]
        header = list(table.columns)
        self.w.writerow([V.guard_formula(h) for h in header] if self.guard else header)

    def flush(self, records: list[dict]) -> None:
        ids, created, fields = self.columns_of(records)
        cols = [ids, [c or "" for c in created]]
        cols += [csv_column(self.kinds[i], raw, self.guard) for i, _name, raw in fields]
        self.w.writerows(zip(*cols, strict=True))

    def close_table(self) -> None:
        super().close_table()
        self.f.close()

    def abort(self) -> None:
        f = getattr(self, "f", None)
        if f is not None and not f.closed:
            f.close()
