"""What every format writer shares: the export context and the four-call writer protocol.

The orchestrator makes one pass over the snapshot, a chunk of records at a time: workers call each
selected writer's ``encode(batch)``, the main process feeds the payloads to the writer instances in
chunk order (see :class:`Writer`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from snapstore_exporters.comments import TableComments
from snapstore_exporters.naming import inside
from snapstore_exporters.stream import Batch, TableMeta

from snapstore.store import SnapshotInfo

log = logging.getLogger("snapstore.export")

#: Buffer for the output files: large sequential writes.
BUFFER = 1 << 20
#: How many conversion warnings are logged per table and field before they are only counted.
MAX_WARNINGS = 5


class HashingFile:
    """A new file that computes its SHA-256 as it is written, so the manifest need not read it back
    (the main process hashes each chunk as it arrives, while the workers encode the next ones)."""

    def __init__(self, path: Path, digests: dict[str, tuple[int, str]]) -> None:
        self.path = path
        self._f = open(path, "xb", buffering=BUFFER)
        self._sha = hashlib.sha256()
        self._size = 0
        self._digests = digests
        self.closed = False

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self._size += len(data)
        return self._f.write(data)

    def close(self) -> None:
        if not self.closed:
            self._f.close()
            self.closed = True
            self._digests[str(self.path)] = (self._size, self._sha.hexdigest())


@dataclass
class ExportContext:
    root: Path  # the export folder being written (still under its temporary name)
    snapshot: SnapshotInfo
    csv_guard: bool = True
    warnings: list[str] = field(default_factory=list)
    warning_counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    digests: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> (size, sha256) of files written

    @property
    def scratch(self) -> Path:
        """Where workers leave part files for the main process; removed before the manifest."""
        d = self.root / ".parts"
        d.mkdir(exist_ok=True)
        return d

    def data_dir(self, fmt: str, *parts: str) -> Path:
        d = inside(self.root, "data", fmt, *parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def warn(self, fmt: str, table: TableMeta, column: str, message: str) -> None:
        """A value the format cannot hold as typed (stored as documented, or null): counted, logged a few times."""
        key = (fmt, f"{table.base.name}/{table.name}", column)
        n = self.warning_counts.get(key, 0) + 1
        self.warning_counts[key] = n
        if n <= MAX_WARNINGS:
            text = f"{fmt}: {key[1]}, column {column!r}: {message}"
            self.warnings.append(text)
            log.warning(text)


class Writer:
    """One format of one export, in two halves.

    ``encode(batch)`` (a static method, run in worker processes) turns a chunk of records into this
    format's payload: bytes, an Arrow table, rows. It is pure: it sees only the :class:`Batch` and
    reports unconvertible values with ``batch.warn``. The instance (main process) owns the files:
    ``open_table(table)``, ``write(payload)`` per chunk in order, ``close_table()``, ``close()`` at the
    end, ``abort()`` instead when the export fails.
    """

    format = ""
    ext = ""

    def __init__(self, ctx: ExportContext) -> None:
        self.ctx = ctx
        self.table: TableMeta | None = None
        self.files: list[Path] = []

    @staticmethod
    def encode(batch: Batch):
        raise NotImplementedError

    def table_path(self, table: TableMeta, ext: str | None = None) -> Path:
        return self._path(table.stem, table, ext)

    def comments_path(self, table: TableMeta, ext: str | None = None) -> Path:
        """Where the table's comments file goes: beside its records, ``<stem>.comments<ext>``."""
        return self._path(table.comments_stem, table, ext)

    def _path(self, stem: str, table: TableMeta, ext: str | None) -> Path:
        path = inside(self.ctx.data_dir(self.format, table.base.stem), stem + (self.ext if ext is None else ext))
        self.files.append(path)
        return path

    def open_binary(self, path: Path) -> HashingFile:
        return HashingFile(path, self.ctx.digests)

    def open_table(self, table: TableMeta) -> None:
        self.table = table

    def write(self, payload) -> None:
        raise NotImplementedError

    def write_comments(self, comments: TableComments) -> None:
        """The open table's comments (called before ``close_table``, only for tables whose snapshot
        captured comments): written whole, in the main process (a few per cent of the records' size)."""
        raise NotImplementedError

    def close_table(self) -> None:
        self.table = None

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """The export failed: release files and connections; the folder is deleted afterwards."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - best effort during failure cleanup
            pass


class StreamWriter(Writer):
    """A format that is one byte stream per table: a prefix, each chunk's bytes, a suffix."""

    def __init__(self, ctx: ExportContext) -> None:
        super().__init__(ctx)
        self.f: HashingFile | None = None
        self.chunks = 0

    def prefix(self, table: TableMeta) -> bytes:
        return b""

    def separator(self) -> bytes:
        """Written between two non-empty chunks."""
        return b""

    def suffix(self) -> bytes:
        return b""

    @staticmethod
    def encode_dicts(items: list[dict]) -> bytes:
        """Plain JSON-shaped objects (records, comment entries) as one chunk of this format."""
        raise NotImplementedError

    @classmethod
    def encode(cls, batch: Batch) -> bytes:
        return cls.encode_dicts(batch.shaped())

    def write_comments(self, comments: TableComments) -> None:
        """The comments file: the same stream as a records file (prefix, one chunk, suffix)."""
        records, chunks = self.f, self.chunks
        self.f, self.chunks = self.open_binary(self.comments_path(comments.table)), 0
        try:
            self.f.write(self.prefix(comments.table))
            self.write(self.encode_dicts(comments.entries))
            self.f.write(self.suffix())
        finally:
            self.f.close()
            self.f, self.chunks = records, chunks

    def open_table(self, table: TableMeta) -> None:
        super().open_table(table)
        self.f = self.open_binary(self.table_path(table))
        self.f.write(self.prefix(table))
        self.chunks = 0

    def write(self, payload: bytes) -> None:
        if payload:
            if self.chunks:
                self.f.write(self.separator())
            self.f.write(payload)
            self.chunks += 1

    def close_table(self) -> None:
        if self.f is not None:
            self.f.write(self.suffix())
            self.f.close()
            self.f = None
        super().close_table()

    def abort(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None
