"""What a snapshot is, as the library shows it: a commit object's document, read into dataclasses.

Its own module so that the writer (which returns one on commit) and the store (which lists them)
both use it without importing each other (issue 17).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class TableInfo:
    table_id: str
    name: str
    records: int
    new: int
    changed: int
    deleted: int
    unchanged: int


@dataclass
class BaseInfo:
    base_id: str
    name: str
    tables: list[TableInfo]
    permission_level: str | None = None
    schema_hash: str | None = None


@dataclass
class SnapshotInfo:
    id: str  # short id (8 hex) shown to users
    full_id: str
    seq: int
    time: datetime
    parent: str | None
    status: str
    tags: list[str]
    note: str | None
    missing: list[dict]
    stats: dict
    bases: list[BaseInfo]
    bytes_added: int = 0
    doc: dict = field(default_factory=dict, repr=False)

    @property
    def records(self) -> int:
        return sum(t.records for b in self.bases for t in b.tables)

    def table(self, base_id: str, table_id: str) -> TableInfo | None:
        for b in self.bases:
            if b.base_id == base_id:
                for t in b.tables:
                    if t.table_id == table_id:
                        return t
        return None

    def to_dict(self) -> dict:
        return {
            "id": self.id, "full_id": self.full_id, "time": self.time.isoformat().replace("+00:00", "Z"),
            "parent": self.parent[:8] if self.parent else None, "status": self.status, "tags": self.tags,
            "note": self.note, "missing": self.missing, "records": self.records, "bytes_added": self.bytes_added,
            "stats": self.stats,
            "bases": [
                {"base_id": b.base_id, "name": b.name, "tables": [t.__dict__ for t in b.tables]} for b in self.bases
            ],
        }


def info_from_doc(seq: int, full_id: str, doc: dict) -> SnapshotInfo:
    """A snapshot's info from its commit document and its catalog seq."""
    bases = []
    for b in doc["bases"]:
        tables = [
            TableInfo(t["table_id"], t["name"], t["records"], t["new"], t["changed"], t["deleted"],
                      t["records"] - t["new"] - t["changed"])
            for t in b["tables"]
        ]
        bases.append(BaseInfo(b["base_id"], b["name"], tables, b.get("permission_level"), b.get("schema")))
    return SnapshotInfo(
        id=full_id[:8], full_id=full_id, seq=seq,
        time=datetime.fromisoformat(doc["time"].replace("Z", "+00:00")),
        parent=doc.get("parent"), status=doc["status"], tags=list(doc.get("tags") or []), note=doc.get("note"),
        missing=list(doc.get("missing") or []), stats=dict(doc.get("stats") or {}), bases=bases,
        bytes_added=int(doc.get("bytes_added") or 0), doc=doc,
    )
