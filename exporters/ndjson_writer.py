"""NDJSON: one file per table, one record (Airtable's shape) per line."""

from __future__ import annotations

import orjson
from snapstore_exporters.base import StreamWriter

_OPT = orjson.OPT_APPEND_NEWLINE


class NdjsonWriter(StreamWriter):
    format = "ndjson"
    ext = ".ndjson"

    @staticmethod
    def encode_dicts(items: list[dict]) -> bytes:
        dumps = orjson.dumps
        return b"".join([dumps(r, option=_OPT) for r in items])
