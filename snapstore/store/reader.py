"""The one reader of stored blobs: find a blob's frame in its pack, decompress it, cut the blob out
and check it is the blob it claims to be.

A frame is one zstd frame at ``(pack, off, clen)``. In format 1 it holds one blob; in format 2 a
frame holds many records of one table, each at ``(inner, rlen)`` of the decompressed frame
(``inner`` is 0 for a frame of one blob, so both formats read the same way); in format 4 a small
record frame may be stored as columns, which decode to the same NDJSON bytes. Export, restore, diff,
verify, prune and stats all read through here; nothing else decompresses a pack's bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import zstandard

from snapstore.errors import StoreError
from snapstore.store import columns
from snapstore.store.backend import ObjectMissing
from snapstore.store.crypto import PLAIN, Damaged
from snapstore.store.packs import pack_key

if TYPE_CHECKING:
    from snapstore.store.store import Store

_MULTI_D = hasattr(zstandard.ZstdDecompressor, "multi_decompress_to_buffer")
#: decompressed frames kept by a reader: a chunk boundary may fall inside a frame, and the
#: next chunk must not decompress it again (a 128 KiB frame costs ~0.2 ms).
FRAME_CACHE = 8


@dataclass
class LocatedChunk:
    """Consecutive record blobs of one table and where each one is (pack, frame offset and
    length, place in the decompressed frame, compression dictionary): what
    :meth:`Store.record_chunks` yields and :meth:`BlobReader.read_chunk` reads. Plain lists, so it
    pickles cheaply to a worker process."""

    index: int
    hashes: list[bytes]
    packs: list[str]
    offs: list[int]
    clens: list[int]
    rlens: list[int]
    dict_hashes: list[bytes | None]
    inners: list[int]

    def __len__(self) -> int:
        return len(self.hashes)


def record_id_of(raw: bytes) -> str:
    """The record id of a canonical record blob, read without parsing it: keys are sorted, so
    ``"id"`` is the last key, and the blob ends ``,"id":"rec..."}``."""
    k = raw.rfind(b'"id":"')
    if k < 0 or not raw.endswith(b'"}'):
        raise StoreError("a record blob without a trailing id (not a canonical record)")
    return raw[k + 6: -2].decode()


class FrameDamaged(StoreError):
    """A format-3 frame does not match its id (or its item lengths): every record in it is lost."""

    def __init__(self, message: str, *, pack: str, off: int) -> None:
        super().__init__(message)
        self.pack = pack
        self.off = off


def damaged(h: bytes, pack: str, why: str) -> StoreError:
    return StoreError(f"blob {h.hex()[:12]} in pack {pack[:12]} is damaged ({why})")


class BlobReader:
    """Reads blobs out of packs, keeping the last few packs (~16 MiB each) and decompressed
    frames in memory."""

    def __init__(self, store: Store, cache_packs: int = 2, threads: int = -1) -> None:
        self.store = store
        #: zstd threads for a batch (-1: one per core). A reader in a worker process, one of a pool
        #: already using every core, passes 0: extra threads there only add switching.
        self.threads = threads
        self._packs: OrderedDict[str, bytes] = OrderedDict()
        self._cache = cache_packs
        self._frames: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._dctx: dict[bytes | None, zstandard.ZstdDecompressor] = {}
        #: a blob's identity from its bytes (the store's: SHA-256, or a keyed MAC if encrypted)
        self.blob_id: Callable[[bytes], bytes] = store.blob_id
        #: opens a sealed frame (an encrypted store's; a plain store's frames are as stored)
        self.box = getattr(store, "box", None) or PLAIN

    def pack(self, name: str) -> bytes:
        data = self._packs.get(name)
        if data is None:
            try:
                data = self.store.backend.get(pack_key(name))
            except ObjectMissing as e:
                raise StoreError(f"pack {name[:12]} is missing from the store") from e
            self._packs[name] = data
            if len(self._packs) > self._cache:
                self._packs.popitem(last=False)
        else:
            self._packs.move_to_end(name)
        return data

    def decompressor(self, dict_hash: bytes | None) -> zstandard.ZstdDecompressor:
        d = self._dctx.get(dict_hash)
        if d is None:
            if dict_hash is None:
                d = zstandard.ZstdDecompressor()
            else:
                d = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(self.store.dict_bytes(dict_hash)))
            self._dctx[dict_hash] = d
        return d

    def inflate(self, dict_hash: bytes | None, data: bytes | memoryview) -> bytes:
        """A stored frame's raw bytes: opened (an encrypted store's seal), then decompressed, or
        decoded from columns (format 4's small record frames, :mod:`snapstore.store.columns`).
        Raises zstandard.ZstdError or crypto.Damaged (or ColumnsDamaged, a StoreError)."""
        return self._inflate_opened(dict_hash, self.box.open(data))

    def _inflate_opened(self, dict_hash: bytes | None, opened: bytes) -> bytes:
        if columns.is_columns(opened):
            return columns.inflate(opened)
        return self.decompressor(dict_hash).decompress(opened)

    def _remember(self, key: tuple[str, int], raw: bytes) -> None:
        self._frames[key] = raw
        if len(self._frames) > FRAME_CACHE:
            self._frames.popitem(last=False)

    def frame(self, pack: str, off: int, clen: int, dict_hash: bytes | None, h: bytes = b"",
              data: bytes | memoryview | None = None) -> bytes:
        """One decompressed frame (cached); ``data``: the frame's compressed bytes, if at hand."""
        key = (pack, off)
        raw = self._frames.get(key)
        if raw is not None:
            return raw
        if data is None:
            data = memoryview(self.pack(pack))[off: off + clen]
        if len(data) != clen:
            raise damaged(h, pack, "frame truncated")
        try:
            raw = self.inflate(dict_hash, data)
        except (zstandard.ZstdError, Damaged, columns.ColumnsDamaged) as e:
            raise damaged(h, pack, str(e)) from e
        self._remember(key, raw)
        return raw

    def cut(self, h: bytes, pack: str, frame: bytes, inner: int, rlen: int) -> bytes:
        """The blob at ``inner`` of a decompressed frame, checked against its identity."""
        raw = frame[inner: inner + rlen]
        if len(raw) != rlen or self.blob_id(raw) != h:
            raise damaged(h, pack, "hash mismatch")
        return raw

    def read(self, h: bytes, pack: str, off: int, clen: int, rlen: int, dict_hash: bytes | None,
             inner: int = 0, data: bytes | None = None) -> bytes:
        """One blob; ``data``: its frame's compressed bytes when the caller read them already."""
        return self.cut(h, pack, self.frame(pack, off, clen, dict_hash, h, data), inner, rlen)

    def read_many(self, hashes: list[bytes], packs: list[str], offs: list[int], clens: list[int],
                  rlens: list[int], dict_hashes: list[bytes | None], inners: list[int] | None = None) -> list[bytes]:
        """A batch of blobs, each checked against its hash. Every frame is decompressed once,
        the batch's frames of one pack on all cores where zstandard can."""
        n = len(hashes)
        inners = inners if inners is not None else [0] * n
        # the frames still to decompress, grouped by (pack, dictionary)
        todo: dict[tuple[str, bytes | None], dict[int, int]] = {}
        decoded: dict[tuple[str, int], bytes] = {}
        for k in range(n):
            key = (packs[k], offs[k])
            if key in decoded:
                continue
            cached = self._frames.get(key)
            if cached is not None:
                decoded[key] = cached
            else:
                todo.setdefault((packs[k], dict_hashes[k]), {}).setdefault(offs[k], k)
        for (pack, dh), firsts in todo.items():
            data = memoryview(self.pack(pack))
            ks = list(firsts.values())
            frames = [data[offs[k]: offs[k] + clens[k]] for k in ks]
            raws = None
            if _MULTI_D and len(ks) > 1:  # frames of ~128 KiB: worth a thread each
                try:
                    opened = [self.box.open(f) for f in frames]
                    if any(map(columns.is_columns, opened)):  # format 4's small frames: no batch call
                        raws = [self._inflate_opened(dh, o) for o in opened]
                    else:
                        raws = [bytes(b) for b in self.decompressor(dh).multi_decompress_to_buffer(
                            opened, threads=self.threads)]
                except (zstandard.ZstdError, Damaged, columns.ColumnsDamaged):
                    raws = None  # decompressed one by one below, to name the damaged blob
            if raws is None:
                raws = [self.frame(pack, offs[k], clens[k], dh, hashes[k], f) for k, f in zip(ks, frames, strict=True)]
            for k, raw in zip(ks, raws, strict=True):
                decoded[(pack, offs[k])] = raw
        out: list[bytes] = []
        for k in range(n):
            out.append(self.cut(hashes[k], packs[k], decoded[(packs[k], offs[k])], inners[k], rlens[k]))
        # keep the last frames: the next chunk may start inside one of them
        for key in list(decoded)[-FRAME_CACHE:]:
            self._remember(key, decoded[key])
        return out

    def read_chunk(self, chunk: LocatedChunk) -> list[bytes]:
        """The raw (canonical JSON) blobs of a chunk, in order, each checked against its hash."""
        return self.read_many(chunk.hashes, chunk.packs, chunk.offs, chunk.clens, chunk.rlens,
                              chunk.dict_hashes, chunk.inners)

    def decode(self, h: bytes, pack: str, frame: bytes, rlen: int, dict_hash: bytes | None, inner: int = 0) -> bytes:
        """Decompress one frame's bytes (read by the caller) and cut out blob ``h``."""
        try:
            raw = self.inflate(dict_hash, frame)
        except (zstandard.ZstdError, Damaged, columns.ColumnsDamaged) as e:
            raise damaged(h, pack, str(e)) from e
        return self.cut(h, pack, raw, inner, rlen)
