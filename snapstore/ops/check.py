"""``snapstore check``: is the token good, and can it read each base (schema, records, comments)?
A verdict per base, from the fewest requests that prove it: the schema, the first record of the
first table, that record's comments when asked."""

from __future__ import annotations

from dataclasses import dataclass, field

from snapstore.selection import select
from snapstore.source import AirtableSource, SourceError


@dataclass
class CheckReport:
    user: dict
    api_url: str
    visible: int
    verdicts: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every base asked for (or visible) is readable, and there is at least one."""
        return bool(self.verdicts) and all(v["ok"] for v in self.verdicts)

    def to_dict(self) -> dict:
        return {"user": self.user, "api_url": self.api_url, "visible": self.visible, "bases": self.verdicts,
                "ok": self.ok}


def check_access(source: AirtableSource, bases: list[str] | None = None, *, comments: bool = False) -> CheckReport:
    """The verdicts for ``bases`` (ids or names, the one selection rule; default every visible
    base). A token that fails altogether raises its SourceError; a base that fails is a verdict."""
    user = source.preflight()
    visible = source.bases()
    report = CheckReport(user, source.api_url, len(visible))
    chosen = visible
    if bases:  # a base the token does not see is a usage error naming those it sees, as in every verb
        ids = select(bases, [(b["id"], b.get("name")) for b in visible], "base", "visible to this token") or set()
        chosen = [b for b in visible if b["id"] in ids]
    for b in chosen:
        report.verdicts.append(_verdict(source, b, comments))
    return report


def _verdict(source: AirtableSource, base: dict, comments: bool) -> dict:
    v = {"base_id": base["id"], "name": base.get("name"), "permission_level": base.get("permissionLevel"), "ok": True}
    try:
        tables = source.schema(base["id"]).get("tables", [])
        v["tables"] = len(tables)
        if tables:
            recs = source.first_record(base["id"], tables[0]["id"])
            if comments and recs:
                source.comments(base["id"], tables[0]["id"], recs[0]["id"])
        v["verdict"] = f"ok: {len(tables)} table(s), records readable" + (", comments readable" if comments else "")
    except SourceError as e:
        v["ok"] = False
        v["verdict"] = str(e)
    return v
