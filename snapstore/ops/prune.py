"""Prune: remove what no kept snapshot uses, repacking packs that are mostly garbage.

Under the writer lock, in this order (each step leaves a readable store, and a second prune
finishes whatever an interrupted one left):

1. sync the catalog with the commit objects; finish an interrupted forget.
2. mark: live record versions (an interval join against the kept snapshots), their blobs, schemas,
   comments, attachments whose ``att…`` id a live record (or comment) mentions, the dictionaries of
   live blobs and of every kept table, the manifests reachable from kept tables through ``parent``
   links, and the attachment indexes kept commits name.
3. classify packs: dead (no live blob), partly live, all live; choose partly-live packs to repack,
   most garbage first, until the store's unused bytes are within ``max_unused`` (restic's rule:
   unused / (used + unused) <= 5 %), plus every pack whose own garbage share is >= ``repack_threshold``.
4. repack: copy each live blob's compressed frame byte for byte (after checking it decompresses to
   its hash) into new packs, written before anything is dropped.
5. write a store index (``index/``) describing the store after this prune, covering every commit.
6. one catalog transaction (``catalog.prune.rewrite_packs``): new pack rows, blob rows repointed,
   dead rows dropped.
7. delete older store indexes, then dead and repacked packs, leftover packs no commit or index
   names, dead objects of the kinds prune knows (manifests, dictionaries, attachment indexes, large
   attachments), and tag events of forgotten snapshots.

``SNAPSTORE_PRUNE_CRASH_AT=<step>`` kills the process with SIGKILL at a step (tests only):
``repacked``, ``indexed``, ``catalog``, ``indexes-dropped``, ``deleting``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import zstandard

from snapstore.canonical import loads
from snapstore.fieldtypes import is_attachment
from snapstore.ops.retention import check_no_lost_commits, finish_pending_forgets, writer_lock
from snapstore.store import Store, StoreError, columns, objects, readers
from snapstore.store import inventory as inv
from snapstore.store.catalog import prune as catalog_prune
from snapstore.store.catalog import retention as catalog_ret
from snapstore.store.packs import (
    KIND_ATTACHMENT,
    KIND_RECORD,
    TAIL_SIZE,
    PackWriter,
    build_frames,
    frame_id,
    pack_key,
    split_items,
    trailer_size,
)
from snapstore.store.reader import BlobReader
from snapstore.store.writer import ZSTD_LEVEL, compress_many

log = logging.getLogger("snapstore.ops.prune")

CRASH_ENV = "SNAPSTORE_PRUNE_CRASH_AT"
DICT_MAGIC = b"\x37\xa4\x30\xec"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class PackInfo:
    pack_seq: int
    name: str
    size: int
    used: int = 0  # bytes of live blobs located here
    unused: int = 0
    n_live: int = 0


@dataclass
class PruneResult:
    dry_run: bool
    snapshots: int = 0
    packs_total: int = 0
    packs_dead: list[str] = field(default_factory=list)
    packs_repack: list[str] = field(default_factory=list)
    packs_orphan: list[str] = field(default_factory=list)
    packs_new: list[str] = field(default_factory=list)
    blobs_live: int = 0
    blobs_dead: int = 0
    bytes_used: int = 0
    bytes_unused_before: int = 0
    bytes_unused_after: int = 0
    objects_dead: list[str] = field(default_factory=list)
    objects_unknown: int = 0
    attachments_dead: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    bytes_freed: int = 0
    #: readers stayed registered through the wait: nothing was deleted (the next prune does it)
    deferred: int = 0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        for k in ("packs_dead", "packs_repack", "packs_orphan", "packs_new", "objects_dead"):
            d[k] = len(d[k])
        return d


def parse_size_or_percent(text: str) -> tuple[str, float]:
    """``5%`` -> ("pct", 5.0); ``10M`` -> ("bytes", 10485760); ``unlimited``."""
    t = text.strip().lower()
    if t == "unlimited":
        return "unlimited", 0.0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt%]?)b?", t)
    if m is None:
        raise ValueError(f"{text!r} is not a percentage (5%), a size (100M, 2G) or 'unlimited'")
    v, unit = float(m.group(1)), m.group(2)
    if unit == "%":
        if not 0 <= v < 100:
            raise ValueError(f"{text}: a percentage must be in [0, 100)")
        return "pct", v
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    return "bytes", v * mult[unit]


# ---- marking -----------------------------------------------------------------------------------------


def _reader(store: Store) -> BlobReader:
    """Prune reads pack by pack: one pack in memory at a time."""
    return BlobReader(store, cache_packs=1)


def _read_checked(reader: BlobReader, h: bytes, pack: str, off: int, clen: int, rlen: int, dh: bytes | None,
                  ioff: int) -> bytes:
    try:
        return reader.read(h, pack, off, clen, rlen, dh, ioff)
    except StoreError as e:
        raise StoreError(f"{e}; run `snapstore verify`") from e


def _att_ids(value, out: set[str]) -> None:
    if isinstance(value, dict):
        if is_attachment(value):
            out.add(value["id"])
        for v in value.values():
            if isinstance(v, (dict, list)):
                _att_ids(v, out)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, (dict, list)):
                _att_ids(v, out)


@dataclass
class Live:
    blobs: set[bytes]
    record_blobs: set[bytes]
    att_ids: set[str]
    att_rows: list[tuple]
    dicts: set[bytes]
    objects: set[str]  # hex names of standalone objects to keep (manifests, dicts, att indexes, large attachments)
    #: frames kept manifests name, by pack_seq then offset: each is kept whole, byte for byte
    frames: dict[int, dict[int, catalog_prune.NamedFrame]] = field(default_factory=dict)


def mark(store: Store) -> Live:
    with store.catalog.read() as con:
        record_blobs = catalog_prune.live_record_hashes(con)
        tbl = catalog_prune.kept_table_objects(con)
        docs = catalog_prune.commit_docs(con)
        locs = catalog_prune.packed_blob_locations(con)
        att_all = catalog_ret.attachment_rows(con)
    meta_blobs: set[bytes] = set()
    dicts: set[bytes] = set()
    manifests: set[str] = set()
    att_indexes: set[str] = set()
    for manifest, dh, ch, sh in tbl:
        manifests.add(manifest)
        if dh:
            dicts.add(dh)
        if ch:
            meta_blobs.add(ch)
        if sh:
            meta_blobs.add(sh)
    for d in docs:
        doc = json.loads(d)
        for b in doc.get("bases", []):
            meta_blobs.add(bytes.fromhex(b["schema"]))
            for t in b.get("tables", []):
                if t.get("dict"):
                    dicts.add(bytes.fromhex(t["dict"]))
        if doc.get("attachment_index"):
            att_indexes.add(doc["attachment_index"])
    # manifests reachable through parent links, and the frames they name (format 3)
    todo = list(manifests)
    named_frames: set[bytes] = set()
    while todo:
        name = todo.pop()
        m = store._manifest(name)
        named_frames.update(bytes(f) for f in m.get("frames") or [])
        if not m["full"] and m.get("parent") and m["parent"] not in manifests:
            manifests.add(m["parent"])
            todo.append(m["parent"])
    # a frame a kept manifest names is needed whole, dead records too: folding the manifest reads
    # every item of it (it is copied byte for byte, its id unchanged). Its dead records keep
    # nothing else alive (their attachments are not scanned below).
    reader = _reader(store)
    kept_frames, pinned = _named_frames(store, reader, named_frames)
    pinned -= record_blobs
    for by_off in kept_frames.values():
        dicts.update(fr[5] for fr in by_off.values() if fr[5])
    # attachments mentioned by live records and comments
    att_ids: set[str] = set()
    want = record_blobs | {h for h in meta_blobs}
    for h, pack, off, clen, rlen, dh, kind, ioff in locs:
        if h not in want or kind not in ("R", "C"):
            continue
        raw = _read_checked(reader, h, pack, off, clen, rlen, dh, ioff)
        if b'"att' in raw:
            _att_ids(loads(raw), att_ids)
    att_rows = [a for a in att_all if a[0] in att_ids]
    live = record_blobs | pinned | meta_blobs | {bytes(a[1]) for a in att_rows}
    for h, _pack, _off, _clen, _rlen, dh, _kind, _ioff in locs:
        if h in live and dh:
            dicts.add(dh)
    objs = manifests | att_indexes | {d.hex() for d in dicts} | {bytes(a[1]).hex() for a in att_rows}
    return Live(live, record_blobs, att_ids, att_rows, dicts, objs, kept_frames)


def _named_frames(store: Store, reader: BlobReader, fids: set[bytes]
                  ) -> tuple[dict[int, dict[int, catalog_prune.NamedFrame]], set[bytes]]:
    """Where the frames kept manifests name are, and the hashes of their items.

    Located by frame id, not through the blob rows: when two machines packed the same records
    (siblings of one parent, written at once), the catalog locates each record in one copy only,
    and the other copy's frame, which the other machine's manifest names, has no blob row of its
    own. Counted through blob rows, its pack looked dead and prune deleted what a kept snapshot
    needs. A frame whose items the blob rows do not all locate is read to list them."""
    if not fids:
        return {}, set()
    with store.catalog.read() as con:
        rows = catalog_prune.named_frames(con, fids)
        complete = {fr[0] for fr in rows if fr[7] == fr[6]}
        items = catalog_prune.frame_item_hashes(con, complete) if complete else set()
    lost = fids - {fr[0] for fr in rows}
    if lost:
        raise StoreError(f"frame {sorted(lost)[0].hex()[:12]}, which a kept manifest names, is not in the "
                         "store; run `snapstore verify` before pruning")
    out: dict[int, dict[int, catalog_prune.NamedFrame]] = defaultdict(dict)
    for fr in rows:
        out[fr[1]][fr[3]] = fr
        if fr[0] not in complete:
            items.update(h for h, _i, _r in _frame_entries(store, reader, fr))
    return dict(out), items


def _frame_entries(store: Store, reader: BlobReader, fr: catalog_prune.NamedFrame) -> list[tuple[bytes, int, int]]:
    """A stored frame's items as (hash, offset, length), read and checked against its id."""
    fid, _seq, pack, off, clen, dh, n, _located = fr
    stored = memoryview(reader.pack(pack))[off: off + clen]
    if frame_id(stored) != fid:
        raise StoreError(f"frame {fid.hex()[:12]} in pack {pack[:12]} is damaged (hash mismatch); "
                         "run `snapstore verify`")
    raw = reader.frame(pack, off, clen, dh, fid, stored)
    return [(store.blob_id(raw[i: i + r]), i, r) for i, r in split_items(raw, n)]


# ---- prune ----------------------------------------------------------------------------------------------


def _store_bytes(store: Store) -> int:
    return sum(size for prefix in ("packs", "objects", "snapshots", inv.INDEX_PREFIX, inv.TAGS_PREFIX)
               for _k, size in store.backend.list(prefix))


def prune(store: Store, *, max_unused: str = "5%", repack_threshold: float | None = None,
          dry_run: bool = False, progress: Callable[[int, int], None] | None = None) -> PruneResult:
    mode, limit = parse_size_or_percent(max_unused)
    with writer_lock(store, "prune", dry_run=dry_run):
        store.sync()
        if dry_run:
            check_no_lost_commits(store)
        else:
            finish_pending_forgets(store)
        return _prune(store, mode, limit, repack_threshold, dry_run, progress)


def _prune(store: Store, mode: str, limit: float, repack_threshold: float | None, dry_run: bool,
           progress: Callable[[int, int], None] | None = None) -> PruneResult:
    res = PruneResult(dry_run=dry_run, bytes_before=_store_bytes(store))
    live = mark(store)
    with store.catalog.read() as con:
        res.snapshots = catalog_prune.snapshot_count(con)
        pack_rows = catalog_prune.pack_rows(con)
        blob_rows = catalog_prune.blob_rows(con)
    on_disk = {k.rsplit("/", 1)[-1]: s for k, s in store.backend.list("packs")}
    packs = {seq: PackInfo(seq, name, size) for seq, name, size in pack_rows}
    # frames (pack_seq, off) -> [blob rows]: a format-2 frame holds many records, and its live
    # share (by raw length) of its bytes is what counts as used
    frames: dict[int, dict[int, list[tuple]]] = defaultdict(lambda: defaultdict(list))
    dead_blobs = 0
    for row in blob_rows:
        if row[0] not in live.blobs:
            dead_blobs += 1
        if row[1] is not None:
            frames[row[1]][row[2]].append(row)
    for pseq, by_off in live.frames.items():  # a named frame is kept whole
        for fr in by_off.values():
            packs[pseq].used += fr[4]
            packs[pseq].n_live += fr[6]
    for pseq, by_off in frames.items():
        for off, rows in by_off.items():
            if off in live.frames.get(pseq, {}):
                continue
            live_rows = [r for r in rows if r[0] in live.blobs]
            if live_rows:
                packs[pseq].used += rows[0][3] * sum(r[4] for r in live_rows) // max(sum(r[4] for r in rows), 1)
                packs[pseq].n_live += len(live_rows)
    res.blobs_live = len(live.blobs)
    res.blobs_dead = dead_blobs
    res.packs_total = len(packs)
    missing = [p for p in packs.values() if p.name not in on_disk]
    for p in missing:
        if p.used:
            raise StoreError(f"pack {p.name[:12]} is missing but holds live data; run `snapstore verify` "
                             "before pruning")
    for p in packs.values():
        if p.name in on_disk:
            tail = store.backend.get_range(pack_key(p.name), p.size - TAIL_SIZE, TAIL_SIZE)
            trailer = trailer_size(tail)
        else:
            trailer = 0
        p.unused = max(p.size - p.used - trailer, 0) if p.used else p.size
    dead = [p for p in packs.values() if p.used == 0]
    partly = [p for p in packs.values() if p.used and p.unused]
    res.bytes_used = sum(p.used for p in packs.values())
    res.bytes_unused_before = sum(p.unused for p in packs.values())
    unused = sum(p.unused for p in partly)
    if mode == "unlimited":
        allowed = float("inf")
    elif mode == "pct":
        allowed = limit / (100 - limit) * res.bytes_used
    else:
        allowed = limit
    partly.sort(key=lambda p: (-(p.unused / max(p.used, 1)), p.pack_seq))
    repack: list[PackInfo] = []
    for p in partly:
        forced = repack_threshold is not None and p.unused / p.size >= repack_threshold
        if unused > allowed or forced:
            repack.append(p)
            unused -= p.unused
    res.bytes_unused_after = unused
    known_names = {p.name for p in packs.values()}
    orphans = sorted(n for n in on_disk if n not in known_names)
    res.packs_dead = [p.name for p in dead]
    res.packs_repack = [p.name for p in repack]
    res.packs_orphan = orphans
    with store.catalog.read() as con:
        res.attachments_dead = catalog_prune.attachment_count(con) - len(live.att_rows)
    dead_objects, unknown = _dead_objects(store, live)
    res.objects_dead = dead_objects
    res.objects_unknown = unknown
    if dry_run:
        res.bytes_after = res.bytes_before - sum(p.size for p in dead) - sum(on_disk[n] for n in orphans) \
            - sum(p.unused for p in repack)
        res.bytes_freed = res.bytes_before - res.bytes_after
        return res

    # 4. repack: new packs first
    writers = {k: PackWriter(store.backend.put, store.pack_size, version=store.pack_version, box=store.box) for k in (False, True)}
    reader = _reader(store)
    for i, p in enumerate(repack):
        if progress is not None:  # packs repacked of those to repack (the CLI's live line)
            progress(i, len(repack))
        named = live.frames.get(p.pack_seq, {})
        for off, rows in frames[p.pack_seq].items():
            if off not in named:
                _repack_frame(store, reader, p.name, rows, live.blobs, writers)
        for fr in named.values():  # byte for byte: its id is what the manifests name
            entries = _frame_entries(store, reader, fr)
            data = bytes(reader.pack(p.name)[fr[3]: fr[3] + fr[4]])
            writers[False].add_frames([(data, entries)], KIND_RECORD, fr[5], sealed=True)
    for w in writers.values():
        w.seal()
    sealed = writers[False].sealed + writers[True].sealed
    res.packs_new = [n for n, _s, _e in sealed]
    _crash_point("repacked")

    # 5. the store index describing the store after this prune
    drop = {p.pack_seq for p in dead} | {p.pack_seq for p in repack}
    kept_packs = sorted({p.name for p in packs.values() if p.pack_seq not in drop} | set(res.packs_new))
    standalone = [(h, clen) for h, pseq, _o, clen, _r, _k, _d, _i in blob_rows if pseq is None and h in live.blobs]
    with store.catalog.read() as con:
        covers = catalog_ret.commit_ids(con)
    index_name, _ = inv.write_index(store.backend, covers=covers, packs=kept_packs, standalone=standalone,
                                    attachments=live.att_rows)
    _crash_point("indexed")

    # 6. one catalog transaction
    catalog_prune.rewrite_packs(store.catalog, sealed, drop, live.blobs, live.att_ids)
    _crash_point("catalog")

    # 7. delete (once no reader is registered): older indexes first, then data
    with readers.deleting(store.backend, waiting=lambda n: log.warning(
            "prune: waiting for %d reader(s) to finish before deleting (at most %.0f s)", n,
            readers.wait_limit())) as clear:
        if clear:
            _delete(store, res, index_name, dead, repack, orphans, dead_objects)
            store.catalog.compact()  # what the dropped rows held is free blocks: give them back
        else:
            res.deferred = len(readers.registered(store.backend)) or 1
    res.bytes_after = _store_bytes(store)
    res.bytes_freed = res.bytes_before - res.bytes_after
    return res


def _delete(store: Store, res: PruneResult, index_name: str, dead: list[PackInfo], repack: list[PackInfo],
            orphans: list[str], dead_objects: list[str]) -> None:
    inv.delete_indexes_except(store.backend, index_name)
    _crash_point("indexes-dropped")
    first = True
    written = set(res.packs_new)  # content-named: a rerun may rewrite a leftover pack under its old name
    doomed = [pack_key(n) for n in [p.name for p in dead] + [p.name for p in repack] + orphans if n not in written]
    for key in doomed + [objects.object_key(name) for name in dead_objects]:
        store.backend.delete(key)
        if first:
            _crash_point("deleting")
            first = False
    present = {k.rsplit("/", 1)[-1] for k, _ in store.backend.list("snapshots")}
    for key, _s in list(store.backend.list(inv.TAGS_PREFIX)):
        parts = key.split("/")
        if len(parts) == 3 and parts[1] not in present:
            store.backend.delete(key)


def _repack_frame(store: Store, reader: BlobReader, pack: str, rows: list[tuple], live: set[bytes],
                  writers: dict[bool, PackWriter]) -> None:
    """Move one frame's live blobs to the new packs: the frame's bytes as they are when all its
    blobs live (each checked first: never copy a damaged blob), else its live records compressed
    into a new frame (with the table's dictionary)."""
    _h, _pseq, off, clen, _rlen, kind, dh, _ioff = rows[0]
    live_rows = [r for r in rows if r[0] in live]
    if not live_rows:
        return
    raws = [_read_checked(reader, h, pack, o, c, rl, d, io) for h, _p, o, c, rl, _k, d, io in live_rows]
    w = writers[kind == KIND_ATTACHMENT]
    # every blob of the frame has a row (format 3 record frames: a newline after each)
    end = store.record_end if kind == KIND_RECORD else b""
    whole = len(reader.frame(pack, off, clen, dh)) == sum(r[4] + len(end) for r in rows)
    if len(live_rows) == len(rows) and whole:
        data = reader.pack(pack)[off:off + clen]
        w.add_frames([(data, [(r[0], r[7], r[4]) for r in live_rows])], kind, dh, sealed=True)
        return
    items = [(r[0], raw) for r, raw in zip(live_rows, raws, strict=True)]
    if kind == KIND_RECORD and dh is None and store.record_columns:  # format 4: what is left of a small batch
        w.add_frames(columns.frames(items, store.record_level_small, end), kind, None)
        return
    level = store.record_level if kind == KIND_RECORD else ZSTD_LEVEL
    cctx = zstandard.ZstdCompressor(level=level, dict_data=zstandard.ZstdCompressionDict(store.dict_bytes(dh))) \
        if dh else zstandard.ZstdCompressor(level=level)
    w.add_frames(build_frames(items, lambda fs: compress_many(cctx, fs, 2), end=end), kind, dh)


def _opened_head(store: Store, key: str, size: int) -> bytes:
    """The first bytes of a sealed object's plaintext (b"" if it is not one sealed message)."""
    if size >= (64 << 20):
        return b""
    try:
        return store.box.open(store.backend.get(key))[:4]
    except StoreError:
        return b""


def _dead_objects(store: Store, live: Live) -> tuple[list[str], int]:
    """Objects no kept snapshot reaches, of kinds prune recognises; unknown objects are kept."""
    with store.catalog.read() as con:
        standalone_known = {h.hex() for h, _clen in catalog_ret.standalone_blobs(con)}
    dead, unknown = [], 0
    for key, size in store.backend.list("objects"):
        name = key.rsplit("/", 1)[-1]
        if name in live.objects:
            continue
        if name in standalone_known:
            dead.append(name)
            continue
        head = store.backend.get_range(key, 0, 4)
        if store.encrypted:  # sealed: what an object is shows once opened
            head = _opened_head(store, key, size)
        if head == DICT_MAGIC:
            dead.append(name)
            continue
        if head == ZSTD_MAGIC and size < (64 << 20):
            try:
                doc = objects.decode(store.backend.get(key), store.box)
            except Exception:  # noqa: BLE001 - not one of ours
                doc = None
            if isinstance(doc, dict) and doc.get("type") in (objects.MANIFEST, objects.ATTACHMENT_INDEX):
                dead.append(name)
                continue
        unknown += 1
    return dead, unknown
