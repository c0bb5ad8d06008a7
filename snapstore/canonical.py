"""Canonical record bytes: the one serializer whose output is hashed and stored.

A record that did not change must hash the same on every run, or nothing deduplicates. So the
serializer is fixed (orjson, keys sorted at every depth, no whitespace, UTF-8), its identity is
recorded in the store (``CANON_VERSION``), and the parts of a record that change on every read
(signed attachment and thumbnail URLs) are removed before hashing.
"""

from __future__ import annotations

from typing import Any

import orjson

from snapstore.fieldtypes import is_attachment

#: Recorded in the store's config; changing anything in this module must bump it.
CANON_VERSION = "orjson-sorted-v1"

_OPTS = orjson.OPT_SORT_KEYS


def _strip_attachment(att: dict) -> dict:
    out = {k: v for k, v in att.items() if k != "url"}
    thumbs = out.get("thumbnails")
    if isinstance(thumbs, dict):
        out["thumbnails"] = {
            size: ({k: v for k, v in t.items() if k != "url"} if isinstance(t, dict) else t)
            for size, t in thumbs.items()
        }
    return out


def strip_volatile(value: Any) -> Any:
    """Remove signed URLs from attachment objects wherever they occur (cells, lookups, comments)."""
    if isinstance(value, list):
        if value and any(is_attachment(v) for v in value):
            return [_strip_attachment(v) if is_attachment(v) else strip_volatile(v) for v in value]
        return [strip_volatile(v) for v in value] if any(isinstance(v, (list, dict)) for v in value) else value
    if isinstance(value, dict):
        if is_attachment(value):
            return _strip_attachment(value)
        return {k: strip_volatile(v) for k, v in value.items()}
    return value


def canonical_record(record: dict) -> dict:
    """The stored form of a record as the list API returns it (fields keyed by field id)."""
    fields = record.get("fields") or {}
    return {
        "id": record["id"],
        "createdTime": record.get("createdTime"),
        # only nested values can hold attachment objects; scalars pass straight through (hot path)
        "fields": {k: (strip_volatile(v) if type(v) in (list, dict) else v) for k, v in fields.items()},
    }


def dumps(obj: Any) -> bytes:
    """The canonical serializer: sorted keys at every depth, compact, UTF-8."""
    return orjson.dumps(obj, option=_OPTS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def record_bytes(record: dict) -> bytes:
    """``dumps(canonical_record(record))``, with a fast path: a record whose serialization holds
    no ``"att`` has no attachment object, so there is nothing volatile to strip."""
    data = orjson.dumps(
        {"id": record["id"], "createdTime": record.get("createdTime"), "fields": record.get("fields") or {}},
        option=_OPTS,
    )
    if b'"att' not in data:
        return data
    return dumps(canonical_record(record))
