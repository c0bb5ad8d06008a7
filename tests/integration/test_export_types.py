"""Formula, rollup and lookup columns typed from their result type (``options.result``) in SQLite and
Parquet: real queries sort and aggregate numerically, text has no JSON quotes, error values are null
and counted in the warnings."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import duckdb
import emuexport
import pyarrow.parquet as pq
import pytest
from snapstore_exporters import values as V
from snapstore_exporters.export import export_snapshot
from snapstore_exporters.parquet_writer import ParquetWriter
from snapstore_exporters.sqlite_writer import _rows
from snapstore_exporters.stream import Batch, TableSpec

TABLE = "Projects"
NUMERIC = ("Double score", "Tasks total quantity")  # a numeric formula, a numeric rollup


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("types")
    store, info = emuexport.snapshot_store(root / "store", comments=False)
    res = export_snapshot(store, info, root / "out", formats="json,sqlite,parquet")
    row = next(r for r in res.tables if r["table"] == TABLE)
    records = json.loads((res.path / row["files"]["json"]).read_text())
    return res, row, records


def _numbers(records, column):
    return [r["fields"][column] for r in records if type(r["fields"].get(column)) in (int, float)]


def test_the_data_would_sort_wrongly_as_text(exported):
    _res, _row, records = exported
    for column in NUMERIC:
        nums = _numbers(records, column)
        assert len(nums) == len(records)
        assert max(json.dumps(v) for v in nums) != json.dumps(max(nums)), column


@pytest.mark.parametrize("engine", ["sqlite3", "duckdb"])
@pytest.mark.parametrize("column", NUMERIC)
def test_max_and_order_by_are_numeric(exported, engine, column):
    res, row, records = exported
    nums = _numbers(records, column)
    if engine == "sqlite3":
        con = sqlite3.connect(res.path / row["files"]["sqlite"])
        source = f'"{TABLE}"'
        assert con.execute(f'SELECT DISTINCT typeof("{column}") FROM {source}').fetchall() == [("real",)]
    else:
        con = duckdb.connect()
        source = f"read_parquet('{res.path / row['files']['parquet']}')"
    assert con.execute(f'SELECT max("{column}") FROM {source}').fetchone()[0] == max(nums)
    top = [r[0] for r in con.execute(f'SELECT "{column}" FROM {source} ORDER BY "{column}" DESC LIMIT 5').fetchall()]
    assert top == sorted(nums, reverse=True)[:5]


@pytest.mark.parametrize("engine", ["sqlite3", "duckdb"])
def test_text_formula_has_no_quotes(exported, engine):
    res, row, records = exported
    want = sorted(r["fields"]["Label"] for r in records)
    if engine == "sqlite3":
        con = sqlite3.connect(res.path / row["files"]["sqlite"])
        got = [r[0] for r in con.execute(f'SELECT "Label" FROM "{TABLE}" ORDER BY "Label"')]
    else:
        got = [r[0] for r in duckdb.sql(
            f"""SELECT "Label" FROM read_parquet('{res.path / row['files']['parquet']}') ORDER BY "Label" """).fetchall()]
    assert got == want and not any(g.startswith('"') for g in got)


def test_lookup_of_numbers_is_a_list_of_numbers(exported):
    res, row, records = exported
    table = pq.read_table(res.path / row["files"]["parquet"])
    assert str(table.schema.field("Tasks ratios").type) == "list<element: double>"
    assert str(table.schema.field("Tasks names").type) == "list<element: string>"
    got = dict(zip(table.column("_id").to_pylist(), table.column("Tasks ratios").to_pylist(), strict=True))
    for r in records:
        want = r["fields"].get("Tasks ratios")
        assert got[r["id"]] == (None if want is None else [None if V.is_error(x) else x for x in want])
    # SQLite: a JSON array of numbers, usable with json_each
    con = sqlite3.connect(res.path / row["files"]["sqlite"])
    total = con.execute(f'SELECT sum(j.value) FROM "{TABLE}", json_each("{TABLE}"."Tasks ratios") j').fetchone()[0]
    assert total == pytest.approx(sum(x for v in got.values() if v for x in v if x is not None))


def test_error_values_are_null_and_counted(exported):
    res, row, records = exported
    errors = sum(V.is_error(r["fields"].get("Formula NaN")) for r in records)
    assert errors > 0
    con = sqlite3.connect(res.path / row["files"]["sqlite"])
    assert con.execute(f'SELECT count("Formula NaN") FROM "{TABLE}"').fetchone()[0] == len(records) - errors
    table = pq.read_table(res.path / row["files"]["parquet"])
    assert table.column("Formula NaN").null_count == errors
    summary = json.loads((res.path / "reports" / "summary.json").read_text())
    counts = {(c["format"], c["column"]): c["count"] for c in summary["warning_counts"] if c["table"].endswith(TABLE)}
    assert counts[("sqlite", "Formula NaN")] == counts[("parquet", "Formula NaN")] == errors


def _spec(fields: list[dict]) -> TableSpec:
    return TableSpec(base_id="app1", base_name="B", table_id="tbl1", name="T", snapshot_id="s",
                     field_ids=tuple(f["id"] for f in fields), names=tuple(f["name"] for f in fields),
                     types=tuple(f["type"] for f in fields), kinds=tuple(V.column_kind(f) for f in fields),
                     columns=("_id", "_createdTime", *(f["name"] for f in fields)), attachment_fields=())


def _f(fid, kind, result):
    return {"id": fid, "name": fid, "type": kind, "options": {"result": result}}


FIELDS = [
    _f("day", "formula", {"type": "date"}), _f("at", "formula", {"type": "dateTime"}),
    _f("ok", "formula", {"type": "checkbox"}), _f("days", "multipleLookupValues", {"type": "date"}),
    _f("flags", "multipleLookupValues", {"type": "checkbox"}), _f("n", "rollup", {"type": "number"}),
    _f("odd", "formula", {"type": "multipleAttachments"}),
]


def test_dates_booleans_and_lists_are_typed():
    spec = _spec(FIELDS)
    assert spec.kinds == (V.DATE, V.DATETIME, V.BOOL, V.DATE_LIST, V.BOOL_LIST, V.FLOAT, V.JSON)
    err = {"error": "#ERROR!"}
    records = [
        {"id": "rec1", "createdTime": "2024-01-01T00:00:00.000Z", "fields": {
            "day": "2024-05-01", "at": "2024-05-01T09:30:00.000Z", "ok": True, "days": ["2024-01-02", err],
            "flags": [True, False], "n": 3, "odd": {"x": 1}}},
        {"id": "rec2", "createdTime": "2024-01-01T00:00:00.000Z", "fields": {
            "day": err, "at": {"specialValue": "NaN"}, "ok": err, "days": ["nope"], "n": err}},
    ]
    batch = Batch(spec, records)
    table = ParquetWriter.encode(batch)
    types = {f.name: str(f.type).replace("<item:", "<element:") for f in table.schema}
    assert types["day"] == "date32[day]" and types["at"] == "timestamp[ms, tz=UTC]" and types["ok"] == "bool"
    assert types["days"] == "list<element: date32[day]>" and types["flags"] == "list<element: bool>"
    assert types["n"] == "double" and types["odd"] == "string"
    rows = table.to_pylist()
    assert rows[0]["day"] == dt.date(2024, 5, 1) and rows[0]["at"] == dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC)
    assert rows[0]["days"] == [dt.date(2024, 1, 2), None] and rows[0]["flags"] == [True, False]
    assert rows[0]["ok"] is True and rows[0]["n"] == 3.0 and json.loads(rows[0]["odd"]) == {"x": 1}
    assert [rows[1][c] for c in ("day", "at", "ok", "days", "n")] == [None, None, None, [None], None]
    parquet_warnings = [w for w in batch.warnings if w[0] == "parquet"]
    assert {w[1] for w in parquet_warnings} == {"day", "at", "ok", "days", "n"} and len(parquet_warnings) == 6

    batch = Batch(spec, records)
    rows, _links = _rows(batch)
    assert rows[0][2:] == ("2024-05-01", "2024-05-01T09:30:00.000Z", 1, '["2024-01-02",null]', "[true,false]", 3,
                           '{"x":1}')
    assert rows[1][2:] == (None, None, None, '["nope"]', None, None, None)
    assert sorted(w[1] for w in batch.warnings) == ["at", "day", "days", "n", "ok"]


def test_the_yaml_emitter_writes_the_dumpers_bytes():
    """The YAML export writes records itself (exporters/yaml_writer.py) where it can prove what the
    dumper would write: for any JSON shape and any string, its bytes are the dumper's."""
    import random

    from snapstore_exporters.yaml_writer import dump_records, emit_records

    rng = random.Random(1)
    pool = list("aZé -_:#'\"\n\t\\{}[],&*!|>%@`?=~.0123456789") + ["\u2028", "\x85", "\u00a0", "😀", "\ufeff", "\x00",
                                                                    "\x7f", "\r"]
    words = ["yes", "No", "null", "~", "true", "1e3", "0x1f", "2024-01-01", "12:30", ".inf", "<<", "=", "-", "- a",
             "a: b", "a #b", "a#b", "Ok", "2024-01-01T00:00:00.000Z", "2024-13-45T25:61:00Z", "x" * 200, "y " * 600]
    fast = 0
    for _ in range(5000):
        s = rng.choice(words) if rng.random() < 0.3 else "".join(rng.choice(pool) for _ in range(rng.randint(0, 8)))
        if rng.random() < 0.3:
            s = rng.choice(["A", "x", "É"]) + s
        n = rng.choice([1, -2.5, 1e20, 1e-7, float("nan"), float("-inf"), True, False, None, 0.1, 10**20])
        doc = [{"k": s, s or "e": [s, {"x": s, "y": [s, []]}, [s, {}]], "n": n, "l": [[], {}, [[s]], s]}, s, [n]]
        assert emit_records(doc) == dump_records(doc), repr(s)
        fast += "\n" not in s
    assert fast > 1000


def test_the_arrow_reader_types_as_the_checked_conversion_does(tmp_path):
    """Parquet chunks are typed by the Arrow reader (C++ JSON parsing of the stored bytes); for
    every type, error values, bad dates and object cells included, its columns, values and warnings
    are those of the value-by-value conversion it replaces."""
    from fixtures_alltypes import build
    from snapstore_exporters.parquet_writer import encode_checked
    from snapstore_exporters.stream import plan

    from snapstore.arrowread import _parse, typed_batch
    from snapstore.canonical import loads
    from snapstore.store import BlobReader

    stores = [build(tmp_path / "all", extras=True),
              emuexport.snapshot_store(tmp_path / "emu", records_per_table=120, attachment_share=0.2)]
    fast = 0
    for store, snap in stores:
        for base in plan(store, snap):
            for t in base.tables:
                spec = TableSpec.of(t, snap.full_id)
                for chunk in store.record_chunks(snap, base.base_id, t.table_id, size=50):
                    raws = BlobReader(store).read_chunk(chunk)
                    want = Batch(spec, [loads(r) for r in raws])
                    expected = encode_checked(want)
                    got = typed_batch(spec, raws)
                    assert got.batch.schema.equals(expected.schema, check_metadata=True)
                    assert got.batch.to_pylist() == expected.to_pylist()
                    assert sorted(got.warnings) == sorted(want.warnings)
                    fast += _parse(spec, raws) is not None
    assert fast > 10  # chunks the C++ parser read (with fields left to the checked path where needed)
