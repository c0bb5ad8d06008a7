"""What a snapshot writer needs of its store, handed to it by ``Store.begin_snapshot``.

The writer (snapstore/store/writer.py) receives this and no ``Store``: store.py imports the writer
to begin snapshots, so the writer must not import store.py back, nor reach into the store's
private methods (issue 17; tests/test_writer_boundary.py keeps it so). Settings are read once, when
the snapshot begins (after the catalog was brought up to date); the functions are the store's own
public ones, so they read its catalog and its dictionary cache as the store does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snapstore.store.backend import Backend
    from snapstore.store.catalog import Catalog
    from snapstore.store.crypto import PlainBox
    from snapstore.store.info import SnapshotInfo
    from snapstore.store.packs import BlobEntry


@dataclass(frozen=True)
class WriteContext:
    #: where objects and packs go (create-only puts)
    backend: Backend
    #: the index the writer looks records, blobs and attachments up in, and ingests the commit into
    catalog: Catalog
    #: seals what is written (a plain store's box leaves bytes as they are)
    box: PlainBox
    #: a blob's identity: SHA-256, or an encrypted store's keyed MAC (the box's own function)
    blob_id: Callable[[bytes], bytes]
    store_id: str
    #: working files (a large attachment on its way into an object)
    tmp_dir: Path
    #: the store's format (config.json ``version``): 2 and up pack a table's records many to a frame
    format_version: int
    pack_size: int
    pack_version: int
    #: zstd level of record frames, and of a table's few new records (config.json ``zstd_level*``)
    record_level: int
    record_level_small: int
    #: what ends each record in a frame (format 3: a newline)
    record_end: bytes
    #: format 4: a table's small batch of new records is one column frame (store/columns.py)
    record_columns: bool
    #: a compression dictionary's bytes by its hash (read once, then cached by the store)
    dict_bytes: Callable[[bytes], bytes]
    #: a stored blob by hash, checked (the parent's comments)
    read_blob: Callable[[bytes], bytes]
    has_blob: Callable[[bytes], bool]
    #: packs a run that died before committing left behind: adopted, so their blobs are not written again
    orphan_packs: Callable[[], list[tuple[str, int, list[BlobEntry]]]]
    #: the newest snapshot's id (a new snapshot's parent), None in an empty store
    latest_id: Callable[[], str | None]
    #: a committed snapshot's info by its id
    resolve: Callable[[str], SnapshotInfo]

    @property
    def framed(self) -> bool:
        """Format 2 and up: a table's new records are packed many to a zstd frame."""
        return self.format_version >= 2
