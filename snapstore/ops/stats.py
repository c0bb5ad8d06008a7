"""stats: what the store holds, what it would take without deduplication, and how each base grows.

Logical bytes of a snapshot = the raw (uncompressed canonical) length of every record it holds plus
the size of every attachment those records name. The deduplication ratio is the logical bytes of all
snapshots together divided by the bytes the store keeps on disk (packs, objects, commits, indexes;
the catalog, a rebuildable index, is reported apart).
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from snapstore import isotime
from snapstore.canonical import loads
from snapstore.ops.prune import _att_ids, _read_checked, _reader
from snapstore.store import Store
from snapstore.store import inventory as inv
from snapstore.store.catalog import prune as catalog_prune
from snapstore.store.catalog import stats as catalog_stats
from snapstore.store.packs import KIND_RECORD


def _attachment_weights(store: Store) -> pa.Table:
    """(record blob hash, bytes of the attachments it names) for live records that name any."""
    with store.catalog.read() as con:
        live = catalog_prune.live_record_hashes(con)
        sizes = catalog_stats.attachment_sizes(con)
        locs = catalog_prune.packed_blob_locations(con, KIND_RECORD)
    hs, ws = [], []
    if sizes:
        reader = _reader(store)
        for h, pack, off, clen, rlen, dh, _kind, ioff in locs:
            if h not in live:
                continue
            raw = _read_checked(reader, h, pack, off, clen, rlen, dh, ioff)
            if b'"att' not in raw:
                continue
            ids: set[str] = set()
            _att_ids(loads(raw), ids)
            w = sum(sizes.get(a, 0) for a in ids)
            if w:
                hs.append(h)
                ws.append(w)
    return pa.table({"hash": pa.array(hs, pa.binary()), "att_bytes": pa.array(ws, pa.int64())})


def stats(store: Store) -> dict:
    disk: dict[str, int] = {}
    for prefix in ("packs", "objects", "snapshots", inv.INDEX_PREFIX, inv.TAGS_PREFIX):
        disk[prefix] = sum(s for _k, s in store.backend.list(prefix))
    catalog = sum(p.stat().st_size for p in store.catalog.path.parent.glob(store.catalog.path.name + "*") if p.is_file())
    stored = sum(disk.values())
    att_w = _attachment_weights(store)
    with store.catalog.read() as con:
        rows = catalog_stats.per_snapshot(con, att_w)
        counts = catalog_stats.row_counts(con)
        snaps = catalog_stats.bytes_added(con)
    logical = sum(r[4] for r in rows)
    bases: dict[str, list] = defaultdict(list)
    prev: dict[str, int] = {}
    times = {s.full_id: s.time for s in store.list_snapshots()}
    for seq, sid, base, n, lb, added in rows:
        t = times.get(sid)
        bases[base].append({"seq": seq, "id": sid[:8], "full_id": sid, "time": isotime.iso(t) if t else "",
                            "records": n, "records_delta": n - prev.get(base, 0), "logical_bytes": lb,
                            "added_bytes": added})
        prev[base] = n
    return {
        "store": str(store.location), "snapshots": len(snaps), "stored_bytes": stored, "disk": disk,
        "catalog_bytes": catalog, "logical_bytes": logical,
        "dedup_ratio": round(logical / stored, 2) if stored else None, "counts": counts,
        "bytes_added_per_snapshot": [{"id": s[1][:8], "full_id": s[1], "bytes_added": s[2]} for s in snaps],
        "bases": dict(bases),
    }

