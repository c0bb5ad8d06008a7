"""NDJSON: one file per table, one record (Airtable's shape) per line."""

from __future__ import annotations

import orjson

from exporters.base import StreamWriter
from exporters.stream import Batch

_OPT = orjson.OPT_APPEND_NEWLINE


class NdjsonWriter(StreamWriter):
    format = "ndjson"
    ext = ".ndjson"

    @staticmethod
    def encode(batch: Batch) -> bytes:
        dumps = orjson.dumps
        return b"".join([dumps(r, option=_OPT) for r in batch.shaped()])
