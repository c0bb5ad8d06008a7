"""What Airtable's create routes would refuse, found before the first write (reference §6.5, and the
emulator's ``schema_ops`` which follows it), so a restore cannot fail half-way on a name:

- field names must be non-empty and unique in a table **ignoring case** (``DUPLICATE_OR_EMPTY_FIELD_NAME``);
  a snapshot can hold ``Name`` and ``name`` (an export edited by hand, another tool's folder, a base
  from before a rename). Rule: the first of a clash (primary field first, then schema order) keeps its
  name, each later one is created as ``<name> (2)``, ``<name> (3)``... (the first free one), and the
  report lists every rename. Link inverses count: they live in their table like any field.
- table and field descriptions at most 20,000 characters (``create table``); longer ones are refused
  here, the field named.
- select choices need a name; a choice without one is refused here, the field named.
- table names unique ignoring case: the tables are suffixed `` (restored)`` (see ``plan``).
"""

from __future__ import annotations

from snapstore.restore.errors import RestoreError

MAX_DESCRIPTION = 20000

#: Field plans that create a field in their table (the others are reported, not created).
CREATED = ("primary", "primary_text", "create", "keep_text", "link", "inverse")


def numbered(name: str, taken_lower: set[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... whichever is free, ignoring case."""
    if name.lower() not in taken_lower:
        return name
    n = 2
    while f"{name} ({n})".lower() in taken_lower:
        n += 1
    return f"{name} ({n})"


def resolve_field_names(table_name: str, fields: list) -> list[dict]:
    """Give every created field of one table a name Airtable accepts (see the module docstring);
    ``fields`` are :class:`FieldPlan`, primary first, renamed in place. Returns the renames."""
    taken: set[str] = set()
    renames = []
    for fp in fields:
        if fp.action not in CREATED:
            continue
        if not (fp.name or "").strip():
            raise RestoreError(f"table {table_name!r}: field {fp.src_id} has an empty name, which Airtable "
                               "refuses; rename it in the source first")
        new = numbered(fp.name, taken)
        if new != fp.name:
            renames.append({"table": table_name, "field": fp.name, "id": fp.src_id, "new_name": new,
                            "reason": "another field of the table has the same name ignoring case"})
            fp.renamed_from, fp.name = fp.name, new
        taken.add(new.lower())
    return renames


def check_table(table: dict, fields: list) -> None:
    """Refuse, with the field named, what no rule can repair."""
    if len(table.get("description") or "") > MAX_DESCRIPTION:
        raise RestoreError(f"table {table['name']!r}: its description is longer than the {MAX_DESCRIPTION} "
                           "characters Airtable accepts")
    for fp in fields:
        if fp.action not in CREATED:
            continue
        if len(fp.description or "") > MAX_DESCRIPTION:
            raise RestoreError(f"{table['name']}.{fp.name}: its description is longer than the "
                               f"{MAX_DESCRIPTION} characters Airtable accepts")
        for c in (fp.options or {}).get("choices") or []:
            if not str(c.get("name") or "").strip():
                raise RestoreError(f"{table['name']}.{fp.name}: a select choice without a name, which Airtable "
                                   "refuses")
