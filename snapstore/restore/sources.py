"""Where a restore reads from: a snapshot in a store, or an exported folder."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from snapstore.restore.errors import RestoreError
from snapstore.restore.folder import (
    _load_json_records,
    _read_layout,
    _record_from_export,
    missing_records_reason,
    read_comments,
    verify_folder,
)


class SnapshotSource:
    """A snapshot in a store."""

    kind = "snapshot"

    def __init__(self, store, snap) -> None:
        self.store = store
        self.snap = store.resolve(snap)
        self.identity = f"snapshot:{self.snap.full_id}"
        self.label = f"snapshot {self.snap.id}"
        self.journal_root = Path(store.private_dir) / "restores"

    def bases(self) -> list[tuple[str, str]]:
        return [(b.base_id, b.name) for b in self.snap.bases]

    def schema(self, base_id: str) -> dict:
        return self.store.schema(self.snap, base_id)

    def has_table(self, base_id: str, table_id: str) -> bool:
        return self.snap.table(base_id, table_id) is not None

    def records(self, base_id: str, table_id: str) -> Iterator[dict]:
        return self.store.records(self.snap, base_id, table_id)

    def comments(self, base_id: str, table_id: str) -> dict[str, list[dict]]:
        """Record id -> its comments as the API listed them (newest first); {} if none were stored."""
        return self.store.comments(self.snap, base_id, table_id)

    def _atts(self):
        # one catalog query for every attachment (a DuckDB connection per lookup costs ~20 ms)
        if getattr(self, "_att_index", None) is None:
            self._att_index = self.store.attachment_index()
        return self._att_index

    def att_info(self, att_id: str) -> dict | None:
        return self._atts().get(att_id)

    def open_att(self, att_id: str) -> BinaryIO:
        return self._atts().open(att_id)

    def att_path(self, att_id: str) -> str | None:
        return None


class FolderSource:
    """An exported folder (``airtable_backup_*``): ``metadata/`` (schema per base, manifest) and
    ``data/json/`` (records by field name), ``attachments/``. Verified against its manifest first."""

    kind = "folder"

    def __init__(self, folder: str | Path, *, verify: bool = True) -> None:
        self.root = Path(folder).resolve()
        if not self.root.is_dir():
            raise RestoreError(f"{folder}: no such folder")
        if verify:
            verify_folder(self.root)
        self.layout = _read_layout(self.root)
        if not self.layout.data_files:
            raise RestoreError(missing_records_reason(self.root))
        digest = hashlib.sha256((self.root / "metadata" / "manifest.json").read_bytes()).hexdigest() \
            if (self.root / "metadata" / "manifest.json").exists() else hashlib.sha256(str(self.root).encode()).hexdigest()
        self.identity = f"folder:{digest}"
        self.label = f"folder {self.root.name}"
        self.journal_root = self.root.parent / f"{self.root.name}.restores"

    def bases(self) -> list[tuple[str, str]]:
        return [(b, self.layout.base_names.get(b, b)) for b in self.layout.schemas]

    def schema(self, base_id: str) -> dict:
        try:
            return self.layout.schemas[base_id]
        except KeyError:
            raise RestoreError(f"base {base_id} is not in {self.label}") from None

    def has_table(self, base_id: str, table_id: str) -> bool:
        return (base_id, table_id) in self.layout.data_files

    def records(self, base_id: str, table_id: str) -> Iterator[dict]:
        path = self.layout.data_files.get((base_id, table_id))
        if path is None:
            return iter(())
        cache = self.__dict__.setdefault("_cache", {})
        if (base_id, table_id) not in cache:  # parsed once per run (a folder is read whole anyway)
            schema = self.schema(base_id)
            table = next(t for t in schema["tables"] if t["id"] == table_id)
            cache.clear()
            cache[(base_id, table_id)] = [_record_from_export(r, table, self) for r in _load_json_records(path)]
        return iter(cache[(base_id, table_id)])

    def comments(self, base_id: str, table_id: str) -> dict[str, list[dict]]:
        path = self.layout.comment_files.get((base_id, table_id))
        return read_comments(path) if path is not None else {}

    def _note_att(self, att: dict, path: str | None) -> None:
        if path and att.get("id"):
            self.layout.att_files.setdefault(att["id"], path)

    def att_info(self, att_id: str) -> dict | None:
        p = self.layout.att_files.get(att_id)
        meta = self.layout.att_meta.get(att_id, {})
        if p is None or not (self.root / p).is_file():
            return None
        return {"att_id": att_id, "size": (self.root / p).stat().st_size, "mime": meta.get("type"),
                "filename": meta.get("filename") or Path(p).name}

    def open_att(self, att_id: str) -> BinaryIO:
        return open(self.root / self.layout.att_files[att_id], "rb")

    def att_path(self, att_id: str) -> str | None:
        p = self.layout.att_files.get(att_id)
        return str(self.root / p) if p else None




def open_source(source: str | Path, store=None, *, verify: bool = True):
    """A snapshot name (needs ``store``) or an exported folder."""
    p = Path(str(source))
    if p.is_dir() and ((p / "data").is_dir() or (p / "metadata").is_dir()):
        return FolderSource(p, verify=verify)
    if store is None:
        raise RestoreError(f"{source}: not an exported folder, and no store given to find a snapshot in")
    return SnapshotSource(store, source)
