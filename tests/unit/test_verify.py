"""verify finds each kind of damage and names the snapshots, tables and records it reaches."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from retgen import history_store
from storegen import BASE, TABLE

from snapstore.commands.stats import stats as stats_cmd
from snapstore.commands.verify import verify as verify_cmd
from snapstore.ops.stats import stats
from snapstore.ops.verify import format_report, parse_subset, verify
from snapstore.store import objects
from snapstore.store.packs import pack_key


def a_record_blob(store, snap, with_dict: bool = False):
    """(record_id, pack name, off, clen, dict_hash, ids of snapshots showing this version);
    ``with_dict``: one compressed with its table's dictionary (format 4's column frames use none)."""
    with store.catalog.read() as con:
        rid, h, name, off, clen, dh = con.execute(
            f"""SELECT rv.record_id, rv.hash, p.name, b.off, b.clen, b.dict_hash
               FROM record_version rv JOIN blob b ON b.hash = rv.hash JOIN pack p ON p.pack_seq = b.pack_seq
               WHERE rv.begin_seq <= ? AND (rv.end_seq IS NULL OR rv.end_seq > ?) AND b.kind = 'R'
               {'AND b.dict_hash IS NOT NULL' if with_dict else ''}
               ORDER BY rv.record_id LIMIT 1""", [snap.seq, snap.seq]).fetchone()
        shows = [r[0][:8] for r in con.execute(
            """SELECT s.id FROM snapshot s JOIN record_version rv ON rv.hash = ? AND rv.record_id = ?
               WHERE rv.begin_seq <= s.seq AND (rv.end_seq IS NULL OR rv.end_seq > s.seq)""", [h, rid]).fetchall()]
    return rid, name, off, clen, dh, sorted(shows)


def affected(rep, kind):
    hits = [d for d in rep.damage if d.kind == kind]
    assert hits, f"no {kind} damage in {rep.to_dict()}"
    return [a for d in hits for a in d.affects if a.get("table_id") == TABLE]


@pytest.fixture
def hist(tmp_path_factory, tmp_path):
    return history_store(tmp_path_factory, tmp_path)


def test_clean_store_verifies_and_cli_exits_zero(hist):
    store, snaps = hist
    rep = verify(store, read_data=True)
    assert rep.ok and not rep.warnings, rep.to_dict()
    assert rep.checked["packs_read"] == rep.checked["packs"] and rep.checked["blobs_read"] > 300
    r = CliRunner().invoke(verify_cmd, ["--store", str(store.root), "--read-data-subset", "1/2"])
    assert r.exit_code == 0 and "no damage found" in r.output
    assert parse_subset("10%") == 0.1 and parse_subset("2/5") == (2, 5)
    with pytest.raises(ValueError):
        parse_subset("0/5")


def test_flipped_byte_is_found_by_read_data_naming_the_record(hist):
    store, snaps = hist
    rid, name, off, clen, _dh, shows = a_record_blob(store, snaps[-1])
    path = store.root / pack_key(name)
    data = bytearray(path.read_bytes())
    data[off + clen // 2] ^= 0x40
    path.write_bytes(bytes(data))
    rep = verify(store, read_data=True)
    assert not rep.ok
    assert any(d.kind == "pack-hash" and d.object == name for d in rep.damage)
    (a,) = affected(rep, "blob")
    # a frame is the unit of damage: format 2 frames hold many records, each one named
    with store.catalog.read() as con:
        in_frame = {r[0] for r in con.execute(
            """SELECT DISTINCT rv.record_id FROM record_version rv JOIN blob b ON b.hash = rv.hash
               JOIN pack p ON p.pack_seq = b.pack_seq WHERE p.name = ? AND b.off = ?""", [name, off]).fetchall()}
    assert (len(in_frame) == 1) == (store.format_version == 1)
    assert a["base_id"] == BASE and a["records"] == len(in_frame) and rid in a["record_ids"]
    assert set(a["record_ids"]) <= in_frame
    assert set(shows) <= set(a["snapshots"]) and snaps[-1].id in shows
    text = format_report(rep)
    assert rid in text and snaps[-1].id in text
    r = CliRunner().invoke(verify_cmd, ["--store", str(store.root), "--read-data", "--json"])
    assert r.exit_code == 1
    assert json.loads(r.output)["ok"] is False


def test_truncated_pack_is_found_without_reading_data(hist):
    store, snaps = hist
    rid, name, *_rest, shows = a_record_blob(store, snaps[0])
    path = store.root / pack_key(name)
    path.write_bytes(path.read_bytes()[:-100])
    rep = verify(store)
    hits = affected(rep, "pack-size")
    assert any(rid in a["record_ids"] or a["records"] > len(a["record_ids"]) for a in hits)
    assert set(shows) <= {s for a in hits for s in a["snapshots"]}
    assert "truncated" in format_report(rep)
    assert CliRunner().invoke(verify_cmd, ["--store", str(store.root)]).exit_code == 1


def test_deleted_pack_is_found(hist):
    store, snaps = hist
    rid, name, *_rest, shows = a_record_blob(store, snaps[3])
    (store.root / pack_key(name)).unlink()
    rep = verify(store)
    hits = affected(rep, "pack-missing")
    n = sum(a["records"] for a in hits)
    with store.catalog.read() as con:
        want = con.execute(
            """SELECT count(DISTINCT rv.record_id) FROM record_version rv JOIN blob b ON b.hash = rv.hash
               JOIN pack p ON p.pack_seq = b.pack_seq WHERE p.name = ?""", [name]).fetchone()[0]
    assert n == want > 0
    assert set(shows) <= {s for a in hits for s in a["snapshots"]}
    assert f"pack {name[:12]} is missing" in format_report(rep)


def test_deleted_dictionary_is_found_naming_every_record_it_compresses(tmp_path_factory, tmp_path):
    # format 3: every frame of its first snapshot uses the table's dictionary (a format-4 store
    # of 300 records has none: its small batches are column frames)
    store, snaps = history_store(tmp_path_factory, tmp_path, format_version=3)
    _rid, _name, _off, _clen, dh, _shows = a_record_blob(store, snaps[-1], with_dict=True)
    store.backend.delete(objects.object_key(dh.hex()))
    store._dicts.clear()
    rep = verify(store)
    hits = affected(rep, "dict-missing")
    assert sum(a["records"] for a in hits) >= 300
    assert {s.id for s in snaps} == {s for a in hits for s in a["snapshots"]}
    assert "compression dictionary" in format_report(rep)


def test_stats_reports_dedup_and_growth(hist):
    store, snaps = hist
    st = stats(store)
    assert st["snapshots"] == 8
    rows = st["bases"][BASE]
    assert [r["id"] for r in rows] == [s.id for s in snaps]
    assert rows[0]["records"] == 300 and rows[1]["records_delta"] == 1
    # ~300 records each, and 600 KiB attachments: two in snapshots 0-2, one after; the store keeps each once
    assert (3 * 2 + 5) * 600 * 1024 < st["logical_bytes"] < (3 * 2 + 5) * 600 * 1024 + 8 * 300 * 1024
    assert st["dedup_ratio"] > 3
    assert rows[1]["added_bytes"] < rows[0]["added_bytes"] / 3
    r = CliRunner().invoke(stats_cmd, ["--store", str(store.root)])
    assert r.exit_code == 0 and "deduplication ratio" in r.output


def test_deleted_manifest_is_found_naming_the_snapshots_that_reach_it(hist):
    store, snaps = hist
    first = snaps[0].doc["bases"][0]["tables"][0]["manifest"]  # the full checkpoint every delta chains to
    store.backend.delete(objects.object_key(first))
    rep = verify(store)
    (d,) = [d for d in rep.damage if d.kind == "manifest"]
    assert {s for a in d.affects for s in a["snapshots"]} == {s.id for s in snaps}
    assert "manifest" in format_report(rep)


def test_read_data_reports_its_progress_pack_by_pack(hist):
    """The CLI's live line for `verify --read-data` counts packs read of the packs to read."""
    store, _snaps = hist
    seen: list[tuple[int, int]] = []
    rep = verify(store, read_data=True, progress=lambda done, total: seen.append((done, total)))
    n = rep.checked["packs_read"]
    assert rep.ok and n > 1 and seen == [(i, n) for i in range(n)]
