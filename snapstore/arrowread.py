"""The one Arrow reader of a snapshot's table: stored record blobs to typed Arrow record batches,
for ``snapstore sql`` and for the export.

The store's bytes come through :class:`snapstore.store.reader.BlobReader` (the one decoder of
stored frames, NDJSON or format 4's column frames, which decode to the same NDJSON bytes). A chunk
of canonical records is then parsed by Arrow's C++ JSON reader straight into typed columns for
every field whose JSON shape Arrow reads exactly (text, numbers, checkboxes, dates as text then one
vectorised cast, lists of them), with the schema given explicitly so that nothing is inferred: a
cell of another shape fails the parse, and the chunk is then typed the checked way, value by value,
exactly as the Parquet export types it (nulls and warnings for values the column cannot hold).
Fields whose cells are objects (attachments, collaborators, barcodes, buttons, JSON-text columns)
are always typed the checked way: Arrow's reader would drop an object's unknown keys silently,
where the export reports them.

Columns are named and typed as the Parquet export names and types them
(:func:`snapstore_exporters.parquet_writer.arrow_schema`): ``_id``, ``_createdTime``, then one column per
field of the snapshot's own schema, with the field names of that snapshot.
"""

from __future__ import annotations

import gc
import io
import re
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.json as pa_json
from snapstore_exporters import values as V
from snapstore_exporters.parquet_writer import _TS, _Columns, _schema_of, cast_times, encode_checked
from snapstore_exporters.stream import Batch, TableMeta, TableSpec, plan

from snapstore.canonical import loads
from snapstore.store import BlobReader, SnapshotInfo, Store
from snapstore.store.reader import LocatedChunk

#: Column kinds whose JSON cells Arrow's C++ reader types exactly as the checked path does (a
#: mismatch fails the whole parse, never a silent coercion: measured, pyarrow refuses a number for a
#: string column, 3.0 for an int64 one, a string inside a list of numbers).
_CPP_KINDS = {V.TEXT: pa.string(), V.FLOAT: pa.float64(), V.INT: pa.int64(), V.BOOL: pa.bool_(),
              V.DATE: pa.string(), V.DATETIME: pa.string(), V.STR_LIST: pa.list_(pa.string()),
              V.FLOAT_LIST: pa.list_(pa.float64()), V.BOOL_LIST: pa.list_(pa.bool_()),
              V.DATE_LIST: pa.list_(pa.string()), V.DATETIME_LIST: pa.list_(pa.string())}
_TIMES = (V.DATE, V.DATETIME)
_TIME_LISTS = (V.DATE_LIST, V.DATETIME_LIST)
_PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)

#: How many fields of a chunk may be moved to the checked path before the chunk goes there whole.
_MAX_RETRIES = 8
_BAD_COLUMN = re.compile(r"Column\(/fields/([^/)\[]+)")
_PARSE_SCHEMAS: dict[tuple, pa.Schema] = {}


def _parse_schema(spec: TableSpec, skip: frozenset[str]) -> pa.Schema:
    """What Arrow's JSON reader is told to read: the record's id and time, and of its fields only
    those of the kinds it types exactly, but ``skip`` (every other key is skipped by the C++ parser)."""
    key = (spec.snapshot_id, spec.table_id, spec.field_ids, spec.kinds, skip)
    schema = _PARSE_SCHEMAS.get(key)
    if schema is None:
        cells = [pa.field(fid, _CPP_KINDS[kind]) for fid, kind in zip(spec.field_ids, spec.kinds, strict=True)
                 if kind in _CPP_KINDS and fid not in skip]
        if len(_PARSE_SCHEMAS) > 256:
            _PARSE_SCHEMAS.clear()
        schema = _PARSE_SCHEMAS[key] = pa.schema([
            ("createdTime", pa.string()), ("fields", pa.struct(cells)), ("id", pa.string())])
    return schema


#: Per table, the fields found not to fit the C++ parse in an earlier chunk (an error value of a
#: formula in a number column): the next chunks skip them at once instead of failing first.
_SKIPS: dict[tuple[str, str], frozenset[str]] = {}


def _parse(spec: TableSpec, raws: list[bytes]) -> tuple[pa.Table, frozenset[str]] | None:
    """The chunk through Arrow's JSON reader and the fields left to the checked path (those whose
    cells do not all fit their column, named by the parser's error), or None when that fails."""
    data = b"\n".join(raws)
    read = pa_json.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data) + 1))
    key = (spec.snapshot_id, spec.table_id)
    skip = _SKIPS.get(key, frozenset())
    for _ in range(_MAX_RETRIES):
        options = pa_json.ParseOptions(explicit_schema=_parse_schema(spec, skip), unexpected_field_behavior="ignore")
        try:
            table = pa_json.read_json(io.BytesIO(data), read_options=read, parse_options=options)
        except _PARSE_ERRORS as e:
            m = _BAD_COLUMN.search(str(e))
            if m is None or m.group(1) in skip:
                return None
            skip = skip | {m.group(1)}
            continue
        if table.num_rows != len(raws):
            return None
        if len(_SKIPS) > 256:
            _SKIPS.clear()
        _SKIPS[key] = skip
        return table, skip
    return None


class Typed:
    """One chunk of a table as a typed Arrow record batch, and the values its columns could not hold."""

    __slots__ = ("batch", "warnings")

    def __init__(self, batch: pa.RecordBatch, warnings: list) -> None:
        self.batch = batch
        self.warnings = warnings  # (format, column, message), as Batch.warn reports them


def _checked(spec: TableSpec, raws: list[bytes], records: list[dict] | None) -> Typed:
    if records is None:
        enabled = gc.isenabled()
        gc.disable()  # many small acyclic containers: the cycle collector only costs here
        try:
            records = [loads(r) for r in raws]
        finally:
            if enabled:
                gc.enable()
    batch = Batch(spec, records)
    return Typed(_one_batch(encode_checked(batch)), batch.warnings)


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    table = table.combine_chunks()
    batches = table.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def typed_batch(spec: TableSpec, raws: list[bytes], records: list[dict] | None = None) -> Typed:
    """A chunk of canonical record blobs as a typed record batch (the Parquet export's schema).
    ``records``: the same blobs already parsed, when the caller has them (the export, attachment
    paths added): the object-shaped columns are then typed from them."""
    schema = _schema_of(spec)
    found = _parse(spec, raws)
    if found is None:
        return _checked(spec, raws, records)
    parsed, skip = found
    fields = parsed.column("fields").combine_chunks()
    ids = parsed.column("id").combine_chunks()
    slow = bool(skip) or any(kind not in _CPP_KINDS for kind in spec.kinds)
    if records is None:
        records = [loads(r) for r in raws] if slow else []
    batch = Batch(spec, records)
    cols = _Columns(batch, schema)
    arrays: list[pa.Array] = [ids, _times(cols, 1, parsed.column("createdTime").combine_chunks(), _TS, ids)]
    for i, (fid, kind) in enumerate(zip(spec.field_ids, spec.kinds, strict=True)):
        typ = schema.field(i + 2).type
        if kind in _CPP_KINDS and fid not in skip:
            col = fields.field(fid)
            if kind in _TIMES:
                col = _times(cols, i + 2, col, typ, ids)
            elif kind in _TIME_LISTS:
                col = _time_lists(cols, i + 2, kind, col, typ, ids)
            arrays.append(col)
        else:
            arrays.append(cols.column(i + 2, kind, batch.column(fid)))
    return Typed(pa.RecordBatch.from_arrays(arrays, schema=schema), batch.warnings)


def _with_ids(cols: _Columns, ids: pa.Array) -> _Columns:
    """The record ids a warning names (only converted to Python when a value is reported)."""
    if len(cols.ids) != len(ids):
        cols.ids = ids.to_pylist()
    return cols


def _times(cols: _Columns, col: int, strings: pa.Array, typ: pa.DataType, ids: pa.Array) -> pa.Array:
    """ISO strings to dates or timestamps in one cast; the checked way (value by value, each bad one
    null and reported) when the cast fails."""
    try:
        return strings.cast(typ)
    except _PARSE_ERRORS:
        return cast_times(strings.to_pylist(), typ, _with_ids(cols, ids)._reporter(col))


def _time_lists(cols: _Columns, col: int, kind: str, lists: pa.Array, typ: pa.DataType, ids: pa.Array) -> pa.Array:
    try:
        return lists.cast(typ)
    except _PARSE_ERRORS:
        return _with_ids(cols, ids).time_lists(col, kind, lists.to_pylist(), typ)


# ---- a snapshot's table ------------------------------------------------------------------------


def table_meta(store: Store, snap: SnapshotInfo, base_id: str, table_id: str) -> TableMeta:
    """The table as the export plans it: the snapshot's schema, column names, stored counts."""
    bases = plan(store, snap, [base_id], [table_id])
    return bases[0].tables[0]


def spec_of(table: TableMeta, snap: SnapshotInfo) -> TableSpec:
    return TableSpec.of(table, snap.full_id)


def chunk_batches(reader: BlobReader, spec: TableSpec, chunks: Iterator[LocatedChunk]) -> Iterator[Typed]:
    """Each located chunk read through the store's reader and typed."""
    for chunk in chunks:
        yield typed_batch(spec, reader.read_chunk(chunk))


def table_batches(store: Store, snap: SnapshotInfo, table: TableMeta, *, chunk: int = 4096,
                  reader: BlobReader | None = None) -> Iterator[pa.RecordBatch]:
    """The snapshot's records of one table as typed record batches, in storage order; memory
    flat with table size."""
    spec = spec_of(table, snap)
    reader = reader or BlobReader(store)
    chunks = store.record_chunks(snap, table.base.base_id, table.table_id, size=chunk)
    for typed in chunk_batches(reader, spec, chunks):
        yield typed.batch


def table_reader(store: Store, snap: SnapshotInfo, table: TableMeta, *, chunk: int = 4096) -> pa.RecordBatchReader:
    """:func:`table_batches` as a RecordBatchReader (what DuckDB and Arrow's writers consume)."""
    schema = _schema_of(spec_of(table, snap))
    return pa.RecordBatchReader.from_batches(schema, table_batches(store, snap, table, chunk=chunk))


__all__ = ["Typed", "chunk_batches", "spec_of", "table_batches", "table_meta", "table_reader", "typed_batch"]
