"""Encryption at rest: an encrypted store holds no plaintext, damage is found and named, a wrong
password changes nothing, keys can be added, removed and changed, and an encrypted store gives
the same exports as a plain one of the same data."""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import shutil
from pathlib import Path

import pytest
from cli_run import LIMITS, SCALE, run, twin_stores
from conftest import TEST_PASSWORD
from plaintext import plaintext_hits, tree
from restore_helpers import new_base
from storegen import BASE, SCHEMA, TABLE, make_records, snapshot

from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.errors import EXIT_WRONG_PASSWORD
from snapstore.store import Store, StoreError, keys
from snapstore.store.crypto import CHUNK

WS = dict(seed=11, bases=2, tables_per_base=2, records_per_table=120, attachment_share=0.2, comment_share=0.2)


def flip(path: Path, offset: int) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An emulator workspace (records, attachments, comments) snapshotted by the CLI into an
    encrypted and a plain store, twice (with churn between)."""
    root = tmp_path_factory.mktemp("crypt")
    ws = generate_workspace(**WS)
    big = os.urandom(CHUNK * 2 + 12345)  # a large attachment: a standalone object sealed in 3 chunks
    t = ws.bases[0].tables[0]
    att_field = next(f["id"] for f in t.fields if f["type"] == "multipleAttachments")
    rec = next(iter(t.records.values()))
    rec.cells[att_field] = [ws.add_attachment(big, "big-secret.bin")]
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu:
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url}
        # the encrypted store reads through the change feed
        enc, plain = twin_stores(root, emu, env, dict(seed=1, edit_share=0.1), enc_args=["--changes", "feed"])
        assert any((enc / "feed" / "registry").iterdir())
        yield {"ws": ws, "emu": emu, "env": env, "enc": enc, "plain": plain, "root": root, "big": big}


def needles(ws) -> dict[str, bytes]:
    """What a reader of the store must not find: a record's text, a field name, a table name, a
    base name, a comment, and an attachment's bytes."""
    b = ws.bases[0]
    t = b.tables[0]
    text = next(v for r in t.records.values() for v in r.cells.values() if isinstance(v, str) and len(v) >= 12)
    comment = next(c["text"] for tt in b.tables for r in tt.records.values() for c in (r.comments or []) if len(c["text"]) >= 12)
    att = next(data for data in ws.blobs.values() if 64 <= len(data) < 512 * 1024)
    return {"record text": text.encode(), "field name": t.fields[1]["name"].encode(), "table name": t.name.encode(),
            "base name": b.name.encode(), "comment": comment.encode(), "attachment": att[:64],
            "large attachment": next(d for d in ws.blobs.values() if len(d) > CHUNK)[CHUNK: CHUNK + 64]}


def test_no_plaintext_in_an_encrypted_store(world):
    wanted = needles(world["ws"])
    enc = tree(world["enc"])  # every file (an encrypted store's catalog is on the machine, not in it)
    assert any(k.startswith("keys/") for k in enc) and any(k.startswith("packs/") for k in enc)
    assert plaintext_hits(enc, wanted) == set()
    # the same search finds every needle but the dictionary-compressed record text in the plain store
    found = {w for w, _f in plaintext_hits(tree(world["plain"]), wanted)}
    assert {"table name", "base name", "field name", "attachment", "large attachment"} <= found


def test_encrypted_and_plain_stores_export_the_same(world, tmp_path):
    outs = {}
    for kind in ("enc", "plain"):
        out = tmp_path / kind
        r = run(["export", "latest", "--store", str(world[kind]), "--out", str(out), "--format", "json,ndjson,csv"])
        assert r.exit_code == 0, r.output
        files = {k.split("/", 1)[1]: v for k, v in tree(out).items()}  # below airtable_backup_<time>/
        outs[kind] = {k: v for k, v in files.items() if k.startswith(("data/", "attachments/"))}
    assert outs["enc"] == outs["plain"] and len(outs["enc"]) > 10
    assert world["big"] in outs["enc"].values()


def test_encrypted_and_plain_stores_restore_the_same(world):
    """A base restored into new tables from each store: the same tables, records and comments."""
    emu = world["emu"]
    src = world["ws"].bases[1]
    got = {}
    for kind in ("enc", "plain"):
        target = new_base(emu, f"Restored from {kind}")
        r = run(["restore", "latest", "--store", str(world[kind]), "--base", src.id, "--to-base", target,
                 *LIMITS[:6]], **world["env"])
        assert r.exit_code == 0, r.output
        b = emu.workspace.base(target)
        got[kind] = [(t.name, len(t.records), sorted(str(r.cells.get(t.fields[0]["id"])) for r in t.records.values()),
                      sum(r.comment_count for r in t.records.values())) for t in b.tables]
    assert got["enc"] == got["plain"]
    assert len(got["enc"]) == len(src.tables) and all(n > 0 for _t, n, _v, _c in got["enc"])


def test_every_verb_reads_an_encrypted_store(world, tmp_path):
    store = tmp_path / "enc"
    shutil.copytree(world["enc"], store)
    s = str(store)
    rid = next(iter(world["ws"].bases[0].tables[0].records))
    for args in (["log"], ["show", "latest"], ["diff", "latest~1", "latest"], ["stats"], ["verify", "--read-data"],
                 ["rebuild-catalog"], ["find", "a"], ["history", rid], ["cat", "latest", rid]):
        r = run([args[0], "--store", s, *args[1:]])
        assert r.exit_code == 0, (args, r.output)
    r = run(["snapshot", "--store", s, *LIMITS], **world["env"])
    assert r.exit_code == 0, r.output
    assert run(["forget", "--store", s, "--keep-last", "1"]).exit_code == 0
    r = run(["prune", "--store", s])
    assert r.exit_code == 0, r.output
    assert run(["verify", "--read-data", "--store", s]).exit_code == 0
    dst = tmp_path / "migrated"
    r = run(["migrate", s, str(dst)])
    assert r.exit_code == 0, r.output
    assert Store.open(dst, password=TEST_PASSWORD).encrypted


def test_flipped_ciphertext_byte_is_found_and_named(world, tmp_path):
    store = tmp_path / "enc"
    shutil.copytree(world["enc"], store)
    st = Store.open(store, password=TEST_PASSWORD)
    with st.catalog.read() as con:
        pack, off, clen, rid, table, base, snap = con.execute(
            """SELECT p.name, b.off, b.clen, rv.record_id, st.table_id, st.base_id, s.id FROM blob b JOIN pack p USING (pack_seq)
               JOIN record_version rv ON rv.hash = b.hash JOIN snapshot_table st ON st.table_pk = rv.table_pk
               AND rv.begin_seq <= st.seq AND (rv.end_seq IS NULL OR rv.end_seq > st.seq) JOIN snapshot s ON s.seq = st.seq WHERE b.kind = 'R' ORDER BY b.off DESC LIMIT 1""").fetchone()
    flip(store / "packs" / pack[:2] / pack, off + clen // 2)  # inside the frame's ciphertext
    r = run(["verify", "--read-data", "--store", str(store)])
    assert r.exit_code == 1
    assert "damaged" in r.output and f"affects base {base} table {table}" in r.output
    assert rid in r.output and snap[:8] in r.output
    # without the password: the pack no longer matches its name
    r = run(["verify", "--store", str(store)], SNAPSTORE_PASSWORD=None)
    assert r.exit_code == 1 and f"packs/{pack[:2]}/{pack}: content does not match its name" in r.output
    assert "without the password" in r.output


def test_flipped_object_byte_is_found_without_the_password(world, tmp_path):
    store = tmp_path / "enc"
    shutil.copytree(world["enc"], store)
    obj = next(p for p in sorted((store / "objects").rglob("*")) if p.is_file())
    flip(obj, 40)
    r = run(["verify", "--store", str(store)], SNAPSTORE_PASSWORD=None)
    assert r.exit_code == 1
    assert f"objects/{obj.name[:2]}/{obj.name}: content does not match its name" in r.output
    r = run(["verify", "--store", str(store)], SNAPSTORE_PASSWORD=None)
    clean = tmp_path / "clean"
    shutil.copytree(world["enc"], clean)
    assert run(["verify", "--store", str(clean)], SNAPSTORE_PASSWORD=None).exit_code == 0


@pytest.mark.parametrize("verb", [["log"], ["snapshot", *LIMITS], ["verify", "--read-data"], ["key", "list"],
                                  ["prune"], ["key", "add"]])
def test_wrong_password_is_exit_12_one_line_nothing_written(world, tmp_path, verb):
    store = tmp_path / "enc"
    shutil.copytree(world["enc"], store)
    before = tree(store)
    r = run([*verb, "--store", str(store)], SNAPSTORE_PASSWORD="not the password", SNAPSTORE_NEW_PASSWORD="x" * 8,
            **world["env"])
    assert r.exit_code == EXIT_WRONG_PASSWORD
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert lines == [f"Error: wrong password: no key of the store at {store} opens with it"]
    assert tree(store) == before


def test_no_password_on_a_non_terminal_says_how(tmp_path):
    r = run(["init", "--store", str(tmp_path / "s")], SNAPSTORE_PASSWORD=None)
    assert r.exit_code == 2 and "SNAPSTORE_PASSWORD" in r.stderr and "--no-encryption" in r.stderr
    assert not (tmp_path / "s").exists()
    assert run(["init", "--store", str(tmp_path / "s")]).exit_code == 0
    r = run(["log", "--store", str(tmp_path / "s")], SNAPSTORE_PASSWORD=None)
    assert r.exit_code == 2 and "--password-file" in r.stderr


def test_password_file_and_key_round_trips(tmp_path):
    s = str(tmp_path / "s")
    pw1, pw2, pw3 = tmp_path / "pw1", tmp_path / "pw2", tmp_path / "pw3"
    pw1.write_text("first password\n")
    pw2.write_text("second password\n")
    pw3.write_text("third password\n")
    p1 = ["--password-file", str(pw1)]
    assert run([*p1, "init", "--store", s], SNAPSTORE_PASSWORD=None).exit_code == 0
    st = Store.open(s, password="first password")
    snapshot(st, make_records(50))
    r = run([*p1, "key", "add", "--store", s, "--new-password-file", str(pw2)], SNAPSTORE_PASSWORD=None)
    assert r.exit_code == 0, r.output
    assert len(keys.list_keys(Store.open(s, password="second password").backend)) == 2
    r = run(["key", "list", "--store", s], SNAPSTORE_PASSWORD="second password")
    assert r.exit_code == 0 and r.output.count("@") == 3 and r.output.count("\n* ") == 1  # header + 2 keys
    # the key in use, then the last key: refused
    in_use = Store.open(s, password="second password").key_file.id
    r = run(["key", "remove", in_use, "--store", s], SNAPSTORE_PASSWORD="second password")
    assert r.exit_code == 2 and "in use" in r.stderr
    # passwd: the old password stops working, the new one works
    r = run(["key", "passwd", "--store", s, "--new-password-file", str(pw3)], SNAPSTORE_PASSWORD="second password")
    assert r.exit_code == 0, r.output
    assert run(["log", "--store", s], SNAPSTORE_PASSWORD="second password").exit_code == EXIT_WRONG_PASSWORD
    r = run(["log", "--store", s], SNAPSTORE_PASSWORD="third password")
    assert r.exit_code == 0 and "50" in r.output
    first = next(k.id for k in keys.list_keys(st.backend) if k.id != Store.open(s, password="third password").key_file.id)
    assert run(["key", "remove", first, "--store", s], SNAPSTORE_PASSWORD="third password").exit_code == 0
    assert run(["log", "--store", s], SNAPSTORE_PASSWORD="first password").exit_code == EXIT_WRONG_PASSWORD
    last = keys.list_keys(st.backend)[0].id
    r = run(["key", "remove", last, "--store", s, "--force"], SNAPSTORE_PASSWORD="third password")
    assert r.exit_code == 2 and "only key" in r.stderr
    got = list(Store.open(s, password="third password").records("latest", BASE, TABLE))
    assert len(got) == 50


def test_scrypt_runs_once_per_process_and_key(tmp_path, monkeypatch):
    Store.init(tmp_path / "s", password="pw-once")
    keys._derived.clear()
    calls = []
    real = keys.hashlib.scrypt
    monkeypatch.setattr(keys.hashlib, "scrypt", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        Store.open(tmp_path / "s", password="pw-once")
    assert len(calls) == 1
    kf = keys.list_keys(Store.open(tmp_path / "s", password="pw-once").backend)[0]
    assert kf.doc["kdf"] == "scrypt" and kf.doc["N"] >= 2 ** 15 and kf.doc["r"] == 8 and kf.doc["p"] >= 1


def test_ids_are_keyed_and_equal_records_still_dedupe(tmp_path):
    recs = make_records(300)
    a = Store.init(tmp_path / "a", password="pw")
    b = Store.init(tmp_path / "b", password="pw")
    plain = Store.init(tmp_path / "p")
    ia, ib, ip = snapshot(a, recs), snapshot(b, recs), snapshot(plain, recs)
    ha = a.record_hashes(ia, BASE, TABLE).column("hash").to_pylist()
    hb = b.record_hashes(ib, BASE, TABLE).column("hash").to_pylist()
    hp = plain.record_hashes(ip, BASE, TABLE).column("hash").to_pylist()
    assert not set(ha) & set(hb) and not set(ha) & set(hp)  # two master keys: unrelated ids
    raw = a.read_blob(ha[0])
    assert a.blob_id(raw) == hmac.digest(a.box.mac_key, raw, "sha256") == ha[0]
    packs = {k for k, _ in a.backend.list("packs")}
    again = snapshot(a, recs)
    assert {k for k, _ in a.backend.list("packs")} == packs and again.table(BASE, TABLE).unchanged == 300
    assert a.schema(again, BASE) == SCHEMA


def test_large_attachment_is_sealed_in_chunks_and_dedupes(tmp_path):
    st = Store.init(tmp_path / "s", password="pw")
    data = os.urandom(CHUNK * 3)  # exactly three chunks: the last full chunk is the one flagged last
    w = st.begin_snapshot()
    h1 = w.add_attachment("attA", io.BytesIO(data), size=len(data))
    h2 = w.add_attachment("attB", io.BytesIO(data), size=len(data))
    w.add_base(BASE, "b", SCHEMA)
    w.table(BASE, TABLE).finish()
    w.commit()
    assert h1 == h2
    obj = tmp_path / "s" / "objects" / h1[:2] / h1
    assert hashlib.sha256(obj.read_bytes()).hexdigest() == h1 and data[:4096] not in obj.read_bytes()
    with Store.open(tmp_path / "s", password="pw").open_attachment("attB") as f:
        assert f.read() == data
    flip(obj, CHUNK + 100)  # the second chunk
    with pytest.raises(Exception, match="chunk 1"):
        Store.open(tmp_path / "s", password="pw").open_attachment("attA").read()


def test_s3_two_machines_share_one_password(s3_env, tmp_path, monkeypatch):
    url = s3_env()
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "machine-a"))
    a = Store.init(url, password="shared pw")
    snapshot(a, make_records(80))
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "machine-b"))
    with pytest.raises(Exception, match="wrong password"):
        Store.open(url, password="not it")
    assert not (tmp_path / "machine-b").exists()  # a wrong password writes nothing, not even a cache
    b = Store.open(url, password="shared pw")
    assert b.encrypted and len(b.list_snapshots()) == 1
    snapshot(b, make_records(90))
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "machine-a"))
    a2 = Store.open(url, password="shared pw")
    assert [s.records for s in a2.list_snapshots()] == [90, 80]
    assert len(list(a2.records("latest", BASE, TABLE))) == 90
    r = run(["verify", "--read-data", "--store", url], SNAPSTORE_PASSWORD="shared pw")
    assert r.exit_code == 0, r.output
    r = run(["verify", "--store", url], SNAPSTORE_PASSWORD=None)
    assert r.exit_code == 0 and "without the password" in r.output


def test_a_password_read_from_a_file_is_redacted_from_crash_reports(tmp_path, monkeypatch):
    from snapstore.commands import base, password

    monkeypatch.delenv("SNAPSTORE_PASSWORD")
    f = tmp_path / "pw"
    f.write_text("file-only secret\nsecond line ignored\n")
    assert password.read_password_file(str(f)) == "file-only secret"
    assert base._redact("boom: file-only secret") == "boom: [redacted]"
    monkeypatch.setenv("SNAPSTORE_PASSWORD", "env secret")
    assert base._redact("env secret / file-only secret") == "[redacted] / [redacted]"


def test_a_new_key_is_calibrated_like_restics_and_hostile_parameters_are_refused(tmp_path, monkeypatch):
    """restic spends 500 ms on a new key (N = 2^15 at r = 8, then p): so does a key made here, at
    a measured p; a key file asking for absurd work is refused instead of hanging the machine."""
    assert keys.calibrated_p(0) == 1
    slow = keys.calibrated_p(0.4)
    assert 1 <= slow <= keys.MAX_P
    monkeypatch.setenv("SNAPSTORE_KDF_SECONDS", "0.4")
    store = Store.init(tmp_path / "s", password="pw-calibrated")
    (kf,) = keys.list_keys(store.backend)
    assert (kf.doc["N"], kf.doc["r"], kf.doc["p"]) == (1 << 15, 8, slow)
    assert Store.open(tmp_path / "s", password="pw-calibrated").encrypted
    with pytest.raises(StoreError, match="above snapstore's maximum"):
        keys.derive("pw", b"s" * 64, 1 << 15, 8, 10_000)
    with pytest.raises(StoreError, match="below snapstore's minimum"):
        keys.derive("pw", b"s" * 64, 1 << 14, 8, 1)


def test_the_password_file_flag_beats_the_environment(tmp_path):
    """Flags beat the environment everywhere in the CLI: --password-file wins over SNAPSTORE_PASSWORD,
    which wins over SNAPSTORE_PASSWORD_FILE."""
    s = str(tmp_path / "s")
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text("the right one\n")
    wrong.write_text("not this one\n")
    assert run(["--password-file", str(right), "init", "--store", s], SNAPSTORE_PASSWORD="env one").exit_code == 0
    assert Store.open(s, password="the right one").encrypted
    r = run(["log", "--store", s], SNAPSTORE_PASSWORD="the right one", SNAPSTORE_PASSWORD_FILE=str(wrong))
    assert r.exit_code == 0, r.output
    r = run(["log", "--store", s], SNAPSTORE_PASSWORD=None, SNAPSTORE_PASSWORD_FILE=str(wrong))
    assert r.exit_code == EXIT_WRONG_PASSWORD
