"""Where the catalog lives: an encrypted store's on the machine (its folder holds sealed bytes
only), a plain store's in its folder; an encrypted store's old in-folder catalog is moved out on
first open, and a commit the catalog could not record (a full disk) is added by the next command."""

from __future__ import annotations

import shutil

import duckdb
import pytest
from cli_run import LIMITS, SCALE, run, twin_stores
from conftest import TEST_PASSWORD
from plaintext import plaintext_hits, tree, workspace_needles
from storegen import make_records, snapshot

from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.errors import EXIT_INCOMPLETE
from snapstore.store import Store
from snapstore.store.catalog import Catalog
from snapstore.store.catalog_home import cache_root

WS = dict(seed=31, bases=2, tables_per_base=2, records_per_table=50, attachment_share=0.3, comment_share=0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalog-location")
    ws = generate_workspace(**WS)
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu:
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url}
        enc, plain = twin_stores(root, emu, env, dict(seed=2, edit_share=0.2, add_share=0.1))
        yield {"ws": ws, "emu": emu, "env": env, "enc": enc, "plain": plain}


def test_an_encrypted_store_folder_holds_no_names_or_ids(world):
    files = tree(world["enc"])
    assert not [k for k in files if "catalog" in k]
    assert plaintext_hits(files, workspace_needles(world["ws"])) == set()
    st = Store.open(world["enc"], password=TEST_PASSWORD)
    assert st.catalog.path.is_relative_to(cache_root() / st.config["store_id"])
    assert (st.catalog.path.stat().st_mode & 0o777) == 0o600
    assert (st.catalog.path.parent.stat().st_mode & 0o777) == 0o700
    # the same search finds them in a plain store's folder (its catalog among them): the test can tell
    found = {w for w, _f in plaintext_hits(tree(world["plain"]), workspace_needles(world["ws"]))}
    assert {"base name", "record id", "attachment file name"} <= found
    assert (world["plain"] / "catalog.duckdb").exists()


def _plant_old_catalog(store) -> None:
    """The store as an older snapstore left it: its catalog in its folder, none on the machine."""
    st = Store.open(store, password=TEST_PASSWORD)
    st.catalog.unpin()
    shutil.copy(st.catalog.path, store / "catalog.duckdb")
    shutil.rmtree(st.catalog.path.parent)


def test_an_old_in_folder_catalog_is_moved_to_the_machine(world, tmp_path, monkeypatch):
    store = tmp_path / "enc"
    shutil.copytree(world["enc"], store)
    _plant_old_catalog(store)

    def no_rebuild(self):
        raise AssertionError("the catalog was rebuilt instead of moved")

    monkeypatch.setattr(Store, "rebuild_catalog", no_rebuild)
    st = Store.open(store, password=TEST_PASSWORD)
    assert not list(store.glob("catalog*")) and st.catalog.path.exists()
    assert len(st.list_snapshots()) == 2


def test_a_move_cut_short_is_finished_by_the_next_open(world, tmp_path, monkeypatch):
    """A crash after the copy, before the in-folder catalog was removed: both exist."""
    store = tmp_path / "enc"
    shutil.copytree(world["enc"], store)
    st = Store.open(store, password=TEST_PASSWORD)
    st.catalog.unpin()
    shutil.copy(st.catalog.path, store / "catalog.duckdb")
    (store / "catalog.duckdb.corrupt-20260101000000").write_bytes(b"an old quarantined copy")
    st = Store.open(store, password=TEST_PASSWORD)
    assert not list(store.glob("catalog*"))
    assert len(st.list_snapshots()) == 2


def test_two_copies_of_an_encrypted_store_have_catalogs_of_their_own(world, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(world["enc"], a)
    shutil.copytree(world["enc"], b)
    sa = Store.open(a, password=TEST_PASSWORD)
    only_a = snapshot(sa, make_records(5))
    sb = Store.open(b, password=TEST_PASSWORD)
    assert sa.catalog.path != sb.catalog.path
    assert only_a.full_id not in {s.full_id for s in sb.list_snapshots()}
    assert len(sb.list_snapshots()) == 2
    assert len(Store.open(a, password=TEST_PASSWORD).list_snapshots()) == 3


def test_a_full_disk_while_the_catalog_records_a_snapshot(world, tmp_path, monkeypatch):
    """The snapshot's commit object is written; the catalog's transaction fails (DuckDB raises
    TransactionException on a full disk): one line saying the snapshot is committed, exit 3, and
    the next command adds the snapshot from the store."""
    store = tmp_path / "enc"
    shutil.copytree(world["enc"], store)
    Store.open(store, password=TEST_PASSWORD)  # the copy's catalog, before the disk fills
    world["emu"].churn(seed=9, edit_share=0.2)
    real = Catalog._ingest

    def full(self, con, batch, doc):
        raise duckdb.TransactionException("Failed to commit: could not write file \"catalog.duckdb.wal\": "
                                          "No space left on device")

    monkeypatch.setattr(Catalog, "_ingest", full)
    r = run(["snapshot", "--store", str(store), *LIMITS], **world["env"])
    monkeypatch.setattr(Catalog, "_ingest", real)
    assert r.exit_code == EXIT_INCOMPLETE, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip() and " INFO " not in x]
    assert len(lines) == 1 and "a bug" not in lines[0], r.output
    assert "is committed to the store" in lines[0] and "no space left on device" in lines[0]
    assert "the next command adds it" in lines[0]
    assert len(list((store / "snapshots").iterdir())) == 3, r.output
    r = run(["log", "--store", str(store), "--json"], **world["env"])
    assert r.exit_code == 0, r.output
    st = Store.open(store, password=TEST_PASSWORD)
    assert len(st.list_snapshots()) == 3
    assert run(["verify", "--read-data", "--store", str(store)], **world["env"]).exit_code == 0
