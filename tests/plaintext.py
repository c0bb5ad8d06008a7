"""Searching stored bytes for plaintext: what the encryption tests grep a store's files for."""

from __future__ import annotations

from pathlib import Path

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def plaintext_hits(files: dict[str, bytes], wanted: dict[str, bytes]) -> set[tuple[str, str]]:
    """(needle, file) pairs: in the bytes as stored, or in any zstd frame found in them."""
    hits = set()
    for name, data in files.items():
        views = [data]
        at = data.find(ZSTD_MAGIC)
        while at >= 0:
            try:
                views.append(zstandard.ZstdDecompressor().decompressobj().decompress(data[at:]))
            except zstandard.ZstdError:
                pass
            at = data.find(ZSTD_MAGIC, at + 1)
        for what, needle in wanted.items():
            if any(needle in v for v in views):
                hits.add((what, name))
    return hits


def workspace_needles(ws) -> dict[str, bytes]:
    """Names and ids of an emulator workspace a sealed store must not show: base, table and field
    names and ids, record ids, a record's text, an attachment's id and file name."""
    b = ws.bases[0]
    t = b.tables[0]
    text = next(v for r in t.records.values() for v in r.cells.values() if isinstance(v, str) and len(v) >= 12)
    att_id, att = next(iter(ws.attachments.items()))
    rids = list(t.records)
    return {"record text": text.encode(), "base name": b.name.encode(), "base id": b.id.encode(),
            "table name": t.name.encode(), "table id": t.id.encode(), "field name": t.fields[1]["name"].encode(),
            "field id": t.fields[1]["id"].encode(), "record id": rids[0].encode(), "last record id": rids[-1].encode(),
            "attachment id": att_id.encode(), "attachment file name": att["filename"].encode()}
