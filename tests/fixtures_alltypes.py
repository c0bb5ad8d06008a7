"""A base with every Airtable field type (the 34 of pyairtable's FieldType), sample records in the
list API's JSON shapes (airtable-api.md §3.5-3.6), attachments, a self-link, error values, and a
second base whose table and attachment names are hostile. Written straight through the store API."""

from __future__ import annotations

import io
import unicodedata

from snapstore.canonical import canonical_record
from snapstore.store import Store

BASE = "appALLTYPES000001"
T_MAIN = "tblALLTYPES000001"
T_DIST = "tblDISTRICTS00001"

_DT = {"dateFormat": {"format": "YYYY-MM-DD", "name": "iso"}, "timeFormat": {"format": "HH:mm", "name": "24hour"},
       "timeZone": "utc"}
_CHOICES = [{"id": "selTODO0000000001", "name": "Todo", "color": "blueLight2"},
            {"id": "selDONE0000000001", "name": "Done", "color": "greenBright"},
            {"id": "selCOMMA000000001", "name": "a, b", "color": "redBright"},
            {"id": "selQUOTE000000001", "name": 'say "hi"', "color": "grayBright"}]


def _f(fid: str, name: str, type_: str, options=None) -> dict:
    d = {"id": fid, "name": name, "type": type_}
    if options is not None:
        d["options"] = options
    return d


MAIN_FIELDS = [
    _f("fldNAME0000000001", "Name", "singleLineText"),
    _f("fldNOTES000000001", "Notes", "multilineText"),
    _f("fldRICH0000000001", "Rich", "richText"),
    _f("fldEMAIL000000001", "Email", "email"),
    _f("fldURL00000000001", "Site", "url"),
    _f("fldPHONE000000001", "Phone", "phoneNumber"),
    _f("fldQTY00000000001", "Qty", "number", {"precision": 0}),
    _f("fldPCT00000000001", "Done %", "percent", {"precision": 1}),
    _f("fldPRICE000000001", "Price", "currency", {"precision": 2, "symbol": "$"}),
    _f("fldSECS0000000001", "Secs", "duration", {"durationFormat": "h:mm:ss.S"}),
    _f("fldSTARS000000001", "Stars", "rating", {"icon": "star", "color": "yellowBright", "max": 5}),
    _f("fldDONE0000000001", "Done", "checkbox", {"icon": "check", "color": "greenBright"}),
    _f("fldSTATUS00000001", "Status", "singleSelect", {"choices": _CHOICES}),
    _f("fldTAGS0000000001", "Tags", "multipleSelects", {"choices": _CHOICES}),
    _f("fldOWNER000000001", "Owner", "singleCollaborator", {}),
    _f("fldWATCH000000001", "Watchers", "multipleCollaborators", {}),
    _f("fldDAY00000000001", "Day", "date", {"dateFormat": {"format": "YYYY-MM-DD", "name": "iso"}}),
    _f("fldWHEN0000000001", "When", "dateTime", _DT),
    _f("fldPICS0000000001", "Pictures", "multipleAttachments", {"isReversed": False}),
    _f("fldDIST0000000001", "District", "multipleRecordLinks",
       {"linkedTableId": T_DIST, "isReversed": False, "prefersSingleRecordLink": False,
        "inverseLinkFieldId": "fldDPROJ000000001"}),
    _f("fldPARENT00000001", "Parent", "multipleRecordLinks",
       {"linkedTableId": T_MAIN, "isReversed": False, "prefersSingleRecordLink": True}),
    _f("fldLOOKUP00000001", "District Name (lookup)", "multipleLookupValues",
       {"isValid": True, "recordLinkFieldId": "fldDIST0000000001", "fieldIdInLinkedTable": "fldDNAME000000001",
        "result": {"type": "singleLineText"}}),
    _f("fldLKPICS00000001", "Parent pictures", "multipleLookupValues",
       {"isValid": True, "recordLinkFieldId": "fldPARENT00000001", "fieldIdInLinkedTable": "fldPICS0000000001",
        "result": {"type": "multipleAttachments", "options": {"isReversed": False}}}),
    _f("fldROLLUP00000001", "Total (rollup)", "rollup",
       {"isValid": True, "recordLinkFieldId": "fldDIST0000000001", "fieldIdInLinkedTable": "fldDPOP0000000001",
        "referencedFieldIds": [], "result": {"type": "number", "options": {"precision": 0}}}),
    _f("fldCOUNT000000001", "Links (count)", "count", {"isValid": True, "recordLinkFieldId": "fldDIST0000000001"}),
    _f("fldCALC0000000001", "Calc (formula)", "formula",
       {"formula": "{fldNAME0000000001}&\"-\"&{fldQTY00000000001}", "isValid": True,
        "referencedFieldIds": ["fldNAME0000000001", "fldQTY00000000001"], "result": {"type": "singleLineText"}}),
    _f("fldBAD00000000001", "Bad formula", "formula",
       {"formula": "1/0", "isValid": True, "referencedFieldIds": [], "result": {"type": "number", "options": {"precision": 0}}}),
    _f("fldCREATED0000001", "Created", "createdTime", {"result": {"type": "dateTime", "options": _DT}}),
    _f("fldMODIFIED000001", "Modified", "lastModifiedTime",
       {"isValid": True, "referencedFieldIds": [], "result": {"type": "dateTime", "options": _DT}}),
    _f("fldCREATEDBY00001", "Created By", "createdBy"),
    _f("fldMODBY000000001", "Modified By", "lastModifiedBy"),
    _f("fldAUTONUM0000001", "ID", "autoNumber"),
    _f("fldBUTTON00000001", "Open", "button"),
    _f("fldBARCODE0000001", "Barcode", "barcode"),
    _f("fldAI000000000001", "Summary (AI)", "aiText", {"prompt": ["Summarise ", {"field": {"fieldId": "fldNOTES000000001"}}],
                                                       "referencedFieldIds": ["fldNOTES000000001"]}),
    _f("fldSYNC0000000001", "Sync source", "externalSyncSource", {"choices": [{"id": "selSRC0000000001", "name": "Src"}]}),
    _f("fldSORT0000000001", "Sort", "manualSort"),
]
ALL_TYPES = sorted({f["type"] for f in MAIN_FIELDS})

DIST_FIELDS = [
    _f("fldDNAME000000001", "Name", "singleLineText"),
    _f("fldDPOP0000000001", "Population", "number", {"precision": 0}),
    _f("fldDPROJ000000001", "Projects", "multipleRecordLinks",
       {"linkedTableId": T_MAIN, "isReversed": False, "prefersSingleRecordLink": False,
        "inverseLinkFieldId": "fldDIST0000000001"}),
]


def schema(main_fields=None) -> dict:
    return {"tables": [
        {"id": T_MAIN, "name": "Projects", "primaryFieldId": "fldNAME0000000001", "fields": main_fields or MAIN_FIELDS,
         "views": [{"id": "viwGRID000000001", "name": "Grid view", "type": "grid"}]},
        {"id": T_DIST, "name": "Districts", "primaryFieldId": "fldDNAME000000001", "fields": DIST_FIELDS,
         "views": [{"id": "viwGRID000000002", "name": "Grid view", "type": "grid"}]},
    ]}


USER1 = {"id": "usrAAAAAAAAAAAAA1", "email": "owner@example.com", "name": "Owner"}
USER2 = {"id": "usrAAAAAAAAAAAAA2", "email": "w@example.com", "name": "W"}
USER3 = {"id": "usrAAAAAAAAAAAAA3", "name": "No Email"}

#: Attachment files: id -> (filename, bytes, mime). Hostile filenames on purpose.
LONG = "x" * 300 + ".png"
ATTACHMENTS = {
    "attCAT00000000001": ("cat.png", b"\x89PNG\r\n\x1a\n cat", "image/png"),
    "attEVIL0000000001": ("../../evil.txt", b"evil", "text/plain"),
    "attCON00000000001": ("CON", b"con", "application/octet-stream"),
    "attSLASH000000001": ("a/b\\c.pdf", b"%PDF slash", "application/pdf"),
    "attEMPTY000000001": ("", b"", "application/octet-stream"),
    "attLONG0000000001": (LONG, b"long" * 10, "image/png"),
    "attUNI00000000001": (unicodedata.normalize("NFD", "naïve résumé 日本.pdf"), b"unicode", "application/pdf"),
    "attcat00000000001": ("cat.png", b"lower-case id, same name", "image/png"),
    "attBIG00000000001": ("big.bin", bytes(range(256)) * 2400, "application/octet-stream"),  # > 512 KiB: standalone
}


def att_obj(att_id: str) -> dict:
    fn, data, mime = ATTACHMENTS[att_id]
    obj = {"id": att_id, "url": f"https://v5.airtableusercontent.com/x/{att_id}", "filename": fn,
           "size": len(data), "type": mime}
    if mime == "image/png":
        obj.update(width=800, height=600, thumbnails={
            "small": {"url": "https://x/s", "width": 36, "height": 27},
            "large": {"url": "https://x/l", "width": 512, "height": 384}})
    return obj


R1, R2, R3, R4 = "recAAAAAAAAAAAAA1", "recAAAAAAAAAAAAA2", "recAAAAAAAAAAAAA3", "recAAAAAAAAAAAAA4"
D1, D2 = "recDDDDDDDDDDDDD1", "recDDDDDDDDDDDDD2"


def main_records() -> list[dict]:
    """By field id, as the list API returns them with returnFieldsByFieldId."""
    r1 = {
        "fldNAME0000000001": "Alpha", "fldNOTES000000001": "line1\nline2 <airtable:mention id=\"menX\">@Alex</airtable:mention>",
        "fldRICH0000000001": "**bold** text", "fldEMAIL000000001": "a@example.com",
        "fldURL00000000001": "https://example.com", "fldPHONE000000001": "(415) 555-9876",
        "fldQTY00000000001": 3, "fldPCT00000000001": 0.25, "fldPRICE000000001": 19.99, "fldSECS0000000001": 5400.5,
        "fldSTARS000000001": 4, "fldDONE0000000001": True, "fldSTATUS00000001": "Todo",
        "fldTAGS0000000001": ["Todo", "a, b", 'say "hi"'], "fldOWNER000000001": USER1,
        "fldWATCH000000001": [USER2, USER3], "fldDAY00000000001": "2024-05-01",
        "fldWHEN0000000001": "2024-05-01T09:30:00.000Z",
        "fldPICS0000000001": [att_obj(a) for a in ATTACHMENTS],
        "fldDIST0000000001": [D1, D2], "fldPARENT00000001": [R2],
        "fldLOOKUP00000001": ["Mission", "Soma"], "fldROLLUP00000001": 42, "fldCOUNT000000001": 2,
        "fldCALC0000000001": "Alpha-3", "fldBAD00000000001": {"error": "#ERROR!"},
        "fldCREATED0000001": "2024-05-01T10:00:00.000Z", "fldMODIFIED000001": "2024-05-02T08:00:00.000Z",
        "fldCREATEDBY00001": USER1, "fldMODBY000000001": USER2, "fldAUTONUM0000001": 1,
        "fldBUTTON00000001": {"label": "Open", "url": "https://example.com/rec"},
        "fldBARCODE0000001": {"text": "01234567", "type": "upce"},
        "fldAI000000000001": {"state": "generated", "isStale": False, "value": "A short summary"},
        "fldSYNC0000000001": "Src", "fldSORT0000000001": "a2",
    }
    r2 = {"fldNAME0000000001": "Beta", "fldPICS0000000001": [att_obj("attCAT00000000001")],
          "fldAUTONUM0000001": 2, "fldCREATED0000001": "2024-05-03T00:00:00.000Z",
          "fldBAD00000000001": {"specialValue": "NaN"}, "fldCOUNT000000001": 0,
          "fldAI000000000001": {"state": "error", "errorType": "x", "isStale": True, "value": None},
          "fldBARCODE0000001": {"text": "999", "type": None}, "fldBUTTON00000001": {"label": "Go", "url": None}}
    r3 = {  # spreadsheet formula injection attempts, unicode, edge numbers
        "fldNAME0000000001": "=HYPERLINK(\"http://evil\",\"x\")", "fldNOTES000000001": "+1 line\r\nnext",
        "fldRICH0000000001": "-2", "fldEMAIL000000001": "@SUM(A1)", "fldURL00000000001": "\tTab",
        "fldPHONE000000001": "\rCR", "fldQTY00000000001": -5, "fldPRICE000000001": -0.5,
        "fldSTATUS00000001": "a, b", "fldTAGS0000000001": ["=1+1"], "fldSECS0000000001": 0,
        "fldDAY00000000001": "1999-12-31", "fldWHEN0000000001": "2024-02-29T23:59:59.999Z",
        "fldLOOKUP00000001": [{"error": "#ERROR!"}], "fldCALC0000000001": "日本語 ünïcödé 🎉",
        "fldPARENT00000001": [R3], "fldAUTONUM0000001": 3, "fldCREATED0000001": "2024-05-04T00:00:00.000Z",
        "fldROLLUP00000001": 1.5, "fldSORT0000000001": "true",
    }
    r4 = {"fldNAME0000000001": "", "fldAUTONUM0000001": 4, "fldCREATED0000001": "2024-05-05T00:00:00.000Z",
          "fldLKPICS00000001": [att_obj("attCAT00000000001")], "fldPARENT00000001": [R1],
          "fldTAGS0000000001": [], "fldNOTES000000001": "null", "fldRICH0000000001": "2024-05-01"}
    out = []
    for rid, cells, ct in ((R1, r1, "2024-05-01T10:00:00.000Z"), (R2, r2, "2024-05-03T00:00:00.000Z"),
                           (R3, r3, "2024-05-04T00:00:00.000Z"), (R4, r4, "2024-05-05T00:00:00.000Z")):
        out.append({"id": rid, "createdTime": ct, "fields": cells})
    return out


def district_records() -> list[dict]:
    return [
        {"id": D1, "createdTime": "2024-01-01T00:00:00.000Z",
         "fields": {"fldDNAME000000001": "Mission", "fldDPOP0000000001": 60000, "fldDPROJ000000001": [R1]}},
        {"id": D2, "createdTime": "2024-01-02T00:00:00.000Z",
         "fields": {"fldDNAME000000001": "Soma", "fldDPOP0000000001": 12000.5, "fldDPROJ000000001": [R1, "recGONE0000000001"]}},
    ]


# ---- the hostile base: table names that must not escape or collide
HOSTILE_BASE = "appHOSTILE0000001"
HOSTILE_NAMES = ["../escape", "..", "CON", "a/b\\c", "", "y" * 300, "Café", unicodedata.normalize("NFD", "Café"),
                 "Tasks", "tasks", "nul.txt", "trailing. ", "=cmd|' /C calc'!A0", "sqlite_master"]


def hostile_schema() -> dict:
    tables = []
    for i, name in enumerate(HOSTILE_NAMES):
        tables.append({"id": f"tblHOSTILE{i:07d}", "name": name, "primaryFieldId": f"fldH{i:013d}",
                       "fields": [{"id": f"fldH{i:013d}", "name": "../name" if i % 2 else "id", "type": "singleLineText"},
                                  {"id": f"fldI{i:013d}", "name": "ID", "type": "number", "options": {"precision": 0}}],
                       "views": []})
    return {"tables": tables}


# ---- extras (restore round trip): descriptions, a field whose name differs from another only in
# case (a snapshot can hold one; Airtable's create routes refuse it), and comments with a reply
F_LOWER = "fldNAMELOWER00001"
TABLE_DESCRIPTION = "Every field type; described"
FIELD_DESCRIPTIONS = {"fldNAME0000000001": "The project's name", "fldDIST0000000001": "Where it happens",
                      "fldDPROJ000000001": "Projects in the district (the inverse)",
                      "fldQTY00000000001": "How many \u2014 with unicode"}
COMMENTS = {
    T_MAIN: {R1: [  # as the API lists them: newest first
        {"id": "comAAAAAAAAAAAAA3", "author": USER2, "text": "Reply: agreed", "createdTime": "2024-05-03T00:00:00.000Z",
         "lastUpdatedTime": None, "parentCommentId": "comAAAAAAAAAAAAA1"},
        {"id": "comAAAAAAAAAAAAA2", "author": USER1, "text": "Second, edited", "createdTime": "2024-05-02T00:00:00.000Z",
         "lastUpdatedTime": "2024-05-02T01:00:00.000Z"},
        {"id": "comAAAAAAAAAAAAA1", "author": USER1, "text": "First\nwith a new line", "createdTime": "2024-05-01T00:00:00.000Z",
         "lastUpdatedTime": None}],
        R3: [{"id": "comAAAAAAAAAAAAA4", "author": USER2, "text": "日本語 🎉", "createdTime": "2024-05-04T00:00:00.000Z",
              "lastUpdatedTime": None}]},
    T_DIST: {D1: [{"id": "comDDDDDDDDDDDDD1", "author": USER1, "text": "District note", "createdTime": "2024-01-05T00:00:00.000Z",
                   "lastUpdatedTime": None}]},
}


def extras_schema() -> dict:
    main = [dict(f, description=FIELD_DESCRIPTIONS[f["id"]]) if f["id"] in FIELD_DESCRIPTIONS else f
            for f in MAIN_FIELDS]
    main.insert(1, _f(F_LOWER, "name", "singleLineText"))
    s = schema(main)
    s["tables"][0]["description"] = TABLE_DESCRIPTION
    s["tables"][1]["fields"] = [dict(f, description=FIELD_DESCRIPTIONS[f["id"]]) if f["id"] in FIELD_DESCRIPTIONS
                                else f for f in DIST_FIELDS]
    return s


def build(path, *, hostile: bool = True, extras: bool = False) -> tuple[Store, object]:
    """A store with one snapshot holding both bases (``extras``: with descriptions, a case-only name
    clash and comments); returns (store, SnapshotInfo)."""
    store = Store.open(path, create=True)
    snap = store.begin_snapshot(note="all types", command="test")
    for att_id, (fn, data, mime) in ATTACHMENTS.items():
        snap.add_attachment(att_id, io.BytesIO(data), size=len(data), filename=fn, mime=mime)
    snap.add_base(BASE, "All types", extras_schema() if extras else schema())
    tw = snap.table(BASE, T_MAIN)
    for r in main_records():
        if extras:
            r["fields"][F_LOWER] = f"lower {r['id'][-1]}"
        tw.add(r)
    tw.finish()
    if extras:
        snap.add_comments(BASE, T_MAIN, COMMENTS[T_MAIN])
    tw = snap.table(BASE, T_DIST)
    for r in district_records():
        tw.add(r)
    tw.finish()
    if extras:
        snap.add_comments(BASE, T_DIST, COMMENTS[T_DIST])
    if hostile:
        snap.add_base(HOSTILE_BASE, "../../Base/..", hostile_schema())
        for i, t in enumerate(hostile_schema()["tables"]):
            tw = snap.table(HOSTILE_BASE, t["id"])
            tw.add({"id": f"recHOSTILE{i:07d}", "createdTime": "2024-01-01T00:00:00.000Z",
                    "fields": {t["fields"][0]["id"]: f"row of {t['name']!r}", t["fields"][1]["id"]: i}})
            tw.finish()
    return store, snap.commit()


def expected(table_id: str) -> dict[str, dict]:
    """The snapshot's records of a table (stored form: signed URLs stripped), by record id."""
    recs = main_records() if table_id == T_MAIN else district_records()
    return {r["id"]: canonical_record(r) for r in recs}


def fields_by_id(table_id: str) -> dict[str, dict]:
    return {f["id"]: f for f in (MAIN_FIELDS if table_id == T_MAIN else DIST_FIELDS)}
