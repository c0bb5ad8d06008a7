"""NDJSON: one file per table, one record (Airtable's shape) per line."""

from __future__ import annotations

import orjson

from exporters.base import StreamWriter

_OPT = orjson.OPT_APPEND_NEWLINE


class NdjsonWriter(StreamWriter):
    format = "ndjson"
    ext = ".ndjson"

    def write(self, record: dict) -> None:
        self.f.write(orjson.dumps(record, option=_OPT))
