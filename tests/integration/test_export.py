"""snapstore export: every format read back with its own reader equals the snapshot, field for field
(within what each format can hold, as documented in the exporters' docstrings and the README)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sqlite3
from pathlib import Path

import duckdb
import fixtures_alltypes as F
import pyarrow.parquet as pq
import pytest
from conftest import TEST_PASSWORD
from emuexport import read_items
from snapstore_exporters import values as V
from snapstore_exporters.export import FORMATS, export_snapshot, verify_manifest
from snapstore_exporters.values import split_csv_list


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    store, info = F.build(root / "store")
    res = export_snapshot(store, info, root / "out")
    return store, info, res


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A store holding only the all-types base; tests that add snapshots work on a copy."""
    root = tmp_path_factory.mktemp("plain")
    _store, info = F.build(root / "store", hostile=False)
    return root / "store", info


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory):
    """The same store, encrypted (as `snapstore init` makes them): for the crash tests."""
    from snapstore.store import Store

    root = tmp_path_factory.mktemp("encrypted")
    Store.init(root / "store", password=TEST_PASSWORD)
    store, info = F.build(root / "store", hostile=False)  # (reopened with $SNAPSTORE_PASSWORD)
    assert store.encrypted
    return root / "store", info


@pytest.fixture(params=["plain", "encrypted"])
def either(request):
    """The all-types store, plain and encrypted: a killed export must leave both as they were."""
    return request.getfixturevalue(request.param)


def _intact(store, info) -> None:
    """The store still reads the snapshot whole, and verify --read-data finds nothing wrong."""
    from snapstore.ops.verify import verify

    rep = verify(store, read_data=True)
    assert rep.ok and not rep.warnings, rep.to_dict()
    for table_id in (F.T_MAIN, F.T_DIST):
        got = {r["id"]: r for r in store.records(info, F.BASE, table_id)}
        assert got == F.expected(table_id)


def _copy(plain, dest: Path):
    import shutil

    from snapstore.store import Store

    shutil.copytree(plain[0], dest)
    return Store.open(dest), plain[1]


def _named(table_id: str) -> dict[str, dict]:
    """The snapshot's records with fields by name (what every format must reproduce)."""
    by_id = F.fields_by_id(table_id)
    out = {}
    for rid, rec in F.expected(table_id).items():
        out[rid] = {"id": rid, "createdTime": rec["createdTime"],
                    "fields": {by_id[fid]["name"]: v for fid, v in rec["fields"].items()}}
    return out


def _pop_paths(value, root: Path):
    """Check the exported file of each attachment object in a cell, then drop the added ``path``."""
    if isinstance(value, list):
        for a in value:
            if V.is_attachment(a):
                p = a.pop("path")
                assert p.startswith("attachments/"), p
                assert (root / p).read_bytes() == F.ATTACHMENTS[a["id"]][1]
    return value


def _strip_paths(rec: dict, root: Path) -> dict:
    for v in rec["fields"].values():
        _pop_paths(v, root)
    return rec


def _file(res, fmt: str, table: str = "Projects") -> Path:
    row = next(t for t in res.tables if t["table"] == table and t["base_id"] == F.BASE)
    return res.path / row["files"][fmt]


@pytest.mark.parametrize("table_id,name", [(F.T_MAIN, "Projects"), (F.T_DIST, "Districts")])
@pytest.mark.parametrize("fmt", ["json", "ndjson", "yaml"])
def test_record_shaped_formats_round_trip(exported, fmt, table_id, name):
    _store, _info, res = exported
    recs = read_items(_file(res, fmt, name))
    got = {r["id"]: _strip_paths(r, res.path) for r in recs}
    assert got == _named(table_id)
    # fields in schema order
    order = [f["name"] for f in (F.MAIN_FIELDS if table_id == F.T_MAIN else F.DIST_FIELDS)]
    for r in recs:
        names = list(r["fields"])
        assert names == [n for n in order if n in names]


def _csv_decode(field: dict, cell: str, value, guard: bool = True):
    """Check one CSV cell against the snapshot value by the documented flattening rules."""
    if value is None or value == []:
        assert cell == ""
        return
    if isinstance(value, bool):
        assert cell == ("true" if value else "false")
    elif isinstance(value, int | float):
        assert float(cell) == value
    elif isinstance(value, str):
        expect = V.guard_formula(value) if guard else value
        assert cell == expect
    elif isinstance(value, list) and all(isinstance(x, str | int | float) for x in value):
        items = split_csv_list(cell if not (guard and cell.startswith("'")) else cell[1:])
        assert items == [str(x) for x in value]
    elif isinstance(value, list) and all(V.is_attachment(x) for x in value):
        paths = split_csv_list(cell)
        assert [Path(p).name.split("_", 1)[0] for p in paths] == [a["id"] for a in value]
    elif isinstance(value, list) and all(V.is_collaborator(x) for x in value):
        assert split_csv_list(cell) == [x.get("email") or x.get("name") for x in value]
    elif V.is_collaborator(value):
        assert cell == value["email"]
    else:
        assert json.loads(cell) == value


@pytest.mark.parametrize("table_id,name", [(F.T_MAIN, "Projects"), (F.T_DIST, "Districts")])
def test_csv_round_trip(exported, table_id, name):
    _store, _info, res = exported
    with open(_file(res, "csv", name), encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    fields = F.MAIN_FIELDS if table_id == F.T_MAIN else F.DIST_FIELDS
    assert header[:2] == ["_id", "_createdTime"]
    assert len(header) == 2 + len(fields)  # a column per field, even when a field is empty everywhere
    expected = F.expected(table_id)
    assert sorted(r[0] for r in body) == sorted(expected)
    for row in body:
        rec = expected[row[0]]
        assert row[1] == rec["createdTime"]
        for f, cell in zip(fields, row[2:], strict=True):
            _csv_decode(f, cell, rec["fields"].get(f["id"]))


def test_csv_guard_and_flag(exported, tmp_path):
    store, info, res = exported
    with open(_file(res, "csv"), encoding="utf-8-sig", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["_id"] == F.R3)
    assert row["Name"].startswith("'=") and row["Notes"].startswith("'+") and row["Rich"] == "'-2"
    assert row["Email"] == "'@SUM(A1)" and row["Site"] == "'\tTab" and row["Phone"] == "'\rCR"
    assert row["Qty"] == "-5" and row["Price"] == "-0.5"  # numbers are never prefixed
    res2 = export_snapshot(store, info, tmp_path, formats="csv", bases=[F.BASE], csv_guard=False)
    with open(_file(res2, "csv"), encoding="utf-8-sig", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["_id"] == F.R3)
    assert row["Name"] == '=HYPERLINK("http://evil","x")' and row["Rich"] == "-2"


def _iso_ms(d: dt.datetime) -> str:
    return d.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _typed_want(kind: str, v):
    """What a typed column holds for a cell: a computed field's error value is null (JSON text keeps it)."""
    if kind in V.LIST_ITEM and type(v) is list:
        return [None if V.is_error(x) else x for x in v]
    return None if kind != V.JSON and V.is_error(v) else v


def _parquet_back(kind: str, v):
    """A Parquet cell converted back to the API's JSON shape."""
    if v is None:
        return None
    if kind == V.DATETIME:
        return _iso_ms(v)
    if kind == V.DATE:
        return v.isoformat()
    if kind == V.JSON:
        return json.loads(v)
    if kind in (V.COLLABORATOR, V.BARCODE, V.BUTTON):
        return {k: x for k, x in v.items() if x is not None or kind != V.COLLABORATOR}
    if kind == V.COLLABORATORS:
        return [{k: x for k, x in c.items() if x is not None} for c in v]
    if kind == V.ATTACHMENTS:
        out = []
        for a in v:
            a = {k: x for k, x in a.items() if x is not None}
            if "thumbnails" in a:
                a["thumbnails"] = json.loads(a["thumbnails"])
            out.append(a)
        return out
    return v


@pytest.mark.parametrize("table_id,name", [(F.T_MAIN, "Projects"), (F.T_DIST, "Districts")])
def test_parquet_round_trip(exported, table_id, name):
    _store, _info, res = exported
    path = _file(res, "parquet", name)
    table = pq.read_table(path)
    fields = F.MAIN_FIELDS if table_id == F.T_MAIN else F.DIST_FIELDS
    assert table.column_names == ["_id", "_createdTime"] + [f["name"] for f in fields]
    expected = F.expected(table_id)
    for row in table.to_pylist():
        rec = expected[row["_id"]]
        assert _iso_ms(row["_createdTime"]) == rec["createdTime"]
        for f in fields:
            kind = V.column_kind(f)
            got = _parquet_back(kind, row[f["name"]])
            want = _typed_want(kind, rec["fields"].get(f["id"]))
            assert _pop_paths(got, res.path) == want, (f["name"], got, want)
    assert len(table) == len(expected)
    # typed columns, readable by DuckDB
    schema = table.schema
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()[0]
    assert n == len(expected)
    if table_id == F.T_MAIN:
        assert str(schema.field("When").type) == "timestamp[ms, tz=UTC]" and str(schema.field("Day").type) == "date32[day]"
        assert str(schema.field("Done").type) == "bool" and str(schema.field("Tags").type) == "list<element: string>"
        assert str(schema.field("Qty").type) == "double" and str(schema.field("Stars").type) == "int64"
        assert str(schema.field("Owner").type) == "struct<id: string, email: string, name: string>"
        row = con.execute(f"SELECT sum(Qty), max(\"When\")::VARCHAR, max(Day)::VARCHAR FROM read_parquet('{path}')").fetchone()
        assert row == (-2, "2024-05-01 09:30:00+00", "2024-05-01")
        # dictionary pages for the repeating kinds only, nested ones included
        rg = pq.ParquetFile(path).metadata.row_group(0)
        dict_cols = {rg.column(i).path_in_schema for i in range(rg.num_columns)
                     if "RLE_DICTIONARY" in rg.column(i).encodings}
        assert {"Status", "Stars", "Tags.list.element", "Owner.email", "Watchers.list.element.email"} <= dict_cols
        assert not dict_cols & {"_id", "Name", "Notes", "Email", "District.list.element"}


def test_sqlite_round_trip_and_joins(exported):
    _store, _info, res = exported
    con = sqlite3.connect(_file(res, "sqlite"))
    con.row_factory = sqlite3.Row
    for table_id, name, fields in ((F.T_MAIN, "Projects", F.MAIN_FIELDS), (F.T_DIST, "Districts", F.DIST_FIELDS)):
        expected = F.expected(table_id)
        rows = con.execute(f'SELECT * FROM "{name}"').fetchall()
        assert len(rows) == len(expected)
        for row in rows:
            rec = expected[row["_id"]]
            assert row["_createdTime"] == rec["createdTime"]
            for f in fields:
                kind = V.column_kind(f)
                got, want = row[f["name"]], _typed_want(kind, rec["fields"].get(f["id"]))
                if want is None:
                    assert got is None
                elif kind == V.BOOL:
                    assert got == 1
                elif kind in (V.TEXT, V.FLOAT, V.INT, V.DATE, V.DATETIME):
                    assert got == want
                else:
                    assert _pop_paths(json.loads(got), res.path) == want, f["name"]
    types = {r["name"]: r["type"] for r in con.execute("PRAGMA table_info(Projects)")}
    assert types["_id"] == "TEXT" and types["Qty"] == "REAL" and types["Stars"] == "INTEGER" and types["Done"] == "INTEGER"
    pk = [r["name"] for r in con.execute("PRAGMA table_info(Projects)") if r["pk"]]
    assert pk == ["_id"]
    # link tables with foreign keys, joinable across tables
    fks = con.execute('PRAGMA foreign_key_list("Projects__District")').fetchall()
    assert {(r["table"], r["from"], r["to"]) for r in fks} == {("Projects", "record_id", "_id"), ("Districts", "linked_record_id", "_id")}
    joined = con.execute('''SELECT p.Name, d.Name FROM Projects p JOIN "Projects__District" l ON l.record_id = p._id
                            JOIN Districts d ON d._id = l.linked_record_id ORDER BY l.position''').fetchall()
    assert [tuple(r) for r in joined] == [("Alpha", "Mission"), ("Alpha", "Soma")]
    self_links = con.execute('SELECT record_id, linked_record_id FROM "Projects__Parent" ORDER BY record_id').fetchall()
    assert [tuple(r) for r in self_links] == [(F.R1, F.R2), (F.R3, F.R3), (F.R4, F.R1)]
    # metadata tables hold the schema
    meta = {r["field_id"]: dict(r) for r in con.execute("SELECT * FROM _airtable_fields WHERE table_id = ?", [F.T_MAIN])}
    assert len(meta) == len(F.MAIN_FIELDS) == 37 and meta["fldAUTONUM0000001"]["type"] == "autoNumber"
    assert {r[0] for r in con.execute("SELECT type FROM _airtable_fields")} == set(F.ALL_TYPES)
    raw = json.loads(con.execute("SELECT schema_json FROM _airtable_schema").fetchone()[0])
    assert raw == F.schema()
    # the dangling link (recGONE...) is reported, not silently dropped
    assert any("not in the export" in w for w in res.warnings)


def test_layout_metadata_reports_and_log(exported):
    _store, info, res = exported
    root = res.path
    assert root.name == f"airtable_backup_{info.time:%Y-%m-%d_%H-%M-%S}"
    for d in [f"data/{f}" for f in FORMATS] + ["attachments", "metadata", "reports", "logs"]:
        assert (root / d).is_dir(), d
    ident = json.loads((root / "metadata/snapshot.json").read_text())
    assert ident["snapshot"]["full_id"] == info.full_id and ident["snapshot"]["parent"] is None
    assert ident["store"]["format"] == "snapstore" and ident["export"]["tool_version"]
    schemas = {p.name: json.loads(p.read_text()) for p in (root / "metadata/schema").iterdir()}
    assert schemas["All types.json"] == F.schema()
    summary = json.loads((root / "reports/summary.json").read_text())
    assert summary["totals"]["records"] == 4 + 2 + len(F.HOSTILE_NAMES)
    assert summary["totals"]["attachments_copied"] == len(F.ATTACHMENTS)
    assert "| All types | Projects | 4 |" in (root / "reports/summary.md").read_text()
    assert "Projects: 4 records" in (root / "logs/export.log").read_text()


def test_manifest_verifies_and_detects_tampering(exported, tmp_path):
    _store, _info, res = exported
    assert verify_manifest(res.path) == []
    doc = json.loads((res.path / "metadata/manifest.json").read_text())
    on_disk = {p.relative_to(res.path).as_posix() for p in res.path.rglob("*") if p.is_file()}
    assert {e["path"] for e in doc["entries"]} == on_disk - {"metadata/manifest.json"}
    assert doc["files"] == res.files
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(res.path, copy)
    (copy / "data/ndjson/All types/Projects.ndjson").write_text("tampered\n")
    (copy / "logs/extra.txt").write_text("x")
    problems = verify_manifest(copy)
    assert any("Projects.ndjson" in p for p in problems) and any("extra.txt" in p for p in problems)


def test_hostile_names_stay_inside_and_distinct(exported):
    _store, _info, res = exported
    root = os.path.realpath(res.path)
    hostile = [t for t in res.tables if t["base_id"] == F.HOSTILE_BASE]
    assert len(hostile) == len(F.HOSTILE_NAMES)
    for fmt in FORMATS:
        paths = {t["files"][fmt] for t in hostile}
        if fmt != "sqlite":
            assert len(paths) == len(F.HOSTILE_NAMES)  # collisions after sanitising stay distinct
            assert len({p.casefold() for p in paths}) == len(paths)  # even on case-insensitive file systems
        for p in paths:
            assert (res.path / p).is_file()
    bad = set('<>:"\\|?*') | {chr(c) for c in range(32)}
    for p in Path(res.path).rglob("*"):
        real = os.path.realpath(p)
        assert os.path.commonpath([root, real]) == root
        name = p.name
        assert not (set(name) & bad), name
        assert len(name.encode()) <= 120 and name == name.rstrip(". ") and not name.startswith(".")
        assert name.split(".")[0].upper() not in {"CON", "NUL", "PRN", "AUX", "COM1", "LPT1"}
    assert not any(p.name == "evil.txt" for p in Path(res.path).parent.rglob("evil.txt"))
    atts = sorted(p.name for p in (res.path / "attachments").iterdir())
    assert len(atts) == len(F.ATTACHMENTS) and len({a.casefold() for a in atts}) == len(atts)
    # each hostile table's rows are in the files named for it (SQLite: one table each, unique names)
    con = sqlite3.connect(res.path / hostile[0]["files"]["sqlite"])
    names = [r[0] for r in con.execute("SELECT sql_table FROM _airtable_tables ORDER BY table_id")]
    assert len(set(n.casefold() for n in names)) == len(F.HOSTILE_NAMES)
    def q(x):
        return '"' + x.replace('"', '""') + '"'

    for i, n in enumerate(names):
        col = con.execute("SELECT sql_column FROM _airtable_fields WHERE field_id = ?", [f"fldI{i:013d}"]).fetchone()[0]
        assert con.execute(f"SELECT {q(col)} FROM {q(n)}").fetchone()[0] == i


def test_field_rename_old_snapshot_uses_old_name(plain, tmp_path):
    store, info1 = _copy(plain, tmp_path / "store")
    renamed = [dict(f, name="Title") if f["id"] == "fldNAME0000000001" else f for f in F.MAIN_FIELDS]
    snap = store.begin_snapshot(command="test")
    snap.add_base(F.BASE, "All types", F.schema(renamed))
    for tid, recs in ((F.T_MAIN, F.main_records()), (F.T_DIST, F.district_records())):
        tw = snap.table(F.BASE, tid)
        for r in recs:
            if r["id"] == F.R2:
                r["fields"]["fldNAME0000000001"] = "Beta 2"
            tw.add(r)
        tw.finish()
    info2 = snap.commit()
    old = export_snapshot(store, info1.id, tmp_path / "out", formats="ndjson,csv,parquet")
    new = export_snapshot(store, "latest", tmp_path / "out", formats="ndjson,csv,parquet")
    assert old.path != new.path
    o = [json.loads(x) for x in _file(old, "ndjson").read_text().splitlines()]
    n = [json.loads(x) for x in _file(new, "ndjson").read_text().splitlines()]
    assert all("Title" not in r["fields"] for r in o) and {r["fields"].get("Name") for r in o} >= {"Alpha", "Beta"}
    assert all("Name" not in r["fields"] for r in n) and {r["fields"].get("Title") for r in n} >= {"Alpha", "Beta 2"}
    assert "Name" in pq.read_table(_file(old, "parquet")).column_names
    assert "Title" in pq.read_table(_file(new, "parquet")).column_names
    summary = json.loads((new.path / "reports/summary.json").read_text())
    proj = next(t for t in summary["tables"] if t["table"] == "Projects")
    assert (proj["changed"], proj["new"], proj["unchanged"]) == (1, 0, 3)
    assert summary["snapshot"]["parent"] == info1.id and info2.parent == info1.full_id


def test_failure_half_way_leaves_no_backup_folder(plain, tmp_path, monkeypatch):
    from snapstore_exporters import parquet_writer

    store, info = _copy(plain, tmp_path / "store")
    out = tmp_path / "out"
    calls = {"n": 0}
    real = parquet_writer.ParquetWriter.write

    def boom(self, payload):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(self, payload)

    monkeypatch.setattr(parquet_writer.ParquetWriter, "write", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):  # chunks of 2 records: the third is mid-export
        export_snapshot(store, info, out, chunk_records=2, workers=2)
    assert calls["n"] == 3
    assert list(out.iterdir()) == []  # no airtable_backup_*, and the temporary folder is gone too


def test_filters_no_attachments_and_missing_attachment(plain, tmp_path):
    store, info = _copy(plain, tmp_path / "store")
    res = export_snapshot(store, info, tmp_path / "out", formats=["json"], tables=["Districts"], attachments=False)
    assert [t["table"] for t in res.tables] == ["Districts"]
    assert list((res.path / "attachments").iterdir()) == []
    with pytest.raises(Exception, match="no table 'Nope' in snapshot"):
        export_snapshot(store, info, tmp_path / "out", tables=["Nope"])
    with pytest.raises(Exception, match="unknown export format"):
        export_snapshot(store, info, tmp_path / "out", formats="xml")
    # a record referencing an attachment the store never downloaded: exported with path null, reported
    snap = store.begin_snapshot(command="test")
    snap.add_base(F.BASE, "All types", F.schema())
    tw = snap.table(F.BASE, F.T_MAIN)
    tw.add({"id": F.R1, "createdTime": "2024-01-01T00:00:00.000Z",
            "fields": {"fldPICS0000000001": [{"id": "attNOTSTORED00001", "filename": "x.png", "size": 1}]}})
    tw.finish()
    snap.mark_missing(F.BASE, F.T_DIST, "403 from the API")
    info2 = snap.commit()
    res = export_snapshot(store, info2, tmp_path / "out2", formats="json")
    rec = json.loads(_file(res, "json").read_text())[0]
    assert rec["fields"]["Pictures"][0]["path"] is None
    assert any("attNOTSTORED00001" in e for e in res.errors)
    assert any(F.T_DIST in e and "403" in e for e in res.errors)


def test_cli_export(plain, tmp_path):
    from click.testing import CliRunner

    from snapstore.commands.export import export

    _copy(plain, tmp_path / "store")
    r = CliRunner().invoke(export, ["latest", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "o"),
                                    "--format", "json,csv", "--table", "Projects", "--no-csv-guard", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["formats"] == ["json", "csv"] and doc["records"] == 4 and Path(doc["path"]).is_dir()
    assert verify_manifest(doc["path"]) == []
    r = CliRunner().invoke(export, ["nope", "--store", str(tmp_path / "store")])
    assert r.exit_code == 1 and "no snapshot named" in r.output
    r = CliRunner().invoke(export, ["latest", "--store", str(tmp_path / "store"), "--workers", "0"])
    assert r.exit_code == 2 and "--workers" in r.output and not (tmp_path / "o2").exists()
    r = CliRunner().invoke(export, ["latest", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "o2"),
                                    "--format", "ndjson", "--workers", "2", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["records"] == 6 and "2 worker process(es)" in next(
        (tmp_path / "o2").glob("airtable_backup_*/logs/export.log")).read_text()


def test_same_snapshot_twice_gets_a_suffix(plain, tmp_path):
    store, info = _copy(plain, tmp_path / "store")
    a = export_snapshot(store, info.id, tmp_path / "out", formats="ndjson", attachments=False)
    b = export_snapshot(store, info.id, tmp_path / "out", formats="ndjson", attachments=False)
    assert b.path.name == a.path.name + "_2" and verify_manifest(a.path) == verify_manifest(b.path) == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [a.path.name, b.path.name]


def test_unreadable_attachment_is_reported_not_fatal(plain, tmp_path):
    import hashlib

    store, info = _copy(plain, tmp_path / "store")
    h = hashlib.sha256(F.ATTACHMENTS["attBIG00000000001"][1]).hexdigest()
    (tmp_path / "store" / "objects" / h[:2] / h).unlink()  # the large attachment's standalone object
    res = export_snapshot(store, info, tmp_path / "out", formats="json", tables=["Projects"])
    recs = {r["id"]: r for r in json.loads(_file(res, "json").read_text())}
    pics = {a["id"]: a["path"] for a in recs[F.R1]["fields"]["Pictures"]}
    assert pics["attBIG00000000001"] is None and pics["attCAT00000000001"].startswith("attachments/")
    assert any("attBIG00000000001" in e for e in res.errors)
    assert verify_manifest(res.path) == []


def _tree(root: Path) -> dict[str, bytes]:
    """Every file of an export folder but those that say when and how it was made."""
    skip = {"metadata/snapshot.json", "metadata/manifest.json", "logs/export.log"}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).as_posix() not in skip}


def test_workers_and_chunks_do_not_change_the_folder(plain, tmp_path):
    """Chunks of one record spread over two worker processes give the folder one process gives:
    same records in the same order, same attachment names, same reports."""
    store, info = _copy(plain, tmp_path / "store")
    one = export_snapshot(store, info, tmp_path / "one", workers=1)
    many = export_snapshot(store, info, tmp_path / "many", workers=2, chunk_records=1)
    a, b = _tree(one.path), _tree(many.path)
    assert sorted(a) == sorted(b)
    binary = {k for k in a if k.endswith((".parquet", ".sqlite"))}
    assert {k: a[k] for k in a if k not in binary} == {k: b[k] for k in b if k not in binary}
    assert any(k.startswith("attachments/") for k in a) and one.attachments == many.attachments
    for k in binary:  # the same content; the bytes may differ with how rows were batched
        if k.endswith(".parquet"):
            assert pq.read_table(one.path / k).equals(pq.read_table(many.path / k)), k
        else:
            dumps = []
            for root in (one.path, many.path):
                con = sqlite3.connect(root / k)
                dumps.append(list(con.iterdump()))
                con.close()
            assert dumps[0] == dumps[1], k
    assert verify_manifest(many.path) == [] and many.records == one.records == info.records


def test_damaged_blob_fails_the_export_in_a_worker(plain, tmp_path):
    """A record blob that no longer matches its hash stops the export with a clear error, whether
    the chunk was read in this process or in a worker, and leaves no backup folder."""
    store, info = _copy(plain, tmp_path / "store")
    chunk = next(store.record_chunks(info, F.BASE, F.T_DIST))  # a record of the last table exported
    pack = next(p for p in (tmp_path / "store" / "packs").rglob("*") if p.name == chunk.packs[-1])
    data = bytearray(pack.read_bytes())
    data[chunk.offs[-1] + chunk.clens[-1] // 2] ^= 0xFF  # inside that record's compressed bytes
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        with pytest.raises(Exception, match="damaged"):
            export_snapshot(store, info, out, formats="ndjson", workers=workers, chunk_records=1,
                            attachments=False)
        assert list(out.iterdir()) == []


def _die_in_worker(batch):
    """An encoder that kills its worker process on the second chunk, as the out-of-memory killer would."""
    from snapstore_exporters import stream

    if stream.in_worker() and batch.index == 1:
        os._exit(9)
    return b""


def test_killed_worker_fails_the_export_instead_of_hanging(either, tmp_path, monkeypatch):
    from snapstore_exporters.ndjson_writer import NdjsonWriter
    from snapstore_exporters.parallel import WorkerDied

    store, info = _copy(either, tmp_path / "store")
    real = NdjsonWriter.encode
    monkeypatch.setattr(NdjsonWriter, "encode", staticmethod(_die_in_worker))
    out = tmp_path / "out"
    with pytest.raises(WorkerDied, match="worker process died"):
        export_snapshot(store, info, out, formats="ndjson", workers=2, chunk_records=1, attachments=False)
    assert list(out.iterdir()) == []
    _intact(store, info)
    # and the next export (its workers decrypting, for an encrypted store) is whole
    monkeypatch.setattr(NdjsonWriter, "encode", real)
    res = export_snapshot(store, info, out, formats="ndjson", workers=2, chunk_records=1, attachments=False)
    assert res.records == info.records and verify_manifest(res.path) == []


_SLOW_EXPORT = r"""
import sys, time
import snapstore_exporters.export as E
from snapstore_exporters.ndjson_writer import NdjsonWriter

def slow(batch):  # 6 chunks over 2 workers: about 3 s, time enough to stop it half-way
    time.sleep(1)
    return b""

NdjsonWriter.encode = staticmethod(slow)
real = E.export_snapshot
E.export_snapshot = lambda *a, **k: real(*a, **{**k, "chunk_records": 1})
from snapstore.entry import run
sys.argv = ["snapstore", "export", "latest", "--store", sys.argv[1], "--out", sys.argv[2], "--format", "ndjson",
            "--workers", "2", "--no-attachments"]
run()
"""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _gone(pids: list[int], seconds: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for p in pids:
            try:
                state = Path(f"/proc/{p}/stat").read_text().split(") ")[-1][:1]
            except OSError:
                continue
            if state != "Z":
                alive.append(p)
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("sig, kind", [("TERM", "plain"), ("KILL", "plain"), ("KILL", "encrypted")])
def test_stopped_export_leaves_no_workers_and_no_finished_folder(request, tmp_path, sig, kind):
    """SIGTERM (a service stop, a job timeout) cleans up like Ctrl-C: exit 130, no folder, workers gone.
    SIGKILL cannot clean up, but the workers still die with the main process, and the only trace is a
    folder named ``.snapstore-export-*.partial``. Either way the store (plain or encrypted: the
    console script reads $SNAPSTORE_PASSWORD) reads whole and verifies clean afterwards."""
    import signal
    import subprocess
    import sys
    import time

    store, info = _copy(request.getfixturevalue(kind), tmp_path / "store")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_EXPORT, str(tmp_path / "store"), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (len(_children(proc.pid)) < 2 or not list(out.glob(".snapstore-export-*"))):
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2, proc.communicate(timeout=30)
    proc.send_signal(getattr(signal, f"SIG{sig}"))
    _stdout, stderr = proc.communicate(timeout=60)
    assert _gone(workers), f"workers {workers} outlived the export"
    assert not list(out.glob("airtable_backup_*"))
    if sig == "TERM":
        assert proc.returncode == 130 and "interrupted" in stderr, stderr
        assert list(out.iterdir()) == []
    else:
        assert proc.returncode == -signal.SIGKILL
        assert all(p.name.endswith(".partial") for p in out.iterdir())
    _intact(store, info)


def test_many_small_and_empty_tables_each_get_their_own_records(tmp_path):
    """One chunk stream runs across tables (workers go on to the next table early): every table,
    empty ones included, still gets exactly its records, its file and its own attachment counts,
    the same as in one process."""
    from storegen import many_tables_snapshot

    from snapstore.store import Store

    store = Store.open(tmp_path / "store", create=True)
    sizes = [3, 0, 40, 1, 0, 25, 0]
    info, tables, records = many_tables_snapshot(store, sizes)
    one = export_snapshot(store, info, tmp_path / "one", formats="ndjson,csv", workers=1)
    many = export_snapshot(store, info, tmp_path / "many", formats="ndjson,csv", workers=2, chunk_records=4)
    assert _tree(one.path) == _tree(many.path)
    assert [t["table_id"] for t in many.tables] == tables and [t["records"] for t in many.tables] == sizes
    for row in many.tables:
        recs = records[row["table_id"]]
        lines = (many.path / row["files"]["ndjson"]).read_bytes().splitlines()
        assert [json.loads(x)["id"] for x in lines] == [r["id"] for r in recs]
        with open(many.path / row["files"]["csv"], encoding="utf-8-sig", newline="") as f:
            assert len(list(csv.reader(f))) == 1 + len(recs)  # the header, even for an empty table
        # the store holds no attachment files: each table reports its own as missing
        assert row["attachments_missing"] == len({a["id"] for r in recs for a in r["fields"].get("fldFILES000000001", [])})
    assert sum(t["attachments_missing"] for t in many.tables) == many.attachments["missing"] > 0


def test_progress_counts_every_record_once_up_to_the_total(exported, tmp_path):
    """The CLI's live line (count and ETA) is fed by this callback: it must reach the export's
    record total exactly, never go back, and be called once a chunk."""
    store, info, whole = exported
    seen: list[tuple[int, int]] = []
    res = export_snapshot(store, info, tmp_path / "out", formats="ndjson", chunk_records=3,
                          progress=lambda done, total: seen.append((done, total)))
    assert seen and {t for _d, t in seen} == {res.records} and res.records == whole.records
    assert [d for d, _t in seen] == sorted(d for d, _t in seen) and seen[-1][0] == res.records
    assert len(seen) >= res.records // 3


def test_activity_line_shows_the_count_and_an_eta_at_the_pace_so_far():
    from snapstore.commands.progress import Activity

    now = [100.0]
    act = Activity("exporting snapshot 1a2b3c4d", clock=lambda: now[0])
    assert act.text() == "exporting snapshot 1a2b3c4d … 0s"
    now[0] += 10
    act.count(250, 1000)
    text = act.text()
    assert "250 of 1,000 records" in text and "ETA 30s" in text, text
    act.count(1000, 1000)
    assert "ETA" not in act.text()


def test_a_second_interrupt_does_not_cut_the_removal_of_the_partial_folder(tmp_path, monkeypatch):
    """The interrupt watchdog raises KeyboardInterrupt again when a stop seems lost; arriving while
    a stopped export removes its temporary folder, it must not leave half of it behind."""
    import shutil
    import signal

    from snapstore_exporters import partial

    from snapstore import interrupts

    folder = partial.PartialFolder(tmp_path, "abcd1234")
    for i in range(50):
        (folder.path / f"f{i}").write_bytes(b"x")
    real = shutil.rmtree

    def rmtree_hit_by_the_watchdog(path, **kw):
        # the watchdog's second delivery, as _thread.interrupt_main() runs it, in the middle
        interrupts._on_signal(signal.SIGINT, None)
        real(path, **kw)

    monkeypatch.setattr(partial.shutil, "rmtree", rmtree_hit_by_the_watchdog)
    monkeypatch.setattr(interrupts, "_requested", signal.SIGTERM)  # the first stop, being honoured
    monkeypatch.setattr(interrupts, "_redeliver", True)
    try:
        folder.discard()
    finally:
        interrupts.reset()
    assert list(tmp_path.iterdir()) == []
