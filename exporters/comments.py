"""Record comments in an export: one reader (the snapshot's comments of a table), every writer.

A snapshot taken with ``--comments`` holds, per table, ``{record id: [comment, ...]}`` with each
record's comments in the order Airtable lists them (newest first). Each format gets a comments file
beside the table's records (SQLite: a table), keyed by record id, so the records keep Airtable's own
shape:

- JSON, YAML: a list of ``{"record_id": "rec…", "comments": [Airtable comment objects]}``, records by
  id, comments in their stored order (NDJSON: one such object a line);
- CSV, Parquet, SQLite: a row per comment, :data:`COLUMNS` (``position`` is the comment's index in
  its record's list, 0 = first listed).

A table whose snapshot captured comments gets its comments files even when it has none (an empty
list, a header-only CSV, an empty Parquet file or SQLite table), so a file's presence says the
comments were captured; a snapshot taken without ``--comments`` gets no comments files at all.
"""

from __future__ import annotations

from functools import cached_property

from snapstore_exporters.stream import TableMeta

#: The flat columns (CSV, Parquet, SQLite), in order.
COLUMNS = ("record_id", "comment_id", "position", "author_id", "author_email", "author_name", "text",
           "created_time", "last_updated_time")


class TableComments:
    """One table's comments as every writer sees them: the record-keyed entries, or flat columns."""

    def __init__(self, table: TableMeta, by_record: dict[str, list[dict]]) -> None:
        self.table = table
        self.by_record = by_record

    @cached_property
    def entries(self) -> list[dict]:
        """``{"record_id", "comments"}`` per record that has comments, by record id."""
        return [{"record_id": rid, "comments": list(self.by_record[rid])}
                for rid in sorted(self.by_record) if self.by_record[rid]]

    @property
    def count(self) -> int:
        return sum(len(e["comments"]) for e in self.entries)

    @cached_property
    def columns(self) -> dict[str, list]:
        """:data:`COLUMNS` as lists, a value per comment (None where a comment lacks it)."""
        cols: dict[str, list] = {c: [] for c in COLUMNS}
        for e in self.entries:
            for pos, c in enumerate(e["comments"]):
                author = c.get("author") if isinstance(c.get("author"), dict) else {}
                for col, value in zip(COLUMNS, (
                        e["record_id"], c.get("id"), pos, author.get("id"), author.get("email"), author.get("name"),
                        c.get("text"), c.get("createdTime"), c.get("lastUpdatedTime")), strict=True):
                    cols[col].append(value)
        return cols

    def rows(self) -> list[tuple]:
        return list(zip(*self.columns.values(), strict=True))
