"""Reading a hook's payloads from a cursor, and what they say changed.

The payloads are read only for *which* records, fields and tables changed (reference §3.3: the
cells in them use other shapes than list-records, so a backup never rebuilds records from them).
Pieces of one transaction share a ``baseTransactionNumber``; applying the union of every piece is
the same whatever the order, because a record id is never reused after its record is destroyed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from snapstore.source import webhooks

#: Field types whose cells Airtable computes: a new one has a value in every record.
COMPUTED_TYPES = {"formula", "rollup", "multipleLookupValues", "count", "autoNumber", "createdTime",
                  "lastModifiedTime", "createdBy", "lastModifiedBy", "button", "aiText", "externalSyncSource"}
#: Field attributes whose change leaves every stored cell as it was.
_COSMETIC = {"name", "description"}


class FeedBroken(Exception):
    """An error payload: the hook cannot be trusted any more (INVALID_HOOK, INVALID_FILTERS, …)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class FeedGap(Exception):
    """Payloads between the cursor and the first one returned are gone (deleted after 7 days)."""


@dataclass
class FeedRead:
    payloads: list[dict]
    cursor: int  # the next payload to read
    requests: int
    transactions: int


def read_payloads(source, base_id: str, hook_id: str, cursor: int) -> FeedRead:
    """Every payload from ``cursor`` on, 50 a request until ``mightHaveMore`` is false.

    Raises :class:`FeedBroken` on an error payload, and the source's errors (404: hook gone)."""
    out: list[dict] = []
    requests = 0
    for page in webhooks.iter_payload_pages(source, base_id, hook_id, cursor):
        requests += 1
        got = page.get("payloads") or []
        nxt = int(page.get("cursor") or cursor)
        if nxt - cursor > len(got):  # numbers were skipped: those payloads no longer exist
            raise FeedGap(f"payloads {cursor} to {nxt - len(got) - 1} are gone (Airtable keeps them 7 days)")
        for p in got:
            if isinstance(p, dict) and p.get("error"):
                raise FeedBroken(str(p.get("code") or "UNKNOWN_ERROR"))
            out.append(p)
        cursor = max(cursor, nxt)
    txns = {p.get("baseTransactionNumber") for p in out}
    return FeedRead(out, cursor, requests, len(txns))


@dataclass
class Changes:
    """What a run of payloads says, per table (ids only)."""

    records: dict[str, set[str]] = field(default_factory=dict)  # created or changed: re-read
    destroyed: dict[str, set[str]] = field(default_factory=dict)
    full: dict[str, str] = field(default_factory=dict)  # tables to list in full, with why
    schema: bool = False  # re-read the base's schema
    created_tables: set[str] = field(default_factory=set)
    destroyed_tables: set[str] = field(default_factory=set)
    touched_fields: dict[str, set[str]] = field(default_factory=dict)  # created/destroyed/retyped fields
    cells: dict[str, dict[str, dict]] = field(default_factory=dict)  # list-valued cells the payloads carry

    def direct(self) -> int:
        return sum(len(v) for v in self.records.values())

    def add_record(self, table_id: str, rid: str) -> None:
        self.records.setdefault(table_id, set()).add(rid)

    def note_cells(self, table_id: str, rid: str, cells) -> None:
        """Keep the list-valued cells (links among them) and cleared ones: the knock-on closure predicts
        from them which linked records to re-read in the same requests."""
        if isinstance(cells, dict):
            keep = {f: v for f, v in cells.items() if v is None or isinstance(v, list)}
            if keep:
                self.cells.setdefault(table_id, {}).setdefault(rid, {}).update(keep)


def changes_from(payloads: list[dict]) -> Changes:
    ch = Changes()
    for p in payloads:
        for tid, tc in (p.get("changedTablesById") or {}).items():
            if not isinstance(tc, dict):
                continue
            for rid, rc in (tc.get("createdRecordsById") or {}).items():
                ch.add_record(tid, rid)
                ch.note_cells(tid, rid, (rc or {}).get("cellValuesByFieldId"))
            for rid, rc in (tc.get("changedRecordsById") or {}).items():
                ch.add_record(tid, rid)
                ch.note_cells(tid, rid, ((rc or {}).get("current") or {}).get("cellValuesByFieldId"))
            for rid in tc.get("destroyedRecordIds") or []:
                ch.destroyed.setdefault(tid, set()).add(rid)
            if tc.get("changedMetadata"):
                ch.schema = True
            # a new field of a writable type is empty in every record (empty cells are not listed);
            # a computed one has a value in each
            created = {f: c for f, c in (tc.get("createdFieldsById") or {}).items()
                       if (c or {}).get("type") in COMPUTED_TYPES or not (c or {}).get("type")}
            if tc.get("createdFieldsById"):
                ch.schema = True
            destroyed = tc.get("destroyedFieldIds") or []
            retyped = [f for f, c in (tc.get("changedFieldsById") or {}).items()
                       if set((c or {}).get("current") or {}) - _COSMETIC]
            if tc.get("changedFieldsById"):
                ch.schema = True
            if created or destroyed or retyped:
                ch.schema = True
                ch.touched_fields.setdefault(tid, set()).update([*created, *destroyed, *retyped])
                what = "a field created" if created else "a field deleted" if destroyed else "a field's type changed"
                ch.full.setdefault(tid, what)
        for tid, tc in (p.get("createdTablesById") or {}).items():
            ch.schema = True
            for rid in ((tc or {}).get("recordsById") or {}):
                ch.add_record(tid, rid)
            ch.created_tables.add(tid)
            ch.full.setdefault(tid, "a new table")
        for tid in p.get("destroyedTableIds") or []:
            ch.schema = True
            ch.destroyed_tables.add(tid)
    for tid, ids in ch.destroyed.items():
        if tid in ch.records:
            ch.records[tid] -= ids
    return ch
