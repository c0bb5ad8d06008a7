"""`snapstore sql`: time travel over every snapshot, answered from the store through the Arrow reader.

A churned emulator workspace (edits, adds, deletes, a renamed field, new attachments) is snapshotted
three times; the SQL answers are checked against the verbs users already trust: the Parquet export
read back (at), `diff --fields --json` (changes) and `snapstore history` (history)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from snapstore_exporters.export import export_snapshot

from snapstore.cli import main
from snapstore.emulator import Emulator, generate_workspace
from snapstore.emulator.churn import churn
from snapstore.ops.snapshot import SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.ops.sql import Session, find_calls, split_name
from snapstore.source import AirtableSource
from snapstore.store import Store

WS = dict(seed=7, bases=1, tables_per_base=2, records_per_table=80, attachment_share=0.15, comment_share=0.3)


def _snapshots(store: Store, n: int, renames: dict[int, int] | None = None) -> list[dict]:
    """``n`` snapshots of one workspace, churned between them; the churn reports."""
    ws = generate_workspace(**WS)
    reports = []
    with Emulator(ws, rate_limits=False) as emu:
        src = AirtableSource(emu.token, emu.url, rate_base=1000, rate_token=1000)
        for i in range(n):
            take_snapshot(store, src, plan_snapshot(src), SnapshotOptions(comments=True))
            if i < n - 1:
                reports.append(churn(ws, seed=i, edit_share=0.15, add_share=0.05, delete_share=0.05,
                                     rename_fields=(renames or {}).get(i, 0), replace_attachments=2))
    return reports


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlstore") / "store"
    store = Store.init(path)
    reports = _snapshots(store, 3, renames={1: 2})
    return {"store": store, "path": str(path), "snaps": store.list_snapshots()[::-1], "reports": reports}


def _cli(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def _rows(table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["_id"])


def test_at_equals_the_export_read_back(world, tmp_path):
    store, snaps = world["store"], world["snaps"]
    session = Session(store)
    checked = 0
    for k, snap in enumerate(snaps):
        res = export_snapshot(store, snap, tmp_path / str(k), formats=["parquet"], attachments=False, workers=1)
        for row in res.tables:
            # both through DuckDB, which types a timestamp[ms, UTC] column as TIMESTAMPTZ either way
            con = duckdb.connect()
            con.register("exported", pq.read_table(res.path / row["files"]["parquet"]))
            exported = con.execute("SELECT * FROM exported").to_arrow_table()
            got = session.arrow(f"SELECT * FROM at('{snap.id}', '{row['table_id']}')")
            assert got.schema.names == exported.schema.names  # every column, named as exported
            assert [f.type for f in got.schema] == [f.type for f in exported.schema]  # and typed so
            assert _rows(got) == _rows(exported)  # every value
            assert got.num_rows == row["records"] > 0
            checked += 1
    assert checked == 6


def test_plain_names_are_the_chosen_snapshot(world):
    store, snaps = world["store"], world["snaps"]
    table = snaps[0].bases[0].tables[0]
    base = snaps[0].bases[0].name
    old = Session(store, snaps[0].id)
    a = old.arrow(f'SELECT count(*) FROM "{base}"."{table.name}"').column(0)[0].as_py()
    b = old.arrow(f"SELECT count(*) FROM at('{snaps[0].id}', '{table.table_id}')").column(0)[0].as_py()
    assert a == b == table.records
    latest = Session(store)
    names = [t.name for t in snaps[-1].bases[0].tables]
    n = latest.arrow(f'SELECT count(*) FROM "{names[0]}"').column(0)[0].as_py()
    assert n == snaps[-1].bases[0].tables[0].records


def test_changes_equal_diff_fields_json(world):
    snaps, path = world["snaps"], world["path"]
    session = Session(world["store"])
    for a, b in ((snaps[0], snaps[1]), (snaps[0], snaps[2]), (snaps[2], snaps[1])):
        res = _cli("diff", a.id, b.id, "--store", path, "--fields", "--format", "json")
        assert res.exit_code == 0, res.output
        doc = json.loads(res.output)
        for td in doc["tables"]:
            want = {(r["record_id"], f["field_id"], json.dumps(f["old"], sort_keys=True),
                     json.dumps(f["new"], sort_keys=True)) for r in td["changed"] for f in r["fields"]}
            want |= {(r["record_id"], kind) for kind in ("added", "removed") for r in td[kind]}
            rows = session.arrow(f"SELECT _id, _change, field_id, old::VARCHAR AS old, new::VARCHAR AS new "
                                 f"FROM changes('{td['table_id']}', '{a.id}', '{b.id}')").to_pylist()
            got = {(r["_id"], r["field_id"], json.dumps(json.loads(r["old"]) if r["old"] else None, sort_keys=True),
                    json.dumps(json.loads(r["new"]) if r["new"] else None, sort_keys=True))
                   if r["_change"] == "changed" else (r["_id"], r["_change"]) for r in rows}
            assert got == want and len(rows) == len(want)
            assert any(r["_change"] == "changed" for r in rows)


def test_history_has_exactly_the_versions_history_prints(world):
    store, path = world["store"], world["path"]
    session = Session(store)
    report = world["reports"][0]
    table_id, entry = next((t, e) for t, e in report["tables"].items() if e["edited"] and e["deleted"])
    hist = session.arrow(f"SELECT _id, _from_snapshot, _last_snapshot, _to_snapshot, _change, _ended "
                         f"FROM history('{table_id}')").to_pylist()
    records = entry["edited"][:3] + entry["deleted"][:2] + entry["added"][:2]
    assert records
    for rid in records:
        res = _cli("history", rid, "--store", path, "--format", "json")
        assert res.exit_code == 0, res.output
        want = [(v["first"]["short_id"], v["last"]["short_id"], v["began"], v["ended"])
                for v in json.loads(res.output)["versions"]]
        order = [x.id for x in world["snaps"]]
        got = sorted(((r["_from_snapshot"], r["_last_snapshot"], r["_change"], r["_ended"])
                      for r in hist if r["_id"] == rid), key=lambda v: order.index(v[0]))
        assert got == want
        one = session.arrow(f"SELECT _from_snapshot, _last_snapshot, _change, _ended FROM history('{table_id}', "
                            f"'{rid}') ORDER BY _valid_from").to_pylist()  # the record's versions alone
        assert [tuple(r.values()) for r in one] == want
    # every record of every snapshot is one version of the history, at the snapshot it spans
    n_versions = len(hist)
    assert n_versions > max(t.records for s in world["snaps"] for b in s.bases for t in b.tables if t.table_id == table_id)


def test_a_renamed_field_is_one_column_in_history_and_old_in_old_at(world):
    store, snaps = world["store"], world["snaps"]
    renamed = [(t, f) for t, e in world["reports"][1]["tables"].items() for f in e["renamed_fields"]]
    assert renamed
    table_id, f = renamed[0]
    session = Session(store)
    hist = session.arrow(f"SELECT * FROM history('{table_id}')").schema.names
    assert f["new"] in hist and f["old"] not in hist
    old = session.arrow(f"SELECT * FROM at('{snaps[1].id}', '{table_id}')").schema.names
    assert f["old"] in old and f["new"] not in old
    new = session.arrow(f"SELECT * FROM at('latest', '{table_id}')").schema.names
    assert f["new"] in new
    # the values of the old versions are in the one column
    vals = session.arrow(f'SELECT count("{f["new"]}") FROM history(\'{table_id}\') '
                         f"WHERE _from_snapshot = '{snaps[0].id}'").column(0)[0].as_py()
    old_vals = session.arrow(f'SELECT count("{f["old"]}") FROM at(\'{snaps[0].id}\', \'{table_id}\')').column(0)[0].as_py()
    assert vals == old_vals


def test_small_relations(world):
    session = Session(world["store"])
    snaps = session.arrow("SELECT id, records, new, changed, deleted FROM snapshots ORDER BY time").to_pylist()
    assert [s["id"] for s in snaps] == [s.id for s in world["snaps"]]
    assert [(s["records"], s["new"], s["changed"], s["deleted"]) for s in snaps] == [
        (x.records, *(sum(getattr(t, k) for b in x.bases for t in b.tables) for k in ("new", "changed", "deleted")))
        for x in world["snaps"]]
    assert snaps[1]["changed"] > 0
    tables = session.arrow("SELECT DISTINCT table_id FROM tables").num_rows
    assert tables == 2
    fields = session.arrow("SELECT snapshot, count(*) AS n FROM fields GROUP BY ALL").to_pylist()
    assert len(fields) == 3 and all(r["n"] > 10 for r in fields)
    assert session.arrow("SELECT count(*) FROM comments").column(0)[0].as_py() > 0
    assert session.arrow("SELECT count(*) FROM attachments WHERE stored").column(0)[0].as_py() > 0


def test_only_what_a_query_names_is_read(world, monkeypatch):
    from snapstore import arrowread

    read = []
    real = arrowread.table_meta
    monkeypatch.setattr(arrowread, "table_meta", lambda s, snap, b, t: read.append(t) or real(s, snap, b, t))
    session = Session(world["store"])
    table = world["snaps"][-1].bases[0].tables[1]
    session.arrow(f'SELECT count(*) FROM "{table.name}" a JOIN "{table.name}" b USING (_id)')
    session.arrow(f'SELECT count(*) FROM "{table.name}"')
    assert read == [table.table_id]  # one table, read once


def test_query_parsing():
    calls = find_calls("select * from at('2026-11-01', \"Deals\") a join history('x') using (_id) -- at('no', 'x')")
    assert [(c.name, c.args) for c in calls] == [("at", ("2026-11-01", "Deals")), ("history", ("x",))]
    assert find_calls("select 'at(1, 2)', x.at(1) from t") == []
    assert split_name('"Sales Team"."Deals ""2024""" AS d') == ["Sales Team", 'Deals "2024"']


def test_cli_answers_and_errors(world, tmp_path):
    path, snaps = world["path"], world["snaps"]
    table = snaps[-1].bases[0].tables[0]
    res = _cli("sql", "--store", path, f"SELECT count(*) AS n FROM \"{table.name}\"", "--format", "csv")
    assert res.exit_code == 0 and res.output.splitlines() == ['"n"', str(table.records)]
    res = _cli("sql", "--store", path, "SELECT id FROM snapshots ORDER BY time", "--format", "ndjson")
    assert [json.loads(x)["id"] for x in res.output.splitlines()] == [s.id for s in snaps]
    out = tmp_path / "a.parquet"
    res = _cli("sql", "--store", path, "SELECT * FROM snapshots", "--format", "parquet", "--out", str(out))
    assert res.exit_code == 0 and pq.read_table(out).num_rows == 3
    res = _cli("sql", "--store", path, "SELECT id FROM snapshots LIMIT 1")
    assert res.exit_code == 0 and "(1 row)" in res.output
    res = CliRunner().invoke(main, ["sql", "--store", path, "--format", "csv"], input="SELECT 42 AS x")  # a pipe
    assert res.exit_code == 0 and res.output.splitlines() == ['"x"', "42"]

    res = _cli("sql", "--store", path, "SELEC 1")
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "syntax error" in res.output
    res = _cli("sql", "--store", path, "SELECT * FROM Nope")
    assert res.exit_code == 2 and "no table Nope" in res.output and table.name in res.output
    res = _cli("sql", "--store", path, f"SELECT * FROM at('nosuch', '{table.name}')")
    assert res.exit_code == 2 and "no snapshot named 'nosuch'" in res.output and snaps[0].id in res.output
    res = _cli("sql", "--store", path, "SELECT * FROM at('latest', 'Nope')")
    assert res.exit_code == 2 and "no table 'Nope'" in res.output
    for q in (f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'", f"ATTACH '{tmp_path / 'y.duckdb'}'", "INSTALL httpfs",
              "SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access = true"):
        res = _cli("sql", "--store", path, q)
        assert res.exit_code == 1 and res.output.count("\n") == 1, (q, res.output)
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.duckdb").exists()


def test_attach_writes_a_duckdb_file(world, tmp_path):
    path, snaps = world["path"], world["snaps"]
    table = snaps[-1].bases[0].tables[0]
    out = tmp_path / "out.duckdb"
    res = _cli("sql", "--store", path, "--attach", str(out), "--attach-history", table.name)
    assert res.exit_code == 0, res.output
    con = duckdb.connect(str(out), read_only=True)
    names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    base = snaps[-1].bases[0].name
    assert f"{base}.{table.name}" in names and f"{table.name} history" in names
    assert con.execute(f'SELECT count(*) FROM "{base}.{table.name}"').fetchone()[0] == table.records


def test_encrypted_store_needs_its_password(tmp_path):
    path = tmp_path / "enc"
    _snapshots(Store.init(path, password="a password"), 1)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPSTORE_")}
    run = [sys.executable, "-c", "from snapstore.entry import run; run()", "sql", "--store", str(path),
           "SELECT count(*) AS n FROM snapshots", "--format", "csv"]
    ok = subprocess.run(run, env=base_env | {"SNAPSTORE_PASSWORD": "a password"}, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "1", ok.stderr
    wrong = subprocess.run(run, env=base_env | {"SNAPSTORE_PASSWORD": "wrong"}, capture_output=True, text=True)
    assert wrong.returncode == 12 and wrong.stdout == ""
    none = subprocess.run(run, env=base_env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert none.returncode == 2 and none.stdout == "" and "password" in none.stderr


def test_json_answers_embed_json_values(world):
    """changes()'s old and new are JSON: the JSON formats hold the values, not their text."""
    snaps, path = world["snaps"], world["path"]
    table = snaps[-1].bases[0].tables[0]
    res = _cli("sql", "--store", path, "--format", "ndjson",
               f"SELECT old, new FROM changes('{table.table_id}', '{snaps[0].id}', '{snaps[-1].id}') "
               "WHERE _change = 'changed' AND type = 'number' LIMIT 3")
    rows = [json.loads(x) for x in res.output.splitlines()]
    assert res.exit_code == 0 and rows and all(isinstance(v, int | float | None) for r in rows for v in r.values())


def test_a_table_name_two_bases_share_needs_its_base(tmp_path):
    from snapstore.errors import UsageError

    store = Store.init(tmp_path / "two")
    ws = generate_workspace(seed=3, bases=2, tables_per_base=1, records_per_table=10, attachment_share=0)
    with Emulator(ws, rate_limits=False) as emu:
        src = AirtableSource(emu.token, emu.url, rate_base=1000, rate_token=1000)
        take_snapshot(store, src, plan_snapshot(src), SnapshotOptions())
    snap = store.resolve("latest")
    (b1, b2) = snap.bases
    assert b1.tables[0].name == b2.tables[0].name  # the generator names them alike
    name = b1.tables[0].name
    session = Session(store)
    for b in (b1, b2):
        assert session.arrow(f'SELECT count(*) FROM "{b.name}"."{name}"').column(0)[0].as_py() == b.tables[0].records
    with pytest.raises(UsageError, match=f'no table {name}: .*"{b1.name}"."{name}"'):
        session.arrow(f"SELECT count(*) FROM {name}")
