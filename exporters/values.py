"""Value conversions every writer shares: column kinds from the schema, column names, CSV flattening.

One place decides how an Airtable field type maps to a typed column (Parquet, SQLite) and how a cell is
flattened into one CSV cell, so the writers stay small and agree with each other.
"""

from __future__ import annotations

from typing import Any

import orjson
from snapstore_exporters.naming import NameAllocator, safe_column

from snapstore.fieldtypes import is_attachment

TEXT_TYPES = frozenset({
    "singleLineText", "multilineText", "richText", "email", "url", "phoneNumber", "singleSelect",
    "externalSyncSource", "manualSort",
})
FLOAT_TYPES = frozenset({"number", "percent", "currency", "duration"})
INT_TYPES = frozenset({"rating", "autoNumber", "count"})
COLLABORATOR_TYPES = frozenset({"singleCollaborator", "createdBy", "lastModifiedBy"})

#: Column kinds: how a field is stored in typed formats.
TEXT, FLOAT, INT, BOOL, DATE, DATETIME = "text", "float", "int", "bool", "date", "datetime"
STR_LIST, ATTACHMENTS, COLLABORATOR, COLLABORATORS = "str_list", "attachments", "collaborator", "collaborators"
BARCODE, BUTTON, JSON = "barcode", "button", "json"
#: Lists of one scalar kind: lookups of numbers, checkboxes, dates (lookups of text are STR_LIST).
FLOAT_LIST, BOOL_LIST, DATE_LIST, DATETIME_LIST = "float_list", "bool_list", "date_list", "datetime_list"
#: The item kind of each list kind whose items are typed one by one (error items become null).
LIST_ITEM = {STR_LIST: TEXT, FLOAT_LIST: FLOAT, BOOL_LIST: BOOL, DATE_LIST: DATE, DATETIME_LIST: DATETIME}
#: Computed field types typed by their ``options.result`` (the type of the value they compute).
COMPUTED_TYPES = frozenset({"formula", "rollup", "multipleLookupValues"})
#: A formula's or rollup's result kinds that get a typed column (anything else stays JSON text).
#: Integer results are floats: a rollup's AVERAGE of ratings or a formula dividing counts is not whole.
_SCALAR_RESULT = {TEXT: TEXT, FLOAT: FLOAT, INT: FLOAT, BOOL: BOOL, DATE: DATE, DATETIME: DATETIME}
#: A lookup's list kind from the looked-up field's kind (Airtable flattens looked-up lists).
_LOOKUP_LIST = {TEXT: STR_LIST, STR_LIST: STR_LIST, FLOAT: FLOAT_LIST, INT: FLOAT_LIST, BOOL: BOOL_LIST,
                DATE: DATE_LIST, DATETIME: DATETIME_LIST, ATTACHMENTS: ATTACHMENTS, COLLABORATOR: COLLABORATORS,
                COLLABORATORS: COLLABORATORS}

#: The two record columns every tabular table (CSV, Parquet, SQLite) gets before its fields; underscored
#: so they rarely collide with field names (a field called "ID" is common).
RECORD_COLUMNS = ("_id", "_createdTime")


def column_kind(field: dict) -> str:
    """How a field's cells are stored in typed formats. Formula, rollup and lookup fields take the
    kind of their ``options.result`` (a lookup a list of it); where the result type has no typed column
    (or the schema does not say), they are JSON text, as are aiText and unknown types."""
    t = field.get("type")
    if t in COMPUTED_TYPES:
        result = (field.get("options") or {}).get("result")
        if not isinstance(result, dict) or not result.get("type") or result.get("type") in COMPUTED_TYPES:
            return JSON
        kind = column_kind(result)
        return (_LOOKUP_LIST if t == "multipleLookupValues" else _SCALAR_RESULT).get(kind, JSON)
    if t in TEXT_TYPES:
        return TEXT
    if t in FLOAT_TYPES:
        return FLOAT
    if t in INT_TYPES:
        return INT
    if t == "checkbox":
        return BOOL
    if t == "date":
        return DATE
    if t == "dateTime":
        return DATETIME
    if t in ("createdTime", "lastModifiedTime"):
        result = (field.get("options") or {}).get("result") or {}
        return DATE if result.get("type") == "date" else DATETIME
    if t in ("multipleSelects", "multipleRecordLinks"):
        return STR_LIST
    if t == "multipleAttachments":
        return ATTACHMENTS
    if t in COLLABORATOR_TYPES:
        return COLLABORATOR
    if t == "multipleCollaborators":
        return COLLABORATORS
    if t == "barcode":
        return BARCODE
    if t == "button":
        return BUTTON
    return JSON


def column_names(fields: list[dict]) -> list[str]:
    """Output column names: ``_id``, ``_createdTime``, then each field's name in schema order, with
    control characters replaced (:func:`snapstore_exporters.naming.safe_column`). A field whose name collides
    (case-insensitively, after that) with an earlier column gets ``~`` + a short hash of its name."""
    alloc = NameAllocator(max_bytes=4096)
    out = [alloc.take(c, sanitize=False) for c in RECORD_COLUMNS]
    for f in fields:
        out.append(alloc.take(f.get("name") or f.get("id"), sanitize=safe_column, fallback=f.get("id") or "field"))
    return out


def is_error(v: Any) -> bool:
    """A computed field's error value: ``{"error": "#ERROR!"}`` or ``{"specialValue": "NaN"}``."""
    return type(v) is dict and ("error" in v or "specialValue" in v) and len(v) <= 2


def dumps_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def is_collaborator(v: Any) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("id"), str) and v["id"].startswith(("usr", "ugp"))
            and ("email" in v or "name" in v))


# ---- CSV ---------------------------------------------------------------------------------------

#: Characters a spreadsheet treats as the start of a formula (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LIST_SEP = ", "


def _scalar_text(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def _list_item(text: str) -> str:
    """An item of a joined list, JSON-quoted when it would be ambiguous (comma, quote, edge spaces)."""
    if not text or "," in text or '"' in text or text != text.strip():
        return dumps_json(text)
    return text


def collaborator_text(v: dict) -> str:
    return v.get("email") or v.get("name") or v.get("id") or ""


def attachment_text(v: dict) -> str:
    path = v.get("path")
    if path:
        return path
    return f"{v.get('filename') or ''} ({v.get('id')})"


def csv_cell(value: Any) -> tuple[str, bool]:
    """The CSV text of one cell and whether it is a plain number (numbers are never formula-guarded).

    Rules (also in the README): empty → empty cell; text as is; numbers in JSON notation; booleans
    ``true``/``false``; lists of plain values, of linked record ids, of collaborators (email, else name,
    else id) and of attachments (local path, else ``filename (attId)``) joined with ``", "`` — an item
    containing a comma or a double quote, empty, or with edge spaces is written as a JSON string; a
    collaborator object as its email/name/id; every other object or list as compact JSON.
    """
    if value is None:
        return "", False
    t = type(value)
    if t is str:
        return value, False
    if t is int or t is float:
        return _scalar_text(value), True
    if t is bool:
        return _scalar_text(value), False
    if t is list:
        if not value:
            return "", False
        if all(type(v) in (str, int, float, bool) for v in value):
            return LIST_SEP.join(_list_item(_scalar_text(v)) for v in value), False
        if all(is_attachment(v) for v in value):
            return LIST_SEP.join(_list_item(attachment_text(v)) for v in value), False
        if all(is_collaborator(v) for v in value):
            return LIST_SEP.join(_list_item(collaborator_text(v)) for v in value), False
        return dumps_json(value), False
    if t is dict:
        if is_collaborator(value):
            return collaborator_text(value), False
        if is_attachment(value):
            return attachment_text(value), False
        return dumps_json(value), False
    return str(value), False


def guard_formula(text: str) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula."""
    if text and text.startswith(FORMULA_START):
        return "'" + text
    return text


def split_csv_list(text: str) -> list[str]:
    """Inverse of the list joining in :func:`csv_cell` (for readers and tests)."""
    if text == "":
        return []
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            j = i + 1
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == '"':
                    break
                j += 1
            out.append(orjson.loads(text[i : j + 1]))
            i = j + 1
        else:
            j = text.find(LIST_SEP, i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
        if text.startswith(LIST_SEP, i):
            i += len(LIST_SEP)
    return out
