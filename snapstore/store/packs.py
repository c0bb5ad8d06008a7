"""Packs: many small blobs in one immutable object.

A pack is a run of independent zstd frames followed by a trailer that indexes them, so a pack
verifies itself (its name is the SHA-256 of its bytes) and indexes itself (the catalog can be
rebuilt from trailers alone). Layout, byte for byte, in docs/FORMAT.md.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import msgpack
import pyarrow as pa
import zstandard

from snapstore.errors import StoreError

MAGIC = b"SSPK"
PACK_VERSION = 1
_TAIL = struct.Struct("<II4sB")  # trailer length, crc32(trailer), magic, version

KIND_RECORD = "R"
KIND_SCHEMA = "S"
KIND_COMMENTS = "C"
KIND_ATTACHMENT = "A"


class PackError(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class BlobEntry:
    hash: bytes  # sha256 of the raw blob
    offset: int
    clen: int
    rlen: int
    kind: str
    dict_hash: bytes | None


def entries_table(entries: list[BlobEntry]) -> pa.Table:
    """Pack entries as columns: what the catalog ingests (hash, off, clen, rlen, kind, dict_hash)."""
    return pa.table({
        "hash": pa.array([e.hash for e in entries], pa.binary()),
        "off": pa.array([e.offset for e in entries], pa.int64()),
        "clen": pa.array([e.clen for e in entries], pa.int64()),
        "rlen": pa.array([e.rlen for e in entries], pa.int64()),
        "kind": pa.array([e.kind for e in entries], pa.string()),
        "dict_hash": pa.array([e.dict_hash for e in entries], pa.binary()),
    })


def pack_key(name_hex: str) -> str:
    return f"packs/{name_hex[:2]}/{name_hex}"


class PackWriter:
    """Accumulates compressed frames; ``seal`` writes the pack through ``put`` and returns its
    name and entries. One writer per run and pack family (records or attachments)."""

    def __init__(self, put: Callable[[str, bytes], None], target_size: int, *, columnar: bool = False) -> None:
        self._put = put
        self.target_size = target_size
        #: keep sealed packs' entries as one compact Arrow table each (a snapshot of millions of
        #: records would otherwise hold a Python object per blob until its commit)
        self.columnar = columnar
        self._buf = bytearray()
        self._cols: tuple[list, list, list, list, list, list] = ([], [], [], [], [], [])
        self.sealed: list[tuple[str, int, list[BlobEntry] | pa.Table]] = []

    def add(self, h: bytes, frame: bytes, rlen: int, kind: str, dict_hash: bytes | None) -> None:
        self.add_many([(h, frame, rlen)], kind, dict_hash)

    def add_many(self, items: list[tuple[bytes, bytes, int]], kind: str, dict_hash: bytes | None) -> None:
        """Append a batch of (hash, frame, raw length); the pack may pass its target by one batch."""
        hashes, offs, clens, rlens, kinds, dicts = self._cols
        off = len(self._buf)
        for h, frame, rlen in items:
            hashes.append(h)
            offs.append(off)
            clens.append(len(frame))
            rlens.append(rlen)
            off += len(frame)
        kinds.extend([kind] * len(items))
        dicts.extend([dict_hash] * len(items))
        self._buf += b"".join([f for _h, f, _r in items])
        if len(self._buf) >= self.target_size:
            self.seal()

    def __len__(self) -> int:
        return len(self._cols[0])

    def seal(self) -> None:
        hashes, offs, clens, rlens, kinds, dhs = self._cols
        if not hashes:
            return
        dicts = [d for d in dict.fromkeys(dhs) if d is not None]
        index = {d: i for i, d in enumerate(dicts)}
        index[None] = -1
        rows = [list(r) for r in zip(hashes, offs, clens, rlens, kinds, [index[d] for d in dhs], strict=True)]
        trailer = zstandard.ZstdCompressor(level=3).compress(
            msgpack.packb({"dicts": dicts, "blobs": rows}, use_bin_type=True)
        )
        data = bytes(self._buf) + trailer + _TAIL.pack(len(trailer), zlib.crc32(trailer), MAGIC, PACK_VERSION)
        name = hashlib.sha256(data).hexdigest()
        self._put(pack_key(name), data)
        if self.columnar:
            entries = pa.table({
                "hash": pa.array(hashes, pa.binary()), "off": pa.array(offs, pa.int64()),
                "clen": pa.array(clens, pa.int64()), "rlen": pa.array(rlens, pa.int64()),
                "kind": pa.array(kinds, pa.string()), "dict_hash": pa.array(dhs, pa.binary()),
            })
        else:
            entries = [BlobEntry(*r) for r in zip(hashes, offs, clens, rlens, kinds, dhs, strict=True)]
        self.sealed.append((name, len(data), entries))
        self._buf = bytearray()
        self._cols = ([], [], [], [], [], [])


def parse_trailer(tail_and_trailer: bytes) -> list[BlobEntry]:
    """Parse the end of a pack (at least trailer + 13 bytes) into its entries."""
    if len(tail_and_trailer) < _TAIL.size:
        raise PackError("pack too short for a trailer")
    tlen, crc, magic, version = _TAIL.unpack(tail_and_trailer[-_TAIL.size :])
    if magic != MAGIC:
        raise PackError("pack trailer magic missing (truncated or not a pack)")
    if version != PACK_VERSION:
        raise PackError(f"unsupported pack version {version}")
    if tlen + _TAIL.size > len(tail_and_trailer):
        raise PackError("pack trailer length exceeds the pack")
    trailer = tail_and_trailer[-_TAIL.size - tlen : -_TAIL.size]
    if zlib.crc32(trailer) != crc:
        raise PackError("pack trailer checksum mismatch")
    doc = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(trailer), raw=False)
    dicts = doc["dicts"]
    return [
        BlobEntry(bytes(h), off, clen, rlen, kind, dicts[di] if di >= 0 else None)
        for h, off, clen, rlen, kind, di in doc["blobs"]
    ]


def read_trailer(get_range: Callable[[str, int, int], bytes], size_of: Callable[[str], int], name: str) -> list[BlobEntry]:
    key = pack_key(name)
    size = size_of(key)
    if size < _TAIL.size:
        raise PackError(f"pack {name[:12]} is truncated ({size} bytes)")
    tail = get_range(key, size - _TAIL.size, _TAIL.size)
    tlen = _TAIL.unpack(tail)[0]
    if tlen + _TAIL.size > size:
        raise PackError(f"pack {name[:12]} is truncated")
    return parse_trailer(get_range(key, size - _TAIL.size - tlen, tlen + _TAIL.size))


def trailer_overhead(data: bytes) -> int:
    tlen = _TAIL.unpack(data[-_TAIL.size :])[0]
    return tlen + _TAIL.size
