"""Column frames: a record frame stored field by field instead of record by record (format 4).

What a store grows by every day is a table's few changed records, written as one small frame
with no earlier version to refer to. zstd finds less to share between whole records than
between the values of one field laid end to end: on the benchmark's 1,000 daily changed records
(bench/bench_vs_restic.py), one NDJSON frame at zstd 15 with the table's dictionary is 59.0 KB,
the same records as columns at zstd 19 are 51.6 KB, and 50.5 KB (-14%) ordered by shape
(:func:`by_shape`); 3 column frames of 128 KiB raw were 55.8 KB, so a small batch is one frame
(at most 1 MiB raw). Encoding costs ~6 ms and decoding ~0.6 ms per 1,000 records; a table's large
batches (its first snapshot) stay NDJSON, which reading slices without parsing.

A column frame decodes back to exactly the NDJSON frame it replaces, so everything after the
reader (offsets of records in their frame, record ids, the catalog) is the same for both. The
writer checks that before it keeps one (:func:`encode` returns None otherwise), and a frame of
records of any other shape stays NDJSON. Layout in docs/FORMAT.md ("Column frames").
"""

from __future__ import annotations

from itertools import chain, groupby, islice, repeat

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


def encode(frame: bytes) -> bytes | None:
    """The columns of an NDJSON frame of canonical records, or None if it holds anything else
    (or would not decode back to the same bytes).

    msgpack ``[shapes, shape of each record, createdTime values, ids, [[field id, values]...]]``:
    a shape is the record's field ids in canonical order; each value is its canonical JSON, and
    the values of one column are joined by newlines."""
    lines = frame.split(_SEP)
    if lines[-1] != b"":
        return None
    lines.pop()
    shapes: dict[tuple[str, ...], int] = {}
    shape_of: list[int] = []
    created: list[bytes] = []
    ids: list[bytes] = []
    cols: dict[str, list[bytes]] = {}
    try:
        for line in lines:
            rec = orjson.loads(line)
            if type(rec) is not dict or list(rec) != _TOP or type(rec["fields"]) is not dict:
                return None
            fields = rec["fields"]
            shape_of.append(shapes.setdefault(tuple(fields), len(shapes)))
            created.append(orjson.dumps(rec["createdTime"]))
            ids.append(orjson.dumps(rec["id"]))
            for k, v in fields.items():
                cols.setdefault(k, []).append(orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    except orjson.JSONDecodeError:
        return None
    doc = [[list(s) for s in shapes], shape_of, _SEP.join(created), _SEP.join(ids),
           [[k, _SEP.join(v)] for k, v in cols.items()]]
    out = msgpack.packb(doc, use_bin_type=True)
    return out if decode(out) == frame else None


def by_shape(batch: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """(hash, record bytes) ordered by the record's field ids, stably: what a column frame's
    records are written in, so that :func:`decode` rebuilds each run of one shape with C-level
    iterators: on the benchmark's mix (4 shapes), decoding 1,000 changed records takes 0.6 us a
    record against 3.0 in listing order, and the frame is 50.5 against 51.6 KB; sorting, 1.3 ms."""
    def shape(item: tuple[bytes, bytes]) -> tuple[str, ...]:
        try:
            return tuple(orjson.loads(item[1]).get("fields") or ())
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            return ()
    return sorted(batch, key=shape)


def decode(payload: bytes) -> bytes:
    """The NDJSON frame a column frame's payload stands for, byte for byte. Each run of records
    of one shape is joined from its columns without a Python step per record."""
    try:
        shapes, shape_of, created, ids, cols = msgpack.unpackb(payload, raw=False)
        created_l, ids_l = created.split(_SEP), ids.split(_SEP)
        if not (len(created_l) == len(ids_l) == max(len(shape_of), 1)):
            raise ValueError("columns of different lengths")
        created_it, ids_it = iter(created_l), iter(ids_l)
        values = {k: iter(v.split(_SEP)) for k, v in cols}
        parts: list[bytes] = []
        for s, run in groupby(shape_of):
            n = sum(1 for _ in run)
            keys = shapes[s]
            streams = [repeat(b'{"createdTime":', n), islice(created_it, n)]
            for i, k in enumerate(keys):
                streams += [repeat((b',"fields":{' if i == 0 else b",") + orjson.dumps(k) + b":", n),
                            islice(values[k], n)]
            streams += [repeat(b'},"id":' if keys else b',"fields":{},"id":', n), islice(ids_it, n),
                        repeat(b"}\n", n)]
            parts.append(b"".join(chain.from_iterable(zip(*streams, strict=True))))
    except (ValueError, TypeError, KeyError, IndexError, msgpack.UnpackException) as e:
        raise ColumnsDamaged(f"a column frame does not decode ({type(e).__name__})") from e
    return b"".join(parts)


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
    return build_frames(by_shape(items), lambda raws: [compress(cctx, r) for r in raws], frame_raw=FRAME_RAW, end=end)
