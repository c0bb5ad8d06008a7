"""JSON: one file per table, a JSON array of records in Airtable's shape (``id``, ``createdTime``,
``fields`` by name), one record per line so the file streams in and out."""

from __future__ import annotations

import orjson
from snapstore_exporters.base import StreamWriter
from snapstore_exporters.stream import TableMeta


class JsonWriter(StreamWriter):
    format = "json"
    ext = ".json"

    @staticmethod
    def encode_dicts(items: list[dict]) -> bytes:
        dumps = orjson.dumps
        return b",\n".join([dumps(r) for r in items])

    def prefix(self, table: TableMeta) -> bytes:
        return b"["

    def write(self, payload: bytes) -> None:
        if payload and not self.chunks:
            self.f.write(b"\n")
        super().write(payload)

    def separator(self) -> bytes:
        return b",\n"

    def suffix(self) -> bytes:
        return b"\n]\n" if self.chunks else b"]\n"
