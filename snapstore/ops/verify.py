"""verify: prove the store intact, or say exactly what is damaged and which snapshots, tables and
records the damage reaches.

Structure (always): every commit object re-hashed and agreeing with its catalog row; every catalog
pack present with its recorded size; every blob a kept snapshot needs (record versions, schemas,
comments, attachment contents) located in a present pack or object; every dictionary those blobs or
the kept tables use present; every manifest chain of every kept table present and folding to the
catalog's records; attachment indexes and the newest store index present.

``read_data`` (or a ``subset`` of packs: ``10%`` random, or ``n/t`` by the pack name's first byte):
``sha256(pack) == name``, the trailer parses and agrees with the catalog, and every blob decompresses
to its hash; standalone objects are re-hashed against their names too.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from snapstore.store import Store, StoreError, objects
from snapstore.store import inventory as inv
from snapstore.store.backend import ObjectMissing
from snapstore.store.catalog import verify as catalog_verify
from snapstore.store.packs import PackError, frame_id, pack_key, parse_trailer
from snapstore.store.reader import BlobReader, FrameDamaged

SAMPLE = 10


@dataclass
class Damage:
    kind: str  # pack-missing, pack-size, pack-hash, pack-trailer, blob, blob-missing, dict-missing, manifest, ...
    object: str
    detail: str
    blobs: set[bytes] = field(default_factory=set, repr=False)
    affects: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "object": self.object, "detail": self.detail, "blobs": len(self.blobs),
                "affects": self.affects}


@dataclass
class Report:
    damage: list[Damage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.damage

    def add(self, kind: str, obj: str, detail: str, blobs=()) -> Damage:
        d = Damage(kind, obj, detail, set(blobs))
        self.damage.append(d)
        return d

    def to_dict(self) -> dict:
        return {"ok": self.ok, "damage": [d.to_dict() for d in self.damage], "warnings": self.warnings,
                "checked": self.checked}


def parse_subset(text: str | None):
    """None -> all; '10%' -> fraction; 'n/t' -> (n, t)."""
    if text is None:
        return None
    t = text.strip()
    m = re.fullmatch(r"(\d+)/(\d+)", t)
    if m:
        n, tot = int(m.group(1)), int(m.group(2))
        if not 1 <= n <= tot:
            raise ValueError(f"{text}: n/t needs 1 <= n <= t")
        return (n, tot)
    if t.endswith("%"):
        v = float(t[:-1])
        if not 0 < v <= 100:
            raise ValueError(f"{text}: a percentage must be in (0, 100]")
        return v / 100
    raise ValueError(f"{text}: use a percentage like 10% or n/t like 1/5")


def _pick(names: list[str], subset) -> list[str]:
    if subset is None:
        return names
    if isinstance(subset, tuple):
        n, t = subset
        return [x for x in names if int(x.rsplit("/", 1)[-1][:2], 16) % t == n - 1]
    k = max(1, round(len(names) * subset)) if names else 0
    return sorted(random.sample(names, k))


def verify(store: Store, *, read_data: bool = False, subset: str | None = None,
           progress: Callable[[int, int], None] | None = None) -> Report:
    """``progress(packs read so far, packs to read)`` before each pack ``read_data`` reads (the CLI's
    live line)."""
    rep = Report()
    sub = parse_subset(subset)
    read_data = read_data or sub is not None
    listed = catalog_verify.listing(store.catalog)
    cat_snaps, packs, blobs, tables, atts = (listed.snapshots, listed.packs, listed.blobs, listed.tables,
                                             listed.attachments)
    blob_at = {r[0]: r for r in blobs}

    # commits against the catalog
    tag_events = inv.read_tag_events(store.backend)
    present = {}
    for key, _s in store.backend.list("snapshots"):
        cid = key.rsplit("/", 1)[-1]
        try:
            present[cid] = store._read_commit(cid)
        except (StoreError, ValueError) as e:
            rep.add("commit", cid, f"snapshot {cid[:8]}: commit object unreadable: {e}")
    cat_ids = {cid for _s, cid, _d in cat_snaps}
    lost = set(inv.lost_commits(store.backend, cat_ids))
    for cid in sorted(lost - cat_ids):  # known from the newest store index only
        rep.add("commit-missing", cid, f"snapshot {cid[:8]}: commit object missing (no forget recorded it; "
                "the catalog no longer holds it either)")
    for _seq, cid, doc in cat_snaps:
        if cid in lost:
            rep.add("commit-missing", cid, f"snapshot {cid[:8]}: commit object missing although no forget "
                    "recorded it (run `snapstore repair` to write it again from the catalog)")
            continue
        if cid not in present:
            if not any(d.object == cid for d in rep.damage):
                rep.warnings.append(f"snapshot {cid[:8]} is in the catalog but its commit object is gone "
                                    "(an interrupted forget; the next forget or prune finishes it)")
            continue
        want = dict(present[cid], tags=inv.apply_tag_events(present[cid].get("tags"), tag_events.get(cid)))
        if json.loads(doc) != want:
            rep.add("catalog", cid, f"snapshot {cid[:8]}: catalog row disagrees with the commit object "
                    "(run `snapstore rebuild-catalog`)")
    for cid in present:
        if cid not in cat_ids:
            rep.warnings.append(f"snapshot {cid[:8]} is not in the catalog yet (the next writer adds it)")
    rep.checked["snapshots"] = len(cat_snaps)

    # packs present with their sizes
    on_disk = {k.rsplit("/", 1)[-1]: s for k, s in store.backend.list("packs")}
    pack_ok: dict[str, bool] = {}
    blobs_in_pack: dict[str, set[bytes]] = defaultdict(set)
    for r in blobs:
        if r[2] is not None:
            blobs_in_pack[r[2]].add(r[0])
    for _pseq, name, size in packs:
        if name not in on_disk:
            rep.add("pack-missing", name, f"pack {name[:12]} is missing", blobs_in_pack[name])
            pack_ok[name] = False
        elif on_disk[name] != size:
            rep.add("pack-size", name, f"pack {name[:12]} is {on_disk[name]} bytes, the catalog says {size} "
                    "(truncated or overwritten)", blobs_in_pack[name])
            pack_ok[name] = False
        else:
            pack_ok[name] = True
    orphans = [n for n in on_disk if n not in pack_ok]
    if orphans:
        rep.warnings.append(f"{len(orphans)} pack(s) no snapshot uses (left by an interrupted run; prune removes them)")
    rep.checked["packs"] = len(packs)

    # every needed blob located
    needed: set[bytes] = listed.live_hashes
    dicts_needed: dict[bytes, set[bytes]] = defaultdict(set)
    manifests = set()
    for _seq, _pk, _b, _t, manifest, dh, ch, sh in tables:
        manifests.add(manifest)
        for h in (ch, sh):
            if h:
                needed.add(h)
        if dh:
            dicts_needed.setdefault(dh, set())
    for _a, h, _fn in atts:
        needed.add(h)
    missing_blobs = [h for h in needed if h not in blob_at]
    if missing_blobs:
        rep.add("blob-missing", "-", f"{len(missing_blobs)} blob(s) snapshots need are in no pack or object",
                missing_blobs)
    for h, _pseq, _pname, _off, _clen, _rlen, _kind, dh, _ioff in blobs:
        if dh and h in needed:
            dicts_needed[dh].add(h)
    for dh, hs in dicts_needed.items():
        try:
            store.dict_bytes(dh)
        except StoreError as e:
            rep.add("dict-missing", dh.hex(), str(e), hs)
    # standalone objects (large attachments)
    for h, pseq, *_ in blobs:
        if pseq is None and not store.backend.exists(objects.object_key(h.hex())):
            rep.add("object-missing", h.hex(), f"attachment object {h.hex()[:12]} is missing", {h})
    rep.checked["blobs"] = len(needed)

    # manifests: chains present and folding to the catalog's records
    rep.checked["manifests"] = _check_manifests(store, rep, tables)
    for cid, doc in present.items():
        ai = doc.get("attachment_index")
        if ai and not store.backend.exists(objects.object_key(ai)):
            rep.add("attachment-index", ai, f"snapshot {cid[:8]}: attachment index {ai[:12]} is missing")
    try:
        newest = inv.newest_index(store.backend)
    except ValueError as e:
        rep.add("store-index", "-", str(e))
        newest = None
    if newest:
        for name in newest[1]["packs"]:
            if name not in on_disk and not any(d.object == name for d in rep.damage):
                rep.add("store-index", newest[0], f"store index {newest[0][:12]} names missing pack {name[:12]}")

    if read_data:
        _read_data(store, rep, sub, packs, blobs, pack_ok, on_disk, progress)

    _attribute(store, rep, atts)
    return rep


def _check_manifests(store: Store, rep: Report, tables) -> int:
    """Every manifest a kept table reaches through ``parent`` links is present and intact (each
    read once); the newest and oldest snapshot of each table fold to exactly the catalog's records."""
    todo = {manifest for _seq, _pk, _b, _t, manifest, *_ in tables}
    users: dict[str, list] = defaultdict(list)
    for seq, pk, _b, _t, manifest, *_ in tables:
        users[manifest].append((seq, pk))
    seen: set[str] = set()
    bad: set[str] = set()
    parent_of: dict[str, str | None] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            m = store._manifest(name)
        except StoreError as e:
            bad.add(name)
            rep.add("manifest", name, str(e))
            continue
        parent_of[name] = None if m["full"] else m.get("parent")
        if parent_of[name]:
            todo.add(parent_of[name])
    if bad:  # name the snapshots whose tables reach a bad manifest
        for manifest, us in users.items():
            hit = next((b for b in _chain(manifest, parent_of) if b in bad), None)
            if hit:
                d = next(d for d in rep.damage if d.kind == "manifest" and d.object == hit)
                d.affects.extend({"snapshot_seq": seq, "table_pk": pk} for seq, pk in us)
    ends: dict[int, list] = defaultdict(list)
    for seq, pk, _b, _t, manifest, *_ in tables:
        ends[pk].append((seq, manifest))
    picks = {(pk, *x) for pk, v in ends.items() for x in (min(v), max(v))}
    with store.catalog.read() as con:
        for pk, seq, manifest in sorted(picks):
            if manifest in bad or any(m in bad for m in _chain(manifest, parent_of)):
                continue
            try:
                ids, hashes = store._fold_manifest(manifest)
            except FrameDamaged as e:  # format 3: the manifest names a frame that is damaged
                if not any(d.kind == "frame" and d.object == f"{e.pack}:{e.off}" for d in rep.damage):
                    rep.add("frame", f"{e.pack}:{e.off}", str(e), catalog_verify.frame_record_hashes(con, e.pack, e.off))
                continue
            except StoreError as e:
                rep.add("manifest", manifest, f"manifest {manifest[:12]} cannot be folded: {e}").affects.append(
                    {"snapshot_seq": seq, "table_pk": pk})
                continue
            rows = catalog_verify.table_records_at(con, pk, seq)
            if [r[0] for r in rows] != ids or [r[1] for r in rows] != hashes:
                rep.add("catalog", manifest, f"manifest {manifest[:12]} and the catalog disagree on the records "
                        "of a table (run `snapstore rebuild-catalog`)").affects.append(
                            {"snapshot_seq": seq, "table_pk": pk})
    return len(seen)


def _chain(name: str, parent_of: dict) -> list[str]:
    out = []
    while name is not None and name not in out:
        out.append(name)
        name = parent_of.get(name)
    return out


def _read_data(store: Store, rep: Report, sub, packs, blobs, pack_ok, on_disk, progress=None) -> None:
    by_pack: dict[str, list] = defaultdict(list)
    for r in blobs:
        if r[2] is not None:
            by_pack[r[2]].append(r)
    names = sorted(n for _s, n, _z in packs if n in on_disk)
    chosen = _pick(names, sub)
    reader = BlobReader(store, cache_packs=1)
    n_blobs = 0
    for i, name in enumerate(chosen):
        if progress is not None:
            progress(i, len(chosen))
        data = store.backend.get(pack_key(name))
        if hashlib.sha256(data).hexdigest() != name:
            if pack_ok.get(name, True):
                rep.add("pack-hash", name, f"pack {name[:12]}: content does not match its name (sha256)")
        try:
            trailer = parse_trailer(data, store.box)
        except PackError as e:
            rep.add("pack-trailer", name, f"pack {name[:12]}: trailer unreadable ({e})")
            trailer = None
        # where the trailer puts each blob: by hash, or (format 3 record frames, whose trailer
        # holds no record hash) by place in the frame; each such frame checked against its id
        entries = {e.hash: e for e in trailer or [] if e.hash is not None}
        frames = {e.offset: e for e in trailer or [] if e.fid is not None}
        bad_frames = {off for off, e in frames.items() if frame_id(memoryview(data)[off:off + e.clen]) != e.fid}
        bad = set()
        for h, _pseq, _pn, off, clen, rlen, _kind, dh, ioff in by_pack[name]:
            n_blobs += 1
            if trailer is not None:
                e = entries.get(h)
                if e is not None:
                    ok = e.offset == off and e.clen == clen and e.inner == ioff and e.rlen == rlen
                else:  # a format-3 record: its frame is in the trailer, the record's id is in its bytes
                    f = frames.get(off)
                    ok = f is not None and f.clen == clen and off not in bad_frames
                if not ok:
                    bad.add(h)
                    continue
            try:
                reader.decompressor(dh)
            except StoreError:
                continue  # reported as dict-missing
            try:
                reader.read(h, name, off, clen, rlen, dh, ioff, memoryview(data)[off:off + clen])
            except StoreError:
                bad.add(h)
        if bad:
            rep.add("blob", name, f"pack {name[:12]}: {len(bad)} blob(s) damaged", bad)
    n_obj = 0
    sealed_atts = {r[0] for r in blobs if r[1] is None}  # large attachments: standalone blobs
    obj_keys = [k for k, _s in store.backend.list("objects")]
    for key in _pick(obj_keys, sub) if sub is not None else obj_keys:
        name = key.rsplit("/", 1)[-1]
        h = hashlib.sha256()
        with store.backend.open(key) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        n_obj += 1
        if h.hexdigest() != name:
            rep.add("object-hash", name, f"object {name[:12]}: content does not match its name (sha256)",
                    {bytes.fromhex(name)})
        elif store.encrypted and bytes.fromhex(name) in sealed_atts:  # every chunk authenticates
            try:
                with store.box.open_stream(store.backend.open(key), f"attachment object {name[:12]}") as f:
                    while f.read(1 << 20):
                        pass
            except StoreError as e:
                rep.add("object", name, str(e), {bytes.fromhex(name)})
    rep.checked.update({"packs_read": len(chosen), "blobs_read": n_blobs, "objects_read": n_obj})


def _attribute(store: Store, rep: Report, atts) -> None:
    """Name the snapshots, tables and records each damage reaches."""
    if not rep.damage:
        return
    reached = catalog_verify.reach(store.catalog, (h for d in rep.damage for h in d.blobs))
    rec, meta, ids, pks = reached.records, reached.tables, reached.snapshot_ids, reached.table_keys
    by_hash_rec: dict[bytes, list] = defaultdict(list)
    for h, b, t, rid, snaps in rec:
        by_hash_rec[h].append((b, t, rid, snaps))
    by_hash_meta: dict[bytes, list] = defaultdict(list)
    for h, b, t, sid, what in meta:
        by_hash_meta[h].append((b, t, sid, what))
    att_by_hash: dict[bytes, list] = defaultdict(list)
    for a, h, fn in atts:
        att_by_hash[h].append((a, fn))
    for d in rep.damage:
        per_table: dict[tuple, dict] = {}
        for h in d.blobs:
            for b, t, rid, snaps in by_hash_rec.get(h, []):
                e = per_table.setdefault((b, t), {"base_id": b, "table_id": t, "records": set(), "snapshots": set(),
                                                  "what": set()})
                e["records"].add(rid)
                e["snapshots"].update(s[:8] for s in snaps)
                e["what"].add("records")
            for b, t, sid, what in by_hash_meta.get(h, []):
                e = per_table.setdefault((b, t), {"base_id": b, "table_id": t, "records": set(), "snapshots": set(),
                                                  "what": set()})
                e["snapshots"].add(sid[:8])
                e["what"].add(what)
        for e in per_table.values():
            recs = sorted(e["records"])
            d.affects.append({"base_id": e["base_id"], "table_id": e["table_id"], "what": sorted(e["what"]),
                              "records": len(recs), "record_ids": recs[:SAMPLE], "snapshots": sorted(e["snapshots"])})
        att_hit = [(a, fn) for h in d.blobs for a, fn in att_by_hash.get(h, [])]
        if att_hit:
            d.affects.append({"attachments": len(att_hit), "attachment_ids": sorted(a for a, _ in att_hit)[:SAMPLE]})
        for a in list(d.affects):
            if "snapshot_seq" in a:
                b, t = pks.get(a.pop("table_pk"), ("?", "?"))
                seq = a.pop("snapshot_seq")
                a.update({"base_id": b, "table_id": t, "snapshots": [ids.get(seq, "?")[:8]]})


def format_report(rep: Report) -> str:
    lines = []
    for d in rep.damage:
        lines.append(f"DAMAGE [{d.kind}] {d.detail}")
        for a in d.affects:
            if "attachments" in a:
                lines.append(f"  affects {a['attachments']} attachment(s): {', '.join(a['attachment_ids'])}")
                continue
            what = ", ".join(a.get("what", ["records"]))
            recs = a.get("records")
            rec_txt = ""
            if recs:
                more = f" and {recs - len(a['record_ids'])} more" if recs > len(a["record_ids"]) else ""
                rec_txt = f" {recs} record(s) ({', '.join(a['record_ids'])}{more})"
            snaps = a.get("snapshots", [])
            snap_txt = ", ".join(snaps[:SAMPLE]) + (f" and {len(snaps) - SAMPLE} more" if len(snaps) > SAMPLE else "")
            lines.append(f"  affects base {a['base_id']} table {a['table_id']} [{what}]:{rec_txt} "
                         f"in {len(snaps)} snapshot(s): {snap_txt}")
    for w in rep.warnings:
        lines.append(f"warning: {w}")
    c = rep.checked
    summary = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items())
    lines.append(("no damage found" if rep.ok else f"{len(rep.damage)} problem(s) found") + f" ({summary})")
    return "\n".join(lines)


__all__ = ["verify", "Report", "Damage", "format_report", "parse_subset", "ObjectMissing"]
