"""The store: a folder of immutable objects (the truth) and a DuckDB catalog (an index of it).

This is the library API the snapshot, export, diff, restore and retention code build on.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import duckdb

from snapstore.canonical import CANON_VERSION, loads
from snapstore.constants import FORMAT_VERSION
from snapstore.errors import NoStore, StoreError
from snapstore.selection import snapshot_named  # the one parser of snapshot names
from snapstore.store import catalog_home, inventory, keys, objects, readers
from snapstore.store.backend import Backend, BackendError, LocalBackend, ObjectMissing
from snapstore.store.catalog import (
    Catalog,
    CatalogBusy,
    CatalogCorrupt,
    CatalogNotUpdated,
    IngestBatch,
    TableChange,
    is_lock_conflict,
)
from snapstore.store.catalog import snapshots as catalog_q
from snapstore.store.catalog_home import cache_root, catalog_path, machine_dir
from snapstore.store.config_auth import (
    CONFIG_KEY,
    authenticated,
    check_auth,
    check_claim,
    encode_config,
    remember,
    upgrade,
)
from snapstore.store.crypto import AEAD_NAME, ID_NAME, PLAIN, KeyBox, PlainBox
from snapstore.store.info import BaseInfo, SnapshotInfo, TableInfo, info_from_doc
from snapstore.store.keys import KeyFile, ask_password
from snapstore.store.lock import (
    LockError,
    RemoteLock,
    WriterLock,
    break_lock,
    read_lock,
    read_remote_locks,
)
from snapstore.store.packs import (
    ITEM_END,
    BlobEntry,
    PackError,
    frame_id,
    hash_items,
    pack_key,
    read_trailer,
    split_items,
)
from snapstore.store.reader import BlobReader, FrameDamaged, LocatedChunk, record_id_of
from snapstore.store.s3 import parse_s3_url
from snapstore.store.write_context import WriteContext
from snapstore.store.writer import SnapshotWriter

log = logging.getLogger("snapstore.store")

FORMAT = "snapstore"
#: 2: records of a table share zstd frames (docs/FORMAT.md); 3: record frames are named by a frame
#: id and hold no per-record hash on disk; 4: a table's small batches (a day's changes) may be
#: column frames (store/columns.py); 1, 2 and 3 are still read and written
FORMAT_VERSIONS = (1, 2, 3, 4)
#: zstd level of record frames in new format-3 stores (config.json ``zstd_level``). Measured on
#: 100k records of the benchmark's mix (38 MB raw, 128 KiB frames, table dictionary): level 3
#: 5.99 MB in 0.12 s, 9 5.43 MB in 0.84 s, 12 4.90 MB in 2.6 s (one core); 6 is no better than 3.
RECORD_LEVEL = 9
#: ...and of a table's new records in one snapshot below 1 MiB raw (what a store grows by each
#: day): 1,000 changed records of that mix (400 KB raw) take, by level (CPU seconds): 9 68.5 KB
#: (0.01), 12 63.1 KB (0.04), 14 61.5 KB (0.07), 15 60.0 KB (0.09), 16 59.8 KB (0.14), 19 59.8 KB
#: (0.13). 15 is the knee; over 30 days it keeps the store >= 25x smaller than restic's.
RECORD_LEVEL_SMALL = 15
#: format 4's small batches are column frames (no dictionary: trained on whole records, it made
#: them larger, 53.9 against 51.6 KB), where level 19 pays: 1,000 changed records (columns record
#: by record) 55.9 KB at 15 (0.03 s), 51.6 KB at 19 (0.10 s), 51.6 KB at 22; shape by shape, as
#: store/columns.py lays them out, 51.1 KB at 19
COLUMNS_LEVEL = 19
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
#: config.json's "encryption" of an encrypted store (no secret: what was used, docs/FORMAT.md)
ENCRYPTION = {"aead": AEAD_NAME, "kdf": "scrypt", "id": ID_NAME}




class AttachmentIndex:
    """Every stored attachment with its content's location, from one catalog query, so callers
    that touch many attachments (export, restore, diff) make no catalog trip per file."""

    def __init__(self, store: Store, att_ids=None) -> None:
        self.store = store
        self._reader: BlobReader | None = None
        self._rows = {r[0]: r for r in catalog_q.attachment_rows(store.catalog, att_ids)}

    def __contains__(self, att_id: str) -> bool:
        return att_id in self._rows

    def get(self, att_id: str) -> dict | None:
        r = self._rows.get(att_id)
        if r is None:
            return None
        return {"att_id": r[0], "content_hash": r[1].hex(), "size": r[2], "mime": r[3], "filename": r[4]}

    def open(self, att_id: str) -> BinaryIO:
        r = self._rows.get(att_id)
        if r is None:
            raise StoreError(f"attachment {att_id} is not in the store")
        h, pack, off, clen, rlen, dh, stored = r[1], r[5], r[6], r[7], r[8], r[9], r[10]
        if not stored:
            raise StoreError(f"attachment {att_id}: its content {h.hex()[:12]} is not in the store")
        if pack is None:  # a large attachment: a standalone object, streamed
            try:
                return self.store.box.open_stream(self.store.backend.open(objects.object_key(h.hex())),
                                                  f"attachment {att_id}")
            except ObjectMissing as e:
                raise StoreError(f"attachment {att_id}: object {h.hex()[:12]} is missing from the store") from e
        if self._reader is None:
            self._reader = BlobReader(self.store)
        return io.BytesIO(self._reader.read(h, pack, off, clen, rlen, dh, r[11]))


#: Commands that take a shared lock on an S3 store: several may run at once (each writes only new
#: objects and its own commit). Every other command (prune, forget, tag...) takes it exclusively.
SHARED_LOCK_COMMANDS = frozenset({"snapshot", "import", "rebuild-catalog"})


def _check_config(config: dict, where: str) -> None:
    if config.get("format") != FORMAT:
        raise StoreError(f"{where} is not a snapstore store")
    if config.get("version") not in FORMAT_VERSIONS:
        raise StoreError(f"store format version {config.get('version')} is not supported by this snapstore")
    if config.get("canon") != CANON_VERSION:
        raise StoreError(f"store uses record serializer {config.get('canon')!r}, this snapstore has {CANON_VERSION!r}")


def _first_key(backend, password: str | None, key: KeyBox | None) -> KeyBox | None:
    """A new encrypted store's master key (random unless given), with its first key file."""
    if password is None and key is None:
        return None
    key = key or keys.new_master()
    if password is not None:
        keys.write_key(backend, key, password)
    return key


def _new_store_secret(location: str, password: str | None, key: KeyBox | None) -> dict:
    """For a store ``open(create=True)`` makes: the caller's password or key, else the installed
    password source's answer for a new store (the CLI's: encrypted by default), else none (plain)."""
    if password is None and key is None and keys.password_source is not None:
        password = ask_password(location, new=True)
    return {"password": password, "key": key}


def _new_config(pack_size: int, version: int = FORMAT_VERSION, *, encrypted: bool = False) -> dict:
    if version not in FORMAT_VERSIONS:
        raise StoreError(f"store format {version} is not one this snapstore writes ({FORMAT_VERSIONS})")
    return {
        "format": FORMAT, "version": version, "store_id": secrets.token_hex(16),
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "canon": CANON_VERSION,
        "hash": "sha256", "compression": "zstd", "pack_size": pack_size,
        "duckdb_version": duckdb.__version__,
        **({"zstd_level": RECORD_LEVEL, "zstd_level_small": RECORD_LEVEL_SMALL} if version == 3 else {}),
        **({"zstd_level": RECORD_LEVEL, "zstd_level_small": COLUMNS_LEVEL} if version >= 4 else {}),
        **({"encryption": dict(ENCRYPTION)} if encrypted else {}),
    }


class _RemoteStoreLock(RemoteLock):
    """An S3 store's lock; an exclusive holder (prune, forget, tag) kept the cache in step with
    what it changed in the bucket, so on a clean exit the cache records the bucket's new state."""

    def __init__(self, store: Store, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.store = store

    def __exit__(self, exc_type, *rest) -> None:
        try:
            if self.held and self.exclusive:
                self.store._remember_remote_state(ok=exc_type is None)
        finally:
            self.release()


class Store:
    """A snapstore repository: a local folder, or an S3 bucket/prefix with a local cache folder.

    ``root`` is the store folder for a local store; for an S3 store it is the cache folder
    (``local_dir``), so code that keeps working files next to the catalog (tmp, logs, restore
    journals) works unchanged. ``location`` is what to show and to pass to ``Store.open``."""

    def __init__(self, root: Path, backend: Backend, config: dict, catalog: Catalog, *,
                 location: str | Path | None = None) -> None:
        self.root = root
        #: the local folder for working files: the store folder, or an S3 store's cache folder
        self.local_dir = root
        self.location = location if location is not None else root
        self.remote = location is not None and str(location).startswith("s3:")
        self.backend = backend
        self.config = config
        self.catalog = catalog
        self.pack_size = int(config.get("pack_size", DEFAULT_PACK_SIZE))
        #: the store's format: 2 packs a table's records many to a frame, 1 one per frame
        self.format_version = int(config.get("version", 1))
        self.pack_version = self.format_version
        #: zstd level of record frames (schemas, comments and attachments: 3)
        self.record_level = int(config.get("zstd_level", 3))
        self.record_level_small = int(config.get("zstd_level_small", self.record_level))
        #: what ends each record in a frame: format 3 frames are NDJSON
        self.record_end = ITEM_END if self.format_version >= 3 else b""
        #: format 4: a table's small batch is one column frame (store/columns.py)
        self.record_columns = self.format_version >= 4
        self._dicts: dict[bytes, bytes] = {}
        #: seals and opens stored bytes (plain: as is); set by open for an encrypted store
        self.box: PlainBox = PLAIN
        self.key_file: KeyFile | None = None  # the key file that opened an encrypted store
        #: format 3: where frames are, by frame id, as read from pack trailers (rebuild, sync):
        #: (pack, offset, compressed length, dictionary, records in it)
        self._frame_locs: dict[bytes, tuple[str, int, int, bytes | None, int]] = {}
        #: a blob's identity: SHA-256 of its bytes, or HMAC-SHA256 under an encrypted store's MAC
        #: key (set by _unlock). The one place ids are computed (the writer, the reader, verify and
        #: prune call it); the box's own function, not a method calling it: the writer calls it once
        #: per record, and a method's extra frame cost 0.06-0.2 s per 100k records.
        self.blob_id: Callable[[bytes], bytes] = self.box.blob_id

    @property
    def encrypted(self) -> bool:
        return "encryption" in self.config

    @property
    def private_dir(self) -> Path:
        """Where working files that hold plaintext go (run logs, restore journals): a plain local
        store's folder; for an encrypted or S3 store, this machine's cache folder
        (``cache_root()/<store id>``, mode 0700), so an encrypted store's folder holds sealed data only."""
        if self.remote or not self.encrypted:
            return self.local_dir
        return machine_dir(self.config["store_id"])

    def _unlock(self, password: str | None, key: KeyBox | None) -> None:
        """An encrypted store's master key, from ``key`` or the key file ``password`` opens; then
        its config is checked against that key (config_auth.py), and one written before configs
        were authenticated is given its ``auth``."""
        if not self.encrypted:
            return
        if key is None:
            if password is None:
                password = ask_password(str(self.location))
            key, self.key_file = keys.unlock(self.backend, password, str(self.location))
        if check_auth(key, self.key_file, self.config, str(self.location)):
            self.config = upgrade(self.backend, self.config, key, str(self.location))
        if "auth" in self.config and self.key_file is not None and not self.key_file.config_bound \
                and password is not None and (self.remote or catalog_home.store_writable(self.root)):
            # a key older than the config's auth: say it is bound (a new scrypt derivation, once)
            self.key_file = keys.rebind(self.backend, key, self.key_file, password)
        remember(self.config)
        self.box = key
        self.blob_id = key.blob_id
        self.backend.box = key  # type: ignore[attr-defined]  # see crypto.box_of

    # ---- opening -------------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | Path, *, pack_size: int = DEFAULT_PACK_SIZE, format_version: int = FORMAT_VERSION,
             password: str | None = None, key: KeyBox | None = None) -> Store:
        """A new, empty store; encrypted when given a ``password`` (a new random master key
        wrapped by it) or a master ``key`` (another store's, as migrate passes)."""
        if parse_s3_url(path) is not None:
            return cls._init_s3(path, pack_size=pack_size, format_version=format_version, password=password, key=key)
        root = Path(path)
        if (root / "config.json").exists():
            raise StoreError(f"{root} already holds a store")
        if root.exists() and any(root.iterdir()):
            raise StoreError(f"{root} exists and is not empty; choose an empty or new folder for a store")
        config = _new_config(pack_size, format_version, encrypted=password is not None or key is not None)
        root.mkdir(parents=True, exist_ok=True)
        for d in ("packs", "objects", "snapshots", "locks", "tmp", "logs"):
            (root / d).mkdir(exist_ok=True)
        backend = LocalBackend(root)
        key = _first_key(backend, password, key)  # before config.json: a store exists with its key
        backend.put(CONFIG_KEY, encode_config(authenticated(config, key) if key else config))
        store = cls.open(root, key=key)
        return store

    @classmethod
    def _init_s3(cls, url, *, pack_size: int, format_version: int = FORMAT_VERSION, password: str | None = None,
                 key: KeyBox | None = None) -> Store:
        from snapstore.store.s3 import S3Backend

        backend = S3Backend.from_url(os.fspath(url))
        try:
            backend.ensure_bucket()
            if backend.exists("config.json"):
                raise StoreError(f"{backend.url} already holds a store")
            if not backend.is_empty():
                raise StoreError(f"{backend.url} is not empty; choose an empty or new prefix for a store")
            config = _new_config(pack_size, format_version, encrypted=password is not None or key is not None)
            key = _first_key(backend, password, key)
            if not backend.create(CONFIG_KEY, encode_config(authenticated(config, key) if key else config)):
                raise StoreError(f"{backend.url} already holds a store")
        except BackendError as e:
            raise StoreError(str(e)) from e
        return cls._open_s3(url, backend=backend, key=key)

    @classmethod
    def _open_s3(cls, url, *, create: bool = False, pack_size: int | None = None, backend=None,
                 password: str | None = None, key: KeyBox | None = None) -> Store:
        from snapstore.store.s3 import S3Backend

        backend = backend or S3Backend.from_url(os.fspath(url))
        try:
            raw = backend.get("config.json")
        except ObjectMissing:
            if create:
                return cls._init_s3(url, pack_size=pack_size or DEFAULT_PACK_SIZE,
                                    **_new_store_secret(backend.url, password, key))
            raise NoStore(f"no store at {backend.url} (no config.json); create one with "
                             f"`snapstore init --store {backend.url}`") from None
        except BackendError as e:
            raise StoreError(f"store {backend.url}: {e}") from e
        try:
            config = json.loads(raw)
        except ValueError as e:
            raise StoreError(f"{backend.url}/config.json is not valid JSON: {e}") from e
        _check_config(config, backend.url)
        try:
            check_claim(backend, config, backend.url)  # an altered config stops here: nothing written
        except BackendError as e:
            raise StoreError(f"store {backend.url}: {e}") from e
        probe = cls(Path("."), backend, config, None, location=backend.url)  # type: ignore[arg-type]
        probe._unlock(password, key)  # a wrong password stops here: nothing written, not even the cache
        config = probe.config  # (with its auth, when the open gave it one)
        local = machine_dir(config["store_id"])
        for d in ("tmp", "logs", "locks"):
            (local / d).mkdir(mode=0o700, parents=True, exist_ok=True)
        local.chmod(0o700)  # the cache indexes the bucket's content: its owner's alone
        store = cls(local, backend, config, Catalog(local / "catalog.duckdb"), location=backend.url)
        store.box, store.key_file, store.blob_id = probe.box, probe.key_file, probe.blob_id
        store._ensure_catalog()
        try:
            store.sync()
        except CatalogBusy as e:  # another process of this machine writes the cache: read it as it is
            log.warning("the catalog cache is busy (%s); showing it as of its last update", e)
        return store

    @classmethod
    def open(cls, path: str | Path, *, create: bool = False, pack_size: int | None = None,
             password: str | None = None, key: KeyBox | None = None) -> Store:
        """Open a store: a folder, or ``s3://bucket/prefix`` (endpoint and credentials from the
        standard AWS variables). An S3 store's catalog is a cache (``cache_root()/<store id>``),
        brought up to date with the bucket on every open.

        An encrypted store needs ``password`` (or its master ``key``); without either, the
        password source the CLI installs is asked (snapstore.store.keys.password_source). A new
        store made by ``create`` is encrypted when a password is given or that source gives one."""
        if parse_s3_url(path) is not None:
            return cls._open_s3(path, create=create, pack_size=pack_size, password=password, key=key)
        root = Path(path)
        cfg_path = root / "config.json"
        if not cfg_path.exists():
            if create:
                return cls.init(root, pack_size=pack_size or DEFAULT_PACK_SIZE,
                                **_new_store_secret(str(root), password, key))
            raise NoStore(f"no store at {root} (no config.json); create one with `snapstore init --store {root}`")
        try:
            config = json.loads(cfg_path.read_text())
        except ValueError as e:
            raise StoreError(f"{cfg_path} is not valid JSON: {e}") from e
        _check_config(config, str(root))
        backend = LocalBackend(root)
        check_claim(backend, config, str(root))  # an altered config stops here: nothing written
        store = cls(root, backend, config, None)  # type: ignore[arg-type]
        store._unlock(password, key)
        store.catalog = Catalog(catalog_path(root, config["store_id"], encrypted=store.encrypted))
        store._ensure_catalog()
        try:  # a commit the catalog lacks (a writer that died, or whose catalog write failed): add it
            store.sync()
        except (CatalogBusy, CatalogNotUpdated) as e:
            log.warning("the catalog could not be brought up to date (%s); showing it as of its last update", e)
        return store

    def _ensure_catalog(self) -> None:
        if self.catalog.exists():
            try:
                self.catalog.check()
                return
            except (duckdb.Error, CatalogCorrupt) as e:
                if is_lock_conflict(e):
                    raise
                bad = self.catalog.quarantine()
                log.warning("catalog unreadable (%s); moved to %s and rebuilding from the objects",
                            str(e).splitlines()[0], bad.name)
        self.rebuild_catalog()

    # ---- writing -------------------------------------------------------------------------

    def lock(self, command: str, *, shared: bool | None = None) -> WriterLock | RemoteLock:
        """The store's lock. Local: one holder at a time. S3: the cache folder's lock plus a lock
        object in the bucket, shared for ``SHARED_LOCK_COMMANDS`` (or ``shared=True``) and
        exclusive otherwise."""
        local = WriterLock(self.local_dir, command)
        if not self.remote:
            return local
        if shared is None:
            shared = command.split()[0] in SHARED_LOCK_COMMANDS if command.strip() else False
        return _RemoteStoreLock(self, self.backend, command, exclusive=not shared, local=local,
                                label=str(self.location))

    def write_context(self) -> WriteContext:
        """What a snapshot writer needs of this store (the writer holds no ``Store``)."""
        return WriteContext(
            backend=self.backend, catalog=self.catalog, box=self.box, blob_id=self.blob_id,
            store_id=self.config["store_id"], tmp_dir=self.local_dir / "tmp",
            format_version=self.format_version, pack_size=self.pack_size, pack_version=self.pack_version,
            record_level=self.record_level, record_level_small=self.record_level_small, record_end=self.record_end,
            record_columns=self.record_columns,
            dict_bytes=self.dict_bytes, read_blob=self.read_blob, has_blob=self.has_blob,
            orphan_packs=self.orphan_packs, latest_id=self.latest_id, resolve=self.resolve,
        )

    def begin_snapshot(self, *, note: str | None = None, tags=(), command: str = "snapshot") -> SnapshotWriter:
        lock = self.lock(command, shared=True).acquire()
        try:
            self.sync()  # first: on S3 it may rebuild the catalog the writer is given
            return SnapshotWriter(self.write_context(), lock, note=note, tags=tags, command=command)
        except BaseException:
            lock.release()
            raise

    def unlock(self):
        """Remove the lock whoever holds it (S3: every lock object in the bucket too); returns
        what the (first) lock named."""
        holder = break_lock(self.local_dir)
        readers.remove_all(self.backend)  # and every reader's entry (a crashed reader's stops prune deleting)
        if self.remote:
            for info in read_remote_locks(self.backend):
                self.backend.delete(info.key)
                holder = holder or info
        return holder

    def lock_holder(self):
        """Who holds the lock a snapshot writer would need (S3: the cache's lock, or an exclusive
        lock object; other writers' shared locks do not stop a writer)."""
        holder = read_lock(self.local_dir)
        if holder is None and self.remote:
            holder = next((i for i in read_remote_locks(self.backend) if i.exclusive and not i.is_stale()), None)
        return holder

    # ---- the S3 cache ----------------------------------------------------------------------

    def _remote_fingerprint(self) -> str:
        """What, besides new commit objects, changes a cache's content: store indexes (forget,
        prune) and tag events. Their names, hashed."""
        keys = sorted(k for prefix in ("index", "tags") for k, _s in self.backend.list(prefix))
        return hashlib.sha256("\n".join(keys).encode()).hexdigest()

    def _remember_remote_state(self, *, ok: bool) -> None:
        try:
            catalog_q.set_meta_value(self.catalog, "remote_fp", self._remote_fingerprint() if ok else "")
        except Exception as e:  # noqa: BLE001 - the next open rebuilds instead
            log.warning("could not record the bucket state in the cache: %s", e)

    def _sync_remote(self) -> int:
        """Bring an S3 store's cache up to date. New commit objects newer than the cache's latest
        are replayed in (time, name) order, each getting the next local seq. Anything else the
        cache cannot apply in order — a commit older than its latest (another machine's writer
        committed meanwhile), a commit gone (forget), a new store index (prune) or tag event —
        rebuilds the cache from the bucket: simple, and intervals stay in commit-time order."""
        fp = self._remote_fingerprint()
        listed = {key.rsplit("/", 1)[-1] for key, _size in self.backend.list("snapshots")}
        known = self.catalog.snapshot_ids()
        reason = None
        gone = known - listed
        lost = gone - inventory.forgotten_ids(self.backend) if gone else set()
        if lost:  # damage: keep the cache's copy of them (what `repair` writes back), rebuild nothing
            log.warning("%d snapshot commit object(s) are missing from the bucket although no forget recorded "
                        "them (%s); run `snapstore verify` and `snapstore repair`", len(lost),
                        ", ".join(sorted(c[:8] for c in lost)[:5]))
        elif gone:
            reason = "snapshots were removed from the bucket"
        elif fp != catalog_q.meta_value(self.catalog, "remote_fp"):
            reason = "store indexes or tags changed in the bucket"
        pending = []
        if reason is None:
            pending = sorted(((cid, self._read_commit(cid)) for cid in listed - known),
                             key=lambda x: (x[1]["time"], x[0]))
            docs = self.catalog.snapshot_docs()
            if pending and docs and not lost:
                last = json.loads(docs[-1][2])["time"], docs[-1][1]
                if (pending[0][1]["time"], pending[0][0]) < last:
                    reason = "another writer committed a snapshot older than the cache's latest"
        if reason is not None:
            log.info("rebuilding the catalog cache of %s: %s", self.location, reason)
            return self.rebuild_catalog()
        for cid, doc in pending:
            log.info("catalog cache: adding snapshot %s from the bucket", cid[:8])
            self.catalog.ingest(self._batch_from_objects(cid, doc))
        return len(pending)

    def sync(self) -> int:
        """Bring the catalog up to date with commit objects it has not seen (a writer that died
        between its commit object and its catalog transaction; on S3, other machines' writers).
        Returns how many were added (or, when an S3 cache was rebuilt, the snapshot count)."""
        if self.remote:
            return self._sync_remote()
        known = self.catalog.snapshot_ids()
        pending = []
        for key, _size in self.backend.list("snapshots"):
            cid = key.rsplit("/", 1)[-1]
            if cid not in known:
                pending.append((cid, self._read_commit(cid)))
        pending.sort(key=lambda x: (x[1]["time"], x[0]))
        for cid, doc in pending:
            log.warning("catalog was missing snapshot %s; adding it from the store", cid[:8])
            self.catalog.ingest(self._batch_from_objects(cid, doc))
        return len(pending)

    def _read_commit(self, cid: str) -> dict:
        data = self.backend.get(objects.snapshot_key(cid))
        if hashlib.sha256(data).hexdigest() != cid:
            raise StoreError(f"snapshot object {cid[:8]} is damaged (hash mismatch)")
        return objects.decode_commit(data, self.box)

    def orphan_packs(self) -> list[tuple[str, int, list[BlobEntry]]]:
        """Packs on disk the catalog does not know: left by a run that died before committing.
        A new run adopts them so their blobs are reused instead of written again."""
        known = self.catalog.pack_names()
        out = []
        for key, size in self.backend.list("packs"):
            name = key.rsplit("/", 1)[-1]
            if name in known:
                continue
            try:
                entries = self._pack_entries(name)
            except (PackError, BackendError, StoreError) as e:
                log.warning("ignoring unreadable leftover pack %s: %s", name[:12], e)
                continue
            out.append((name, size, entries))
        return out

    def rebuild_catalog(self) -> int:
        """Recreate the catalog from the objects alone; returns the number of snapshots.

        Blob locations and attachments come from the newest store index (``index/``, written by
        forget and prune) for the commits it covers, and from each other commit's own lists; tags
        are the commit's tags with its tag events (``tags/``) applied."""
        tmp = self.catalog.path.with_name(f"catalog.rebuild-{secrets.token_hex(4)}.duckdb")
        cat = Catalog(tmp)
        meta = {"store_id": self.config["store_id"]}
        if self.remote:  # taken before reading: a change meanwhile shows at the next sync
            meta["remote_fp"] = self._remote_fingerprint()
        cat.create(meta)
        docs = []
        for key, _size in self.backend.list("snapshots"):
            cid = key.rsplit("/", 1)[-1]
            docs.append((cid, self._read_commit(cid)))
        docs.sort(key=lambda x: (x[1]["time"], x[0]))
        try:
            newest = inventory.newest_index(self.backend)
        except ValueError as e:
            raise StoreError(str(e)) from e
        covered = set(newest[1]["covers"]) if newest else set()
        tag_events = inventory.read_tag_events(self.backend)
        prev_cat = self.catalog
        self.catalog = cat
        try:
            # the index's packs first: the first commit's manifests may name frames in them
            index_batch = IngestBatch(commit_id="", doc={})
            if newest is not None:
                self._add_index_to_batch(index_batch, newest[1])
            for i, (cid, doc) in enumerate(docs):
                if cid in tag_events:
                    doc = dict(doc, tags=inventory.apply_tag_events(doc.get("tags"), tag_events[cid]))
                batch = self._batch_from_objects(cid, doc, covered=cid in covered)
                if i == 0:
                    batch.packs += index_batch.packs
                    batch.standalone += index_batch.standalone
                    batch.attachments += index_batch.attachments
                cat.ingest(batch)
        except BaseException as e:
            self.catalog = prev_cat
            tmp.unlink(missing_ok=True)
            if isinstance(e, CatalogNotUpdated):
                raise StoreError(f"the catalog could not be rebuilt ({e.reason}); the store is unchanged") from e
            raise
        finally:
            self._frame_locs = {}
        final = prev_cat.path
        tmp.replace(final)
        self.catalog = Catalog(final)
        return len(docs)

    def _add_index_to_batch(self, batch: IngestBatch, index: dict) -> None:
        for name in index["packs"]:
            try:
                batch.packs.append((name, self.backend.size(pack_key(name)), self._pack_entries(name)))
            except (PackError, ObjectMissing) as e:
                raise StoreError(f"store index: pack {name[:12]} unreadable: {e}") from e
        batch.standalone.extend((bytes(h), n) for h, n in index["standalone"])
        batch.attachments.extend((a, bytes(h), n, m, fn) for a, h, n, m, fn in index["attachments"])

    def _batch_from_objects(self, cid: str, doc: dict, *, covered: bool = False) -> IngestBatch:
        """A commit's catalog rows. ``covered``: a store index holds its data plane (packs,
        standalone objects, attachments), so only its tables are read here."""
        packs = []
        for name in [] if covered else doc.get("packs", []):
            try:
                packs.append((name, self.backend.size(pack_key(name)), self._pack_entries(name)))
            except (PackError, ObjectMissing) as e:
                raise StoreError(f"snapshot {cid[:8]}: pack {name[:12]} unreadable: {e}") from e
        standalone = [] if covered else [(bytes.fromhex(h), n) for h, n in doc.get("standalone", [])]
        atts = []
        if doc.get("attachment_index") and not covered:
            idx = objects.decode(self.backend.get(objects.object_key(doc["attachment_index"])), self.box)
            atts = [(a, bytes(h), n, m, fn) for a, h, n, m, fn in idx["attachments"]]
        tables = []
        for b in doc["bases"]:
            for t in b["tables"]:
                tables.append(self._table_change_from_manifest(b, t))
        return IngestBatch(commit_id=cid, doc=doc, packs=packs, standalone=standalone, attachments=atts, tables=tables)

    def _pack_entries(self, name: str) -> list[BlobEntry]:
        """A pack's entries from its trailer, every blob with its hash: a version-3 pack's record
        frames hold none, so they are decompressed and their items hashed (what rebuilding the
        catalog of a format-3 store costs; docs/FORMAT.md gives the figure). Each frame is checked
        against its id; its location is kept for folding the manifests that name it."""
        entries = read_trailer(self.backend.get_range, self.backend.size, name, self.box)
        if all(e.hash is not None for e in entries):
            return entries
        data = memoryview(self.backend.get(pack_key(name)))
        reader = BlobReader(self, cache_packs=0)

        def frame_bytes(e: BlobEntry) -> bytes:
            stored = data[e.offset: e.offset + e.clen]
            if frame_id(stored) != e.fid:
                raise PackError(f"pack {name[:12]}: frame {e.fid.hex()[:12]} does not match its id")
            return reader.frame(name, e.offset, e.clen, e.dict_hash, e.fid, stored)

        for e in entries:
            if e.fid is not None:
                self._frame_locs.setdefault(e.fid, (name, e.offset, e.clen, e.dict_hash, e.n_items))
        return hash_items(entries, frame_bytes, self.blob_id)

    def frame_items(self, fids: list[bytes], reader: BlobReader | None = None) -> tuple[list[str], list[bytes]]:
        """The (record ids, hashes) of the items of frames named by id, frame after frame: what a
        format-3 manifest's ``frames`` stand for. Each frame is checked against its id."""
        locs = dict(self._frame_locs)
        unknown = [f for f in fids if f not in locs]
        if unknown:
            locs.update(self.catalog.frame_locations(unknown))
        reader = reader or BlobReader(self)
        ids: list[str] = []
        hashes: list[bytes] = []
        for fid in fids:
            loc = locs.get(fid)
            if loc is None:
                raise StoreError(f"frame {fid.hex()[:12]} is not in the store")
            pack, off, clen, dh, n = loc
            stored = memoryview(reader.pack(pack))[off: off + clen]
            if frame_id(stored) != fid:
                raise FrameDamaged(f"frame {fid.hex()[:12]} in pack {pack[:12]} is damaged (hash mismatch)",
                                   pack=pack, off=off)
            raw = reader.frame(pack, off, clen, dh, fid, stored)
            try:
                items = split_items(raw, n)
            except PackError as e:
                raise FrameDamaged(f"frame {fid.hex()[:12]} in pack {pack[:12]} is damaged ({e})", pack=pack,
                                   off=off) from e
            for inner, rlen in items:
                item = raw[inner: inner + rlen]
                ids.append(record_id_of(item))
                hashes.append(self.blob_id(item))
        return ids, hashes

    def _manifest_entries(self, m: dict, reader: BlobReader | None = None) -> tuple[list[str], list]:
        """Every entry of a manifest: the items of the frames it names (format 3), then the
        entries it lists one by one."""
        if not m.get("frames"):
            return m["ids"], m["hashes"]
        ids, hashes = self.frame_items([bytes(f) for f in m["frames"]], reader)
        return ids + list(m["ids"]), hashes + list(m["hashes"])

    def _table_change_from_manifest(self, b: dict, t: dict) -> TableChange:
        state_manifest = catalog_q.latest_manifest(self.catalog, b["base_id"], t["table_id"])
        common = dict(
            base_id=b["base_id"], table_id=t["table_id"], name=t["name"], manifest=t["manifest"],
            n_records=t["records"], n_new=t["new"], n_changed=t["changed"], n_deleted=t["deleted"],
            dict_hash=bytes.fromhex(t["dict"]) if t.get("dict") else None,
            comments_hash=bytes.fromhex(t["comments"]) if t.get("comments") else None,
            schema_hash=bytes.fromhex(b["schema"]), depth=t.get("manifest_depth", 0),
            chain_entries=t.get("chain_entries", 0),
        )
        if t["manifest"] == state_manifest:
            return TableChange(full=False, ids=[], hashes=[], **common)
        m = self._manifest(t["manifest"])
        if not m["full"] and m["parent"] == state_manifest:
            ids, hashes = self._manifest_entries(m)
            return TableChange(full=False, ids=ids, hashes=[bytes(h) if h else None for h in hashes], **common)
        ids, hashes = self._fold_manifest(t["manifest"])
        return TableChange(full=True, ids=ids, hashes=hashes, **common)

    def _manifest(self, name: str) -> dict:
        try:
            data = self.backend.get(objects.object_key(name))
        except ObjectMissing as e:
            raise StoreError(f"manifest {name[:12]} is missing from the store") from e
        if hashlib.sha256(data).hexdigest() != name:
            raise StoreError(f"manifest {name[:12]} is damaged (hash mismatch)")
        doc = objects.decode(data, self.box)
        doc["ids"], doc["hashes"] = objects.manifest_columns(doc)
        doc.pop("arrow", None)
        return doc

    def _fold_manifest(self, name: str) -> tuple[list[str], list[bytes]]:
        chain = []
        while True:
            m = self._manifest(name)
            chain.append(m)
            if m["full"]:
                break
            name = m["parent"]
        state: dict[str, bytes] = {}
        reader = BlobReader(self)
        for m in reversed(chain):
            ids, hashes = self._manifest_entries(m, reader)
            for rid, h in zip(ids, hashes, strict=True):
                if h is None:
                    state.pop(rid, None)
                else:
                    state[rid] = bytes(h)
        ids = sorted(state)
        return ids, [state[i] for i in ids]

    # ---- reading -------------------------------------------------------------------------

    def list_snapshots(self) -> list[SnapshotInfo]:
        """Newest first, by the snapshot's time (an imported backup takes its place among the others)."""
        infos = [info_from_doc(seq, cid, json.loads(doc)) for seq, cid, doc in self.catalog.snapshot_docs()]
        return sorted(infos, key=lambda s: (s.time, s.seq), reverse=True)

    def latest_id(self) -> str | None:
        docs = self.catalog.snapshot_docs()
        return docs[-1][1] if docs else None

    def resolve(self, name: str | SnapshotInfo) -> SnapshotInfo:
        """A snapshot by short id or prefix, ``latest``, ``latest~N``, a date or an ISO time."""
        if isinstance(name, SnapshotInfo):
            return name
        return snapshot_named(self.list_snapshots(), name)

    def schema(self, snap: SnapshotInfo | str, base_id: str) -> dict:
        return self.schemas(snap, [base_id])[base_id]

    def schemas(self, snap: SnapshotInfo | str, base_ids: Iterable[str] | None = None) -> dict[str, dict]:
        """Several bases' schemas (all by default) with one catalog read: reading them one by one
        costs a catalog connection each (~20 ms), which a workspace of many bases notices."""
        snap = self.resolve(snap)
        wanted = None if base_ids is None else set(base_ids)
        hashes = {b.base_id: bytes.fromhex(b.schema_hash) for b in snap.bases if wanted is None or b.base_id in wanted}
        unknown = (wanted or set()) - set(hashes)
        if unknown:
            raise StoreError(f"base {sorted(unknown)[0]} is not in snapshot {snap.id}")
        blobs = self.read_blobs(set(hashes.values()))
        return {base_id: loads(blobs[h]) for base_id, h in hashes.items()}

    def records(self, snap: SnapshotInfo | str, base_id: str, table_id: str) -> Iterator[dict]:
        """The snapshot's records of one table, canonical form, in storage order; memory flat."""
        reader = BlobReader(self)
        for chunk in self.record_chunks(snap, base_id, table_id):
            for raw in reader.read_chunk(chunk):
                yield loads(raw)

    def record_chunks(self, snap: SnapshotInfo | str, base_id: str, table_id: str,
                      size: int = 4096) -> Iterator[LocatedChunk]:
        """Where the snapshot's records of one table are, ``size`` blobs at a time, in storage order
        (see :meth:`table_chunks`)."""
        for _k, chunk in self.table_chunks(snap, [(base_id, table_id)], size):
            yield chunk

    def table_chunks(self, snap: SnapshotInfo | str, tables: list[tuple[str, str]],
                     size: int = 4096) -> Iterator[tuple[int, LocatedChunk]]:
        """Where the snapshot's records of several tables are: ``(position in tables, chunk)``, table
        after table in the order given, each table's records ``size`` blobs at a time in storage
        order (chunk indexes count from 0 per table).

        A chunk is plain data (picklable), so another process can read it with its own
        :class:`BlobReader` without touching the catalog: this is how export spreads tables over
        cores. Small tables are located together (one catalog query for many), so many small
        tables cost about what one table of their total size does. Raises StoreError once a table's
        locations do not add up to its record count (a blob in no pack, or a prune between two
        catalog reads)."""
        snap = self.resolve(snap)
        infos = []
        for base_id, table_id in tables:
            info = snap.table(base_id, table_id)
            if info is None:
                raise StoreError(f"table {table_id} of base {base_id} is not in snapshot {snap.id}")
            infos.append(info)
        seen = [0] * len(tables)
        index = [0] * len(tables)
        checked = 0  # tables before this one are complete and checked
        wanted = [(b, t, info.records) for (b, t), info in zip(tables, infos, strict=True)]
        for k, locs, packs in self.catalog.table_locations(snap.seq, wanted):
            while checked < k:
                self._check_located(snap, tables[checked], seen[checked], infos[checked].records)
                checked += 1
            # exact chunk sizes (export's workers rely on them): a frame cut by a chunk boundary
            # is decompressed by each of the two readers, ~1 frame per 4,096-record chunk
            for batch in locs.to_batches(max_chunksize=size):
                cols = batch.to_pydict()
                seen[k] += len(cols["hash"])
                yield k, LocatedChunk(index[k], cols["hash"], [packs[p] for p in cols["pack_seq"]], cols["off"],
                                      cols["clen"], cols["rlen"], cols["dict_hash"], cols["ioff"])
                index[k] += 1
        while checked < len(tables):
            self._check_located(snap, tables[checked], seen[checked], infos[checked].records)
            checked += 1

    def _check_located(self, snap: SnapshotInfo, table: tuple[str, str], seen: int, records: int) -> None:
        if seen == records:
            return
        base_id, table_id = table
        lost = self.catalog.missing_locations(snap.seq, base_id, table_id)
        if lost:
            raise StoreError(f"a record blob {lost[0].hex()[:12]} of table {table_id} is not in any pack")
        # read in chunks: a prune between two of them moved blobs
        raise StoreError(f"table {table_id} of snapshot {snap.id}: read {seen} records, expected {records} "
                         "(the store changed while reading, e.g. a prune); run the command again")

    def record_hashes(self, snap: SnapshotInfo | str, base_id: str, table_id: str):
        """(record_id, hash) of one table in a snapshot, as an Arrow table sorted by record id."""
        snap = self.resolve(snap)
        return self.catalog.record_hashes(snap.seq, base_id, table_id)

    def read_blobs(self, hashes) -> dict[bytes, bytes]:
        """Many blobs at once: one short catalog read for their locations, then ranged reads."""
        hashes = list(hashes)
        if not hashes:
            return {}
        return self.read_located(catalog_q.blob_rows(self.catalog, hashes))

    def read_located(self, rows: list[tuple]) -> dict[bytes, bytes]:
        """The blobs ``locate_blobs`` found: one open per pack and a ranged read per blob, each
        verified against its hash. No catalog connection is held meanwhile."""
        out: dict[bytes, bytes] = {}
        dctx = BlobReader(self)
        by_pack: dict[str, list] = {}
        for h, pack, off, clen, rlen, dh, standalone, inner in rows:
            if standalone:
                out[h] = self._read_standalone(h)
            elif pack is None:
                raise StoreError(f"blob {h.hex()[:12]} is not in the store")
            else:
                by_pack.setdefault(pack, []).append((h, off, clen, rlen, dh, inner))
        for pack, entries in by_pack.items():
            try:
                f = self.backend.open(pack_key(pack))
            except ObjectMissing as e:
                raise StoreError(f"pack {pack[:12]} is missing from the store") from e
            with f:
                for h, off, clen, rlen, dh, inner in entries:
                    if (pack, off) in dctx._frames:
                        out[h] = dctx.read(h, pack, off, clen, rlen, dh, inner)
                        continue
                    f.seek(off)
                    out[h] = dctx.read(h, pack, off, clen, rlen, dh, inner, f.read(clen))
        return out

    def attachment_index(self, att_ids=None) -> AttachmentIndex:
        return AttachmentIndex(self, att_ids)

    def _read_standalone(self, h: bytes, what: str = "object", *, chunked: bool = True) -> bytes:
        """A standalone object, checked against its name and opened (``chunked``: a large
        attachment, sealed in chunks; else one sealed message)."""
        try:
            data = self.backend.get(objects.object_key(h.hex()))
        except ObjectMissing as e:
            raise StoreError(f"{what} {h.hex()[:12]} is missing from the store") from e
        if hashlib.sha256(data).digest() != h:
            raise StoreError(f"{what} {h.hex()[:12]} is damaged (hash mismatch)")
        what = f"{what} {h.hex()[:12]}"
        return self.box.open_chunks(data, what) if chunked else self.box.open(data, what)

    def read_blob(self, h: bytes) -> bytes:
        loc = self.catalog.blob_location(h)
        if loc is None:
            raise StoreError(f"blob {h.hex()[:12]} is not in the store")
        pack, off, clen, rlen, dh, _kind, inner = loc
        if pack is None:
            return self._read_standalone(h)
        return BlobReader(self).read(h, pack, off, clen, rlen, dh, inner, self.backend.get_range(pack_key(pack), off, clen))

    def has_blob(self, h: bytes) -> bool:
        return self.catalog.blob_location(h) is not None

    def dict_bytes(self, h: bytes) -> bytes:
        """A compression dictionary's bytes, read (and checked) once per store object."""
        d = self._dicts.get(h)
        if d is None:
            d = self._dicts[h] = self._read_standalone(h, "compression dictionary", chunked=False)
        return d

    def comments(self, snap: SnapshotInfo | str, base_id: str, table_id: str) -> dict:
        snap = self.resolve(snap)
        h = catalog_q.comments_hash(self.catalog, snap.seq, base_id, table_id)
        return {} if h is None else loads(self.read_blob(h))

    def table_comments(self, snap: SnapshotInfo | str,
                       tables: list[tuple[str, str]]) -> Iterator[dict[str, list] | None]:
        """Each table's comments ({record id: [comment, ...]}), in the order of ``tables``: None where
        the snapshot did not capture comments (taken without ``--comments``), {} where none exist.
        One catalog read locates every table's blob (a connection per table costs ~20 ms, which a
        workspace of many tables notices); each blob is then read when its turn comes."""
        snap = self.resolve(snap)
        hashes, rows = catalog_q.comment_blob_rows(self.catalog, snap.seq)
        for key in tables:
            h = hashes.get(tuple(key))
            yield None if h is None else loads(self.read_located([rows[h]])[h])

    def attachment(self, att_id: str) -> dict | None:
        """{att_id, content_hash, size, mime, filename}, or None if the store does not hold it.
        For many attachments, use ``attachment_index`` (one catalog query for all)."""
        return self.attachment_index([att_id]).get(att_id)

    def open_attachment(self, att_id: str) -> BinaryIO:
        return self.attachment_index([att_id]).open(att_id)


__all__ = ["Store", "StoreError", "LockError", "SnapshotInfo", "BaseInfo", "TableInfo", "cache_root"]
