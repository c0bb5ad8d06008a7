"""Lost commit objects are damage, never "an interrupted forget": verify says so (exit 1), prune
and forget delete nothing, and ``repair`` writes the snapshots again from the catalog.

(Before forget recorded what it forgot, deleting ``snapshots/`` made the next prune delete every
pack: it took the lost commits for a forget interrupted half-way.)"""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from conftest import TEST_PASSWORD
from storegen import BASE, TABLE, churn, make_records, snapshot

from snapstore.cli import main
from snapstore.ops.retention import Policy, forget, remove_snapshots
from snapstore.store import Store, objects
from snapstore.store import inventory as inv


def _cli(args: list[str]) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, args, env={"SNAPSTORE_CONFIG": None})
    return r.exit_code, r.stdout, r.stderr


def _by_time(store: Store) -> dict[str, list[str]]:
    return {s.time.isoformat(): sorted(json.dumps(r, sort_keys=True) for r in store.records(s, BASE, TABLE))
            for s in store.list_snapshots()}


def _data(store: Store) -> dict[str, str]:
    """Every data object (packs, objects) and a hash of its bytes."""
    return {k: hashlib.sha256(store.backend.get(k)).hexdigest() for p in ("packs", "objects")
            for k, _s in store.backend.list(p)}


@pytest.fixture(params=["local", "local-encrypted", "s3"])
def damaged(request, tmp_path, monkeypatch):
    """A store of 3 snapshots (a 4th forgotten, as a nightly run does) whose commit objects were
    all deleted behind snapstore's back; returns (location, what the snapshots held)."""
    if request.param == "s3":
        location = request.getfixturevalue("s3_env")()
    else:
        location = str(tmp_path / "store")
    password = TEST_PASSWORD if request.param != "local" else None
    st = Store.init(location, pack_size=64 * 1024, password=password)
    recs = make_records(300)
    for i in range(4):
        recs = churn(recs, 0.2, seed=i)
        snapshot(st, recs)
    forget(st, Policy(last=3))
    st = Store.open(location, password=password)
    before = _by_time(st)
    assert len(before) == 3
    for key, _s in list(st.backend.list("snapshots")):
        st.backend.delete(key)
    return location, password, before


def test_lost_commits_are_damage_prune_deletes_nothing_and_repair_recovers_them(damaged):
    location, password, before = damaged
    data = _data(Store.open(location, password=password))
    code, out, err = _cli(["verify", "--store", location, "--read-data"])
    assert code == 1 and out.count("commit object missing") == 3 and "no damage" not in out, out + err
    for args in (["prune", "--max-unused", "0%"], ["prune", "--dry-run"], ["forget", "--keep-last", "1", "--prune"],
                 ["rebuild-catalog"]):
        code, out, err = _cli([*args, "--store", location])
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 1 and len(lines) == 1 and "3 snapshot commit object(s) are missing" in lines[0], (args, out, err)
        assert "a bug" not in err
    st = Store.open(location, password=password)
    assert _data(st) == data and list(st.backend.list("snapshots")) == []
    code, out, err = _cli(["repair", "--store", location])
    assert code == 0 and out.count("again") == 3, out + err
    # a plain commit encodes to the same bytes: it comes back under its own id
    assert (out.count("under its own id") == 3) == (password is None), out
    code, out, err = _cli(["verify", "--store", location, "--read-data"])
    assert code == 0 and "no damage" in out, out + err
    st = Store.open(location, password=password)
    assert _by_time(st) == before and len(list(st.backend.list("snapshots"))) == 3
    st.rebuild_catalog()  # the catalog rebuilt from the repaired store alone reads the same
    assert _by_time(st) == before
    code, out, err = _cli(["prune", "--store", location, "--max-unused", "0%"])
    assert code == 0, out + err
    assert _by_time(Store.open(location, password=password)) == before


def test_an_interrupted_forget_is_still_finished(tmp_path):
    """A forget killed after its records and deletions, before its catalog rows: the next prune
    finishes it (the commit was recorded as forgotten), and deletes the forgotten data."""
    root = tmp_path / "store"
    st = Store.init(root)
    recs = make_records(200)
    snaps = [snapshot(st, recs := churn(recs, 0.5, seed=i)) for i in range(3)]
    inv.write_forget_records(st.backend, [snaps[0].full_id])
    st.backend.delete(objects.snapshot_key(snaps[0].full_id))
    assert len(st.list_snapshots()) == 3  # the catalog still lists it
    code, out, err = _cli(["verify", "--store", str(root)])
    assert code == 0 and "interrupted forget" in out, out + err
    code, out, err = _cli(["prune", "--store", str(root), "--max-unused", "0%"])
    assert code == 0, out + err
    assert [s.full_id for s in Store.open(root).list_snapshots()] == [snaps[2].full_id, snaps[1].full_id]
    assert _cli(["verify", "--store", str(root), "--read-data"])[0] == 0


def test_forget_records_what_it_forgets_before_deleting(tmp_path):
    root = tmp_path / "store"
    st = Store.init(root)
    recs = make_records(50)
    snaps = [snapshot(st, recs := churn(recs, 0.5, seed=i)) for i in range(3)]
    deleted: list[str] = []
    real_delete = st.backend.delete

    def delete(key: str) -> None:  # every commit deleted was recorded first
        if key.startswith("snapshots/"):
            assert st.backend.exists(inv.forgotten_key(key.rsplit("/", 1)[-1]))
            deleted.append(key)
        real_delete(key)

    st.backend.delete = delete
    remove_snapshots(st, [snaps[0].full_id])
    assert deleted == [objects.snapshot_key(snaps[0].full_id)]
    assert inv.forgotten_ids(st.backend) == {snaps[0].full_id}
    assert inv.lost_commits(st.backend, st.catalog.snapshot_ids()) == []


def test_a_lost_commit_no_catalog_holds_is_found_through_the_store_index(tmp_path):
    """After a forget, the store index covers every commit: one lost later is damage even for a
    catalog rebuilt without it; ``repair --forget-lost`` lets it go so prune may run."""
    root = tmp_path / "store"
    st = Store.init(root)
    recs = make_records(50)
    snaps = [snapshot(st, recs := churn(recs, 0.5, seed=i)) for i in range(3)]
    forget(st, Policy(last=2))
    st.backend.delete(objects.snapshot_key(snaps[1].full_id))
    (root / "catalog.duckdb").unlink()
    st = Store.open(root)  # rebuilt: it knows nothing of snaps[1]
    assert [s.full_id for s in st.list_snapshots()] == [snaps[2].full_id]
    code, out, _err = _cli(["verify", "--store", str(root)])
    assert code == 1 and f"snapshot {snaps[1].id}: commit object missing" in out, out
    code, _out, err = _cli(["prune", "--store", str(root)])
    assert code == 1 and "1 snapshot commit object(s) are missing" in err
    code, out, err = _cli(["repair", "--store", str(root)])
    assert code == 1 and "cannot be written again" in out and "--forget-lost" in err, out + err
    code, out, err = _cli(["repair", "--store", str(root), "--forget-lost"])
    assert code == 0 and "recorded as forgotten" in out, out + err
    assert _cli(["prune", "--store", str(root)])[0] == 0
    assert _cli(["verify", "--store", str(root), "--read-data"])[0] == 0


def test_a_lost_commit_named_to_forget_is_let_go(tmp_path):
    root = tmp_path / "store"
    st = Store.init(root)
    recs = make_records(50)
    snaps = [snapshot(st, recs := churn(recs, 0.5, seed=i)) for i in range(3)]
    st.backend.delete(objects.snapshot_key(snaps[0].full_id))
    assert _cli(["prune", "--store", str(root)])[0] == 1
    code, out, err = _cli(["forget", "--store", str(root), snaps[0].id])
    assert code == 0, out + err
    assert inv.forgotten_ids(st.backend) == {snaps[0].full_id}
    assert [s.full_id for s in Store.open(root).list_snapshots()] == [snaps[2].full_id, snaps[1].full_id]
    assert _cli(["prune", "--store", str(root), "--max-unused", "0%"])[0] == 0
    assert _cli(["verify", "--store", str(root), "--read-data"])[0] == 0
