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
#: 1: one blob per frame; 2: a frame may hold many blobs (each entry says where in the frame);
#: 3: a record frame is NDJSON (each record followed by a newline) and is listed once (frame id,
#: item count), with no per-record hash or length: both are computed from its bytes when read;
#: 4: as 3, and a record frame may be a column frame (store/columns.py: it starts with its tag)
PACK_VERSION = 4
PACK_VERSIONS = (1, 2, 3, 4)
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
    #: pack version 3, record frames: the frame's id (sha256 of its stored bytes). Such an entry
    #: comes out of a trailer with ``hash`` None (the trailer does not hold it) until
    #: :func:`hash_items` computes it from the frame's bytes.
    fid: bytes | None = None
    #: a version-3 frame entry straight from a trailer: how many records the frame holds
    n_items: int = 1


def frame_id(data: bytes | memoryview) -> bytes:
    """A stored frame's id: the SHA-256 of its (compressed) bytes, checkable without decoding it."""
    return hashlib.sha256(data).digest()


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
        "fid": pa.array([e.fid for e in entries], pa.binary()),
    })


#: what ends each record of a version-3 frame (canonical JSON never holds a raw newline)
ITEM_END = b"\n"


def build_frames(items: list[tuple[bytes, bytes]], compress_many: Callable[[list[bytes]], list[bytes]],
                 frame_raw: int = FRAME_RAW, end: bytes = b"") -> list[tuple[bytes, list[tuple[bytes, int, int]]]]:
    """Group (hash, raw blob) into frames of about ``frame_raw`` raw bytes, in order, compressed
    by ``compress_many`` (one call for all frames, so it can use every core): returns
    ``(frame, [(hash, inner offset, raw length)])`` per frame. ``end`` follows every blob (version
    3: a newline, so that a frame is NDJSON and needs no item lengths)."""
    groups: list[list[tuple[bytes, int, int]]] = []
    raws: list[bytes] = []
    cur: list[tuple[bytes, int, int]] = []
    parts: list[bytes] = []
    n = 0
    for h, data in items:
        cur.append((h, n, len(data)))
        parts.append(data)
        n += len(data)
        if end:
            if end in data:
                raise PackError("a record blob holds a newline (not canonical JSON)")
            parts.append(end)
            n += len(end)
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
        self._cols: tuple[list, ...] = ([], [], [], [], [], [], [], [])
        self.sealed: list[tuple[str, int, list[BlobEntry] | pa.Table]] = []

    def add(self, h: bytes, frame: bytes, rlen: int, kind: str, dict_hash: bytes | None) -> None:
        self.add_many([(h, frame, rlen)], kind, dict_hash)

    def add_many(self, items: list[tuple[bytes, bytes, int]], kind: str, dict_hash: bytes | None) -> None:
        """Append a batch of (hash, frame, raw length), a frame per blob; the pack may pass its
        target by one batch."""
        self.add_frames([(f, [(h, 0, rlen)]) for h, f, rlen in items], kind, dict_hash)

    def add_frames(self, frames: list[tuple[bytes, list[tuple[bytes, int, int]]]], kind: str,
                   dict_hash: bytes | None, *, sealed: bool = False) -> list[bytes | None]:
        """Append frames, each with its blobs (hash, offset in the decompressed frame, raw length).
        Returns each frame's id (version 3 record frames, the SHA-256 of the frame as stored, so
        sealed in an encrypted store; None for the others). ``sealed``: the frames are stored bytes
        already (prune copying them), not to seal again."""
        if not sealed and self.box.encrypted:
            frames = [(self.box.seal(f), b) for f, b in frames]
        hashes, offs, clens, rlens, kinds, dicts, inners, fids = self._cols
        off = len(self._buf)
        n = 0
        out: list[bytes | None] = []
        framed = self.version >= 3 and kind == KIND_RECORD
        for frame, blobs in frames:
            if self.version < 2 and (len(blobs) != 1 or blobs[0][1] != 0):
                raise PackError("a version 1 pack holds one blob per frame")
            fid = frame_id(frame) if framed else None
            out.append(fid)
            for h, inner, rlen in blobs:
                hashes.append(h)
                offs.append(off)
                clens.append(len(frame))
                rlens.append(rlen)
                inners.append(inner)
                fids.append(fid)
            n += len(blobs)
            off += len(frame)
        kinds.extend([kind] * n)
        dicts.extend([dict_hash] * n)
        self._buf += b"".join([f for f, _b in frames])
        if len(self._buf) >= self.target_size:
            self.seal()
        return out

    def __len__(self) -> int:
        return len(self._cols[0])

    def _trailer_doc(self, dicts: list[bytes], index: dict) -> dict:
        hashes, offs, clens, rlens, kinds, dhs, inners, fids = self._cols
        if self.version < 3:
            cols = [hashes, offs, clens, rlens, kinds, [index[d] for d in dhs]] + ([inners] if self.version >= 2 else [])
            return {"dicts": dicts, "blobs": [list(r) for r in zip(*cols, strict=True)]}
        blobs: list[list] = []
        frames: list[list] = []
        for k, fid in enumerate(fids):
            if fid is None:
                blobs.append([hashes[k], offs[k], clens[k], rlens[k], kinds[k], index[dhs[k]], inners[k]])
            elif frames and frames[-1][0] == fid and frames[-1][1] == offs[k]:
                frames[-1][5] += 1
            else:
                frames.append([fid, offs[k], clens[k], kinds[k], index[dhs[k]], 1])
        return {"dicts": dicts, "blobs": blobs, "frames": frames}

    def seal(self) -> None:
        hashes, offs, clens, rlens, kinds, dhs, inners, fids = self._cols
        if not hashes:
            return
        dicts = [d for d in dict.fromkeys(dhs) if d is not None]
        index = {d: i for i, d in enumerate(dicts)}
        index[None] = -1
        trailer = zstandard.ZstdCompressor(level=3).compress(
            msgpack.packb(self._trailer_doc(dicts, index), use_bin_type=True)
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
                "ioff": pa.array(inners, pa.int64()), "fid": pa.array(fids, pa.binary()),
            })
        else:
            entries = [BlobEntry(*r) for r in zip(hashes, offs, clens, rlens, kinds, dhs, inners, fids, strict=True)]
        self.sealed.append((name, len(data), entries))
        self._buf = bytearray()
        self._cols = ([], [], [], [], [], [], [], [])


def trailer_size(tail: bytes) -> int:
    """The bytes a pack's trailer and tail take, from the pack's last ``TAIL_SIZE`` bytes (0 when
    they are not a tail): what a pack holds besides its frames."""
    return _TAIL.size + _TAIL.unpack(tail)[0] if len(tail) == _TAIL.size else 0


def check_tail(data: bytes) -> tuple[int, int]:
    """(trailer length, pack version) of the pack whose end is ``data`` (the whole pack, or at
    least its trailer and tail): the one reader of a pack's tail. PackError says what is wrong."""
    if len(data) < _TAIL.size:
        raise PackError("pack too short for a trailer")
    tlen, crc, magic, version = _TAIL.unpack(data[-_TAIL.size:])
    if magic != MAGIC:
        raise PackError("pack trailer magic missing (truncated or not a pack)")
    if version not in PACK_VERSIONS:
        raise PackError(f"unsupported pack version {version}")
    if tlen + _TAIL.size > len(data):
        raise PackError("pack trailer length exceeds the pack")
    if zlib.crc32(data[-_TAIL.size - tlen:-_TAIL.size]) != crc:
        raise PackError("pack trailer checksum mismatch")
    return tlen, version


#: The size of a pack's fixed tail (trailer length, CRC, magic, version).
TAIL_SIZE = _TAIL.size


def parse_trailer(tail_and_trailer: bytes, box: PlainBox = PLAIN) -> list[BlobEntry]:
    """Parse the end of a pack (at least trailer + 13 bytes) into its entries."""
    tlen, version = check_tail(tail_and_trailer)
    trailer = tail_and_trailer[-_TAIL.size - tlen : -_TAIL.size]
    doc = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(box.open(trailer, "pack trailer")), raw=False)
    dicts = doc["dicts"]
    out = [
        BlobEntry(bytes(r[0]), r[1], r[2], r[3], r[4], dicts[r[5]] if r[5] >= 0 else None, r[6] if version >= 2 else 0)
        for r in doc["blobs"]
    ]
    if version < 3:
        return out
    for fid, off, clen, kind, di, n in doc.get("frames", []):
        out.append(BlobEntry(None, off, clen, 0, kind, dicts[di] if di >= 0 else None, 0, bytes(fid), n))  # type: ignore[arg-type]
    out.sort(key=lambda e: (e.offset, e.inner))
    return out


def split_items(raw: bytes, n: int | None = None) -> list[tuple[int, int]]:
    """(offset, length) of each record of a decompressed version-3 frame; ``n``: how many the
    trailer says it holds (PackError if not, or if the frame does not end with a newline)."""
    out: list[tuple[int, int]] = []
    start = 0
    while start < len(raw):
        end = raw.find(ITEM_END, start)
        if end < 0:
            raise PackError("a record frame does not end with a newline")
        out.append((start, end - start))
        start = end + 1
    if n is not None and len(out) != n:
        raise PackError(f"a record frame holds {len(out)} records, its trailer says {n}")
    return out


def hash_items(entries: list[BlobEntry], frame_bytes: Callable[[BlobEntry], bytes],
               blob_id: Callable[[bytes], bytes]) -> list[BlobEntry]:
    """``entries`` with each version-3 frame entry replaced by an entry per record in it, its hash
    computed from its bytes (``frame_bytes(entry)``: the decompressed frame). Raises PackError
    when a frame does not hold what its trailer says."""
    out: list[BlobEntry] = []
    for e in entries:
        if e.hash is not None:
            out.append(e)
            continue
        raw = frame_bytes(e)
        for inner, rlen in split_items(raw, e.n_items):
            out.append(BlobEntry(blob_id(raw[inner: inner + rlen]), e.offset, e.clen, rlen, e.kind, e.dict_hash,
                                 inner, e.fid))
    return out


def read_trailer(get_range: Callable[[str, int, int], bytes], size_of: Callable[[str], int], name: str,
                 box: PlainBox = PLAIN) -> list[BlobEntry]:
    key = pack_key(name)
    size = size_of(key)
    if size < _TAIL.size:
        raise PackError(f"pack {name[:12]} is truncated ({size} bytes)")
    tlen = trailer_size(get_range(key, size - _TAIL.size, _TAIL.size)) - _TAIL.size
    if tlen + _TAIL.size > size:
        raise PackError(f"pack {name[:12]} is truncated")
    return parse_trailer(get_range(key, size - _TAIL.size - tlen, tlen + _TAIL.size), box)
