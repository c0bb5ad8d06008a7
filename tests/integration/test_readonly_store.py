"""A store that cannot be written (a read-only mount, a backup medium) is read like any other: its
catalog, missing or not, is rebuilt into the machine's cache folder, and the store is left as it
was. Root passes every permission check, so a chmod does not make a folder read-only for the test
suite: one test uses a real read-only bind mount (where the machine allows mounting), the others
replace the store layer's decision (``catalog_home.store_writable``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cli_run import run
from conftest import TEST_PASSWORD
from plaintext import tree
from storegen import churn, make_records, snapshot

from snapstore.errors import EXIT_ERROR
from snapstore.store import Store, catalog_home

READS = [["log"], ["show", "latest"], ["stats"], ["verify"], ["verify", "--read-data"], ["diff", "latest~1", "latest"],
         ["find", "Launch"], ["history", "{rid}"], ["cat", "latest", "{rid}"], ["key", "list"]]


def _stores(root: Path) -> tuple[Path, Path, str]:
    """A plain and an encrypted store of two snapshots each, without their catalogs."""
    recs = make_records(40)
    for name, pw in (("plain", None), ("enc", TEST_PASSWORD)):
        st = Store.init(root / name, password=pw)
        snapshot(st, recs)
        snapshot(st, churn(recs, 0.2))
        st.catalog.unpin()
        st.catalog.path.unlink()
    return root / "plain", root / "enc", recs[0]["id"]


def _reads_work(store: Path, rid: str, out: Path) -> None:
    for args in READS:
        args = [a.format(rid=rid) for a in args]
        if args == ["key", "list"] and not (store / "keys").exists():
            continue
        r = run([*args, "--store", str(store)])
        assert r.exit_code == 0, (args, r.output)
        assert "a bug" not in r.output
    r = run(["export", "--store", str(store), "--out", str(out), "--format", "ndjson",
             "--no-attachments"])  # (the generated records name attachments never stored)
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("airtable_backup_*/data/ndjson/*/*.ndjson"))) >= 1


@pytest.mark.parametrize("kind", ["plain", "enc"])
def test_a_read_only_store_without_its_catalog_is_read(tmp_path, monkeypatch, kind):
    stores = _stores(tmp_path)
    store, rid = stores[0 if kind == "plain" else 1], stores[2]
    real = catalog_home.store_writable
    monkeypatch.setattr(catalog_home, "store_writable", lambda root: root != store and real(root))
    before = tree(store)
    _reads_work(store, rid, tmp_path / "out")
    assert tree(store) == before  # no catalog written into it, nothing else either
    st = Store.open(store)
    assert st.catalog.path.is_relative_to(catalog_home.cache_root()) and len(st.list_snapshots()) == 2


def test_a_read_only_store_with_a_stale_catalog_reads_its_new_snapshots(tmp_path, monkeypatch):
    """Its own catalog is copied to the machine (not rebuilt), then brought up to date."""
    store = tmp_path / "plain"
    st = Store.init(store)
    snapshot(st, make_records(20))
    st.catalog.unpin()
    old_catalog = (store / "catalog.duckdb").read_bytes()
    snapshot(st, make_records(25))
    st.catalog.unpin()
    (store / "catalog.duckdb").write_bytes(old_catalog)  # as if the medium was copied mid-way
    monkeypatch.setattr(catalog_home, "store_writable", lambda root: False)
    before = tree(store)
    r = run(["log", "--store", str(store), "--json"])
    assert r.exit_code == 0, r.output
    assert [s.records for s in Store.open(store).list_snapshots()] == [25, 20]
    assert tree(store) == before


def test_a_write_to_a_read_only_store_is_refused_in_one_line(tmp_path, monkeypatch):
    store = _stores(tmp_path)[0]
    monkeypatch.setattr(catalog_home, "store_writable", lambda root: False)
    import errno

    from snapstore.store import lock

    def ro(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system", str(store / "locks" / "writer.json"))

    monkeypatch.setattr(lock.os, "open", ro)
    before = tree(store)
    r = run(["tag", "latest", "x", "--store", str(store)])
    assert r.exit_code == EXIT_ERROR
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "read-only file system" in lines[0], r.output
    assert tree(store) == before


@pytest.fixture
def ro_mount(tmp_path):
    """A read-only bind mount of a folder (root only, where the kernel lets this process mount)."""
    mounts: list[Path] = []

    def mount(src: Path) -> Path:
        dst = tmp_path / f"ro-{src.name}"
        dst.mkdir()
        for cmd in (["mount", "--bind", str(src), str(dst)], ["mount", "-o", "remount,ro,bind", str(dst)]):
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                if mounts or cmd[1] != "--bind":
                    subprocess.run(["umount", str(dst)], capture_output=True)
                pytest.skip(f"cannot make a read-only bind mount here: {p.stderr.strip()}")
            if cmd[1] == "--bind":
                mounts.append(dst)
        return dst

    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    yield mount
    for m in mounts:
        subprocess.run(["umount", str(m)], capture_output=True)


def test_a_store_on_a_read_only_mount_is_read(tmp_path, ro_mount):
    plain, enc, rid = _stores(tmp_path)
    for src in (plain, enc):
        store = ro_mount(src)
        assert not catalog_home.store_writable(store)
        before = tree(src)
        _reads_work(store, rid, tmp_path / f"out-{src.name}")
        assert tree(src) == before
