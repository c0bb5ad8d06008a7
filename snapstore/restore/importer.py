"""``snapstore import``: an exported folder becomes a snapshot in a store."""

from __future__ import annotations

from pathlib import Path

from snapstore.restore.errors import RestoreError
from snapstore.restore.sources import FolderSource


def import_folder(folder: str | Path, store, *, note: str | None = None, verify: bool = True, tags=()):
    """An exported folder becomes a snapshot in ``store`` (original record ids, schema, attachments).
    Returns the new :class:`SnapshotInfo`."""
    src = FolderSource(folder, verify=verify)
    if not src.layout.data_files:
        raise RestoreError(f"{src.label}: no table data found under data/json")
    snap = store.begin_snapshot(note=note or f"imported from {src.root.name}", tags=tags, command="import")
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
                comments = src.comments(base_id, t["id"])
                if comments:
                    snap.add_comments(base_id, t["id"], comments)
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
