"""JSON: one file per table, a JSON array of records in Airtable's shape (``id``, ``createdTime``,
``fields`` by name), one record per line so the file streams in and out."""

from __future__ import annotations

import orjson

from exporters.base import StreamWriter
from exporters.stream import TableMeta


class JsonWriter(StreamWriter):
    format = "json"
    ext = ".json"

    def open_table(self, table: TableMeta) -> None:
        super().open_table(table)
        self.f.write(b"[")
        self._sep = b"\n"

    def write(self, record: dict) -> None:
        self.f.write(self._sep + orjson.dumps(record))
        self._sep = b",\n"

    def close_table(self) -> None:
        if self.f is not None:
            self.f.write(b"\n]\n" if self._sep != b"\n" else b"]\n")
        super().close_table()
