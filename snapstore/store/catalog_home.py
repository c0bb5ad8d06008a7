"""Where a store's catalog lives: in a plain local store's folder, or in this machine's cache folder.

The catalog indexes base, table and field names, record ids and attachment file names in clear. A
plain store's folder holds them in clear anyway, so its catalog stays beside its objects
(``<store>/catalog.duckdb``). An encrypted store's folder must hold sealed bytes only (it may sit
on a NAS or a removable disk), so its catalog lives on the machine, as an S3 store's always has:
``cache_root()/<store id>/local-<hash of the store folder's path>/catalog.duckdb`` (mode 0700
folders, a 0600 file). A store folder that cannot be written (a read-only mount, a backup
medium) gets its catalog there too, whatever its kind: readers need one, and it is rebuilt from
the objects when missing.

The folder is keyed by the store's path as well as its id: two copies of one store (a store and
its copy on a removable disk) have the same id and different contents, and a catalog must index
exactly one of them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
from pathlib import Path

log = logging.getLogger("snapstore.store")

CATALOG_NAME = "catalog.duckdb"


def cache_root() -> Path:
    """This machine's cache folder for stores: ``$SNAPSTORE_CACHE``, else
    ``$XDG_CACHE_HOME/snapstore``, else ``~/.cache/snapstore``; one folder per store id."""
    env = os.environ.get("SNAPSTORE_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "snapstore"


def machine_dir(store_id: str) -> Path:
    """``cache_root()/<store id>``, made (0700) if missing: what this machine keeps of a store."""
    d = cache_root() / store_id
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def store_writable(root: Path) -> bool:
    """Whether snapstore may write the store folder. ``access(2)`` answers EROFS for a read-only
    mount even to root (who passes every permission check otherwise, so a chmod'ed folder *is*
    writable for root and is treated so). Tests replace this function to simulate a read-only store."""
    return os.access(root, os.W_OK)


def catalog_path(root: Path, store_id: str, *, encrypted: bool) -> Path:
    """The catalog file of the local store at ``root``. Moves an encrypted store's catalog out of
    its folder into the machine's cache (copied, then removed: a crash between the two leaves a
    copy the next open removes), and starts a read-only store's from the copy in its folder."""
    in_store = root / CATALOG_NAME
    writable = store_writable(root)
    if not encrypted and writable:
        return in_store
    d = machine_dir(store_id) / f"local-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]}"
    d.mkdir(mode=0o700, exist_ok=True)
    dst = d / CATALOG_NAME
    if not dst.exists():
        _copy_catalog(in_store, dst)
    if encrypted and writable:
        _remove_plaintext(root)
    return dst


def _copy_catalog(src: Path, dst: Path) -> None:
    """``src`` copied to ``dst`` whole or not at all (a temp name, fsync, rename). A catalog with a
    write-ahead log beside it is not copied (the pair is not consistent without DuckDB replaying
    it): the caller rebuilds from the objects instead, as it does when there is no catalog."""
    if not src.exists() or src.with_name(src.name + ".wal").exists():
        return
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.tmp")
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.chmod(0o600)
        os.replace(tmp, dst)
    except OSError as e:  # the source went away (another process moved it), a full disk: rebuild
        log.info("could not copy the catalog %s (%s); it is rebuilt from the objects", src, e)
        tmp.unlink(missing_ok=True)


def _remove_plaintext(root: Path) -> None:
    """An encrypted store folder's catalog files (the catalog, its log, quarantined copies and
    rebuilds a crash left): each indexes the store in clear, and the machine's copy replaces them."""
    gone = False
    for p in [*root.glob(CATALOG_NAME + "*"), *root.glob("catalog.rebuild-*.duckdb*")]:
        try:
            p.unlink()
            gone = True
        except FileNotFoundError:
            pass
    if gone:
        log.info("moved the catalog of the encrypted store %s to this machine's cache folder", root)
