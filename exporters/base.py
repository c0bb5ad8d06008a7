"""What every format writer shares: the export context and the four-call writer protocol.

The orchestrator makes one pass over the snapshot; for each table it calls ``open_table(table)`` on every
selected writer, then ``write(record)`` for each record (Airtable's shape, fields by name), then
``close_table()``; ``close()`` once at the end (``abort()`` instead when the export fails).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from exporters.naming import inside
from exporters.stream import TableMeta
from snapstore.store import SnapshotInfo

log = logging.getLogger("snapstore.export")

#: Buffer for the output files: large sequential writes.
BUFFER = 1 << 20
#: How many conversion warnings are logged per table and field before they are only counted.
MAX_WARNINGS = 5


@dataclass
class ExportContext:
    root: Path  # the export folder being written (still under its temporary name)
    snapshot: SnapshotInfo
    csv_guard: bool = True
    warnings: list[str] = field(default_factory=list)
    warning_counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

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
    """Base class: one instance per format per export."""

    format = ""
    ext = ""

    def __init__(self, ctx: ExportContext) -> None:
        self.ctx = ctx
        self.table: TableMeta | None = None
        self.files: list[Path] = []

    def table_path(self, table: TableMeta, ext: str | None = None) -> Path:
        path = inside(self.ctx.data_dir(self.format, table.base.stem), table.stem + (self.ext if ext is None else ext))
        self.files.append(path)
        return path

    def open_binary(self, path: Path) -> io.BufferedWriter:
        return open(path, "xb", buffering=BUFFER)

    def open_table(self, table: TableMeta) -> None:
        self.table = table

    def write(self, record: dict) -> None:
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
    """A writer with one open binary file per table."""

    def __init__(self, ctx: ExportContext) -> None:
        super().__init__(ctx)
        self.f: io.BufferedWriter | None = None

    def open_table(self, table: TableMeta) -> None:
        super().open_table(table)
        self.f = self.open_binary(self.table_path(table))

    def close_table(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None
        super().close_table()

    def abort(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


class BatchWriter(Writer):
    """A writer that converts column-wise: records are buffered (``batch`` at a time, so memory stays
    bounded) and ``flush(records)`` turns each field into a column with one comprehension per field."""

    batch = 10_000

    def open_table(self, table: TableMeta) -> None:
        super().open_table(table)
        self.buf: list[dict] = []
        self.count = 0
        self.names = [f.get("name") or f["id"] for f in table.fields]

    def write(self, record: dict) -> None:
        self.buf.append(record)
        if len(self.buf) >= self.batch:
            self._flush()

    def _flush(self) -> None:
        if self.buf:
            recs, self.buf = self.buf, []
            self.count += len(recs)
            self.flush(recs)

    def flush(self, records: list[dict]) -> None:
        raise NotImplementedError

    def columns_of(self, records: list[dict]):
        """(record ids, createdTimes, then (field index, name, raw values) per field)."""
        cells = [r["fields"] for r in records]
        return ([r["id"] for r in records], [r.get("createdTime") for r in records],
                [(i, name, [c.get(name) for c in cells]) for i, name in enumerate(self.names)])

    def close_table(self) -> None:
        self._flush()
        super().close_table()
