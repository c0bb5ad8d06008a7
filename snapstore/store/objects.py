"""Encodings of the store's standalone objects (everything that is not a pack) and their keys.

Every object is named by the SHA-256 of its stored bytes, so ``sha256sum`` verifies any file
against its name. Structured objects are msgpack compressed with zstd, except commit objects,
which are plain JSON so that a person (or another tool) can read a snapshot's top level directly.
"""

from __future__ import annotations

import hashlib
import json

import msgpack
import pyarrow as pa
import zstandard

from snapstore.store.crypto import PLAIN, PlainBox

MANIFEST = "table-manifest"
ATTACHMENT_INDEX = "attachment-index"


def object_key(name_hex: str) -> str:
    return f"objects/{name_hex[:2]}/{name_hex}"


def snapshot_key(name_hex: str) -> str:
    return f"snapshots/{name_hex}"


def encode(doc: dict, box: PlainBox = PLAIN) -> tuple[str, bytes]:
    """(name, stored bytes): zstd(msgpack(doc)), sealed by an encrypted store's box."""
    data = box.seal(zstandard.ZstdCompressor(level=3).compress(msgpack.packb(doc, use_bin_type=True)))
    return hashlib.sha256(data).hexdigest(), data


def decode(data: bytes, box: PlainBox = PLAIN) -> dict:
    return msgpack.unpackb(zstandard.ZstdDecompressor().decompress(box.open(data)), raw=False)


def arrow_bytes(table: pa.Table) -> bytes:
    """A table as an Arrow IPC stream (uncompressed: the object around it is zstd already)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def manifest_columns(doc: dict) -> tuple[list[str], list[bytes | None]]:
    """A manifest's (record ids, hashes), from either encoding: v2 holds an Arrow IPC stream
    (``arrow``: columns record_id, hash), v1 two msgpack lists (``ids``, ``hashes``)."""
    if "arrow" in doc:
        table = pa.ipc.open_stream(doc["arrow"]).read_all()
        return table.column("record_id").to_pylist(), table.column("hash").to_pylist()
    return doc["ids"], [bytes(h) if h is not None else None for h in doc["hashes"]]


def encode_commit(doc: dict, box: PlainBox = PLAIN) -> tuple[str, bytes]:
    data = box.seal(json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False).encode() + b"\n")
    return hashlib.sha256(data).hexdigest(), data


def decode_commit(data: bytes, box: PlainBox = PLAIN) -> dict:
    doc = json.loads(box.open(data, "commit object"))
    if doc.get("type") != "snapshot":
        raise ValueError("not a snapshot commit object")
    return doc
