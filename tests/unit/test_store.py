"""The store keeps what it was given, writes only what changed, and survives crashes.

Every test that takes ``store`` runs on both backends (a local folder and an S3 prefix on the
SeaweedFS server tests/conftest.py starts)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from storegen import BASE, SCHEMA, TABLE, churn, make_records, many_tables_snapshot, snapshot

from snapstore.canonical import canonical_record, loads
from snapstore.store import BlobReader, LockError, Store, StoreError


def pack_files(store) -> set[str]:
    return {key.rsplit("/", 1)[-1] for key, _size in store.backend.list("packs")}


def replace_object(store, key: str, data: bytes) -> None:
    """Overwrite an object in place (to damage it): objects are create-only, so remove it first."""
    if store.remote:
        store.backend.delete(key)
        store.backend.put(key, data)
    else:
        path = Path(store.root) / key
        os.chmod(path, 0o644)
        path.write_bytes(data)


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "catalog" not in p.name and "locks" not in p.parts and "logs" not in p.parts}


@pytest.fixture
def store(store_factory):
    return store_factory.init("store", pack_size=256 * 1024)


def test_round_trip_field_for_field(store):
    recs = make_records(500)
    info = snapshot(store, recs)
    got = {r["id"]: r for r in store.records(info, BASE, TABLE)}
    assert len(got) == 500
    for r in recs:
        assert got[r["id"]] == canonical_record(r)
    assert store.schema(info, BASE) == SCHEMA
    assert info.records == 500 and info.table(BASE, TABLE).new == 500


def test_same_records_twice_add_no_pack(store):
    recs = make_records(800)
    snapshot(store, recs)
    before = pack_files(store)
    info = snapshot(store, recs)
    assert pack_files(store) == before
    t = info.table(BASE, TABLE)
    assert (t.new, t.changed, t.deleted, t.unchanged) == (0, 0, 0, 800)


def test_new_attachment_url_is_not_a_change(store):
    recs = make_records(300)
    snapshot(store, recs)
    for r in recs:
        for att in r["fields"].get("fldFILES000000001", []):
            att["url"] = "https://example.invalid/fresh-signature"
            att["thumbnails"]["small"]["url"] = "https://example.invalid/fresh-thumb"
    assert any("fldFILES000000001" in r["fields"] for r in recs)
    info = snapshot(store, recs)
    assert info.table(BASE, TABLE).changed == 0


def test_one_percent_change_adds_about_one_percent(store):
    recs = make_records(5000)
    first = snapshot(store, recs)
    edited = churn(recs, 0.01)
    second = snapshot(store, edited)
    t = second.table(BASE, TABLE)
    assert (t.changed, t.new, t.deleted) == (50, 0, 0)
    # packs of the second snapshot hold only the 50 changed records (plus a small delta manifest)
    assert second.bytes_added < first.bytes_added * 0.04, (second.bytes_added, first.bytes_added)


def test_adds_and_deletes_are_counted(store):
    recs = make_records(200)
    snapshot(store, recs)
    more = recs[10:] + make_records(5, seed=99)
    info = snapshot(store, more)
    t = info.table(BASE, TABLE)
    assert (t.new, t.deleted, t.changed, t.records) == (5, 10, 0, 195)
    assert {r["id"] for r in store.records(info, BASE, TABLE)} == {r["id"] for r in more}
    # the older snapshot still answers with its own records
    assert sum(1 for _ in store.records("latest~1", BASE, TABLE)) == 200


def test_rebuild_after_deleting_catalog(store):
    recs = make_records(400)
    snapshot(store, recs)
    snapshot(store, churn(recs, 0.05))
    snapshot(store, churn(recs, 0.05, seed=7)[:350])
    before = [(s.full_id, s.records, s.status) for s in store.list_snapshots()]
    contents = {s.full_id: sorted(r["id"] + str(r) for r in store.records(s, BASE, TABLE)) for s in store.list_snapshots()}
    os.remove(store.catalog.path)
    again = Store.open(store.location)
    assert [(s.full_id, s.records, s.status) for s in again.list_snapshots()] == before
    for s in again.list_snapshots():
        assert sorted(r["id"] + str(r) for r in again.records(s, BASE, TABLE)) == contents[s.full_id]
    # and the rebuilt catalog keeps working for the next snapshot
    info = snapshot(again, recs)
    assert info.records == 400


def test_corrupt_catalog_is_rebuilt(store):
    snapshot(store, make_records(100))
    store.catalog.path.write_bytes(b"this is not a duckdb file" * 100)
    again = Store.open(store.location)
    assert [s.records for s in again.list_snapshots()] == [100]


def test_flipped_byte_in_pack_is_detected(store):
    info = snapshot(store, make_records(300))
    key = max(store.backend.list("packs"), key=lambda kv: kv[1])[0]
    data = bytearray(store.backend.get(key))
    data[len(data) // 3] ^= 0x40
    replace_object(store, key, bytes(data))
    with pytest.raises(StoreError, match="damaged"):
        list(store.records(info, BASE, TABLE))


def test_second_writer_is_told_who_holds_the_lock(store):
    snap = store.begin_snapshot(command="snapshot --base X")
    try:
        with pytest.raises(LockError, match=r"snapshot --base X.*pid"):
            Store.open(store.location).begin_snapshot()
    finally:
        snap.abandon()
    store.begin_snapshot().abandon()  # released


def test_stale_lock_of_dead_process_is_broken(store):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    lock = store.local_dir / "locks" / "writer.json"
    import json
    import socket

    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "command": "snapshot", "time": "then"}))
    snap = store.begin_snapshot()
    snap.abandon()
    assert not lock.exists()


def test_resolve_names(store):
    recs = make_records(50)
    a = snapshot(store, recs)
    b = snapshot(store, churn(recs, 0.1))
    assert store.resolve("latest").full_id == b.full_id
    assert store.resolve("latest~1").full_id == a.full_id
    assert store.resolve(a.id).full_id == a.full_id
    assert store.resolve(a.time.date().isoformat()).full_id == b.full_id
    with pytest.raises(StoreError, match="only 2"):
        store.resolve("latest~5")
    with pytest.raises(StoreError, match="no snapshot named"):
        store.resolve("nonsense")


def test_abandoned_snapshot_is_invisible_and_its_packs_reused(store):
    recs = make_records(2000)
    snap = store.begin_snapshot()
    snap.add_base(BASE, "b", SCHEMA)
    tw = snap.table(BASE, TABLE)
    for r in recs:
        tw.add(r)
    tw.finish()
    snap._packs.seal()
    snap.abandon()
    assert store.list_snapshots() == []
    left = pack_files(store)
    assert left
    info = snapshot(store, recs)
    assert pack_files(store) == left  # every blob was found in the adopted packs
    assert sum(1 for _ in store.records(info, BASE, TABLE)) == 2000


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from storegen import BASE, SCHEMA, TABLE, churn, make_records
    from snapstore.store import Store
    from snapstore.store import catalog as cat_mod, writer as writer_mod
    point = sys.argv[1]
    def die():
        os.kill(os.getpid(), signal.SIGKILL)
    store = Store.open({root!r}, password=os.environ.get("SNAPSTORE_PASSWORD"))  # (ignored by a plain store)
    recs = churn(make_records(3000), 0.2, seed=5) + make_records(500, seed=6)
    if point == "ingest":
        cat_mod.Catalog.ingest = lambda self, batch: die()
    if point == "commit-object":
        real = store.backend.put
        def put(key, data):
            if key.startswith("snapshots/"):
                die()
            return real(key, data)
        store.backend.put = put
    snap = store.begin_snapshot()
    snap.add_base(BASE, "b", SCHEMA)
    tw = snap.table(BASE, TABLE)
    for i, r in enumerate(recs):
        tw.add(r)
        if point == "mid-records" and i == 2000:
            snap._packs.seal()
            die()
    if point == "manifest":
        writer_mod.TableWriter._write_manifest = lambda *a, **k: die()
    tw.finish()
    snap.commit()
    """
)


@pytest.mark.parametrize("point", ["mid-records", "manifest", "commit-object", "ingest"])
def test_killed_snapshot_leaves_store_intact(store, point):
    recs = make_records(3000)
    first = snapshot(store, recs)
    expected = sorted(map(str, store.records(first, BASE, TABLE)))
    script = CHILD.format(tests=str(Path(__file__).resolve().parents[1]), root=str(store.location))
    proc = subprocess.run([sys.executable, "-c", script, point], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    again = Store.open(store.location)
    snaps = again.list_snapshots()
    if point == "ingest":
        # the commit object was written: the next open of a writer replays it into the catalog
        assert len(snaps) in (1, 2)
    else:
        assert [s.full_id for s in snaps] == [first.full_id]
    assert sorted(map(str, again.records(first.full_id[:12], BASE, TABLE))) == expected
    later = snapshot(again, churn(recs, 0.01, seed=9))
    assert later.records == 3000
    assert sum(1 for _ in again.records(later, BASE, TABLE)) == 3000
    if point == "ingest":
        assert len(again.list_snapshots()) == 3


def test_attachments_small_and_large(store, tmp_path):
    import io

    small = os.urandom(1000)
    large = os.urandom(3 * 1024 * 1024)
    snap = store.begin_snapshot()
    snap.add_base(BASE, "b", SCHEMA)
    snap.table(BASE, TABLE).finish()
    h1 = snap.add_attachment("attSMALL000000001", io.BytesIO(small), size=1000, filename="s.bin", mime="application/octet-stream")
    h2 = snap.add_attachment("attLARGE000000001", io.BytesIO(large), size=len(large), filename="l.bin")
    with pytest.raises(StoreError, match="expected 5"):
        snap.add_attachment("attWRONG000000001", io.BytesIO(b"1234"), size=5)
    assert snap.known_attachment("attSMALL000000001") and not snap.known_attachment("attWRONG000000001")
    snap.commit()
    assert store.open_attachment("attSMALL000000001").read() == small
    assert store.open_attachment("attLARGE000000001").read() == large
    assert store.attachment("attLARGE000000001")["content_hash"] == h2 and h1 != h2
    os.remove(store.catalog.path)
    again = Store.open(store.location)
    assert again.open_attachment("attLARGE000000001").read() == large
    assert again.open_attachment("attSMALL000000001").read() == small


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="no store"):
        Store.open(tmp_path / "nowhere")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(StoreError, match="not empty"):
        Store.init(tmp_path / "full")


def test_full_manifest_checkpoint_after_heavy_churn_rebuilds_identically(store):
    recs = make_records(1200)
    snapshot(store, recs)
    for i in range(3):  # 60% churn each time: the delta chain outgrows the table, forcing a full manifest
        recs = churn(recs, 0.6, seed=20 + i)[:1200 - 10 * (i + 1)] + make_records(5, seed=40 + i)
        snapshot(store, recs)
    with store.catalog.read() as con:
        depths = [r[0] for r in con.execute("SELECT manifest_depth FROM snapshot_table ORDER BY seq").fetchall()]
    assert 0 in depths[1:], depths  # a checkpoint was written after the first snapshot
    before = {s.full_id: sorted(map(str, store.records(s, BASE, TABLE))) for s in store.list_snapshots()}
    os.remove(store.catalog.path)
    again = Store.open(store.location)
    assert {s.full_id: sorted(map(str, again.records(s, BASE, TABLE))) for s in again.list_snapshots()} == before


def test_records_are_read_in_chunks_of_whole_packs(store_factory, monkeypatch):
    from snapstore.store.catalog import Catalog

    store = store_factory.init("store", pack_size=64 * 1024)  # small packs: several for 8,000 records
    info = snapshot(store, make_records(8000))
    pieces = list(store.catalog.table_locations(info.seq, [(BASE, TABLE, 8000)], chunk=500))
    assert len(pieces) > 1 and sum(p[1].num_rows for p in pieces) == 8000 and {p[0] for p in pieces} == {0}
    whole = {r["id"] for r in store.records(info, BASE, TABLE)}
    real = Catalog.table_locations
    monkeypatch.setattr(Catalog, "table_locations", lambda self, *a, **k: real(self, *a, chunk=500))
    assert [r["id"] for r in store.records(info, BASE, TABLE)] and {r["id"] for r in store.records(info, BASE, TABLE)} == whole


def test_many_small_tables_are_located_together_each_in_its_own_chunks(store, monkeypatch):
    """Small tables share one catalog query; every table still gets exactly its own records, in
    the order asked, an empty table none, and a count that does not add up is an error."""
    from snapstore.store.catalog import Catalog

    info, tables, records = many_tables_snapshot(store, [3, 0, 700, 1, 40])
    expected = {t: sorted(r["id"] for r in recs) for t, recs in records.items()}

    queries = []
    real = Catalog._locate_small
    monkeypatch.setattr(Catalog, "_locate_small", lambda self, con, seq, pks: queries.append(pks) or real(self, con, seq, pks))
    order = [tables[4], tables[1], tables[0], tables[2], tables[3]]
    got: dict[str, list[str]] = {t: [] for t in order}
    positions = []
    for k, chunk in store.table_chunks(info, [(BASE, t) for t in order], size=256):
        positions.append(k)
        got[order[k]] += [loads(raw)["id"] for raw in BlobReader(store).read_chunk(chunk)]
    assert len(queries) == 1 and len(queries[0]) == 5  # one query for the five tables
    assert positions == sorted(positions)  # table after table, in the order asked
    assert {t: sorted(ids) for t, ids in got.items()} == expected
    assert positions.count(3) == 3  # 700 records in chunks of 256

    # a table whose locations fall short (as after a prune between two reads) is named
    monkeypatch.setattr(Catalog, "_locate_small", lambda self, con, seq, pks: real(self, con, seq, pks).slice(1))
    with pytest.raises(StoreError, match=r"read \d+ records, expected"):
        list(store.table_chunks(info, [(BASE, t) for t in order]))
