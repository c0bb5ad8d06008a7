"""Two machines (two cache folders) snapshot the same bases into one store at once, then one of
them forgets and prunes: every kept snapshot stays whole, on the machine that pruned, on the
other, and on a third with no cache at all.

Two writers of one parent write siblings whose manifests are deltas against that parent. Each
packs the records it read itself, so the same record versions sit in two frames; the catalog
locates each record in one copy, and prune used to count the other copy's pack as dead although
the sibling's manifest names its frame (``verify``: "frame ... is not in the store"). An
encrypted store seals every frame with a fresh nonce, so the two copies always differ there;
a plain store's differ when the two listings come in another order."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import TEST_PASSWORD
from storegen import BASE, SCHEMA, TABLE, churn, make_records, snapshot

from snapstore.cli import main
from snapstore.store import LockError, Store


def _write(store: Store, records: list[dict]):
    w = store.begin_snapshot()
    w.add_base(BASE, "Test base", SCHEMA)
    tw = w.table(BASE, TABLE)
    for r in records:
        tw.add(r)
    tw.finish()
    return w


def _cli(args: list[str], cache) -> tuple[int, str]:
    r = CliRunner().invoke(main, args, env={"SNAPSTORE_CACHE": str(cache), "SNAPSTORE_CONFIG": None})
    return r.exit_code, r.output


def _contents(store: Store) -> dict[str, list[str]]:
    return {s.full_id: sorted(json.dumps(r, sort_keys=True) for r in store.records(s, BASE, TABLE))
            for s in store.list_snapshots()}


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_siblings_from_two_machines_survive_forget_and_prune_on_s3(s3_env, tmp_path, monkeypatch, encrypted):
    url = s3_env()

    def machine(name: str) -> Store:
        monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / name))
        return Store.open(url, password=TEST_PASSWORD if encrypted else None)

    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "a"))
    Store.init(url, pack_size=64 * 1024, password=TEST_PASSWORD if encrypted else None)
    recs = make_records(600, seed=3)
    snapshot(machine("a"), recs)
    for rnd in range(3):
        recs = churn(recs, 0.1, seed=20 + rnd)
        a, b = machine("a"), machine("b")
        wa = _write(a, recs)  # both hold their shared lock and have written their packs ...
        wb = _write(b, recs if encrypted else list(reversed(recs)))
        sa, sb = wa.commit(), wb.commit()  # ... then both commit: two siblings of one parent
        assert sa.full_id != sb.full_id
        code, out = _cli(["forget", "--store", url, "--keep-last", "2"], tmp_path / "a")
        assert code == 0, out
        code, out = _cli(["prune", "--store", url, "--max-unused", "0%"], tmp_path / "a")
        assert code == 0, out
        code, out = _cli(["verify", "--store", url, "--read-data"], tmp_path / "a")
        assert code == 0 and "no damage" in out, out
        kept = _contents(machine("a"))
        assert sorted(kept) == sorted([sa.full_id, sb.full_id])
        assert all(len(v) == 600 for v in kept.values())
        # the other machine, and one with no cache, read every kept snapshot the same
        assert _contents(machine("b")) == kept
        assert _contents(machine(f"fresh{rnd}")) == kept
        code, out = _cli(["log", "--store", url], tmp_path / f"fresh-log{rnd}")
        assert code == 0 and sa.id in out and sb.id in out, out


def test_a_second_writer_of_a_local_store_is_refused_before_writing(tmp_path):
    """A local store (a folder, maybe on a NAS two machines mount) has one writer at a time: the
    second is refused at once (exit 11 through the CLI), before it writes a byte."""
    root = tmp_path / "store"
    st = Store.init(root)
    snapshot(st, make_records(100))
    w = st.begin_snapshot()
    try:
        files = sorted(p for p in root.rglob("*") if p.is_file() and "catalog" not in p.name)
        other = Store.open(root)
        with pytest.raises(LockError, match="locked by .*snapshot"):
            other.begin_snapshot()
        assert LockError.exit_code == 11
        assert sorted(p for p in root.rglob("*") if p.is_file() and "catalog" not in p.name) == files
    finally:
        w.abandon()
    snapshot(Store.open(root), churn(make_records(100), 0.1))
    assert len(Store.open(root).list_snapshots()) == 2


def test_an_unreadable_lock_file_of_a_dead_process_is_stale(tmp_path, caplog):
    """A full disk can leave ``locks/writer.json`` empty: once older than a writer takes to fill
    it, it is reported and broken, never blocking every writer until someone runs ``unlock``."""
    import os
    import time

    from snapstore.store import lock as lock_mod

    root = tmp_path / "store"
    snapshot(Store.init(root), make_records(20))
    lock_file = root / lock_mod.LOCK_NAME
    lock_file.write_bytes(b"")  # just created by a writer that is still writing it: respected
    with pytest.raises(LockError, match="unreadable lock file"):
        Store.open(root).begin_snapshot()
    old = time.time() - lock_mod.UNREADABLE_STALE_AFTER - 5
    os.utime(lock_file, (old, old))
    with caplog.at_level("WARNING", logger="snapstore.lock"):
        w = Store.open(root).begin_snapshot()
    w.abandon()
    assert "breaking stale lock held by an unreadable lock file" in caplog.text
    assert not lock_file.exists()
    lock_file.write_bytes(b'{"host": "ot')  # cut short, and fresh: `unlock` removes it on request
    code, out = _cli(["unlock", "--store", str(root)], tmp_path / "cache")
    assert code == 0 and "removed lock held by an unreadable lock file" in out, out
    snapshot(Store.open(root), make_records(20))
