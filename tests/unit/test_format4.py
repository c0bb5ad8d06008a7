"""Store format 4: a table's small batch of new records (a day's changes) is one column frame,
which decodes to the very NDJSON frame format 3 stores; a table's dictionary is trained only
when it has a large batch. Formats 1-3 stay readable and writable (test_format2/3.py)."""

from __future__ import annotations

import hashlib

import pytest
import zstandard
from click.testing import CliRunner
from storegen import BASE, TABLE, churn, make_records, snapshot

from snapstore.canonical import record_bytes
from snapstore.commands.init import init as init_cmd
from snapstore.commands.rebuild_catalog import rebuild_catalog
from snapstore.errors import StoreError
from snapstore.ops.prune import prune
from snapstore.ops.retention import Policy, forget
from snapstore.ops.verify import verify
from snapstore.store import Store, columns, objects
from snapstore.store.packs import pack_key, read_trailer

PASSWORD = "format four"


def stored_frames(store: Store) -> list[bytes]:
    """Every record frame in the store, opened (unsealed) but not decompressed."""
    out = []
    for key, _s in store.backend.list("packs"):
        data = store.backend.get(key)
        name = key.rsplit("/", 1)[-1]
        for e in read_trailer(lambda _k, o, n, d=data: d[o:o + n], lambda _k, d=data: len(d), name, store.box):
            if e.fid is not None:
                out.append(store.box.open(data[e.offset:e.offset + e.clen]))
    return out


def table_dict(store: Store) -> str | None:
    """The latest snapshot's compression dictionary of the table (its commit object's ``dict``)."""
    return store.resolve("latest").doc["bases"][0]["tables"][0]["dict"]


def dictionaries(store: Store) -> int:
    """Objects that are not msgpack: compression dictionaries (raw zstd dictionary bytes)."""
    n = 0
    for key, _s in store.backend.list("objects"):
        try:
            objects.decode(store.backend.get(key), store.box)
        except Exception:  # noqa: BLE001 - a dictionary does not decode
            n += 1
    return n


def by_id(store: Store, snap="latest") -> dict[str, bytes]:
    return {r["id"]: record_bytes(r) for r in store.records(snap, BASE, TABLE)}


@pytest.mark.parametrize("lines", [
    [{"id": "rec1", "createdTime": "2024-01-01T00:00:00.000Z", "fields": {}}],
    [{"id": "rec2", "createdTime": None, "fields": {"fldA": "naïve \"quoted\" \\ ✓", "fld\"B": [1, {"z": 1, "a": [None]}]}},
     {"id": "rec3", "createdTime": "x", "fields": {"fldA": 1.5e-300, "fldC": True}},
     {"id": "rec4", "createdTime": "x", "fields": {"fldC": False, "fldA": "\u2028 line sep"}}],
])
def test_a_column_frame_decodes_to_exactly_the_ndjson_frame(lines):
    frame = b"".join(record_bytes(r) + b"\n" for r in lines)
    cols = columns.encode(frame)
    assert cols is not None and columns.decode(cols) == frame
    stored = columns.compress(zstandard.ZstdCompressor(level=19), frame)
    assert columns.is_columns(stored) and columns.inflate(stored) == frame
    # records of several shapes, interleaved: columns list them shape by shape, decoding puts
    # them back in frame order
    frame = b"".join(record_bytes(r) + b"\n" for r in lines * 3 + lines[::-1])
    assert columns.decode(columns.encode(frame)) == frame


def test_a_frame_of_other_lines_stays_ndjson():
    cctx = zstandard.ZstdCompressor(level=3)
    for frame in (b'{"id":"rec1","fields":{}}\n',                 # a key missing
                  b'{"createdTime":null,"fields":[],"id":"r"}\n',  # fields not an object
                  b'not json\n', b'{"createdTime":null,"fields":{},"id":"r"}'):  # no final newline
        assert columns.encode(frame) is None
        stored = columns.compress(cctx, frame)
        assert not columns.is_columns(stored) and zstandard.ZstdDecompressor().decompress(stored) == frame


def test_a_damaged_column_payload_is_a_store_error_not_a_crash():
    cctx = zstandard.ZstdCompressor(level=3)
    for stored in (columns.TAG + b"\x00garbage", columns.TAG + cctx.compress(b"\x93\x01\x02\x03"),
                   columns.TAG + cctx.compress(b"\x95\x90\x91\x00\xc4\x00\xc4\x00\x90")):
        with pytest.raises(StoreError):
            columns.inflate(stored)


@pytest.mark.parametrize("password", [None, PASSWORD], ids=["plain", "encrypted"])
def test_a_days_changes_are_one_column_frame_and_read_back(tmp_path, password):
    store = Store.init(tmp_path / "s", password=password)
    assert store.format_version == 4
    recs = make_records(4000)  # ~1.6 MB raw: one large batch (dictionary) and a small last one
    snapshot(store, recs)
    first = stored_frames(store)
    assert table_dict(store) is not None and dictionaries(store) == 1
    day2 = churn(recs, 0.01)
    snapshot(store, day2)
    frames = stored_frames(store)
    assert len(frames) == len(first) + 1, "a day's 40 changed records are one frame"
    assert sum(map(columns.is_columns, frames)) == sum(map(columns.is_columns, first)) + 1
    assert by_id(store) == {r["id"]: record_bytes(r) for r in day2}
    assert by_id(store, "latest~1") == {r["id"]: record_bytes(r) for r in recs}
    rep = verify(store, read_data=True)
    assert rep.ok, rep.to_dict()


def test_a_small_table_stores_no_dictionary(tmp_path):
    store = Store.init(tmp_path / "s")
    recs = make_records(500)  # 200 KB raw: a small batch, so a column frame, which uses none
    snapshot(store, recs)
    snapshot(store, churn(recs, 0.1))
    assert table_dict(store) is None and dictionaries(store) == 0
    assert all(map(columns.is_columns, stored_frames(store)))
    store3 = Store.init(tmp_path / "s3", format_version=3)
    snapshot(store3, recs)
    assert dictionaries(store3) == 1  # what format 3 stores for the same table


def test_rebuild_catalog_and_prune_keep_column_frames_readable(tmp_path):
    store = Store.init(tmp_path / "s")
    store.backend.fsync = False
    days = [make_records(3000)]
    for d in range(1, 5):
        days.append(churn(days[-1], 0.02, seed=d))
    for recs in days:
        snapshot(store, recs)
    want = {s.id: by_id(store, s) for s in store.list_snapshots()}
    assert CliRunner().invoke(rebuild_catalog, ["--store", str(store.root)]).exit_code == 0
    store = Store.open(tmp_path / "s")
    assert {s.id: by_id(store, s) for s in store.list_snapshots()} == want
    kept = sorted(store.list_snapshots(), key=lambda s: s.time)[-2:]
    forget(store, Policy(last=2))
    prune(store, max_unused="0%")
    store = Store.open(tmp_path / "s")
    assert {s.id: by_id(store, s) for s in store.list_snapshots()} == {s.id: want[s.id] for s in kept}
    assert verify(store, read_data=True).ok


def test_a_format_3_store_still_writes_ndjson_frames(tmp_path):
    store = Store.init(tmp_path / "s", format_version=3)
    recs = make_records(500)
    snapshot(store, recs)
    snapshot(store, churn(recs, 0.1))
    assert Store.open(tmp_path / "s").format_version == 3
    frames = stored_frames(store)
    assert frames and not any(map(columns.is_columns, frames))
    assert by_id(store) == {r["id"]: record_bytes(r) for r in churn(recs, 0.1)}


def test_init_format_4_is_the_default_and_3_can_be_asked_for(tmp_path):
    r = CliRunner().invoke(init_cmd, ["--store", str(tmp_path / "a"), "--no-encryption"])
    assert r.exit_code == 0 and Store.open(tmp_path / "a").format_version == 4
    r = CliRunner().invoke(init_cmd, ["--store", str(tmp_path / "b"), "--no-encryption", "--format", "3"])
    assert r.exit_code == 0 and Store.open(tmp_path / "b").format_version == 3
    r = CliRunner().invoke(init_cmd, ["--store", str(tmp_path / "c"), "--format", "5"])
    assert r.exit_code == 2 and not (tmp_path / "c").exists()


def test_a_flipped_byte_in_a_column_frame_is_found(tmp_path):
    store = Store.init(tmp_path / "s")
    recs = make_records(300)
    snapshot(store, recs)
    (key, _s), = [(k, s) for k, s in store.backend.list("packs")]
    data = bytearray(store.backend.get(key))
    e = next(e for e in read_trailer(lambda _k, o, n: bytes(data[o:o + n]), lambda _k: len(data), key.rsplit("/", 1)[-1])
             if e.fid is not None)
    assert columns.is_columns(data[e.offset:e.offset + e.clen])
    data[e.offset + e.clen // 2] ^= 0x01
    (store.root / key).write_bytes(bytes(data))
    rep = verify(store, read_data=True)
    assert not rep.ok
    (a,) = [a for d in rep.damage if d.kind == "blob" for a in d.affects]
    assert a["records"] == len(recs) and set(a["record_ids"]) <= {r["id"] for r in recs}
    assert hashlib.sha256(bytes(data)).hexdigest() != key.rsplit("/", 1)[-1]
    assert pack_key(key.rsplit("/", 1)[-1]) == key


def test_prune_rewrites_what_is_left_of_a_column_frame_as_a_column_frame(tmp_path, monkeypatch):
    from snapstore.store import writer

    monkeypatch.setattr(writer, "MAX_CHAIN_DEPTH", 1)  # every snapshot writes a full manifest: frames can die
    store = Store.init(tmp_path / "s")
    store.backend.fsync = False
    days = [make_records(600)]  # 240 KB raw: day one is a column frame too
    for d in range(1, 4):
        days.append(churn(days[-1], 0.3, seed=d))
    for recs in days:
        snapshot(store, recs)
    forget(store, Policy(last=1))
    res = prune(store, max_unused="0%")
    assert res.blobs_dead > 0 and res.packs_repack
    store = Store.open(tmp_path / "s")
    frames = stored_frames(store)
    assert frames and all(map(columns.is_columns, frames))
    assert by_id(store) == {r["id"]: record_bytes(r) for r in days[-1]}
    assert verify(store, read_data=True).ok
