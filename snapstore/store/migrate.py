"""Copy a store, snapshot by snapshot, into a new store of the current format.

Every snapshot is written again, oldest first, with its own time, start time, note, tags, status
(and what it missed), schema, records, comments and attachments. Record hashes are computed from
the same canonical bytes, so records compare equal across the two stores; snapshot ids change
(a commit names its store), and ``migrate`` returns the old id -> new id map.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from snapstore.errors import StoreError
from snapstore.store.store import SnapshotInfo, Store


def migrate(src: Store, dst: Store, *, progress: Callable[[SnapshotInfo, SnapshotInfo], None] | None = None) -> dict[str, str]:
    """Copy every snapshot of ``src`` into the empty store ``dst``; returns {old full id: new full id}."""
    if dst.list_snapshots():
        raise StoreError(f"{dst.location} already holds snapshots; migrate into a new store")
    snaps = list(reversed(src.list_snapshots()))  # oldest first: parents before children
    atts = src.attachment_index()
    copied: set[str] = set()
    ids: dict[str, str] = {}
    for info in snaps:
        w = dst.begin_snapshot(note=info.note, tags=info.tags, command=info.doc.get("command") or "snapshot")
        with w:
            w.started = datetime.fromisoformat(info.doc.get("started", info.doc["time"]).replace("Z", "+00:00"))
            w.time = info.time
            w.stats = dict(info.stats)
            schemas = src.schemas(info)
            for b in info.bases:
                w.add_base(b.base_id, b.name, schemas[b.base_id], b.permission_level)
                for t in b.tables:
                    tw = w.table(b.base_id, t.table_id)
                    tw.add_many(src.records(info, b.base_id, t.table_id))
                    tw.finish()
                    comments = src.comments(info, b.base_id, t.table_id)
                    if comments:
                        w.add_comments(b.base_id, t.table_id, comments)
            for att_id in src.catalog.attachments_stored_by(info.seq):
                if att_id in copied or w.known_attachment(att_id):
                    continue
                meta = atts.get(att_id)
                with atts.open(att_id) as f:
                    w.add_attachment(att_id, f, size=meta["size"], filename=meta["filename"], mime=meta["mime"])
                copied.add(att_id)
            for m in info.missing:
                w.mark_missing(m["base_id"], m.get("table_id"), m["reason"], drop_table=not m.get("records_kept"))
            new = w.commit()
        ids[info.full_id] = new.full_id
        if progress is not None:
            progress(info, new)
    return ids
