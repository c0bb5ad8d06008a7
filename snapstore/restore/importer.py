"""``snapstore import``: an exported folder becomes a snapshot in a store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from snapstore import isotime
from snapstore.restore.errors import RestoreError
from snapstore.restore.sources import FolderSource


def _iso(t: datetime) -> str:
    return isotime.iso(t, precise=True)  # a stored snapshot time: microseconds order snapshots


def parse_time(text: str) -> datetime:
    """An ISO date or time (``2024-05-01``, ``2024-05-01T10:00:00Z``); naive means UTC."""
    t = isotime.parse(text)
    if t is None:
        raise RestoreError(f"{text!r} is not an ISO date or time (e.g. 2024-05-01T10:00:00Z)")
    return t


def snapshot_time_and_parent(src: FolderSource, store, when: str | datetime | None) -> tuple[str | None, str]:
    """The imported snapshot's time (``when``, else the exported snapshot's own; None: now) and its
    parent: the exported snapshot's parent when this store holds it, else the store's newest snapshot
    older than that time ("" when there is none), so ``log``, ``latest~N`` and ``forget`` see the
    backup where it belongs in time."""
    meta = (src.layout.snapshot or {}).get("snapshot") or {}
    if when is None and meta.get("time"):
        when = meta["time"]
    if when is None:
        return None, str(store.latest_id() or "")
    t = when if isinstance(when, datetime) else parse_time(when)
    snaps = store.list_snapshots()
    if meta.get("parent") and any(s.full_id == meta["parent"] for s in snaps):
        return _iso(t), meta["parent"]
    older = [s for s in snaps if s.time < t]
    return _iso(t), older[0].full_id if older else ""


def import_folder(folder: str | Path, store, *, note: str | None = None, verify: bool = True, tags=(),
                  time: str | datetime | None = None):
    """An exported folder becomes a snapshot in ``store`` (original record ids, schema, attachments,
    comments), stamped with the exported snapshot's time (``time`` overrides it).
    Returns the new :class:`SnapshotInfo`."""
    src = FolderSource(folder, verify=verify)
    stamp, parent = snapshot_time_and_parent(src, store, time)
    snap = store.begin_snapshot(note=note or f"imported from {src.root.name}", tags=tags, command="import")
    snap.time, snap.parent = stamp, parent
    try:
        seen_att: set[str] = set()
        for base_id, name in src.bases():
            schema = src.schema(base_id)
            snap.add_base(base_id, name, schema)
            for t in schema["tables"]:
                if not src.has_table(base_id, t["id"]):
                    snap.mark_missing(base_id, t["id"], "not in the exported folder")
                    continue
                tw = snap.table(base_id, t["id"])
                for r in src.records(base_id, t["id"]):
                    tw.add(r)
                tw.finish()
                # a comments file, even an empty one, says the comments were captured: keep "none" apart
                # from "not captured" (no file), so the snapshot exports as the folder it came from
                if (base_id, t["id"]) in src.layout.comment_files:
                    snap.add_comments(base_id, t["id"], src.comments(base_id, t["id"]))
        for att_id in sorted(src.layout.att_files):
            if att_id in seen_att or snap.known_attachment(att_id):
                continue
            info = src.att_info(att_id)
            if info is None:
                continue
            seen_att.add(att_id)
            meta = src.layout.att_meta.get(att_id, {})
            with src.open_att(att_id) as f:
                snap.add_attachment(att_id, f, size=info["size"], filename=meta.get("filename") or info["filename"],
                                    mime=meta.get("type"))
        return snap.commit()
    except BaseException:
        snap.abandon()
        raise
