"""What a restore will create: tables, fields (and why the others cannot be), in the order the API allows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field

from snapstore.fieldtypes import COMPUTED_TYPES, CREATABLE_TYPES
from snapstore.fieldtypes import CREATABLE_PRIMARY_TYPES as PRIMARY_TYPES
from snapstore.restore.checks import check_table, resolve_field_names
from snapstore.restore.errors import RestoreError
from snapstore.selection import pick, select_tables

#: Which option keys each type accepts when a field is created (the read format carries more).
WRITE_OPTIONS: dict[str, tuple[str, ...]] = {
    "number": ("precision",), "percent": ("precision",), "currency": ("precision", "symbol"),
    "duration": ("durationFormat",), "rating": ("icon", "color", "max"), "checkbox": ("icon", "color"),
    "singleSelect": ("choices",), "multipleSelects": ("choices",), "date": ("dateFormat",),
    "dateTime": ("dateFormat", "timeFormat", "timeZone"), "multipleRecordLinks": ("linkedTableId",),
}
#: Link options the create route cannot take (reference §2.3: write accepts linkedTableId and
#: viewIdForRecordSelection only), and why each is reported instead.
LOST_OPTIONS = {
    "viewIdForRecordSelection": "views are not restored (the API cannot create them), so the record "
                                "picker's view restriction cannot point anywhere",
    "prefersSingleRecordLink": "the create route refused it: the field allows several linked records",
}
WHY_COMPUTED = "computed field: the API can neither create this field type nor write its values"
UPLOAD_LIMIT = 5 * 1024 * 1024
BATCH = 10




@dataclass
class FieldPlan:
    src_id: str
    name: str
    type: str
    action: str  # primary | create | link | inverse | computed | keep_text | skip
    reason: str | None = None
    definition: dict | None = None
    options: dict | None = None
    description: str | None = None
    link_table: str | None = None  # source table id a link points at
    inverse_of: str | None = None  # for action "inverse": the source field id created on the other side
    renamed_from: str | None = None  # the source's name, when a case-insensitive clash renamed it
    link_options: dict | None = None  # link options sent on create besides linkedTableId
    not_restored: list | None = None  # option names the API cannot take (reported by name)

    def to_dict(self) -> dict:
        d = {"id": self.src_id, "name": self.name, "type": self.type, "action": self.action}
        if self.reason:
            d["reason"] = self.reason
        if self.definition is not None:
            d["definition"] = self.definition
        if self.renamed_from:
            d["renamed_from"] = self.renamed_from
        return d


@dataclass
class TablePlan:
    src_id: str
    name: str
    new_name: str
    primary: str
    fields: list[FieldPlan]
    records: int = 0
    description: str | None = None
    renames: list = dc_field(default_factory=list)

    def field(self, fid: str) -> FieldPlan | None:
        return next((f for f in self.fields if f.src_id == fid), None)


@dataclass
class Plan:
    source: str
    base_id: str
    target_base: str
    tables: list[TablePlan]
    keep_computed: bool
    comments: bool = True

    def to_dict(self) -> dict:
        return {
            "source": self.source, "base_id": self.base_id, "target_base": self.target_base,
            "keep_computed_values": self.keep_computed, "comments": self.comments,
            "tables": [{"id": t.src_id, "name": t.name, "new_name": t.new_name, "records": t.records,
                        "fields": [f.to_dict() for f in t.fields]} for t in self.tables],
            "renamed": self.renamed,
        }

    def table(self, src_id: str | None) -> TablePlan | None:
        return next((t for t in self.tables if t.src_id == src_id), None)

    @property
    def renamed(self) -> list[dict]:
        """Fields created under another name (case-insensitive clashes), by table."""
        return [r for t in self.tables for r in t.renames]

    @property
    def not_restorable(self) -> list[dict]:
        out = []
        for t in self.tables:
            for f in t.fields:
                if f.action in ("computed", "keep_text", "skip"):
                    d = {"table": t.name, "field": f.name, "id": f.src_id, "type": f.type,
                         "reason": f.reason, "definition": f.definition}
                    if f.action == "keep_text":
                        d["kept_as"] = "last values in a text field"
                    out.append(d)
                for opt in f.not_restored or []:
                    out.append({"table": t.name, "field": f.name, "id": f.src_id, "type": f.type, "option": opt,
                                "reason": LOST_OPTIONS.get(opt, "the create route does not accept this option")})
        return out


def _write_options(f: dict) -> dict | None:
    keys = WRITE_OPTIONS.get(f["type"])
    opts = f.get("options") or {}
    if not keys:
        return None
    out = {k: opts[k] for k in keys if k in opts}
    if "choices" in out:
        out["choices"] = [{k: c[k] for k in ("name", "color") if k in c} for c in out["choices"]]
    return out or None


def _suffixed(name: str, taken: set[str]) -> str:
    low = {t.lower() for t in taken}
    if name.lower() not in low:
        return name
    cand = f"{name} (restored)"
    n = 2
    while cand.lower() in low:
        cand = f"{name} (restored {n})"
        n += 1
    return cand


def make_plan(source, base_id: str | None, target_base: str, *, tables: Iterable[str] = (),
              target_table_names: Iterable[str] = (), keep_computed: bool = False,
              count_records: bool = True, comments: bool = True) -> Plan:
    bases = source.bases()
    if base_id is None:
        if len(bases) != 1:
            raise RestoreError(f"{source.label} holds {len(bases)} bases "
                               f"({', '.join(b for b, _ in bases)}); choose one with --base")
        base_id = bases[0][0]
    else:
        base_id = pick(base_id, bases, "base", f"in {source.label}")
    schema = source.schema(base_id)
    held = [t for t in schema["tables"] if source.has_table(base_id, t["id"])]
    wanted = select_tables(list(tables), [(base_id, None, t["id"], t["name"]) for t in held],
                           f"in base {base_id} of {source.label}")
    chosen = [t for t in held if wanted is None or (base_id, t["id"]) in wanted]
    if not chosen:
        raise RestoreError(f"nothing to restore: no tables of base {base_id} in {source.label}")
    chosen_ids = {t["id"] for t in chosen}
    taken = set(target_table_names)
    plans: list[TablePlan] = []
    created_links: set[str] = set()
    fields_by_id = {f["id"]: (t["id"], f) for t in schema["tables"] for f in t["fields"]}
    for t in chosen:
        new_name = _suffixed(t["name"], taken)
        taken.add(new_name)
        fps = []
        for f in t["fields"]:
            typ = f["type"]
            fp = FieldPlan(f["id"], f["name"], typ, "create", description=f.get("description"))
            if f["id"] == t["primaryFieldId"]:
                if typ in PRIMARY_TYPES:
                    fp.action, fp.options = "primary", _write_options(f)
                else:
                    fp.action = "primary_text"
                    fp.reason = (f"{typ} cannot be a created primary field; recreated as a text field "
                                 "holding the last values")
                    fp.definition = {"type": typ, "options": f.get("options")}
            elif typ in COMPUTED_TYPES:
                fp.definition = {"type": typ, "options": f.get("options")}
                fp.reason = WHY_COMPUTED
                fp.action = "keep_text" if keep_computed else "computed"
            elif typ == "multipleRecordLinks":
                opts = f.get("options") or {}
                other = opts.get("linkedTableId")
                fp.link_table = other
                inv = opts.get("inverseLinkFieldId")
                if other not in chosen_ids:
                    fp.action, fp.reason = "skip", f"links to table {other}, which is not being restored"
                    fp.definition = {"type": typ, "options": opts}
                elif inv and inv in created_links:
                    fp.action, fp.inverse_of = "inverse", inv
                else:
                    fp.action = "link"
                    created_links.add(f["id"])
                    if opts.get("prefersSingleRecordLink"):
                        fp.link_options = {"prefersSingleRecordLink": True}
                    if opts.get("viewIdForRecordSelection"):
                        fp.not_restored = ["viewIdForRecordSelection"]
            elif typ in CREATABLE_TYPES:
                fp.options = _write_options(f)
            else:
                fp.action, fp.reason = "skip", f"field type {typ!r} is not known to be creatable through the API"
                fp.definition = {"type": typ, "options": f.get("options")}
            fps.append(fp)
        # the primary field first
        fps.sort(key=lambda x: 0 if x.action in ("primary", "primary_text") else 1)
        renames = resolve_field_names(t["name"], fps)
        check_table(t, fps)
        n = 0
        if count_records:
            info = getattr(source, "snap", None)
            ti = info.table(base_id, t["id"]) if info is not None else None
            n = ti.records if ti is not None else sum(1 for _ in source.records(base_id, t["id"]))
        plans.append(TablePlan(t["id"], t["name"], new_name, t["primaryFieldId"], fps, n, t.get("description"),
                               renames))
    # a link whose inverse was planned first (self-links with an inverse in the same table, or the
    # inverse seen earlier) stays as planned; an "inverse" must point at a created link
    del fields_by_id
    return Plan(source.identity, base_id, target_base, plans, keep_computed, comments)




def _plan_to_state(plan: Plan) -> dict:
    return {"source": plan.source, "base_id": plan.base_id, "target_base": plan.target_base,
            "keep_computed": plan.keep_computed, "comments": plan.comments,
            "tables": [{"src_id": t.src_id, "name": t.name, "new_name": t.new_name, "primary": t.primary,
                        "records": t.records, "description": t.description, "renames": t.renames,
                        "fields": [f.__dict__ for f in t.fields]} for t in plan.tables]}


def _plan_from_dict(d: dict) -> Plan:
    tables = [TablePlan(t["src_id"], t["name"], t["new_name"], t["primary"], [FieldPlan(**f) for f in t["fields"]],
                        t["records"], t.get("description"), t.get("renames") or []) for t in d["tables"]]
    return Plan(d["source"], d["base_id"], d["target_base"], tables, d["keep_computed"], d.get("comments", True))
