"""docs/FORMAT.md is true: a reader written from it alone (tests/helpers/format_reader.py, which imports
zstandard, msgpack, pyarrow and cryptography, never snapstore's reader) reads a format-4 store, plain
and encrypted, to the very records the library reads, snapshot by snapshot; and it refuses a store
whose writer breaks a rule the document states."""

from __future__ import annotations

import json

import pytest

from snapstore.store import Store
from snapstore.store import writer as writer_module
from tests.helpers.format_reader import FormatReader, FormatViolation
from tests.storegen import BASE, SCHEMA, TABLE, churn, make_records

SMALL = "tblTESTSMALL00001"
PASSWORD = "format reader password"


def _schema() -> dict:
    small = dict(SCHEMA["tables"][0], id=SMALL, name="Small")
    return {"tables": [SCHEMA["tables"][0], small]}


def _take(store: Store, tables: dict[str, list[dict]]):
    snap = store.begin_snapshot()
    snap.add_base(BASE, "Test base", _schema())
    for tid, records in tables.items():
        tw = snap.table(BASE, tid)
        for r in records:
            tw.add(r)
        tw.finish()
    return snap.commit()


def _history(store: Store) -> None:
    """Three snapshots exercising what the document describes: a first one whose 5,000 records
    (> 1 MiB) get the table's dictionary and NDJSON frames, a small table without one, then a day's
    changes (column frames, delta manifests, deletions, additions), then records back to an earlier
    version (stored already: the manifest's arrow rows) and a deleted record back."""
    big = make_records(5000, seed=1)
    small = [dict(r, id=f"recSMALL{i:09d}") for i, r in enumerate(make_records(40, seed=2))]
    _take(store, {TABLE: big, SMALL: small})
    day2 = churn(big, 0.02, seed=3)[3:] + [dict(r, id=f"recNEW{i:011d}") for i, r in
                                          enumerate(make_records(2, seed=4))]
    small2 = [dict(small[0], fields=dict(small[0]["fields"], fldNAME0000000001="renamed"))] + small[1:]
    _take(store, {TABLE: day2, SMALL: small2})
    day3 = [big[0], big[1], *day2[2:]]  # big[0] is back (deleted), big[3] back to day one's version
    day3[3] = big[6]
    _take(store, {TABLE: day3, SMALL: small})


def _library_records(store: Store) -> dict[str, dict[tuple[str, str], list[dict]]]:
    out = {}
    for info in store.list_snapshots():
        out[info.full_id] = {(b.base_id, t.table_id): sorted(store.records(info, b.base_id, t.table_id),
                                                             key=lambda r: r["id"])
                             for b in info.bases for t in b.tables}
    return out


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_reader_written_from_the_document_reads_what_the_library_reads(tmp_path, encrypted):
    path = tmp_path / "store"
    store = Store.init(path, format_version=4, **({"password": PASSWORD} if encrypted else {}))
    _history(store)
    expected = _library_records(store)

    reader = FormatReader(path, PASSWORD if encrypted else None)
    assert reader.config["version"] == 4 and ("encryption" in reader.config) == encrypted
    commits = reader.commits()
    assert {c["_id"] for c in commits} == set(expected) and len(commits) == 3
    for commit in commits:
        tables = reader.snapshot_tables(commit)
        got = {key: [json.loads(line) for _rid, line in sorted(t.records.items())] for key, t in tables.items()}
        assert got == expected[commit["_id"]], f"snapshot {commit['_id'][:8]} differs"
    # "format 4 trains the dictionary on the first batch of new records of at least 1 MiB": the
    # 5,000-record table has one from its first snapshot, the 40-record table (never 1 MiB) none
    first = {t["table_id"]: t["dict"] for t in commits[0]["bases"][0]["tables"]}
    assert first[TABLE] is not None and first[SMALL] is None
    # a day's changes are column frames (no dictionary); day one's records are NDJSON frames with it
    kinds = {(f.dict_hash is not None) for f in reader._frames.values()}
    assert kinds == {True, False}


@pytest.mark.parametrize("floor", [writer_module.CHAIN_ENTRIES_FLOOR, 10 ** 9], ids=["as-documented", "broken"])
def test_the_reader_refuses_a_writer_that_breaks_the_documented_rebase_rule(tmp_path, monkeypatch, floor):
    """FORMAT.md: a new full manifest once a chain's delta entries would exceed max(the table's
    records, 1,000). A writer without that bound (still readable by the library) is caught; the real
    writer passes. 2,000 records, 600 changed a snapshot: the fourth delta would hold 2,400 entries."""
    documented = floor == writer_module.CHAIN_ENTRIES_FLOOR
    monkeypatch.setattr(writer_module, "CHAIN_ENTRIES_FLOOR", floor)
    monkeypatch.setattr(writer_module, "MAX_CHAIN_DEPTH", 64)
    path = tmp_path / "store"
    store = Store.init(path, format_version=4)
    records = make_records(2000, seed=9)
    for day in range(5):
        records = [dict(r, fields=dict(r["fields"], fldNOTES000000001=f"day {day}")) if i % 10 < 3 else r
                   for i, r in enumerate(records)]
        _take(store, {TABLE: records})
    latest = store.resolve("latest")
    expected = sorted(store.records(latest, BASE, TABLE), key=lambda r: r["id"])
    reader = FormatReader(path)
    commit = reader.commits()[-1]
    if documented:
        table = reader.snapshot_tables(commit)[(BASE, TABLE)]
        assert [json.loads(line) for _r, line in sorted(table.records.items())] == expected
        assert table.deltas < 4
    else:
        with pytest.raises(FormatViolation, match=r"delta entries are at most max\(the table's records, 1,000\)"):
            reader.snapshot_tables(commit)
