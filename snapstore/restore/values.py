"""Cells: in the form the write API takes, as text, and reduced for comparisons."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from snapstore.fieldtypes import COMPUTED_TYPES


def _text_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        if "value" in value and "state" in value:  # aiText
            return value.get("value")
        if "label" in value:  # button: its label and where it goes
            label, url = value.get("label"), value.get("url")
            return f"{label} <{url}>" if label and url else label or url
        if "name" in value or "email" in value:
            return value.get("name") or value.get("email")
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, list):
        parts = [_text_of(v) for v in value]
        return ", ".join(p for p in parts if p)
    return str(value)


def _write_value(typ: str, value: Any) -> Any:
    """A stored cell in the form the write API accepts."""
    if typ == "singleCollaborator":
        return _collab(value)
    if typ == "multipleCollaborators":
        return [_collab(v) for v in value or []]
    if typ == "singleSelect" and isinstance(value, dict):
        return value.get("name")
    if typ == "barcode" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k in ("text", "type") and v is not None}
    return value


def _collab(v: Any) -> Any:
    if isinstance(v, dict):
        if v.get("id"):
            return {"id": v["id"]}
        if v.get("email"):
            return {"email": v["email"]}
    return v


def _norm(typ: str, value: Any, id_map: dict[str, str] | None = None) -> Any:
    """A cell reduced to what a restore can reproduce, for comparisons."""
    if value in (None, [], "", False):
        return None
    if typ == "multipleAttachments":
        # uploadAttachment refuses an empty filename: a restore names such a file "file"
        return [(a.get("filename") or "file", a.get("size"), a.get("type")) for a in value]
    if typ == "singleCollaborator":
        return value.get("id") or value.get("email")
    if typ == "multipleCollaborators":
        return [v.get("id") or v.get("email") for v in value]
    if typ == "multipleRecordLinks":
        return [id_map.get(v, v) if id_map else v for v in value]
    if typ == "barcode" and isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value






def compare_tables(src_schema_table: dict, src_records: Iterable[dict], dst_records: Iterable[dict],
                   field_map: dict[str, str], id_maps: dict[str, dict[str, str]]) -> list[str]:
    """Differences in writable fields between source records and restored ones (ids mapped).
    ``field_map``: source field id -> target field id; ``id_maps``: source table id -> {old: new}."""
    own = id_maps.get(src_schema_table["id"], {})
    dst = {r["id"]: r.get("fields") or {} for r in dst_records}
    diffs: list[str] = []
    seen = set()
    for rec in src_records:
        new = own.get(rec["id"])
        if new is None or new not in dst:
            diffs.append(f"{rec['id']}: not restored")
            continue
        seen.add(new)
        cells = rec.get("fields") or {}
        for f in src_schema_table["fields"]:
            if f["type"] in COMPUTED_TYPES or f["id"] not in field_map:
                continue
            link_map = id_maps.get((f.get("options") or {}).get("linkedTableId"), {}) \
                if f["type"] == "multipleRecordLinks" else None
            v = cells.get(f["id"])
            if link_map and isinstance(v, list):  # links to records the source lacks are dropped (and warned)
                v = [x for x in v if x in link_map]
            a = _norm(f["type"], v, link_map)
            b = _norm(f["type"], dst[new].get(field_map[f["id"]]))
            if a != b:
                diffs.append(f"{rec['id']}.{f['name']}: {a!r} != {b!r}")
    extra = set(dst) - seen
    if extra:
        diffs.append(f"{len(extra)} records in the target that are not in the source")
    return diffs
