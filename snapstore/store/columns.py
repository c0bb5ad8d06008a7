"""Column frames: a record frame stored field by field instead of record by record (format 4).

What a store grows by every day is a table's few changed records, written as one small frame
with no earlier version to refer to. zstd finds less to share between whole records than
between the values of one field laid end to end: on the benchmark's 1,000 daily changed records
(bench/bench_vs_restic.py), one NDJSON frame at zstd 15 with the table's dictionary is 59.0 KB,
the same records as columns at zstd 19 are 51.1 KB (-13%); 3 column frames of 128 KiB raw were
55.8 KB, so a small batch is one frame (at most 1 MiB raw). Encoding costs ~6 ms and decoding
~0.7 ms per 1,000 records; a table's large batches (its first snapshot) stay NDJSON, which
reading slices without parsing.

A column frame decodes back to exactly the NDJSON frame it replaces, so everything after the
reader (offsets of records in their frame, record ids, the catalog) is the same for both. The
writer checks that before it keeps one (:func:`encode` returns None otherwise), and a frame of
records of any other shape stays NDJSON. Layout in docs/FORMAT.md ("Column frames").
"""

from __future__ import annotations

from itertools import groupby, islice, repeat

import msgpack
import orjson
import zstandard

from snapstore.errors import StoreError
from snapstore.store.packs import build_frames

#: what a stored column frame starts with (after opening its seal): every other frame of a
#: pack is a zstd frame, which starts with zstd's magic number 28 B5 2F FD
TAG = b"SSC\x01"
_TOP = ["createdTime", "fields", "id"]
#: raw bytes of a column frame at most: a table's small batch (writer.COMPRESS_BYTES) is one
FRAME_RAW = 1 << 20
_SEP = b"\n"  # canonical JSON values hold no raw newline


class ColumnsDamaged(StoreError):
    pass


def _shape_order(shape_of: list[int]) -> list[int]:
    """Frame positions of the records, shape by shape (stable): the order the columns list them in."""
    return sorted(range(len(shape_of)), key=shape_of.__getitem__)


def encode(frame: bytes) -> bytes | None:
    """The columns of an NDJSON frame of canonical records, or None if it holds anything else
    (or would not decode back to the same bytes).

    msgpack ``[shapes, createdTime values, ids, [[field id, values]...], shape of each record]``:
    a shape is a record's field ids in canonical order, numbered as they first appear; ``shape
    of each record`` is in frame order; the other columns list the records shape by shape (those
    of shape 0 in frame order, then shape 1's...), each value its canonical JSON, joined by
    newlines. Shape by shape, :func:`decode` rebuilds each shape's records with C-level
    iterators: on the benchmark's mix (4 shapes) 1,000 changed records decode in ~0.7 us a record
    against 3.0 record by record, and compress to 51.1 against 51.6 KB."""
    lines = frame.split(_SEP)
    if lines[-1] != b"":
        return None
    lines.pop()
    shapes: dict[tuple[str, ...], int] = {}
    shape_of: list[int] = []
    recs: list[dict] = []
    try:
        for line in lines:
            rec = orjson.loads(line)
            if type(rec) is not dict or list(rec) != _TOP or type(rec["fields"]) is not dict:
                return None
            shape_of.append(shapes.setdefault(tuple(rec["fields"]), len(shapes)))
            recs.append(rec)
    except orjson.JSONDecodeError:
        return None
    created: list[bytes] = []
    ids: list[bytes] = []
    cols: dict[str, list[bytes]] = {}
    for i in _shape_order(shape_of):
        rec = recs[i]
        created.append(orjson.dumps(rec["createdTime"]))
        ids.append(orjson.dumps(rec["id"]))
        for k, v in rec["fields"].items():
            cols.setdefault(k, []).append(orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    # the shapes of the records last: in the middle, zstd coded them in 1.0 KB against 0.4 KB
    doc = [[list(s) for s in shapes], _SEP.join(created), _SEP.join(ids),
           [[k, _SEP.join(v)] for k, v in cols.items()], shape_of]
    out = msgpack.packb(doc, use_bin_type=True)
    return out if decode(out) == frame else None


def decode(payload: bytes) -> bytes:
    """The NDJSON frame a column frame's payload stands for, byte for byte: each shape's records
    joined from the columns with no Python step per record, then put back in frame order."""
    try:
        shapes, created, ids, cols, shape_of = msgpack.unpackb(payload, raw=False)
        created_l, ids_l = created.split(_SEP), ids.split(_SEP)
        if not (len(created_l) == len(ids_l) == max(len(shape_of), 1)):
            raise ValueError("columns of different lengths")
        created_it, ids_it = iter(created_l), iter(ids_l)
        values = {k: iter(v.split(_SEP)) for k, v in cols}
        order = _shape_order(shape_of)
        grouped: list[bytes] = []
        for s, run in groupby(shape_of[i] for i in order):
            n = sum(1 for _ in run)
            keys = shapes[s]
            streams = [repeat(b'{"createdTime":', n), islice(created_it, n)]
            for i, k in enumerate(keys):
                streams += [repeat((b',"fields":{' if i == 0 else b",") + orjson.dumps(k) + b":", n),
                            islice(values[k], n)]
            streams += [repeat(b'},"id":' if keys else b',"fields":{},"id":', n), islice(ids_it, n),
                        repeat(b"}\n", n)]
            grouped += map(b"".join, zip(*streams, strict=True))
        # grouped[j] is the record at frame position order[j]: back to frame order
        back = sorted(range(len(order)), key=order.__getitem__)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, msgpack.UnpackException) as e:
        raise ColumnsDamaged(f"a column frame does not decode ({type(e).__name__})") from e
    return b"".join([grouped[j] for j in back])


def compress(cctx: zstandard.ZstdCompressor, frame: bytes) -> bytes:
    """A small batch's stored frame: :data:`TAG` and its columns compressed, or (records of
    another shape) the NDJSON frame compressed as it is."""
    cols = encode(frame)
    return cctx.compress(frame) if cols is None else TAG + cctx.compress(cols)


def is_columns(stored: bytes | memoryview) -> bool:
    return bytes(stored[:4]) == TAG


def inflate(stored: bytes | memoryview) -> bytes:
    """The NDJSON frame of an opened column frame (:func:`is_columns`)."""
    try:
        payload = zstandard.ZstdDecompressor().decompress(stored[len(TAG):])
    except zstandard.ZstdError as e:
        raise ColumnsDamaged(f"a column frame does not decompress ({e})") from e
    return decode(payload)


def frames(items: list[tuple[bytes, bytes]], level: int, end: bytes) -> list[tuple[bytes, list[tuple[bytes, int, int]]]]:
    """(hash, record bytes) as column frames (build_frames' result): a table's small batch of new
    records, or the live records of one prune rewrites (both format 4)."""
    cctx = zstandard.ZstdCompressor(level=level)
    return build_frames(items, lambda raws: [compress(cctx, r) for r in raws], frame_raw=FRAME_RAW, end=end)
