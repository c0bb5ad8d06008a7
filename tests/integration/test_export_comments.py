"""Comments in every export format: a comments file per table (SQLite: a table with a foreign key
to the record's row), keyed by record id, read back with each format's own reader, text and order."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3

import emuexport
import pyarrow.parquet as pq
import pytest
import yaml
from snapstore_exporters.export import export_snapshot
from snapstore_exporters.values import guard_formula

EMPTY_TABLE = 1  # the second table of the workspace: every comment removed before the snapshot


def _no_comments_in_second_table(ws) -> None:
    for rec in ws.bases[0].tables[EMPTY_TABLE].records.values():
        rec.comments = None


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("comments")
    store, info = emuexport.snapshot_store(root / "store", edit=_no_comments_in_second_table)
    res = export_snapshot(store, info, root / "out")
    expected = {}
    for b in info.bases:
        for t in b.tables:
            expected[t.table_id] = {rid: cs for rid, cs in store.comments(info, b.base_id, t.table_id).items() if cs}
    return store, info, res, expected


def test_the_workspace_has_ordered_comments(exported):
    _store, _info, res, expected = exported
    many = [cs for t in expected.values() for cs in t.values() if len(cs) >= 2]
    assert many, "some record must have two comments or more, so that order is tested"
    assert not expected[res.tables[EMPTY_TABLE]["table_id"]]


@pytest.mark.parametrize("fmt", ["json", "ndjson", "yaml"])
def test_record_keyed_formats_hold_every_comment_in_order(exported, fmt):
    _store, _info, res, expected = exported
    for row in res.tables:
        entries = emuexport.read_items(res.path / row["comment_files"][fmt])
        assert [e["record_id"] for e in entries] == sorted(expected[row["table_id"]])
        assert {e["record_id"]: e["comments"] for e in entries} == expected[row["table_id"]]
        for e in entries:
            for c in e["comments"]:
                assert c["id"].startswith("com") and c["author"]["email"] and c["text"] and c["createdTime"]


def _flat(expected_table: dict) -> list[tuple]:
    return [(rid, c["id"], pos, c["author"]["id"], c["author"]["email"], c["author"]["name"], c["text"],
             c["createdTime"], c.get("lastUpdatedTime"))
            for rid in sorted(expected_table) for pos, c in enumerate(expected_table[rid])]


def test_csv_has_a_row_per_comment(exported):
    _store, _info, res, expected = exported
    guarded = 0
    for row in res.tables:
        with open(res.path / row["comment_files"]["csv"], encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["record_id", "comment_id", "position", "author_id", "author_email", "author_name", "text",
                           "created_time", "last_updated_time"]
        # text the formula guard prefixes with ' (mentions start with "@"), as in the records' cells
        want = [tuple("" if v is None else guard_formula(v) if type(v) is str else str(v) for v in r)
                for r in _flat(expected[row["table_id"]])]
        guarded += sum(r[6].startswith("'@") for r in want)
        assert [tuple(r) for r in rows[1:]] == want
    assert guarded


def _ts(text: str | None):
    return None if text is None else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_parquet_comments_are_typed(exported):
    _store, _info, res, expected = exported
    for row in res.tables:
        table = pq.read_table(res.path / row["comment_files"]["parquet"])
        assert str(table.schema.field("created_time").type) == "timestamp[ms, tz=UTC]"
        assert str(table.schema.field("position").type) == "int32"
        got = [tuple(r.values()) for r in table.to_pylist()]
        want = [(*r[:7], _ts(r[7]), _ts(r[8])) for r in _flat(expected[row["table_id"]])]
        assert got == want


def test_sqlite_comments_tables_join_their_records(exported):
    _store, _info, res, expected = exported
    con = sqlite3.connect(res.path / res.tables[0]["files"]["sqlite"])
    total = 0
    for row in res.tables:
        sql_table, comments_table, count = con.execute(
            "SELECT sql_table, comments_sql_table, comments FROM _airtable_tables WHERE table_id = ?",
            [row["table_id"]]).fetchone()
        assert comments_table == f"{sql_table}__comments" and count == row["comments"]
        fks = con.execute(f'PRAGMA foreign_key_list("{comments_table}")').fetchall()
        assert [(r[2], r[3], r[4]) for r in fks] == [(sql_table, "record_id", "_id")]
        got = con.execute(f'SELECT * FROM "{comments_table}" ORDER BY record_id, position').fetchall()
        assert got == _flat(expected[row["table_id"]])
        joined = con.execute(f'SELECT count(*) FROM "{comments_table}" c JOIN "{sql_table}" r ON r._id = c.record_id'
                             ).fetchone()[0]
        assert joined == len(got)
        total += len(got)
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    # one view over every table's comments, for a query across the base
    assert con.execute("SELECT count(*), count(DISTINCT table_id) FROM _comments").fetchone() == (total, 1)


def test_counts_in_the_summary(exported):
    _store, _info, res, expected = exported
    summary = json.loads((res.path / "reports" / "summary.json").read_text())
    for row in summary["tables"]:
        assert row["comments"] == sum(len(cs) for cs in expected[row["table_id"]].values())
        assert row["records_with_comments"] == len(expected[row["table_id"]])
    assert summary["totals"]["comments"] == sum(len(cs) for t in expected.values() for cs in t.values()) > 0
    assert summary["totals"]["tables_with_comments_captured"] == len(summary["tables"])
    assert f"Comments: {summary['totals']['comments']} in" in (res.path / "reports" / "summary.md").read_text()


def test_a_table_without_comments_gets_empty_comments_files(exported):
    _store, _info, res, _expected = exported
    row = res.tables[EMPTY_TABLE]
    files = {fmt: res.path / p for fmt, p in row["comment_files"].items()}
    assert json.loads(files["json"].read_text()) == [] and yaml.safe_load(files["yaml"].read_text()) == []
    assert files["ndjson"].read_bytes() == b"" and pq.read_table(files["parquet"]).num_rows == 0
    assert files["csv"].read_text(encoding="utf-8-sig").splitlines() == [
        "record_id,comment_id,position,author_id,author_email,author_name,text,created_time,last_updated_time"]
    con = sqlite3.connect(files["sqlite"])
    name = con.execute("SELECT comments_sql_table FROM _airtable_tables WHERE table_id = ?", [row["table_id"]]).fetchone()[0]
    assert con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] == 0


def test_a_snapshot_without_comments_has_no_comments_files(tmp_path):
    store, info = emuexport.snapshot_store(tmp_path / "store", comments=False, tables_per_base=1, records_per_table=10)
    res = export_snapshot(store, info, tmp_path / "out")
    assert not [p for p in res.path.rglob("*") if ".comments." in p.name]
    con = sqlite3.connect(res.path / res.tables[0]["files"]["sqlite"])
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert "_comments" not in names and not any(n.endswith("__comments") for n in names)
    summary = json.loads((res.path / "reports" / "summary.json").read_text())
    assert summary["tables"][0]["comments"] is None and summary["tables"][0]["comment_files"] is None
    assert summary["totals"]["comments"] == 0
    assert "not captured" in (res.path / "reports" / "summary.md").read_text()


def test_comments_files_do_not_depend_on_workers(exported, tmp_path):
    store, info, res, _expected = exported
    many = export_snapshot(store, info, tmp_path / "many", formats="json,csv,ndjson", workers=2, chunk_records=7)
    for row in many.tables:
        for p in row["comment_files"].values():
            assert (many.path / p).read_bytes() == (res.path / p).read_bytes(), p
