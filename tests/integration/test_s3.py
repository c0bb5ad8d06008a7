"""The S3 backend on a real S3 server (SeaweedFS, started by conftest.py): the object protocol,
the local catalog cache, lock objects, several writers on one bucket, and the CLI end to end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TEST_PASSWORD
from storegen import BASE, SCHEMA, TABLE, churn, make_records, snapshot

from snapstore.store import LockError, Store, StoreError
from snapstore.store import s3 as s3mod
from snapstore.store.backend import ObjectMissing
from snapstore.store.s3 import S3Backend, parse_s3_url

TESTS = str(Path(__file__).resolve().parents[1])


def contents(store, snap, base=BASE, table=TABLE):
    return sorted(json.dumps(r, sort_keys=True) for r in store.records(snap, base, table))


def bucket_objects(url: str) -> dict[str, bytes]:
    """Every object under the store's prefix (temporary uploads included), and its bytes."""
    b = S3Backend.from_url(url)
    bucket, prefix = parse_s3_url(url)
    out = {}
    for page in b.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []) or []:
            out[obj["Key"]] = b.client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


# ---- the object protocol ---------------------------------------------------------------------

def test_parse_url():
    assert parse_s3_url("s3://bkt/a/b/") == ("bkt", "a/b")
    assert parse_s3_url(Path("s3://bkt/a")) == ("bkt", "a")  # Path folds // to /
    assert parse_s3_url("s3://bkt") == ("bkt", "")
    assert parse_s3_url("/tmp/store") is None and parse_s3_url("s3x://b") is None


def test_backend_create_only_ranges_listing_and_reader(s3_env):
    b = S3Backend.from_url(s3_env("objs"))
    assert b.create("objects/aa/one", b"first") is True
    assert b.create("objects/aa/one", b"other") is False  # 412: already there, left as it was
    b.put("objects/aa/one", b"third")
    assert b.get("objects/aa/one") == b"first"
    assert b.size("objects/aa/one") == 5 and b.exists("objects/aa/one") and not b.exists("objects/aa/two")
    assert b.get_range("objects/aa/one", 1, 3) == b"irs" and b.get_range("objects/aa/one", 9, 3) == b""
    for call in (b.get, b.size, b.open):
        with pytest.raises(ObjectMissing):
            call("objects/nope")
    data = os.urandom(3 * 1024 * 1024 + 17)
    assert b.put_stream("objects/bb/big", io.BytesIO(data)) == len(data)
    f = b.open("objects/bb/big")
    assert f.read(10) == data[:10]
    f.seek(2 * 1024 * 1024)
    assert f.read(100) == data[2 * 1024 * 1024 : 2 * 1024 * 1024 + 100]
    f.seek(0)
    assert f.read() == data
    for i in range(20):  # (no empty body: SeaweedFS 4.48 stalls the next request on that connection)
        b.put(f"packs/{i:02x}/p{i}", b"x" * (i + 1))
    b.page_size = 6
    before = b.requests
    listed = list(b.list("packs"))
    assert b.requests - before == 4  # 20 keys in pages of 6
    assert sorted(listed) == sorted((f"packs/{i:02x}/p{i}", i + 1) for i in range(20))
    assert [k for k, _ in b.list("objects")] == ["objects/aa/one", "objects/bb/big"]
    b.delete("objects/aa/one")
    b.delete("objects/aa/one")  # idempotent
    assert not b.exists("objects/aa/one")


def test_backend_multipart_upload(s3_env, monkeypatch, tmp_path):
    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3mod, "MULTIPART_PART", 5 * 1024 * 1024)
    b = S3Backend.from_url(s3_env("mp"))
    calls = []
    b.client.meta.events.register("before-call.s3.*", lambda model, **kw: calls.append(model.name))
    data = os.urandom(12 * 1024 * 1024 + 5)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    b.put_file("objects/cc/large", path)
    assert calls.count("UploadPart") == 3 and "CompleteMultipartUpload" in calls
    assert b.get("objects/cc/large") == data
    calls.clear()
    b.put_file("objects/cc/large", path)  # already there: one HEAD, nothing uploaded
    assert calls == ["HeadObject"]
    assert b.put_stream("objects/cc/large", io.BytesIO(data)) == len(data)  # create-only completion
    assert b.get("objects/cc/large") == data


# ---- stores on S3 ----------------------------------------------------------------------------

def test_not_a_store_and_not_empty(s3_env):
    with pytest.raises(StoreError, match="no store"):
        Store.open(s3_env("nowhere"))
    url = s3_env("full")
    S3Backend.from_url(url).put("stray.txt", b"x")
    with pytest.raises(StoreError, match="not empty"):
        Store.init(url)
    st = Store.open(s3_env("new"), create=True)
    with pytest.raises(StoreError, match="already holds"):
        Store.init(st.location)


def test_catalog_cache_rebuilt_on_another_machine(s3_env, tmp_path, monkeypatch):
    url = s3_env()
    st = Store.init(url, pack_size=256 * 1024)
    recs = make_records(600)
    a = snapshot(st, recs)
    b = snapshot(st, churn(recs, 0.05))
    assert st.local_dir == tmp_path / "s3-cache" / st.config["store_id"]
    assert (st.local_dir / "catalog.duckdb").exists()
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "machine2"))  # no cache at all: rebuilt from the bucket
    other = Store.open(url)
    assert other.local_dir != st.local_dir and (other.local_dir / "catalog.duckdb").exists()
    assert [s.full_id for s in other.list_snapshots()] == [b.full_id, a.full_id]
    assert contents(other, a) == contents(st, a) and contents(other, b) == contents(st, b)
    # a third snapshot from machine 2 shows on machine 1 at its next open (appended, no rebuild)
    c = snapshot(other, churn(recs, 0.05, seed=4))
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "s3-cache"))
    again = Store.open(url)
    assert again.local_dir == st.local_dir
    assert [s.full_id for s in again.list_snapshots()] == [c.full_id, b.full_id, a.full_id]
    assert contents(again, c) == contents(other, c)


def test_two_writers_interleaved_different_bases(s3_env, tmp_path, monkeypatch):
    """Two machines (two caches) write different bases at the same time; the one that committed
    first sees a newer snapshot appended, the other an older one, so it rebuilds its cache."""
    url = s3_env()
    Store.init(url)
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "m1"))
    m1 = Store.open(url)
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "m2"))
    m2 = Store.open(url)
    r1, r2 = make_records(400, seed=1), make_records(300, seed=2)
    w1 = m1.begin_snapshot()  # both hold shared lock objects now
    w2 = m2.begin_snapshot()
    for w, base, recs in ((w1, "appMACHINE0000001", r1), (w2, "appMACHINE0000002", r2)):
        w.add_base(base, base, SCHEMA)
        tw = w.table(base, TABLE)
        for r in recs:
            tw.add(r)
        tw.finish()
    s2 = w2.commit()
    s1 = w1.commit()
    assert s1.time > s2.time
    assert m2.sync() == 1  # s1 is newer than m2's latest: appended
    assert m1.sync() == 2  # s2 is older than m1's latest: the cache is rebuilt (2 snapshots)
    for m in (m1, m2):
        assert [s.full_id for s in m.list_snapshots()] == [s1.full_id, s2.full_id]
        assert len(contents(m, s1.full_id, "appMACHINE0000001")) == 400
        assert len(contents(m, s2.full_id, "appMACHINE0000002")) == 300
    # each machine's next snapshot of its own base is a delta against its own previous one
    w = m2.begin_snapshot()
    w.add_base("appMACHINE0000002", "b2", SCHEMA)
    tw = w.table("appMACHINE0000002", TABLE)
    for r in churn(r2, 0.1):
        tw.add(r)
    tw.finish()
    t = w.commit().table("appMACHINE0000002", TABLE)
    assert (t.new, t.changed, t.unchanged) == (0, 30, 270)


def test_prune_refuses_while_a_writer_holds_a_lock(s3_env, tmp_path, monkeypatch):
    from snapstore.ops.prune import prune

    url = s3_env()
    st = Store.init(url)
    snapshot(st, make_records(50))
    w = st.begin_snapshot(command="snapshot --base appX")
    try:
        monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "m2"))
        other = Store.open(url)
        with pytest.raises(LockError, match=r"snapshot --base appX.*shared lock"):
            prune(other)
        holder = other.lock_holder()
        assert holder is None  # a shared lock does not stop another writer
        other.begin_snapshot().abandon()
    finally:
        w.abandon()
    assert list(st.backend.list("locks")) == []
    with other.lock("prune"):  # exclusive: now writers are refused
        with pytest.raises(LockError, match="prune.*exclusive"):
            st.begin_snapshot()
        assert "prune" in st.lock_holder().describe()
    prune(other)


def test_stale_and_broken_lock_objects(s3_env):
    st = Store.init(s3_env())
    old = (datetime.now(UTC) - timedelta(minutes=31)).isoformat(timespec="seconds")
    doc = {"host": "elsewhere", "pid": 1, "command": "prune", "time": old, "refreshed": old, "exclusive": True}
    st.backend.put("locks/0000stale.json", json.dumps(doc).encode())
    w = st.begin_snapshot()  # the stale exclusive lock is removed, not obeyed
    w.abandon()
    assert list(st.backend.list("locks")) == []
    fresh = dict(doc, refreshed=datetime.now(UTC).isoformat(timespec="seconds"))
    st.backend.put("locks/0000fresh.json", json.dumps(fresh).encode())
    with pytest.raises(LockError, match="elsewhere"):
        st.begin_snapshot()
    assert st.unlock().host == "elsewhere"
    assert list(st.backend.list("locks")) == []
    st.begin_snapshot().abandon()


def test_lock_object_is_refreshed_while_held(s3_env, monkeypatch):
    from snapstore.store import lock as lock_mod

    monkeypatch.setattr(lock_mod, "REMOTE_REFRESH_EVERY", 0.3)
    st = Store.init(s3_env())
    w = st.begin_snapshot()
    try:
        (info,) = lock_mod.read_remote_locks(st.backend)
        assert not info.exclusive and info.pid == os.getpid()
        import time

        deadline = time.monotonic() + 5
        while lock_mod.read_remote_locks(st.backend)[0].refreshed == info.refreshed:
            assert time.monotonic() < deadline, "the lock object was not refreshed"
            time.sleep(0.2)
    finally:
        w.abandon()
    assert list(st.backend.list("locks")) == []


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from storegen import SCHEMA, TABLE, make_records, churn
    from snapstore.store import Store
    url, base, seed, me, other = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
    store = Store.open(url)
    recs = make_records(2000, seed=seed)
    for round in range(2):
        snap = store.begin_snapshot()
        # both processes hold their shared lock before either writes anything
        Path(f"{{me}}.{{round}}").write_text("x")
        deadline = time.time() + 30
        while not Path(f"{{other}}.{{round}}").exists():
            assert time.time() < deadline, "the other writer never started"
            time.sleep(0.02)
        snap.add_base(base, base, SCHEMA)
        tw = snap.table(base, TABLE)
        for r in (recs if round == 0 else churn(recs, 0.02, seed=seed)):
            tw.add(r)
        tw.finish()
        snap.commit()
    store.sync()
    print(" ".join(s.full_id for s in store.list_snapshots()))
    """
)


def test_two_writer_processes_on_one_bucket(s3_env, tmp_path):
    url = s3_env()
    Store.init(url)
    script = WRITER.format(tests=TESTS)
    procs = []
    for i, (base, seed) in enumerate((("appPROCESS000001", 11), ("appPROCESS000002", 12))):
        env = dict(os.environ, SNAPSTORE_CACHE=str(tmp_path / f"cache{i}"))
        me, other = tmp_path / f"ready{i}", tmp_path / f"ready{1 - i}"
        procs.append(subprocess.Popen([sys.executable, "-c", script, url, base, str(seed), str(me), str(other)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    seen = [out.split() for out, _err in outs]
    assert len(seen[0]) == 4 and seen[0] == seen[1]  # each sees the other's snapshots, in the same order
    fresh = Store.open(url)
    assert [s.full_id for s in fresh.list_snapshots()] == seen[0]
    for base in ("appPROCESS000001", "appPROCESS000002"):
        mine = [s for s in fresh.list_snapshots() if s.bases[0].base_id == base]
        assert len(mine) == 2
        want = sorted(json.dumps(r, sort_keys=True) for r in Store.open(url).records(mine[0], base, TABLE))
        assert len(want) == 2000
        assert mine[0].table(base, TABLE).changed == 40 and mine[0].table(base, TABLE).new == 0
    from snapstore.ops.verify import verify

    assert verify(fresh, read_data=True).ok
    assert list(fresh.backend.list("locks")) == []


def test_a_wrong_password_is_exit_12_and_writes_nothing_to_the_bucket(s3_env, tmp_path):
    """Another machine (no cache yet) with the wrong password, through the CLI (test_crypt.py has
    the library's two machines sharing a password): every verb, readers and writers,
    stops with one line and exit 12; the bucket is byte for byte as it was (and holds nothing in
    clear), no cache was made, and the right password still opens the store."""
    from snapstore.cli import main

    url = s3_env()
    recs = make_records(50)
    snapshot(Store.init(url, password=TEST_PASSWORD), recs)
    before = bucket_objects(url)
    # (and nothing in the bucket reads in clear: a base's id and name, a table's name, a record's text;
    # a plain store shows the first three)
    words = (BASE.encode(), b"Test base", b"Projects", recs[0]["fields"]["fldNOTES000000001"].encode())
    assert [w for w in words if any(w in o for o in before.values())] == []
    cache, out = tmp_path / "machine2", tmp_path / "out"
    env = {"SNAPSTORE_CACHE": str(cache), "SNAPSTORE_CONFIG": None, "SNAPSTORE_STORE": url}
    for args in (["log"], ["export", "--out", str(out)], ["verify", "--read-data"], ["tag", "latest", "x"],
                 ["forget", "--keep-last", "1", "--prune"], ["prune"], ["key", "add"], ["rebuild-catalog"]):
        r = CliRunner().invoke(main, args, env={**env, "SNAPSTORE_PASSWORD": "not the password",
                                               "SNAPSTORE_NEW_PASSWORD": "another"})
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.exit_code == 12 and len(lines) == 1 and lines[0].startswith("Error: wrong password"), (args, r.output)
    assert bucket_objects(url) == before
    assert not out.exists() and (not cache.exists() or not any(cache.rglob("*")))
    r = CliRunner().invoke(main, ["log", "--json"], env=env)  # (the suite's $SNAPSTORE_PASSWORD: the right one)
    assert r.exit_code == 0 and [s["records"] for s in json.loads(r.stdout)] == [50], r.output


# ---- the CLI end to end against the emulator -------------------------------------------------

def test_cli_end_to_end_on_s3(s3_env, tmp_path):
    from snapstore.cli import main
    from snapstore.emulator import Emulator, ScaledClock, generate_workspace

    scale = 50
    limits = ["--rate-limit-base", str(5 * scale), "--rate-limit-token", str(50 * scale), "--penalty", str(30 / scale),
              "--retry-backoff", "0.001", "--max-retries", "2", "--no-progress"]
    ws = generate_workspace(seed=3, bases=2, tables_per_base=2, records_per_table=60, attachment_share=0.05,
                            comment_share=0.1)
    url = s3_env()

    def run(args, **env):
        r = CliRunner().invoke(main, args, env={"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url,
                                                "SNAPSTORE_STORE": url, "AIRTABLE_TOKEN_FILE": None,
                                                "SNAPSTORE_CONFIG": None, **env}, catch_exceptions=False)
        return r

    with Emulator(ws, clock=ScaledClock(scale)) as emu:
        r = run(["snapshot", "--comments", *limits])
        assert r.exit_code == 0, r.output
        assert S3Backend.from_url(url).exists("config.json")
        assert Store.open(url).encrypted  # as the CLI makes stores: every verb below runs on an encrypted bucket
        # a wrong password: exit 12 and one line before anything is written, even with records to take
        before = bucket_objects(url)
        r = run(["snapshot", "--comments", *limits], SNAPSTORE_PASSWORD="not the password")
        assert r.exit_code == 12 and r.stderr.strip().startswith("Error: wrong password"), r.output
        assert bucket_objects(url) == before
        base = emu.workspace.bases[0]
        table = base.tables[0]
        rec = next(iter(table.records.values()))
        text_field = next(f["id"] for f in table.fields if f["type"] == "singleLineText")
        with emu.lock:
            rec.cells[text_field] = "changed on the way to S3"
        r = run(["snapshot", "--comments", *limits])
        assert r.exit_code == 0, r.output
        # (`snapstore log`/`show` check for a local config.json before opening: see the report)
        log = [{"id": s.id, "records": s.records} for s in Store.open(url).list_snapshots()]
        assert len(log) == 2 and log[0]["records"] == log[1]["records"] == 4 * 60
        r = run(["diff", "--format", "json"])
        assert rec.id in r.output, r.output
        r = run(["export", "latest", "--out", str(tmp_path / "out"), "--format", "json,csv"])
        assert r.exit_code == 0, r.output
        exported = list((tmp_path / "out").glob("airtable_backup_*"))
        assert len(exported) == 1 and any(exported[0].rglob("*.json"))
        assert "changed on the way to S3" in "".join(p.read_text() for p in exported[0].rglob("*.json"))
        # restore the first snapshot's first base into a new base of the emulator
        from snapstore.emulator.state import Base

        with emu.lock:
            target = Base(emu.workspace.new_id("app"), "Restored", "create")
            emu.workspace.bases.append(target)
        r = run(["restore", log[1]["id"], "--base", base.id, "--to-base", target.id, *limits[:-1]])
        assert r.exit_code == 0, r.output
        assert sum(len(t.records) for t in target.tables) == sum(len(t.records) for t in base.tables) == 120
        r = run(["verify", "--read-data"])
        assert r.exit_code == 0, r.output
        r = run(["forget", "--keep-last", "1", "--prune", "--max-unused", "0%"])
        assert r.exit_code == 0, r.output
        r = run(["verify", "--read-data", "--json"])
        assert r.exit_code == 0 and json.loads(r.stdout)["ok"], r.output
        assert [s.id for s in Store.open(url).list_snapshots()] == [log[0]["id"]]
        # another machine (empty cache) sees the pruned store as it is
        r = run(["export", "latest", "--out", str(tmp_path / "out2"), "--format", "json"],
                SNAPSTORE_CACHE=str(tmp_path / "machine2"))
        assert r.exit_code == 0, r.output
        assert "changed on the way to S3" in "".join(p.read_text() for p in (tmp_path / "out2").rglob("*.json"))
        r = run(["prune", "--json"])
        assert r.exit_code == 0, r.output
