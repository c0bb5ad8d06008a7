"""Deterministic workspace generator: same arguments -> same workspace, byte for byte.

Every table carries every field type the meta API knows (34), with options as the API returns them,
realistic values, computed fields computed by the emulator's own evaluator, error values
(``{"error": "#ERROR!"}``, ``{"specialValue": "NaN"}``), two-sided links between tables of a base,
a self-link in the first table of each base, real small attachment files and comments."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from . import files
from .formula import format_datetime
from .ids import derived_id, random_id
from .state import Base, Record, Table, Workspace
from .values import COLORS, refresh_computed

BASE_NAMES = ["Operations", "Marketing", "Sales CRM", "Product Roadmap", "Inventory", "Hiring", "Finance",
              "Events", "Research", "Support"]
TABLE_NAMES = ["Projects", "Tasks", "Clients", "Invoices", "Contacts", "Assets", "Meetings", "Products",
               "Orders", "Vendors"]
USER_NAMES = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Linus Torvalds",
              "Margaret Hamilton"]
ADJ = ["Quick", "Silent", "Bright", "Hidden", "Golden", "Frozen", "Rapid", "Gentle", "Bold", "Lucky", "Rusty",
       "Crimson", "Azure", "Velvet", "Cosmic", "Urban"]
NOUN = ["Falcon", "Harbor", "Meadow", "Engine", "Lantern", "Summit", "Canyon", "Orchard", "Beacon", "Pixel",
        "Glacier", "Atlas", "Compass", "Voyage", "Prism", "Quartz"]
SENTENCES = [
    "Follow up with the vendor about the revised quote.", "Waiting on legal review.",
    "Shipped to the warehouse on Monday.", "Needs a second pair of eyes before release.",
    "Budget approved by finance.", "Customer asked for a call next week — in their time zone.",
    "Draft ready; see attached PDF.", "Blocked until the API migration lands.",
    "Café meeting notes: ünïcödé, emoji 🚀, quotes \"like this\" and 'this'.",
]
STATUS = ["Todo", "In progress", "Review", "Done", "Blocked"]
TAGS = ["urgent", "backend", "frontend", "design", "Q3", "customer", "internal", "legal"]
SYNC = ["Salesforce", "Jira", "HubSpot"]
BASE_TIME = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
WORKSPACE_NOW = "2024-06-01T00:00:00.000Z"
DATE_FMT = {"format": "YYYY-MM-DD", "name": "iso"}
DT_OPTS = {"dateFormat": {"format": "l", "name": "local"}, "timeFormat": {"format": "HH:mm", "name": "24hour"},
           "timeZone": "utc"}


def _choices(rng: random.Random, names: list[str]) -> list[dict]:
    return [{"id": random_id("sel", rng), "name": n, "color": COLORS[(i * 7 + 2) % len(COLORS)]}
            for i, n in enumerate(names)]


def _schema_for(rng: random.Random, table_id: str, name: str, link_fwd: tuple | None, link_inv: tuple | None,
                self_link: bool, linked_primary: dict[str, Any], self_link_lookups: bool = False) -> dict:
    """link_fwd/link_inv: (field_id, field_name, other_table_id, other_field_id_or_None).
    Field ids derive from the table id and the field name, so other tables can refer to them."""
    F: dict[str, dict] = {}

    def add(name_: str, type_: str, options: dict | None = None, description: str | None = None) -> dict:
        f: dict[str, Any] = {"id": field_id_for(table_id, name_), "name": name_, "type": type_}
        if description:
            f["description"] = description
        if options is not None:
            f["options"] = options
        F[name_] = f
        return f

    add("Name", "singleLineText", description="Primary name of the record")
    add("Notes", "multilineText")
    add("Summary", "richText")
    add("Email", "email")
    add("Website", "url")
    add("Phone", "phoneNumber")
    add("Quantity", "number", {"precision": 0})
    add("Score", "number", {"precision": 2})
    add("Progress", "percent", {"precision": 0})
    add("Budget", "currency", {"precision": 2, "symbol": "$"})
    add("Time spent", "duration", {"durationFormat": "h:mm"})
    add("Rating", "rating", {"color": "yellowBright", "icon": "star", "max": 5})
    add("Done", "checkbox", {"color": "greenBright", "icon": "check"})
    add("Due date", "date", {"dateFormat": dict(DATE_FMT)})
    add("Starts at", "dateTime", {k: (dict(v) if isinstance(v, dict) else v) for k, v in DT_OPTS.items()})
    add("Status", "singleSelect", {"choices": _choices(rng, STATUS)})
    add("Tags", "multipleSelects", {"choices": _choices(rng, TAGS)})
    add("Owner", "singleCollaborator")
    add("Watchers", "multipleCollaborators")
    add("Files", "multipleAttachments", {"isReversed": False})
    add("Barcode", "barcode")
    link_for_lookup = None
    if self_link:
        f = add("Related", "multipleRecordLinks", {"isReversed": False, "linkedTableId": table_id,
                                                    "prefersSingleRecordLink": False})
        link_for_lookup = (f, table_id)
    for spec in (link_fwd, link_inv):
        if spec is None:
            continue
        f_id, f_name, other_tid, other_fid = spec
        f = {"id": f_id, "name": f_name, "type": "multipleRecordLinks",
             "options": {"inverseLinkFieldId": other_fid, "isReversed": False, "linkedTableId": other_tid,
                         "prefersSingleRecordLink": False}}
        F[f_name] = f
        if spec is link_fwd or link_for_lookup is None:
            link_for_lookup = (f, other_tid)
    if link_for_lookup is not None:
        lf, other = link_for_lookup
        lp = linked_primary[other]
        prefix = lf["name"]
        add(f"{prefix} names", "multipleLookupValues",
            {"isValid": True, "recordLinkFieldId": lf["id"], "fieldIdInLinkedTable": lp["Name"]["id"],
             "result": {"type": "singleLineText"}})
        add(f"{prefix} ratios", "multipleLookupValues",
            {"isValid": True, "recordLinkFieldId": lf["id"], "fieldIdInLinkedTable": lp["Ratio"]["id"],
             "result": {"type": "number", "options": {"precision": 2}}})
        add(f"{prefix} total quantity", "rollup",
            {"isValid": True, "recordLinkFieldId": lf["id"], "fieldIdInLinkedTable": lp["Quantity"]["id"],
             "referencedFieldIds": [lp["Quantity"]["id"]], "result": {"type": "number", "options": {"precision": 0}}})
        add(f"{prefix} count", "count", {"isValid": True, "recordLinkFieldId": lf["id"]})
    if self_link and self_link_lookups and link_for_lookup is not None and link_for_lookup[1] != table_id:
        # computed through the self-link too: a record's lookups follow the records it links to in
        # its own table, which name no inverse cell (what a change feed has to find by itself)
        rel = F["Related"]
        add("Related names", "multipleLookupValues",
            {"isValid": True, "recordLinkFieldId": rel["id"], "fieldIdInLinkedTable": F["Name"]["id"],
             "result": {"type": "singleLineText"}})
        add("Related total quantity", "rollup",
            {"isValid": True, "recordLinkFieldId": rel["id"], "fieldIdInLinkedTable": F["Quantity"]["id"],
             "referencedFieldIds": [F["Quantity"]["id"]], "result": {"type": "number", "options": {"precision": 0}}})
        add("Related count", "count", {"isValid": True, "recordLinkFieldId": rel["id"]})

    def formula(name_: str, text: str, refs: list[str], result: dict) -> None:
        ids = {r: F[r]["id"] for r in refs}
        for r, i in ids.items():
            text = text.replace("{" + r + "}", "{" + i + "}")
        add(name_, "formula", {"formula": text, "isValid": True, "referencedFieldIds": list(ids.values()),
                               "result": result})

    formula("Label", '{Name} & " #" & {Quantity}', ["Name", "Quantity"], {"type": "singleLineText"})
    formula("Double score", "{Score} * 2", ["Score"], {"type": "number", "options": {"precision": 2}})
    formula("Ratio", "{Score} / {Quantity}", ["Score", "Quantity"], {"type": "number", "options": {"precision": 2}})
    formula("Formula NaN", '{Quantity} + "FOO"', ["Quantity"], {"type": "number", "options": {"precision": 0}})
    formula("State", 'IF({Done}, "done", "open")', ["Done"], {"type": "singleLineText"})
    add("Created", "createdTime", {"result": {"type": "dateTime", "options": dict(DT_OPTS)}})
    add("Last modified", "lastModifiedTime",
        {"isValid": True, "referencedFieldIds": [], "result": {"type": "dateTime", "options": dict(DT_OPTS)}})
    add("Created by", "createdBy")
    add("Last modified by", "lastModifiedBy")
    add("ID", "autoNumber")
    add("Open", "button")
    add("AI summary", "aiText", {"prompt": ["Summarize: ", {"field": {"fieldId": F["Notes"]["id"]}}],
                                 "referencedFieldIds": [F["Notes"]["id"]]})
    add("Sync source", "externalSyncSource", {"choices": _choices(rng, SYNC)})
    add("Manual sort", "manualSort")
    fields = list(F.values())
    all_ids = [f["id"] for f in fields]
    compact = [F[n]["id"] for n in ("Name", "Status", "Owner", "Due date")]
    views = [
        {"id": random_id("viw", rng), "name": "Grid view", "type": "grid", "visibleFieldIds": all_ids},
        {"id": random_id("viw", rng), "name": "Compact", "type": "grid", "visibleFieldIds": compact},
        {"id": random_id("viw", rng), "name": "Gallery", "type": "gallery"},
        {"id": random_id("viw", rng), "name": "Board", "type": "kanban"},
    ]
    return {"id": table_id, "name": name, "description": f"{name} tracked by the team",
            "primaryFieldId": F["Name"]["id"], "fields": fields, "views": views}


def field_id_for(table_id: str, field_name: str) -> str:
    return derived_id("fld", table_id, field_name)


def make_attachment(ws: Workspace, rng: random.Random, att_id: str, n: int) -> dict:
    """A real small file: PNG (60 %), PDF (25 %) or text (15 %)."""
    r = rng.random()
    if r < 0.6:
        w, h = rng.randint(16, 160), rng.randint(16, 120)
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        data = files.make_png(w, h, color, text=att_id)
        name = f"photo-{n}.png"
    elif r < 0.85:
        data = files.make_pdf(f"Report {n} ({att_id})")
        name = f"report-{n}.pdf"
    else:
        data = files.make_text(f"Notes {n}\n{rng.choice(SENTENCES)}\n{att_id}\n")
        name = f"notes-{n}.txt"
    return ws.add_attachment(data, name, att_id=att_id)


def _iso(t: dt.datetime) -> str:
    return format_datetime(t)


class _Values:
    """Value makers for writable field types (used by the generator and by churn)."""

    def __init__(self, ws: Workspace, rng: random.Random, attachment_share: float) -> None:
        self.ws, self.rng, self.attachment_share = ws, rng, attachment_share
        self.users = ws.users
        self.n = 0

    def value(self, field: dict, rec_id: str, i: int, force: bool = False) -> Any:
        rng, t, name = self.rng, field["type"], field["name"]
        p = rng.random()
        if t == "singleLineText":
            return f"{rng.choice(ADJ)} {rng.choice(NOUN)} {i}" if (force or name == "Name" or p < 0.8) else None
        if t == "multilineText":
            if not force and p > 0.5:
                return None
            lines = [rng.choice(SENTENCES) for _ in range(rng.randint(1, 3))]
            if rng.random() < 0.2:
                u = rng.choice(self.users)
                lines.append(f'cc <airtable:mention id="men{rec_id[3:]}">@{u["name"]}</airtable:mention>')
            return "\n".join(lines)
        if t == "richText":
            return f"**{rng.choice(ADJ)}** _{rng.choice(NOUN).lower()}_ notes\n\n- item {i}\n" \
                if force or p < 0.4 else None
        if t == "email":
            return f"{rng.choice(NOUN).lower()}.{i}@example.com" if force or p < 0.7 else None
        if t == "url":
            return f"https://example.com/{rng.choice(NOUN).lower()}/{i}" if force or p < 0.5 else None
        if t == "phoneNumber":
            return f"(415) 555-{rng.randrange(10000):04d}" if force or p < 0.6 else None
        if t == "number":
            if not force and p > 0.8:
                return None
            prec = (field.get("options") or {}).get("precision", 0)
            return rng.randint(0, 100) if prec == 0 else round(rng.uniform(0, 100), prec)
        if t == "percent":
            return round(rng.random(), 2) if force or p < 0.6 else None
        if t == "currency":
            return round(rng.uniform(10, 50000), 2) if force or p < 0.6 else None
        if t == "duration":
            return rng.randrange(60, 36000, 60) if force or p < 0.5 else None
        if t == "rating":
            return rng.randint(1, (field.get("options") or {}).get("max", 5)) if force or p < 0.5 else None
        if t == "checkbox":
            return True if force or p < 0.4 else None
        if t == "date":
            return (BASE_TIME + dt.timedelta(days=rng.randrange(700))).strftime("%Y-%m-%d") \
                if force or p < 0.6 else None
        if t == "dateTime":
            return _iso(BASE_TIME + dt.timedelta(minutes=15 * rng.randrange(60000))) if force or p < 0.6 else None
        if t == "singleSelect":
            ch = (field.get("options") or {}).get("choices") or []
            return rng.choice(ch)["name"] if ch and (force or p < 0.85) else None
        if t == "multipleSelects":
            ch = (field.get("options") or {}).get("choices") or []
            if not ch or (not force and p > 0.5):
                return None
            picked = rng.sample(ch, min(len(ch), rng.randint(1, 3)))
            return [c["name"] for c in sorted(picked, key=ch.index)]
        if t == "singleCollaborator":
            return rng.choice(self.users) if force or p < 0.7 else None  # shared, never mutated
        if t == "multipleCollaborators":
            if not force and p > 0.4:
                return None
            return rng.sample(self.users, rng.randint(1, 3))
        if t == "multipleAttachments":
            if not force and p >= self.attachment_share:
                return None
            out = []
            for _ in range(rng.randint(1, 2)):
                self.n += 1
                out.append(make_attachment(self.ws, rng, random_id("att", rng), self.n))
            return out
        if t == "barcode":
            if not force and p > 0.3:
                return None
            return {"text": f"{rng.randrange(10**7, 10**8)}", "type": rng.choice(["upce", "ean8", "code39"])}
        if t == "aiText":
            if p < 0.6:
                return {"state": "generated", "isStale": False,
                        "value": f"{rng.choice(ADJ)} summary of record {i}."}
            if p < 0.65:
                return {"state": "error", "errorType": "invalidPrompt", "isStale": False, "value": None}
            return None
        if t == "externalSyncSource":
            ch = (field.get("options") or {}).get("choices") or []
            return rng.choice(ch)["name"] if ch and p < 0.5 else None
        return None


WRITABLE_GENERATED = frozenset({
    "singleLineText", "multilineText", "richText", "email", "url", "phoneNumber", "number", "percent", "currency",
    "duration", "rating", "checkbox", "date", "dateTime", "singleSelect", "multipleSelects", "singleCollaborator",
    "multipleCollaborators", "multipleAttachments", "barcode",
})


def _comment(ws: Workspace, rng: random.Random, created: str, parent: str | None, n: int) -> dict:
    author = rng.choice(ws.users)
    c: dict[str, Any] = {"id": random_id("com", rng), "author": dict(author)}
    text = rng.choice(["Looks good to me.", "Can we revisit this next sprint?", "Done — thanks!",
                       "Please double-check the numbers.", "Attached the latest version."])
    mentioned = None
    if rng.random() < 0.3:
        m = rng.choice(ws.users)
        text = f"@[{m['id']}] {text}"
        mentioned = {m["id"]: {"id": m["id"], "type": "user", "displayName": m["name"], "email": m["email"]}}
    c["text"] = text
    c["createdTime"] = created
    c["lastUpdatedTime"] = None
    if parent:
        c["parentCommentId"] = parent
    if mentioned:
        c["mentioned"] = mentioned
    if rng.random() < 0.2:
        r = rng.choice(ws.users)
        c["reactions"] = [{"emoji": {"unicodeCharacter": rng.choice(["1f44d", "1f389", "1f468-200d-1f469-200d-1f466"])},
                           "reactingUser": {"userId": r["id"], "email": r["email"], "name": r["name"]}}]
    return c


def generate_workspace(seed: int = 0, bases: int = 2, tables_per_base: int = 3, records_per_table: int = 100,
                       attachment_share: float = 0.2, link_share: float = 0.5, comment_share: float = 0.1,
                       self_link_lookups: bool = False) -> Workspace:
    """Build a workspace deterministically from ``seed`` and the sizes. ``self_link_lookups`` adds a
    lookup, a rollup and a count through the first table's self-link (``Related``)."""
    for name, share in (("attachment_share", attachment_share), ("link_share", link_share),
                        ("comment_share", comment_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    if bases < 0 or tables_per_base < 1 or records_per_table < 0:
        raise ValueError("bases >= 0, tables_per_base >= 1 and records_per_table >= 0 are required")
    rng = random.Random(f"snapstore-emulator:{seed}")
    users = []
    for n in USER_NAMES:
        first = n.split()[0].lower()
        users.append({"id": random_id("usr", rng), "email": f"{first}@example.com", "name": n})
    ws = Workspace(seed=seed, workspace_id=random_id("wsp", rng), users=users, now=WORKSPACE_NOW)
    now_dt = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    span = (now_dt - BASE_TIME).total_seconds() * 0.8
    for bi in range(bases):
        base = Base(random_id("app", rng), BASE_NAMES[bi % len(BASE_NAMES)] + (f" {bi // len(BASE_NAMES) + 1}"
                                                                              if bi >= len(BASE_NAMES) else ""),
                    "create", _iso(BASE_TIME + dt.timedelta(days=bi)))
        ws.bases.append(base)
        n = tables_per_base
        tids = [random_id("tbl", rng) for _ in range(n)]
        tnames = [TABLE_NAMES[i % len(TABLE_NAMES)] + (f" {i // len(TABLE_NAMES) + 1}" if i >= len(TABLE_NAMES) else "")
                  for i in range(n)]
        pairs = [(i, (i + 1) % n) for i in range(n)] if n >= 3 else ([(0, 1)] if n == 2 else [])
        fwd: dict[int, tuple] = {}
        inv: dict[int, tuple] = {}
        for a, b in pairs:
            fa, fb = random_id("fld", rng), random_id("fld", rng)
            fwd[a] = (fa, tnames[b], tids[b], fb)
            inv[b] = (fb, tnames[a], tids[a], fa)
        primaries = {tid: {nm: {"id": field_id_for(tid, nm)} for nm in ("Name", "Quantity", "Ratio")}
                     for tid in tids}
        schemas = [_schema_for(random.Random(f"snapstore-emulator:{seed}:{bi}:{ti}"), tids[ti], tnames[ti],
                               fwd.get(ti), inv.get(ti), ti == 0, primaries, self_link_lookups) for ti in range(n)]
        for s in schemas:
            base.tables.append(Table(s))
        # records
        for ti, table in enumerate(base.tables):
            trng = random.Random(f"snapstore-emulator:{seed}:{bi}:{ti}:records")
            vals = _Values(ws, trng, attachment_share)
            writable = [f for f in table.fields if f["type"] in WRITABLE_GENERATED or f["type"] in
                        ("aiText", "externalSyncSource")]
            special = {f["type"]: f["id"] for f in table.fields
                       if f["type"] in ("autoNumber", "createdBy", "lastModifiedBy", "button")}
            button_label = next((f["name"] for f in table.fields if f["type"] == "button"), "Open")
            step = span / max(records_per_table, 1)
            for i in range(records_per_table):
                rid = random_id("rec", trng)
                created_dt = BASE_TIME + dt.timedelta(seconds=int(i * step + trng.random() * step * 0.5))
                created = _iso(created_dt)
                modified = _iso(min(created_dt + dt.timedelta(seconds=trng.randrange(0, 90 * 86400)), now_dt))
                cells: dict[str, Any] = {}
                for f in writable:
                    v = vals.value(f, rid, i + 1)
                    if v is not None:
                        cells[f["id"]] = v
                creator = trng.choice(ws.users)
                if "createdBy" in special:
                    cells[special["createdBy"]] = creator
                if "lastModifiedBy" in special:
                    cells[special["lastModifiedBy"]] = trng.choice(ws.users)
                if "autoNumber" in special:
                    cells[special["autoNumber"]] = i + 1
                if "button" in special:
                    cells[special["button"]] = {"label": button_label, "url": f"https://example.com/records/{rid}"}
                rec = Record(rid, created, cells, modified)
                if comment_share and trng.random() < comment_share:
                    comments: list[dict] = []
                    for k in range(trng.randint(1, 3)):
                        ct = _iso(min(created_dt + dt.timedelta(hours=k + 1 + trng.randrange(48)), now_dt))
                        parent = comments[0]["id"] if comments and trng.random() < 0.3 else None
                        comments.append(_comment(ws, trng, ct, parent, k))
                    comments.sort(key=lambda c: c["createdTime"])
                    rec.comments = comments
                table.records[rid] = rec
        # links (both sides) and the self-link
        lrng = random.Random(f"snapstore-emulator:{seed}:{bi}:links")
        for a, b in pairs:
            ta, tb = base.tables[a], base.tables[b]
            fa, fb = fwd[a][0], fwd[a][3]
            targets = list(tb.records)
            if not targets:
                continue
            for rec in ta.records.values():
                if lrng.random() >= link_share:
                    continue
                picks = lrng.sample(targets, min(len(targets), lrng.randint(1, 3)))
                rec.cells[fa] = picks
                for rid in picks:
                    tb.records[rid].cells.setdefault(fb, []).append(rec.id)
        if base.tables:
            t0 = base.tables[0]
            rel = next(f["id"] for f in t0.fields if f["name"] == "Related")
            ids = list(t0.records)
            for rec in t0.records.values():
                if ids and lrng.random() < link_share / 2:
                    picks = [x for x in lrng.sample(ids, min(len(ids), lrng.randint(1, 2))) if x != rec.id]
                    if picks:
                        rec.cells[rel] = picks
        # derived cells: formulas first (lookups read them), then lookups/rollups/counts
        for kinds in (("formula",), ("links",)):
            for table in base.tables:
                for rec in table.records.values():
                    refresh_computed(ws, base, table, rec, kinds=kinds)
        # cells in schema order, as Airtable returns them
        for table in base.tables:
            order = {f["id"]: k for k, f in enumerate(table.fields)}
            for rec in table.records.values():
                rec.cells = dict(sorted(rec.cells.items(), key=lambda kv: order[kv[0]]))
    return ws
