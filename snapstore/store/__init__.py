"""The content-addressed object store and its DuckDB catalog (see docs/FORMAT.md)."""

from snapstore.store.catalog import CatalogBusy, CatalogCorrupt
from snapstore.store.lock import LockError
from snapstore.store.store import BaseInfo, BlobReader, LocatedChunk, SnapshotInfo, Store, TableInfo
from snapstore.store.writer import SnapshotWriter, StoreError, TableCounts, TableWriter

__all__ = [
    "BaseInfo", "BlobReader", "CatalogBusy", "CatalogCorrupt", "LocatedChunk", "LockError", "SnapshotInfo", "SnapshotWriter", "Store", "StoreError",
    "TableCounts", "TableInfo", "TableWriter",
]
