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
from snapstore.store.crypto import PLAIN, PlainBox

MAGIC = b"SSPK"
#: 1: one blob per frame; 2: a frame may hold many blobs (each entry says where in the frame)
PACK_VERSION = 2
PACK_VERSIONS = (1, 2)
#: Raw bytes of records per frame in format 2. Measured on the benchmark's record mix (20k
#: records, zstd 3 with the table's 64 KiB dictionary): one frame per record 4.4x; 16 KiB frames
#: 6.0x, 64 KiB 6.16x, 128 KiB 6.19x, 1 MiB 6.19x; decompressing one frame (what reading one
#: record costs) 0.03 ms at 64 KiB, 0.2 ms at 128 KiB, 1 ms at 1 MiB. 128 KiB keeps the ratio's
#: plateau at a read cost well under a pack fetch.
FRAME_RAW = 128 * 1024
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
    inner: int = 0  # where the blob starts in its decompressed frame (0: a frame of its own)


def entries_table(entries: list[BlobEntry]) -> pa.Table:
    """Pack entries as columns: what the catalog ingests (hash, off, clen, rlen, kind, dict_hash)."""
    return pa.table({
        "hash": pa.array([e.hash for e in entries], pa.binary()),
        "off": pa.array([e.offset for e in entries], pa.int64()),
        "clen": pa.array([e.clen for e in entries], pa.int64()),
        "rlen": pa.array([e.rlen for e in entries], pa.int64()),
        "kind": pa.array([e.kind for e in entries], pa.string()),
        "dict_hash": pa.array([e.dict_hash for e in entries], pa.binary()),
        "ioff": pa.array([e.inner for e in entries], pa.int64()),
    })


def build_frames(items: list[tuple[bytes, bytes]], compress_many: Callable[[list[bytes]], list[bytes]],
                 frame_raw: int = FRAME_RAW) -> list[tuple[bytes, list[tuple[bytes, int, int]]]]:
    """Group (hash, raw blob) into frames of about ``frame_raw`` raw bytes, in order, compressed
    by ``compress_many`` (one call for all frames, so it can use every core): returns
    ``(frame, [(hash, inner offset, raw length)])`` per frame."""
    groups: list[list[tuple[bytes, int, int]]] = []
    raws: list[bytes] = []
    cur: list[tuple[bytes, int, int]] = []
    parts: list[bytes] = []
    n = 0
    for h, data in items:
        cur.append((h, n, len(data)))
        parts.append(data)
        n += len(data)
        if n >= frame_raw:
            groups.append(cur)
            raws.append(b"".join(parts))
            cur, parts, n = [], [], 0
    if cur:
        groups.append(cur)
        raws.append(b"".join(parts))
    return list(zip(compress_many(raws), groups, strict=True)) if raws else []


def pack_key(name_hex: str) -> str:
    return f"packs/{name_hex[:2]}/{name_hex}"


class PackWriter:
    """Accumulates compressed frames; ``seal`` writes the pack through ``put`` and returns its
    name and entries. One writer per run and pack family (records or attachments)."""

    def __init__(self, put: Callable[[str, bytes], None], target_size: int, *, columnar: bool = False,
                 version: int = PACK_VERSION, box: PlainBox = PLAIN) -> None:
        self._put = put
        self.box = box  # seals every frame and the trailer (an encrypted store's; plain: as is)
        self.version = version
        self.target_size = target_size
        #: keep sealed packs' entries as one compact Arrow table each (a snapshot of millions of
        #: records would otherwise hold a Python object per blob until its commit)
        self.columnar = columnar
        self._buf = bytearray()
        self._cols: tuple[list, list, list, list, list, list, list] = ([], [], [], [], [], [], [])
        self.sealed: list[tuple[str, int, list[BlobEntry] | pa.Table]] = []

    def add(self, h: bytes, frame: bytes, rlen: int, kind: str, dict_hash: bytes | None) -> None:
        self.add_many([(h, frame, rlen)], kind, dict_hash)

    def add_many(self, items: list[tuple[bytes, bytes, int]], kind: str, dict_hash: bytes | None) -> None:
        """Append a batch of (hash, frame, raw length), a frame per blob; the pack may pass its
        target by one batch."""
        self.add_frames([(f, [(h, 0, rlen)]) for h, f, rlen in items], kind, dict_hash)

    def add_frames(self, frames: list[tuple[bytes, list[tuple[bytes, int, int]]]], kind: str,
                   dict_hash: bytes | None, *, sealed: bool = False) -> None:
        """Append frames, each with its blobs (hash, offset in the decompressed frame, raw length).
        ``sealed``: the frames are stored bytes already (prune copying them), not to seal again."""
        if not sealed and self.box.encrypted:
            frames = [(self.box.seal(f), b) for f, b in frames]
        hashes, offs, clens, rlens, kinds, dicts, inners = self._cols
        off = len(self._buf)
        n = 0
        for frame, blobs in frames:
            if self.version < 2 and (len(blobs) != 1 or blobs[0][1] != 0):
                raise PackError("a version 1 pack holds one blob per frame")
            for h, inner, rlen in blobs:
                hashes.append(h)
                offs.append(off)
                clens.append(len(frame))
                rlens.append(rlen)
                inners.append(inner)
            n += len(blobs)
            off += len(frame)
        kinds.extend([kind] * n)
        dicts.extend([dict_hash] * n)
        self._buf += b"".join([f for f, _b in frames])
        if len(self._buf) >= self.target_size:
            self.seal()

    def __len__(self) -> int:
        return len(self._cols[0])

    def seal(self) -> None:
        hashes, offs, clens, rlens, kinds, dhs, inners = self._cols
        if not hashes:
            return
        dicts = [d for d in dict.fromkeys(dhs) if d is not None]
        index = {d: i for i, d in enumerate(dicts)}
        index[None] = -1
        cols = [hashes, offs, clens, rlens, kinds, [index[d] for d in dhs]] + ([inners] if self.version >= 2 else [])
        rows = [list(r) for r in zip(*cols, strict=True)]
        trailer = zstandard.ZstdCompressor(level=3).compress(
            msgpack.packb({"dicts": dicts, "blobs": rows}, use_bin_type=True)
        )
        trailer = self.box.seal(trailer)
        data = bytes(self._buf) + trailer + _TAIL.pack(len(trailer), zlib.crc32(trailer), MAGIC, self.version)
        name = hashlib.sha256(data).hexdigest()
        self._put(pack_key(name), data)
        if self.columnar:
            entries = pa.table({
                "hash": pa.array(hashes, pa.binary()), "off": pa.array(offs, pa.int64()),
                "clen": pa.array(clens, pa.int64()), "rlen": pa.array(rlens, pa.int64()),
                "kind": pa.array(kinds, pa.string()), "dict_hash": pa.array(dhs, pa.binary()),
                "ioff": pa.array(inners, pa.int64()),
            })
        else:
            entries = [BlobEntry(*r) for r in zip(hashes, offs, clens, rlens, kinds, dhs, inners, strict=True)]
        self.sealed.append((name, len(data), entries))
        self._buf = bytearray()
        self._cols = ([], [], [], [], [], [], [])


def parse_trailer(tail_and_trailer: bytes, box: PlainBox = PLAIN) -> list[BlobEntry]:
    """Parse the end of a pack (at least trailer + 13 bytes) into its entries."""
    if len(tail_and_trailer) < _TAIL.size:
        raise PackError("pack too short for a trailer")
    tlen, crc, magic, version = _TAIL.unpack(tail_and_trailer[-_TAIL.size :])
    if magic != MAGIC:
        raise PackError("pack trailer magic missing (truncated or not a pack)")
    if version not in PACK_VERSIONS:
        raise PackError(f"unsupported pack version {version}")
    if tlen + _TAIL.size > len(tail_and_trailer):
        raise PackError("pack trailer length exceeds the pack")
    trailer = tail_and_trailer[-_TAIL.size - tlen : -_TAIL.size]
    if zlib.crc32(trailer) != crc:
        raise PackError("pack trailer checksum mismatch")
    doc = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(box.open(trailer, "pack trailer")), raw=False)
    dicts = doc["dicts"]
    return [
        BlobEntry(bytes(r[0]), r[1], r[2], r[3], r[4], dicts[r[5]] if r[5] >= 0 else None, r[6] if version >= 2 else 0)
        for r in doc["blobs"]
    ]


def read_trailer(get_range: Callable[[str, int, int], bytes], size_of: Callable[[str], int], name: str,
                 box: PlainBox = PLAIN) -> list[BlobEntry]:
    key = pack_key(name)
    size = size_of(key)
    if size < _TAIL.size:
        raise PackError(f"pack {name[:12]} is truncated ({size} bytes)")
    tail = get_range(key, size - _TAIL.size, _TAIL.size)
    tlen = _TAIL.unpack(tail)[0]
    if tlen + _TAIL.size > size:
        raise PackError(f"pack {name[:12]} is truncated")
    return parse_trailer(get_range(key, size - _TAIL.size - tlen, tlen + _TAIL.size), box)


def trailer_overhead(data: bytes) -> int:
    tlen = _TAIL.unpack(data[-_TAIL.size :])[0]
    return tlen + _TAIL.size
