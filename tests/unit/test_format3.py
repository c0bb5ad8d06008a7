"""Store format 3: record frames named by a frame id, no per-record hash on disk; manifests name
the frames a snapshot wrote. Formats 1 and 2 stay readable and writable (test_format2.py)."""

from __future__ import annotations

import hashlib
import json

import pytest
import zstandard
from click.testing import CliRunner
from storegen import BASE, SCHEMA, TABLE, churn, make_records, snapshot

from snapstore.canonical import record_bytes
from snapstore.commands.init import init as init_cmd
from snapstore.ops.prune import prune
from snapstore.ops.retention import Policy, forget
from snapstore.ops.verify import format_report, verify
from snapstore.store import Store, objects
from snapstore.store.packs import pack_key, read_trailer


def expected(recs: list[dict]) -> list[tuple[str, bytes]]:
    return sorted((r["id"], hashlib.sha256(record_bytes(r)).digest()) for r in recs)


def state(store: Store, snap) -> list[tuple[str, bytes]]:
    t = store.record_hashes(snap, BASE, TABLE)
    return list(zip(t.column("record_id").to_pylist(), t.column("hash").to_pylist(), strict=True))


def catalog_rows(store: Store) -> dict[str, list]:
    with store.catalog.read() as con:
        return {
            "blob": con.execute("SELECT hash, off, clen, rlen, kind, dict_hash, ioff FROM blob ORDER BY ALL").fetchall(),
            "frame": con.execute("SELECT fid, off, clen, dict_hash, n_items FROM frame ORDER BY ALL").fetchall(),
            "versions": con.execute("""SELECT record_id, hash, begin_seq, end_seq FROM record_version
                                       ORDER BY ALL""").fetchall(),
            "tables": con.execute("SELECT seq, manifest, n_records, n_new, n_changed, n_deleted FROM snapshot_table "
                                  "ORDER BY ALL").fetchall(),
        }


def manifests(store: Store) -> list[dict]:
    out = []
    for key, _s in store.backend.list("objects"):
        try:
            doc = objects.decode(store.backend.get(key))
        except Exception:  # noqa: BLE001 - dictionaries are not msgpack
            continue
        if doc.get("type") == objects.MANIFEST:
            out.append(doc)
    return out


@pytest.fixture
def store3(tmp_path):
    return Store.init(tmp_path / "s", format_version=3)


def test_round_trip_and_no_record_hash_on_disk(store3, tmp_path):
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert cfg["version"] == 3 and cfg["zstd_level"] == 9 and store3.record_level == 9
    recs = make_records(3000)
    info = snapshot(store3, recs)
    assert state(store3, info) == expected(recs)
    got = sorted(json.dumps(r, sort_keys=True) for r in store3.records(info, BASE, TABLE))
    assert got == sorted(json.dumps(json.loads(record_bytes(r)), sort_keys=True) for r in recs)
    # the pack's trailer lists record frames by id and their items' lengths, no record hash
    (key,) = [k for k, _s in store3.backend.list("packs")]
    data = store3.backend.get(key)
    assert data[-1] == 3
    entries = read_trailer(store3.backend.get_range, store3.backend.size, key.rsplit("/", 1)[-1])
    rec = [e for e in entries if e.kind == "R"]
    assert sum(e.n_items for e in rec) == 3000 and all(e.hash is None and e.fid is not None for e in rec)
    assert all(hashlib.sha256(data[e.offset:e.offset + e.clen]).digest() == e.fid for e in rec)
    # a record frame, decompressed, is NDJSON: one record a line, each a canonical record
    d = store3.dict_bytes(rec[0].dict_hash)
    lines = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(d)).decompress(
        data[rec[0].offset:rec[0].offset + rec[0].clen]).split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == rec[0].n_items and lines[0] == record_bytes(recs[0])
    assert all(e.hash is not None for e in entries if e.kind != "R")  # the schema keeps its hash
    for r in recs[:50]:  # no 32-byte record hash anywhere in the store's files
        h = hashlib.sha256(record_bytes(r)).digest()
        assert not any(h in p.read_bytes() for p in (tmp_path / "s").rglob("*")
                       if p.is_file() and not p.name.startswith("catalog"))
    # the first snapshot's manifest names frames only
    (m,) = manifests(store3)
    assert m["v"] == 3 and m["full"] and len(m["frames"]) == len(rec)
    assert objects.manifest_columns(m)[0] == []
    # reading one record decompresses one frame
    h = state(store3, info)[7][1]
    assert json.loads(store3.read_blob(h))["id"] == state(store3, info)[7][0]


def test_delta_chain_with_edits_deletes_and_a_revert(store3):
    recs = make_records(2000)
    snaps = [(snapshot(store3, recs), recs)]
    edited = churn(recs, 0.05, seed=5)
    snaps.append((snapshot(store3, edited), edited))
    fewer = edited[100:] + make_records(30, seed=9)
    snaps.append((snapshot(store3, fewer), fewer))
    reverted = [recs[k + 100] if k < 300 else r for k, r in enumerate(fewer)]  # back to day one's versions
    assert reverted != fewer
    snaps.append((snapshot(store3, reverted), reverted))
    snaps.append((snapshot(store3, reverted), reverted))  # unchanged: no manifest, no pack
    for info, r in snaps:
        assert state(store3, info) == expected(r)
    deltas = [m for m in manifests(store3) if not m["full"]]
    assert len(deltas) == 3
    # the revert stored nothing new: its records are dedup hits, listed one by one
    (revert,) = [m for m in deltas if not m.get("frames")]
    assert len(objects.manifest_columns(revert)[0]) >= 1
    written = catalog_rows(store3)
    store3.rebuild_catalog()
    store = Store.open(store3.root)
    assert catalog_rows(store) == written
    for info, r in snaps:
        assert state(store, store.resolve(info.full_id)) == expected(r)
    assert verify(store, read_data=True).ok


def test_listing_restart_lists_records_of_a_stale_frame_one_by_one(store3):
    recs = make_records(3000)
    w = store3.begin_snapshot()
    w.add_base(BASE, "Bench", SCHEMA)
    tw = w.table(BASE, TABLE)
    tw.add_many(recs[:2500])
    tw.reset()  # the listing expired: it starts again, and some records changed meanwhile
    now = churn(recs, 0.2, seed=2)
    tw.add_many(now)
    tw.finish()
    info = w.commit()
    assert state(store3, info) == expected(now)
    store3.rebuild_catalog()
    store = Store.open(store3.root)
    assert state(store, store.resolve(info.full_id)) == expected(now)
    (m,) = manifests(store)
    assert m["frames"] and len(objects.manifest_columns(m)[0]) > 0


def test_prune_keeps_named_frames_and_snapshots_readable(store3):
    recs = make_records(3000)
    snapshot(store3, recs)
    mid = churn(recs, 0.3, seed=3)
    snapshot(store3, mid)
    last_recs = churn(mid, 0.3, seed=4)
    last = snapshot(store3, last_recs)
    forget(store3, Policy(last=2))
    res = prune(store3, max_unused="0%")
    assert res.packs_repack or res.packs_dead or res.blobs_dead == 0
    store = Store.open(store3.root)
    snaps = store.list_snapshots()
    assert len(snaps) == 2
    assert state(store, store.resolve(last.full_id)) == expected(last_recs)
    assert state(store, snaps[1]) == expected(mid)
    rep = verify(store, read_data=True)
    assert rep.ok, rep.to_dict()
    written = catalog_rows(store)
    store.rebuild_catalog()
    store = Store.open(store.root)
    got = catalog_rows(store)
    assert got["frame"] == written["frame"]  # (seqs are renumbered: forget dropped one)
    # rebuild also lists the dead records still inside a kept frame: the live ones are equal
    assert set(written["blob"]) <= set(got["blob"])
    assert state(store, store.resolve(last.full_id)) == expected(last_recs)
    assert state(store, store.list_snapshots()[1]) == expected(mid)


def test_flipped_byte_in_a_frame_is_found_and_its_records_named(store3):
    recs = make_records(2000)
    info = snapshot(store3, recs)
    with store3.catalog.read() as con:
        name, off, clen = con.execute("""SELECT p.name, f.off, f.clen FROM frame f JOIN pack p USING (pack_seq)
                                         ORDER BY f.off LIMIT 1 OFFSET 2""").fetchone()
        in_frame = {r[0] for r in con.execute(
            """SELECT rv.record_id FROM record_version rv JOIN blob b ON b.hash = rv.hash
               JOIN pack p ON p.pack_seq = b.pack_seq WHERE p.name = ? AND b.off = ?""", [name, off]).fetchall()}
    assert len(in_frame) > 50
    path = store3.root / pack_key(name)
    data = bytearray(path.read_bytes())
    data[off + clen // 2] ^= 0x01
    path.write_bytes(bytes(data))
    for read_data in (False, True):  # the manifest's frame id catches it even without --read-data
        rep = verify(store3, read_data=read_data)
        assert not rep.ok
        hits = [a for d in rep.damage if d.kind in ("frame", "blob") for a in d.affects if a.get("table_id") == TABLE]
        assert hits and all(set(a["record_ids"]) <= in_frame for a in hits)
        assert max(a["records"] for a in hits) == len(in_frame)
        assert info.id in format_report(rep)


def test_init_format_3_from_the_cli(tmp_path):
    r = CliRunner().invoke(init_cmd, ["--store", str(tmp_path / "s"), "--format", "3"])
    assert r.exit_code == 0, r.output
    assert Store.open(tmp_path / "s").format_version == 3


def test_after_a_chain_rebase_prune_frees_the_dead_records_of_old_frames(store3, monkeypatch):
    from snapstore.store import writer

    monkeypatch.setattr(writer, "MAX_CHAIN_DEPTH", 1)  # every snapshot writes a full manifest

    def manifest_of(info):
        return store3._manifest(info.doc["bases"][0]["tables"][0]["manifest"])

    recs = make_records(2000)
    snapshot(store3, recs)
    mid = churn(recs, 0.3, seed=3)
    snapshot(store3, mid)
    last_recs = churn(mid, 0.3, seed=4)
    rebased = snapshot(store3, last_recs)  # its own frames named, the records of older frames listed
    m3 = manifest_of(rebased)
    assert m3["full"] and m3["frames"] and len(m3["ids"]) == 2000 - 600
    # a full manifest names the earlier frames whose records all still are: here the last one's
    more = last_recs + make_records(5, seed=11)
    last = snapshot(store3, more)
    m4 = manifest_of(last)
    assert set(m3["frames"]) < set(m4["frames"]) and m4["ids"] == m3["ids"]
    assert state(store3, last) == expected(more)
    forget(store3, Policy(last=1))
    res = prune(store3, max_unused="0%")
    assert res.blobs_dead > 0 and (res.packs_repack or res.packs_dead)
    store = Store.open(store3.root)
    with store.catalog.read() as con:  # only the kept snapshot's records are left in frames
        assert con.execute("SELECT count(*) FROM blob WHERE kind = 'R'").fetchone()[0] == 2005
    assert state(store, store.resolve(last.full_id)) == expected(more)
    assert verify(store, read_data=True).ok
    store.rebuild_catalog()
    store = Store.open(store.root)
    assert state(store, store.resolve(last.full_id)) == expected(more)
    assert verify(store, read_data=True).ok
