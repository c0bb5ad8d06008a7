"""Store format 2: a table's records share zstd frames; format 1 stays readable and writable (format 3:
test_format3.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from storegen import BASE, TABLE, churn, make_records, snapshot

from snapstore.canonical import record_bytes
from snapstore.commands.init import init as init_cmd
from snapstore.ops.prune import prune
from snapstore.ops.retention import Policy, forget
from snapstore.ops.verify import verify
from snapstore.store import Store
from snapstore.store.packs import FRAME_RAW, pack_key, read_trailer
from snapstore.store.reader import BlobReader


def frames(store) -> list[tuple]:
    """(pack_seq, off, records in the frame, raw bytes of the frame) of every record frame."""
    with store.catalog.read() as con:
        return con.execute("""SELECT pack_seq, off, count(*), sum(rlen) FROM blob WHERE kind = 'R'
                              GROUP BY ALL ORDER BY ALL""").fetchall()


def pack_files(store) -> set[str]:
    return {k for k, _s in store.backend.list("packs")}


def test_records_share_frames_of_bounded_size_and_read_back(tmp_path):
    store = Store.init(tmp_path / "s", format_version=2)
    assert store.format_version == 2 and json.loads((tmp_path / "s" / "config.json").read_text())["version"] == 2
    recs = make_records(3000)
    info = snapshot(store, recs)
    fr = frames(store)
    raw_total = sum(len(record_bytes(r)) for r in recs)
    assert sum(n for _p, _o, n, _r in fr) == 3000
    assert len(fr) < 3000 / 50  # many records per frame
    # a frame closes once it passes FRAME_RAW: never more than one record beyond it
    biggest = max(len(record_bytes(r)) for r in recs)
    assert all(r < FRAME_RAW + biggest for _p, _o, _n, r in fr)
    assert sum(r for *_x, r in fr) == raw_total
    assert sorted(r["id"] for r in store.records(info, BASE, TABLE)) == sorted(r["id"] for r in recs)
    # the pack's own trailer says where each record is inside its frame
    (key,) = pack_files(store)
    entries = [e for e in read_trailer(store.backend.get_range, store.backend.size, key.rsplit("/", 1)[-1])
               if e.kind == "R"]
    assert len({e.offset for e in entries}) == len(fr) and max(e.inner for e in entries) > 0


def test_reading_one_record_decompresses_one_frame(tmp_path, monkeypatch):
    store = Store.init(tmp_path / "s", format_version=2)
    info = snapshot(store, make_records(3000))
    rid = next(iter(store.record_hashes(info, BASE, TABLE).column("hash").to_pylist()))
    calls = []
    real = BlobReader.frame
    monkeypatch.setattr(BlobReader, "frame", lambda self, *a, **k: calls.append(a[:2]) or real(self, *a, **k))
    raw = store.read_blob(rid)
    assert len(calls) == 1 and json.loads(raw)["id"].startswith("rec")
    # a table read decompresses each frame once, even when chunks cut frames
    reader = BlobReader(store, threads=0)
    counted = []

    class Counting:
        def __init__(self, real):
            self.real = real

        def decompress(self, data, *a, **k):
            counted.append(1)
            return self.real.decompress(data, *a, **k)

        def multi_decompress_to_buffer(self, frames, *a, **k):
            counted.extend([1] * len(frames))
            return self.real.multi_decompress_to_buffer(frames, *a, **k)

    chunks = list(store.record_chunks(info, BASE, TABLE, size=100))
    for dh in {d for c in chunks for d in c.dict_hashes}:
        reader._dctx[dh] = Counting(reader.decompressor(dh))
    assert sum(len(reader.read_chunk(c)) for c in chunks) == 3000
    assert len(counted) == len(frames(store))


def test_unchanged_snapshot_writes_no_pack_and_churn_writes_little(tmp_path):
    store = Store.init(tmp_path / "s", format_version=2)
    recs = make_records(3000)
    snapshot(store, recs)
    before = pack_files(store)
    snapshot(store, recs)
    assert pack_files(store) == before
    snapshot(store, churn(recs, 0.01))
    new = pack_files(store) - before
    assert len(new) == 1 and sum(n for p, _o, n, _r in frames(store) if p == max(f[0] for f in frames(store))) == 30


@pytest.mark.parametrize("fmt", [1, 2])
def test_prune_repacks_frames_holding_dead_records(tmp_path, fmt):
    store = Store.init(tmp_path / "s", format_version=fmt)
    recs = make_records(3000)
    snapshot(store, recs)
    edited = churn(recs, 0.3)
    last = snapshot(store, edited)
    forget(store, Policy(last=1))
    want = sorted(json.dumps(r, sort_keys=True) for r in store.records(last, BASE, TABLE))
    res = prune(store, max_unused="0%")
    assert res.packs_repack or res.packs_dead
    store = Store.open(tmp_path / "s")
    assert sorted(json.dumps(r, sort_keys=True) for r in store.records(store.resolve("latest"), BASE, TABLE)) == want
    # every frame left holds only live records: what remains is 3000 blobs, no more
    assert sum(n for _p, _o, n, _r in frames(store)) == 3000
    rep = verify(store, read_data=True)
    assert rep.ok, rep.to_dict()
    if fmt == 2:
        assert len(frames(store)) < 3000 / 50
    store.rebuild_catalog()
    assert sum(n for _p, _o, n, _r in frames(store)) == 3000


def test_format1_store_stays_format1_readable_and_writable(tmp_path):
    r = CliRunner().invoke(init_cmd, ["--store", str(tmp_path / "old"), "--format", "1"])
    assert r.exit_code == 0, r.output
    store = Store.open(tmp_path / "old")
    assert store.format_version == 1
    recs = make_records(500)
    snapshot(store, recs)
    info = snapshot(store, churn(recs, 0.1))
    fr = frames(store)
    assert all(n == 1 for _p, _o, n, _r in fr)  # one record per frame, as format 1 says
    for key in pack_files(store):  # version 1 packs, readable by an older snapstore
        assert store.backend.get(key)[-1] == 1
    assert sorted(r["id"] for r in Store.open(tmp_path / "old").records(info, BASE, TABLE)) == sorted(r["id"] for r in recs)
    assert verify(store, read_data=True).ok


def test_unknown_format_is_refused(tmp_path):
    Store.init(tmp_path / "s", format_version=2)
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    (tmp_path / "s" / "config.json").write_text(json.dumps(dict(cfg, version=9)))
    with pytest.raises(Exception, match="format version 9"):
        Store.open(tmp_path / "s")
    assert pack_key("ab" * 32).startswith("packs/ab/")


def test_catalog_is_readable_by_its_owner_only(tmp_path):
    store = Store.init(tmp_path / "s", format_version=2)
    snapshot(store, make_records(10))
    assert (store.catalog.path.stat().st_mode & 0o777) == 0o600
    store.rebuild_catalog()
    assert (store.catalog.path.stat().st_mode & 0o777) == 0o600
