"""What Airtable's API allows for each field type: one list, used by the emulator (which enforces
it) and by restore (which plans around it); and how to tell an attachment in a stored value."""

from typing import Any

#: Cell values of these types cannot be written, and the fields cannot be created, through the API.
COMPUTED_TYPES = frozenset({
    "formula", "rollup", "multipleLookupValues", "count", "autoNumber", "createdTime", "lastModifiedTime",
    "createdBy", "lastModifiedBy", "button", "aiText", "externalSyncSource", "manualSort",
})
#: Field types the metadata API can create.
CREATABLE_TYPES = frozenset({
    "singleLineText", "multilineText", "richText", "email", "url", "phoneNumber", "number", "percent",
    "currency", "duration", "rating", "checkbox", "singleSelect", "multipleSelects", "singleCollaborator",
    "multipleCollaborators", "date", "dateTime", "multipleAttachments", "multipleRecordLinks", "barcode",
})
#: Creatable types Airtable accepts as a new table's primary field.
CREATABLE_PRIMARY_TYPES = frozenset({
    "singleLineText", "multilineText", "email", "url", "phoneNumber", "number", "percent", "currency",
    "duration", "date", "dateTime", "barcode", "richText",
})
#: Types an existing table's primary field may have (a primary can be turned into these in the UI).
PRIMARY_TYPES = CREATABLE_PRIMARY_TYPES | {"autoNumber", "formula"}


def is_attachment(value: Any) -> bool:
    """An attachment object as the API gives it (``{"id": "att…", "url": …, "filename": …}``):
    wherever it sits (an attachment field, a lookup of one), its ``att`` id names the file."""
    return isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"].startswith("att")
