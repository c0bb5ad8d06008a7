"""The report of a restore or revert (``report.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TableReport:
    name: str
    new_table: str | None = None
    new_name: str | None = None
    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    resumed: int = 0
    comments: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Report:
    mode: str
    source: str
    target_base: str
    journal: str | None = None
    id_map_file: str | None = None
    dry_run: bool = False
    status: str = "planned"
    tables: dict[str, TableReport] = field(default_factory=dict)
    not_restorable: list[dict] = field(default_factory=list)
    attachments_uploaded: int = 0
    comments_restored: int = 0
    attachments_not_uploaded: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plan: dict | None = None
    requests: dict | None = None
    #: write requests made beside the floor (a create per 10 records, an update per 10 records
    #: holding one side of each link), so a restore that wastes requests shows it
    floor: dict | None = None

    def to_dict(self) -> dict:
        return {
            "mode": self.mode, "status": self.status, "dry_run": self.dry_run, "source": self.source,
            "target_base": self.target_base, "journal": self.journal, "id_map_file": self.id_map_file,
            "tables": {k: v.to_dict() for k, v in self.tables.items()},
            "not_restorable": self.not_restorable,
            "attachments": {"uploaded": self.attachments_uploaded, "not_uploaded": self.attachments_not_uploaded},
            "comments": {"restored": self.comments_restored},
            "warnings": self.warnings, "plan": self.plan, "requests": self.requests,
            "floor": self.floor,
        }
